"""A tiny real campus for wa-onboard's tests: laptop -> jump host -> workstation, with real OpenSSH, PAM (password,
TOTP), lmod, a conda stand-in and a real JupyterHub.

Three network namespaces stand for the three machines::

    walab-laptop 192.0.2.1 --- 192.0.2.2 walab-jump 198.51.100.1 --- 198.51.100.2 walab-ws
                                (jump.wa-lab.test, sshd :22)          (ws.wa-lab.test, sshd :22,
                                                                        JupyterHub 127.0.0.1:8000/jupyter)

There is no default route anywhere and the jump host does not forward packets, so the laptop reaches the
workstation only through ssh's ProxyJump. The laptop's /etc/hosts names both hosts (so "cannot reach the
workstation directly" fails on routing, not on name lookup); DNS points nowhere and fails fast.

Both hosts share this machine's file system, like a campus file system: a member made with new_member() has
one home directory under /home seen by both hosts. Each sshd runs under its own PAM service name (OpenSSH uses
its program name as the PAM service, so /opt/wa-lab/bin/sshd-walab-jump -> /usr/sbin/sshd reads
/etc/pam.d/sshd-walab-jump): the jump host asks `Password:` and then `Verification code:` (keyboard-interactive)
for members with MFA; the workstation uses plain password authentication (`user@host's password:`).

Needs root and `tests/lab/provision.sh` (see Lab.preflight()). Everything the lab starts runs inside its
namespaces and is stopped by pid on down(); users, namespaces and files it made are removed. up() first clears
what a crashed earlier run left behind.

Usage::

    with Lab() as lab:
        m = lab.new_member(mfa=True)
        lab.laptop_run(["ssh", "-J", f"{m.name}@{lab.jump_host}", ...])
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shlex
import shutil
import signal
import string
import struct
import subprocess
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
LAB_ROOT = Path("/opt/wa-lab")
RUN_DIR = Path("/run/wa-lab")
# Held from up() to down(): the namespaces, accounts and ports are global, so one lab at a time on a machine.
# (Not /tmp/wa-lab.lock: test runs may hold that one with flock(1) around a whole pytest run.)
LOCK_FILE = Path("/run/wa-lab.lock")
MEMBER_MARK = "wa-lab test account"  # GECOS of every account the lab makes; how stale ones are found
ADMIN_GROUP = "autonomous-sudo"
SYS_PYTHON = "/usr/bin/python3"
IP = shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/ip"

NAMESPACES = {"laptop": "walab-laptop", "jump": "walab-jump", "ws": "walab-ws"}
HOSTNAMES = {"jump": "jump", "ws": "ws"}  # what `hostname` prints on each host
# link name -> (namespace A, veth in A, address in A, namespace B, veth in B, address in B)
LINKS = {
    "laptop-jump": ("walab-laptop", "wl-lj0", "192.0.2.1/24", "walab-jump", "wl-lj1", "192.0.2.2/24"),
    "jump-ws": ("walab-jump", "wl-jw0", "198.51.100.1/24", "walab-ws", "wl-jw1", "198.51.100.2/24"),
}
CONDA_MODULE_VERSION = "2024.02"
REQUIRED_COMMANDS = [
    "ip",
    "unshare",
    "setpriv",
    "runuser",
    "getent",
    "useradd",
    "userdel",
    "chpasswd",
    "groupadd",
    "groupdel",
    "ssh",
    "ssh-keygen",
    "oathtool",
    "node",
    "curl",
]

_PAM_COMMON_TAIL = """\
account    required     pam_nologin.so
@include common-account
session    optional     pam_loginuid.so
session    optional     pam_keyinit.so force revoke
@include common-session
session    optional     pam_limits.so
session    optional     pam_env.so
session    optional     pam_env.so user_readenv=1 envfile=/etc/default/locale
@include common-password
"""
PAM_JUMP = (
    "# wa-lab jump host (written by tests/lab/lab.py): password, then a TOTP code for members who have\n"
    "# ~/.google_authenticator (nullok lets everyone else in with the password alone).\n"
    "@include common-auth\n"
    "auth       required     pam_google_authenticator.so nullok\n" + _PAM_COMMON_TAIL
)
PAM_WS = (
    "# wa-lab workstation (written by tests/lab/lab.py): password only.\n"
    "@include common-auth\n" + _PAM_COMMON_TAIL
)

SSHD_CONFIG = """\
# wa-lab {host} (written by tests/lab/lab.py)
Port 22
HostKey {run}/hostkeys/{host}/ssh_host_ed25519_key
PidFile {run}/sshd-{host}.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication {kbd}
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding yes
PermitTTY yes
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
"""

HUB_CONFIG = """\
# wa-lab JupyterHub on the workstation (written by tests/lab/lab.py)
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.base_url = "{base_url}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = 8081
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True
c.PAMAuthenticator.admin_groups = {{"{admin_group}"}}
c.JupyterHub.db_url = "sqlite:///{hub_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub_dir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{hub_dir}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
c.ConfigurableHTTPProxy.pid_file = "{hub_dir}/proxy.pid"
c.Spawner.cmd = ["{root}/hub/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
"""

MODULE_FILE = """\
-- wa-lab (TEST LAB): the campus conda module. The conda it puts on PATH is the lab's conda stand-in.
help([[Anaconda {version} (wa-lab test stand-in)]])
whatis("Name: {name}")
whatis("Version: {version}")
prepend_path("PATH", "{root}/conda/bin")
"""

# Logs in to the hub as a member and prints the member's server's /api/kernelspecs (run with /usr/bin/python3
# inside walab-ws, or on the laptop through the tunnel; stdlib only). argv: name base_url port timeout [stop];
# the password comes on stdin. With "stop" it stops the member's server instead and prints {}.
HUB_LOGIN_SCRIPT = r"""
import http.cookiejar, json, re, sys, time, urllib.error, urllib.parse, urllib.request

name, base_url, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
password = sys.stdin.read().rstrip("\n")
base = f"http://127.0.0.1:{port}{base_url}"
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def xsrf(path_prefix):
    for c in jar:
        if c.name == "_xsrf" and c.path.rstrip("/").startswith(path_prefix.rstrip("/")):
            return c.value
    raise SystemExit(f"no _xsrf cookie for {path_prefix}: {[(c.name, c.path) for c in jar]}")


def call(url, data=None, method=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.geturl(), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, url, e.read().decode(errors="replace")


status, _, html = call(f"{base}/hub/login")
m = re.search(r'name="_xsrf"\s+value="([^"]+)"', html)
if status != 200 or not m:
    raise SystemExit(f"GET /hub/login: {status} without an _xsrf field")
form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": m.group(1)}).encode()
status, landed, html = call(f"{base}/hub/login?next={urllib.parse.quote(base_url + '/hub/home')}", data=form)
if status != 200 or "/hub/login" in urllib.parse.urlparse(landed).path:
    raise SystemExit(f"login as {name} failed: {status} at {landed}")

hub_api = {"X-XSRFToken": xsrf(f"{base_url}/hub/"), "Accept": "application/json"}
if sys.argv[5:] == ["stop"]:
    status, _, body = call(f"{base}/hub/api/users/{name}/server", method="DELETE", headers=hub_api)
    if status not in (202, 204, 400):
        raise SystemExit(f"stopping the server of {name}: {status} {body[:300]}")
    deadline = time.monotonic() + timeout
    while json.loads(call(f"{base}/hub/api/users/{name}", headers=hub_api)[2]).get("servers", {}).get(""):
        if time.monotonic() > deadline:
            raise SystemExit(f"the server of {name} did not stop in {timeout}s")
        time.sleep(0.5)
    print("{}")
    raise SystemExit(0)
status, _, body = call(f"{base}/hub/api/users/{name}", headers=hub_api)
if status != 200:
    raise SystemExit(f"GET /hub/api/users/{name}: {status} {body[:300]}")
if not json.loads(body).get("servers", {}).get(""):
    status, _, body = call(f"{base}/hub/api/users/{name}/server", data=b"{}", method="POST",
                           headers={**hub_api, "Content-Type": "application/json"})
    if status not in (201, 202, 400):
        raise SystemExit(f"starting the server of {name}: {status} {body[:300]}")
deadline = time.monotonic() + timeout
while True:
    status, _, body = call(f"{base}/hub/api/users/{name}", headers=hub_api)
    server = json.loads(body).get("servers", {}).get("", {}) if status == 200 else {}
    if server.get("ready"):
        break
    if time.monotonic() > deadline:
        raise SystemExit(f"the server of {name} did not get ready in {timeout}s: {status} {body[:300]}")
    time.sleep(0.5)

# Opening the server's page does the OAuth dance with the hub and sets the server's cookies (and its _xsrf).
user_base = f"{base_url}/user/{name}/"
status, landed, _ = call(f"{base}/user/{name}/lab")
if status != 200:
    raise SystemExit(f"GET {user_base}lab: {status} at {landed}")
status, _, body = call(f"{base}/user/{name}/api/kernelspecs",
                       headers={"X-XSRFToken": xsrf(user_base), "Accept": "application/json"})
if status != 200:
    raise SystemExit(f"GET {user_base}api/kernelspecs: {status} {body[:300]}")
print(body)
"""

HEALTH_SCRIPT = r"""
import sys, time, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
last = None
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
            last = r.status
    except Exception as e:  # noqa: BLE001 - any failure means "not yet"
        last = e
    time.sleep(0.2)
print(f"{url}: {last}", file=sys.stderr)
sys.exit(1)
"""


class LabError(RuntimeError):
    """The lab could not do what was asked (the message says what and where to look)."""


def totp(secret_b32: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP code (HMAC-SHA1), as google-authenticator and oathtool --totp compute it."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@dataclass
class Member:
    """A lab member's account (the same account on the jump host and the workstation)."""

    name: str
    password: str
    home: Path
    shell: str
    uid: int
    mfa: bool = False
    totp_secret: str | None = None
    admin: bool = False

    def totp_code(self, at: float | None = None) -> str:
        """The current `Verification code:` for an MFA member."""
        if not self.totp_secret:
            raise LabError(f"{self.name} has no MFA (made with mfa=False)")
        return totp(self.totp_secret, at)


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    log: IO[bytes]


@dataclass
class Lab:
    """The three-host lab. up() builds it, down() removes everything it made; also a context manager."""

    root: Path = LAB_ROOT
    run_dir: Path = RUN_DIR
    with_hub: bool = True

    jump_host: str = "jump.wa-lab.test"
    ws_host: str = "ws.wa-lab.test"
    laptop_ip: str = "192.0.2.1"
    jump_ip: str = "192.0.2.2"
    jump_inner_ip: str = "198.51.100.1"
    ws_ip: str = "198.51.100.2"
    hub_port: int = 8000
    base_url: str = "/jupyter"

    members: list[Member] = field(default_factory=list)
    _sshd: dict[str, _Proc] = field(default_factory=dict)
    _hub: _Proc | None = None
    lock_timeout: float = float(os.environ.get("WA_LAB_LOCK_TIMEOUT", "1800"))
    _lock: IO[str] | None = None
    _proxy_token: str = field(default_factory=lambda: secrets.token_hex(32))
    _made_group: bool = False
    _counter: int = 0
    _is_up: bool = False

    # ------------------------------------------------------------------ preflight, up, down

    @classmethod
    def preflight(cls, root: Path = LAB_ROOT) -> list[str]:
        """What this machine lacks for the lab (empty when it can run). Root is checked separately."""
        missing = []
        for tool in REQUIRED_COMMANDS:
            if (
                shutil.which(tool, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                is None
            ):
                missing.append(f"command {tool}")
        for p in (
            "/usr/sbin/sshd",
            "/usr/share/lmod/lmod/libexec/lmod",
            "/etc/profile.d/lmod.sh",
            SYS_PYTHON,
        ):
            if not Path(p).exists():
                missing.append(p)
        if not [
            p
            for pattern in ("/usr/lib/*/security", "/lib/*/security", "/usr/lib/security", "/lib/security")
            for p in Path("/").glob(pattern.lstrip("/") + "/pam_google_authenticator.so")
        ]:
            missing.append("pam_google_authenticator.so (libpam-google-authenticator)")
        for p in (
            "hub/bin/jupyterhub",
            "hub/bin/jupyterhub-singleuser",
            "node/node_modules/.bin/configurable-http-proxy",
            "conda/bin/conda",
            "hostkeys/jump/ssh_host_ed25519_key",
            "hostkeys/ws/ssh_host_ed25519_key",
        ):
            if not (root / p).exists():
                missing.append(str(root / p))
        if not list((root / "wheels").glob("ipykernel-*.whl")):
            missing.append(f"{root}/wheels/ipykernel-*.whl")
        try:
            if str(root / "modules") not in Path("/etc/lmod/modulespath").read_text().split():
                missing.append(f"line {root}/modules in /etc/lmod/modulespath")
        except OSError:
            missing.append("/etc/lmod/modulespath")
        return missing

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Build the lab: clean leftovers, network, accounts' group, conda module, both sshd, the hub."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root")
        missing = self.preflight(self.root)
        if missing:
            raise LabError("run tests/lab/provision.sh first; missing: " + ", ".join(missing))
        self._acquire_lock()
        self._clean_stale()
        self._is_up = True
        try:
            self.run_dir.mkdir(mode=0o700, parents=True)
            self._network_up()
            if subprocess.run(["getent", "group", ADMIN_GROUP], capture_output=True).returncode != 0:
                _run(["groupadd", ADMIN_GROUP])
                self._made_group = True
            self._install_conda_standin()
            self.set_conda_module("anaconda")
            self.set_conda_fault(None)
            self._sshd_files()
            for host in ("jump", "ws"):
                self.start_sshd(host)
            if self.with_hub:
                self.start_hub()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop everything the lab started and remove what it made. Safe to call twice; does nothing for a
        Lab that is not up (so it never touches another run's lab)."""
        if self._lock is None:
            return
        if self._hub is not None:
            self.stop_hub()
        for ns in NAMESPACES.values():
            _kill_pids(_ns_pids(ns))
        for proc in [*self._sshd.values()]:
            _reap(proc)
        self._sshd.clear()
        for m in list(self.members):
            self.remove_member(m)
        self._clean_stale()
        if self._made_group:
            subprocess.run(["groupdel", ADMIN_GROUP], capture_output=True)
            self._made_group = False
        if self._is_up:
            self.set_conda_module("anaconda")
            self.set_conda_fault(None)
        self._is_up = False
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _acquire_lock(self) -> None:
        """Wait (up to lock_timeout s) until no other Lab runs on this machine, then hold the lock."""
        if self._lock is not None:
            return
        lock = open(LOCK_FILE, "a+")  # noqa: SIM115 - held until down()
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise LabError(
                        f"another lab holds {LOCK_FILE} since more than {self.lock_timeout:.0f}s "
                        "(WA_LAB_LOCK_TIMEOUT)"
                    ) from None
                if not told:
                    print(f"wa-lab: waiting for another lab run to finish ({LOCK_FILE})", flush=True)
                    told = True
                time.sleep(0.5)
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _clean_stale(self) -> None:
        """Remove namespaces, veths, accounts, files and processes of this lab (or of a crashed earlier run)."""
        for ns in NAMESPACES.values():
            if Path(f"/run/netns/{ns}").exists():
                _kill_pids(_ns_pids(ns))
                subprocess.run([IP, "netns", "del", ns], capture_output=True)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        for _, a_dev, _, _, b_dev, _ in LINKS.values():
            for dev in (a_dev, b_dev):
                if Path(f"/sys/class/net/{dev}").exists():
                    subprocess.run([IP, "link", "del", dev], capture_output=True)
        with contextlib.suppress(OSError):
            Path("/etc/netns").rmdir()
        for name in _marked_accounts():
            _delete_account(name)
        for host in ("jump", "ws"):
            Path(f"/etc/pam.d/sshd-walab-{host}").unlink(missing_ok=True)
        envs = self.root / "conda" / "envs"
        if envs.is_dir():
            for p in envs.iterdir():
                shutil.rmtree(p, ignore_errors=True)
        if os.environ.get("WA_LAB_KEEP_RUN_DIR") and self.run_dir.exists() and self._is_up:
            kept = Path(f"{self.run_dir}.{int(time.time())}")
            self.run_dir.rename(kept)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # ------------------------------------------------------------------ network

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

    # ------------------------------------------------------------------ accounts

    def new_member(self, mfa: bool = False, shell: str = "/bin/bash", admin: bool = False) -> Member:
        """A fresh, never-onboarded account with a random password (and a TOTP secret when mfa)."""
        if not Path(shell).is_file():
            raise LabError(f"shell {shell} is not installed")
        while True:
            self._counter += 1
            name = f"wam{self._counter}"
            if subprocess.run(["getent", "passwd", name], capture_output=True).returncode != 0:
                break
        alphabet = string.ascii_letters + string.digits
        password = "".join(secrets.choice(alphabet) for _ in range(16))
        _run(["useradd", "-m", "-s", shell, "-c", MEMBER_MARK, *(["-G", ADMIN_GROUP] if admin else []), name])
        _run(["chpasswd"], input=f"{name}:{password}\n")
        pw = _passwd(name)
        member = Member(
            name=name, password=password, home=Path(pw[5]), shell=shell, uid=int(pw[2]), mfa=mfa, admin=admin
        )
        os.chmod(member.home, 0o755)
        if mfa:
            member.totp_secret = base64.b32encode(secrets.token_bytes(10)).decode()
            ga = member.home / ".google_authenticator"
            # No DISALLOW_REUSE, no RATE_LIMIT: tests may log in several times within one 30 s window.
            ga.write_text(f'{member.totp_secret}\n" WINDOW_SIZE 17\n" TOTP_AUTH\n')
            os.chown(ga, member.uid, int(pw[3]))
            os.chmod(ga, 0o400)
        self.members.append(member)
        return member

    def remove_member(self, member: Member) -> None:
        """Stop the member's processes and delete the account with its home (userdel -r)."""
        _delete_account(member.name)
        if member in self.members:
            self.members.remove(member)

    # ------------------------------------------------------------------ sshd

    def _sshd_files(self) -> None:
        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        for host, pam, kbd in (("jump", PAM_JUMP, "yes"), ("ws", PAM_WS, "no")):
            link = self.root / "bin" / f"sshd-walab-{host}"
            if not link.is_symlink() or os.readlink(link) != "/usr/sbin/sshd":
                link.unlink(missing_ok=True)
                link.symlink_to("/usr/sbin/sshd")
            Path(f"/etc/pam.d/sshd-walab-{host}").write_text(pam)
            keys = self.run_dir / "hostkeys" / host
            keys.mkdir(parents=True, exist_ok=True)
            for f in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
                shutil.copy2(self.root / "hostkeys" / host / f, keys / f)
            os.chmod(keys / "ssh_host_ed25519_key", 0o600)
            (self.run_dir / f"sshd-{host}.conf").write_text(
                SSHD_CONFIG.format(host=host, run=self.run_dir, kbd=kbd)
            )

    def start_sshd(self, host: str) -> None:
        """Start the sshd of "jump" or "ws" (no-op when it runs) and wait until it listens on port 22."""
        self._check_host(host)
        if host in self._sshd and self._sshd[host].popen.poll() is None:
            return
        log = open(self.run_dir / f"sshd-{host}.log", "ab")  # noqa: SIM115 - closed in _reap
        argv = [
            str(self.root / "bin" / f"sshd-walab-{host}"),
            "-D",
            "-e",
            "-f",
            str(self.run_dir / f"sshd-{host}.conf"),
        ]
        popen = subprocess.Popen(
            self.host_cmd(host, argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        self._sshd[host] = _Proc(popen, log)
        _wait_listen(popen, 22, 10, f"sshd on {host}", self.run_dir / f"sshd-{host}.log")

    def stop_sshd(self, host: str, kill_sessions: bool = False) -> None:
        """Stop the listening sshd of "jump" or "ws"; open sessions live on unless kill_sessions."""
        self._check_host(host)
        proc = self._sshd.pop(host, None)
        if proc is not None:
            _reap(proc)
        if kill_sessions:
            comm = f"sshd-walab-{host}"[:15]
            _kill_pids([p for p in _ns_pids(NAMESPACES[host]) if _comm(p) == comm])

    def end_sessions(self, host: str, member: Member) -> None:
        """End the member's ssh sessions on "jump" or "ws", as sshd does when ClientAliveInterval gives up
        on a client that vanished (the lab's sshd sets none, so a cut link alone leaves them open)."""
        self._check_host(host)
        ours = [
            p for p in _ns_pids(NAMESPACES[host]) if _comm(p).startswith("sshd") and _uid(p) == member.uid
        ]
        _kill_pids(ours)

    def sshd_log(self, host: str) -> str:
        """What the sshd of "jump" or "ws" logged so far."""
        self._check_host(host)
        return (self.run_dir / f"sshd-{host}.log").read_text(errors="replace")

    def host_public_key(self, host: str) -> str:
        """The host's public key line ("ssh-ed25519 AAAA... comment") as it serves it now."""
        self._check_host(host)
        return (self.run_dir / "hostkeys" / host / "ssh_host_ed25519_key.pub").read_text().strip()

    def host_key_fingerprint(self, host: str) -> str:
        """The SHA256 fingerprint ("SHA256:...") of the host key "jump" or "ws" serves now."""
        self._check_host(host)
        out = _run(
            [
                "ssh-keygen",
                "-l",
                "-E",
                "sha256",
                "-f",
                str(self.run_dir / "hostkeys" / host / "ssh_host_ed25519_key.pub"),
            ]
        )
        return out.split()[1]

    def regenerate_host_key(self, host: str) -> str:
        """Give "jump" or "ws" a new host key for the rest of this run (sshd restarts); returns its fingerprint."""
        self._check_host(host)
        key = self.run_dir / "hostkeys" / host / "ssh_host_ed25519_key"
        key.unlink(missing_ok=True)
        Path(f"{key}.pub").unlink(missing_ok=True)
        _run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host}.wa-lab.test", "-f", str(key)]
        )
        was_running = host in self._sshd
        self.stop_sshd(host)
        if was_running:
            self.start_sshd(host)
        return self.host_key_fingerprint(host)

    def restore_host_key(self, host: str) -> str:
        """Undo regenerate_host_key(): serve the lab's usual key of "jump" or "ws" again; returns its fingerprint."""
        self._check_host(host)
        keys = self.run_dir / "hostkeys" / host
        for f in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            shutil.copy2(self.root / "hostkeys" / host / f, keys / f)
        os.chmod(keys / "ssh_host_ed25519_key", 0o600)
        was_running = host in self._sshd
        self.stop_sshd(host)
        if was_running:
            self.start_sshd(host)
        return self.host_key_fingerprint(host)

    @staticmethod
    def _check_host(host: str) -> None:
        if host not in ("jump", "ws"):
            raise ValueError(f'host must be "jump" or "ws", not {host!r}')

    # ------------------------------------------------------------------ JupyterHub

    @property
    def hub_url(self) -> str:
        """The hub's URL as seen on the workstation itself."""
        return f"http://127.0.0.1:{self.hub_port}{self.base_url}"

    def start_hub(self, timeout: float = 60) -> None:
        """Start JupyterHub on the workstation (no-op when it runs); wait until /hub/health answers 200."""
        if self._hub is not None and self._hub.popen.poll() is None:
            return
        hub_dir = self.run_dir / "hub"
        hub_dir.mkdir(mode=0o700, exist_ok=True)
        config = hub_dir / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                port=self.hub_port,
                base_url=self.base_url,
                admin_group=ADMIN_GROUP,
                hub_dir=hub_dir,
                root=self.root,
            )
        )
        env = {
            "PATH": f"{self.root}/hub/bin:{self.root}/node/node_modules/.bin:"
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            "USER": "root",
            # Fixed for the run, so a restarted hub takes over a proxy that outlived it (stop_hub(keep_proxy=True)).
            "CONFIGPROXY_AUTH_TOKEN": self._proxy_token,
        }
        log = open(hub_dir / "jupyterhub.log", "ab")  # noqa: SIM115 - closed in _reap
        popen = subprocess.Popen(
            self.host_cmd("ws", [str(self.root / "hub/bin/jupyterhub"), "-f", str(config)]),
            cwd=hub_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        self._hub = _Proc(popen, log)
        script = self.run_dir / "health.py"
        script.write_text(HEALTH_SCRIPT)
        r = subprocess.run(
            self.host_cmd("ws", [SYS_PYTHON, str(script), f"{self.hub_url}/hub/health", str(timeout)]),
            capture_output=True,
            text=True,
            timeout=timeout + 10,
        )
        if r.returncode != 0 or popen.poll() is not None:
            raise LabError(
                f"JupyterHub did not come up: {r.stderr.strip()}\n--- {hub_dir}/jupyterhub.log (end):\n"
                + self.hub_log()[-3000:]
            )

    def stop_hub(self, keep_proxy: bool = False) -> None:
        """Stop JupyterHub with its proxy and the members' servers. With keep_proxy the hub process alone dies
        (SIGKILL, no cleanup): the proxy keeps port 8000 and answers 503 for the hub, the members' servers live
        on, and start_hub() takes the proxy over again, like a hub restart on a real server."""
        if keep_proxy:
            if self._hub is not None:
                self._hub.popen.kill()
                self._hub.popen.wait()
                self._hub.log.close()
                self._hub = None
            return
        if self._hub is not None:
            _reap(self._hub, grace=15)
            self._hub = None
        leftovers = [
            p
            for p in _ns_pids(NAMESPACES["ws"])
            if any(w in _cmdline(p) for w in ("configurable-http-proxy", "jupyterhub-singleuser"))
        ]
        _kill_pids(leftovers)

    def hub_log(self) -> str:
        """What JupyterHub logged so far."""
        try:
            return (self.run_dir / "hub" / "jupyterhub.log").read_text(errors="replace")
        except OSError:
            return ""

    def hub_login_kernelspecs(
        self, member: Member, timeout: float = 90, *, via_port: int | None = None, stop: bool = False
    ) -> dict[str, Any]:
        """Log in to the hub as member (PAM password, _xsrf form), start the member's server, and return its
        /api/kernelspecs JSON ({"default": ..., "kernelspecs": {name: {"spec": {"display_name": ...}}}}).
        via_port: from the laptop through the tunnel's local port, as the member's browser does (default: on the
        workstation). stop: stop the member's server instead (returns {})."""
        script = self.run_dir / "hub_login.py"
        script.write_text(HUB_LOGIN_SCRIPT)
        port = self.hub_port if via_port is None else via_port
        argv = [
            SYS_PYTHON,
            str(script),
            member.name,
            self.base_url,
            str(port),
            str(timeout),
            *(["stop"] * stop),
        ]
        r = subprocess.run(
            self.host_cmd("ws" if via_port is None else "laptop", argv),
            input=member.password + "\n",
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
        if r.returncode != 0:
            raise LabError(
                f"hub login as {member.name} failed: {r.stderr.strip()}\n--- hub log (end):\n"
                + self.hub_log()[-3000:]
            )
        result: dict[str, Any] = json.loads(r.stdout)
        return result

    # ------------------------------------------------------------------ conda module and stand-in

    def _install_conda_standin(self) -> None:
        """Copy tests/lab/conda_standin/conda to <root>/conda/bin/conda when it changed."""
        src = HERE / "conda_standin" / "conda"
        dst = self.root / "conda" / "bin" / "conda"
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755)

    def set_conda_module(self, name: str | None) -> None:
        """Offer conda as module `name` (default "anaconda"), or as no module at all (None). down() restores."""
        modules = self.root / "modules"
        modules.mkdir(mode=0o755, exist_ok=True)
        for p in modules.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if name is None:
            return
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad module name {name!r}")
        d = modules / name
        d.mkdir(mode=0o755)
        (d / f"{CONDA_MODULE_VERSION}.lua").write_text(
            MODULE_FILE.format(name=name, version=CONDA_MODULE_VERSION, root=self.root)
        )

    def set_conda_fault(self, fault: str | None, slow_seconds: float = 3.0) -> None:
        """Make the conda stand-in fail: "http" (CondaHTTPError), "quota" (Errno 122 mid-create), "slow"
        (sleeps slow_seconds between stages), or behave (None)."""
        path = self.root / "conda" / "faults.json"
        if fault is None:
            path.unlink(missing_ok=True)
            return
        if fault not in ("http", "quota", "slow"):
            raise ValueError(f"fault must be http, quota, slow or None, not {fault!r}")
        path.write_text(json.dumps({"fault": fault, "slow_seconds": slow_seconds}))
        os.chmod(path, 0o644)


# ---------------------------------------------------------------------- helpers


def _run(argv: Sequence[str], input: str | None = None) -> str:
    r = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def _passwd(name: str) -> list[str]:
    r = subprocess.run(["getent", "passwd", name], capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"no such user {name}")
    return r.stdout.strip().split(":")


def _marked_accounts() -> list[str]:
    names = []
    with open("/etc/passwd") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) >= 5 and parts[4] == MEMBER_MARK:
                names.append(parts[0])
    return names


def _delete_account(name: str) -> None:
    try:
        uid = int(_passwd(name)[2])
    except LabError:
        return
    _kill_pids([p for p in _all_pids() if _uid(p) == uid])
    r = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
    if r.returncode not in (0, 12):  # 12: home could not be removed (already gone)
        raise LabError(f"userdel -r {name}: {r.stderr.strip()}")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ns_pids(ns: str) -> list[int]:
    """Processes inside network namespace ns (what `ip netns pids` says)."""
    try:
        ino = os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return []
    pids = []
    for pid in _all_pids():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == ino:
                pids.append(pid)
        except OSError:
            continue
    return pids


def _kill_pids(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM these pids, then SIGKILL whatever still lives after grace seconds."""
    pids = [p for p in pids if p != os.getpid()]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(proc: _Proc, grace: float = 5.0) -> None:
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(grace)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
    proc.log.close()


def _listening(pid: int, port: int) -> bool:
    """Whether anything listens on TCP port in the network namespace of pid."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_listen(popen: subprocess.Popen[bytes], port: int, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            break
        if _listening(popen.pid, port):
            return
        time.sleep(0.02)
    raise LabError(
        f"{what} did not listen on port {port}; {log}:\n"
        + textwrap.indent(log.read_text(errors="replace")[-2000:], "  ")
    )
