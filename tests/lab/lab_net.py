"""The lab's network: three namespaces (laptop, jump, ws), two veth links that can be cut, and running
commands on each host (as root or as a member)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab_accounts import Member
from lab_common import HOSTNAMES, IP, LINKS, NAMESPACES, _passwd, _run


class NetMixin:
    """Lab methods for the namespaces and links, and for running commands on the hosts."""

    def _network_up(self) -> None:
        for ns in NAMESPACES.values():
            _run([IP, "netns", "add", ns])
            _run([IP, "-n", ns, "link", "set", "lo", "up"])
        for a_ns, a_dev, a_ip, b_ns, b_dev, b_ip in LINKS.values():
            _run(
                [
                    IP,
                    "link",
                    "add",
                    a_dev,
                    "netns",
                    a_ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    b_dev,
                    "netns",
                    b_ns,
                ]
            )
            _run([IP, "-n", a_ns, "addr", "add", a_ip, "dev", a_dev])
            _run([IP, "-n", b_ns, "addr", "add", b_ip, "dev", b_dev])
        for link in LINKS:
            self.link_up(link)
        # No forwarding on the jump host: the laptop must not reach the workstation except through ssh.
        _run([IP, "netns", "exec", "walab-jump", "/bin/sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
        hosts = {
            "walab-laptop": [f"{self.jump_ip} {self.jump_host} jump", f"{self.ws_ip} {self.ws_host} ws"],
            "walab-jump": [f"{self.jump_ip} {self.jump_host} jump", f"{self.ws_ip} {self.ws_host} ws"],
            "walab-ws": [f"{self.ws_ip} {self.ws_host} ws", f"{self.jump_inner_ip} {self.jump_host} jump"],
        }
        for ns, lines in hosts.items():
            d = Path("/etc/netns") / ns
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text(
                "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
                + "".join(f"{ln}\n" for ln in lines)
            )
            # Nothing listens there: a DNS lookup fails at once instead of timing out.
            (d / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def _links(self, link: str) -> tuple[tuple[str, str], tuple[str, str]]:
        if link not in LINKS:
            raise ValueError(f"link must be one of {sorted(LINKS)}, not {link!r}")
        a_ns, a_dev, _, b_ns, b_dev, _ = LINKS[link]
        return (a_ns, a_dev), (b_ns, b_dev)

    def link_down(self, link: str) -> None:
        """Cut "laptop-jump" or "jump-ws" (both ends down: packets vanish, open connections go silent)."""
        for ns, dev in self._links(link):
            _run([IP, "-n", ns, "link", "set", dev, "down"])

    def link_up(self, link: str) -> None:
        """Mend a link cut by link_down()."""
        for ns, dev in self._links(link):
            _run([IP, "-n", ns, "link", "set", dev, "up"])

    # ------------------------------------------------------------------ running commands on the hosts

    def host_cmd(self, host: str, argv: Sequence[str], user: str | Member | None = None) -> list[str]:
        """argv run on "laptop", "jump" or "ws" (as `user` via setpriv, same environment), e.g. for pexpect."""
        if host not in NAMESPACES:
            raise ValueError(f"host must be one of {sorted(NAMESPACES)}, not {host!r}")
        cmd = [IP, "netns", "exec", NAMESPACES[host]]
        if host in HOSTNAMES:
            cmd += ["unshare", "--uts", "--", "/bin/sh", "-c", 'hostname "$0" && exec "$@"', HOSTNAMES[host]]
        if user is not None:
            name = user.name if isinstance(user, Member) else user
            cmd += ["setpriv", f"--reuid={name}", f"--regid={name}", "--init-groups", "--"]
        return cmd + list(argv)

    def laptop_cmd(self, argv: Sequence[str], user: str | Member | None = None) -> list[str]:
        """argv run on the laptop (for pexpect.spawn(cmd[0], cmd[1:]) or your own Popen)."""
        return self.host_cmd("laptop", argv, user)

    @staticmethod
    def _env(env: dict[str, str] | None) -> dict[str, str]:
        """os.environ without any ssh agent of the caller, plus env."""
        base = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID")}
        return {**base, **(env or {})}

    def laptop_run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
        user: str | Member | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv on the laptop, capture text output. env is added to this process's environment."""
        return subprocess.run(
            self.laptop_cmd(argv, user),
            env=self._env(env),
            input=input,
            timeout=timeout,
            capture_output=True,
            text=True,
            check=check,
            stdin=subprocess.DEVNULL if input is None else None,
        )

    def laptop_popen(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        user: str | Member | None = None,
        **popen_kwargs: Any,
    ) -> subprocess.Popen[Any]:
        """Start argv on the laptop; popen_kwargs go to subprocess.Popen. The lab kills it on down()."""
        return subprocess.Popen(self.laptop_cmd(argv, user), env=self._env(env), **popen_kwargs)

    def _host_run(
        self,
        host: str,
        cmd: str | Sequence[str],
        user: str | Member | None,
        input: str | None,
        timeout: float,
        env: dict[str, str] | None,
    ) -> subprocess.CompletedProcess[str]:
        if user is None:
            argv = ["/bin/bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
            full = self.host_cmd(host, argv)
            run_env = self._env(env)
        else:
            name = user.name if isinstance(user, Member) else user
            if isinstance(cmd, str):
                # A login shell of the member's own shell, as a fresh ssh login would have.
                full = self.host_cmd(host, ["runuser", "-l", name, "-c", cmd])
                run_env = self._env(env)
            else:
                pw = _passwd(name)
                full = self.host_cmd(host, list(cmd), name)
                run_env = {
                    "HOME": pw[5],
                    "USER": name,
                    "LOGNAME": name,
                    "SHELL": pw[6],
                    "LANG": "C.UTF-8",
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    **(env or {}),
                }
        return subprocess.run(
            full,
            env=run_env,
            input=input,
            timeout=timeout,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL if input is None else None,
        )

    def ws_run(
        self,
        cmd: str | Sequence[str],
        *,
        user: str | Member | None = None,
        input: str | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run on the workstation. A string is a shell command: as root with bash -c, as a member in the member's
        login shell (runuser -l, so `module` exists). A list is an argv (as a member: setpriv, clean env)."""
        return self._host_run("ws", cmd, user, input, timeout, env)

    def jump_run(
        self,
        cmd: str | Sequence[str],
        *,
        user: str | Member | None = None,
        input: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run on the jump host; same rules as ws_run()."""
        return self._host_run("jump", cmd, user, input, timeout, env)
