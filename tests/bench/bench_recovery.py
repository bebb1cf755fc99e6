"""Recovery after the faults of a laptop's day: our tunnel against autossh, in the same run, in the lab.

Run as root with the lab provisioned:  python3 tests/bench/bench_recovery.py [--cuts 2,5,10] [--quick]

Both tunnels run side by side through the same links, so each fault hits both at once and each gets
the same network: ours (``wa-onboard connect --detach``, key login) on port 18000 and autossh on
19000, with the options its manual advises for a tunnel that must notice a dead link (``-M 0``,
``ServerAliveInterval 5``, ``ServerAliveCountMax 2``, ``ExitOnForwardFailure yes``,
``AUTOSSH_GATETIME=0``; Debian's autossh package), the same key, known_hosts and ProxyJump path.

The faults: the laptop-jump link cut for each of --cuts seconds; a sleep (every process of both
frozen with SIGSTOP, the link down for 60 s, then the link back and the processes thawed); the
workstation's sshd, the jump host's sshd and the hub restarted. For each, the time from the fault's
end (the link back, sshd or hub started again) to the first 200 from ``/jupyter/hub/api`` through
each tunnel, polled every 20 ms (each request given 0.25 s) from one process in the laptop namespace. Then the median and the
worst of each side.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent / "lab"))

from lab import Lab, Member  # noqa: E402

OURS, AUTOSSH = 18000, 19000
CUTS = (2, 5, 10, 20, 40, 90, 300)
SLEEP = 60

#: runs in the laptop namespace: on each "go" line, polls both ports until each answers 200 (or the
#: limit), and prints the seconds each took, measured from the moment it read the line
POLLER = r"""
import json, sys, threading, time, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def first_200(port, t0, limit, out, key):
    while time.monotonic() - t0 < limit:
        try:
            # a short timeout: a request sent into a dead forward is given up, and the next one
            # goes through whatever connection the tunnel has by then (a browser retries too)
            if opener.open(f"http://127.0.0.1:{port}/jupyter/hub/api", timeout=0.25).status == 200:
                out[key] = time.monotonic() - t0
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.02)
    out[key] = None
for line in sys.stdin:
    limit = float(line.split()[1])
    t0 = time.monotonic()
    out = {}
    threads = [threading.Thread(target=first_200, args=(p, t0, limit, out, k)) for k, p in
               (("ours", %(ours)d), ("autossh", %(autossh)d))]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(out), flush=True)
"""


class Bench:
    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab, self.work = lab, work
        self.home = work / "home"
        self.home.mkdir(mode=0o700)
        self.env = {"HOME": str(self.home), "XDG_STATE_HOME": str(self.home / ".state")}
        self.member: Member = lab.new_member()
        self.autossh: subprocess.Popen[bytes] | None = None
        (work / "poller.py").write_text(POLLER % {"ours": OURS, "autossh": AUTOSSH})
        self.poller = lab.laptop_popen(
            [sys.executable, str(work / "poller.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wa(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "wa_onboard", *args]
        return self.lab.laptop_run(argv, env={**self.env, "PYTHONPATH": str(HERE.parents[1])}, timeout=120)

    def start(self) -> None:
        from wa_onboard.core.tunnel import sshfiles

        os.environ["HOME"] = str(self.home)
        sshfiles.ensure_key()
        auth = self.member.home / ".ssh"
        auth.mkdir(mode=0o700, exist_ok=True)
        (auth / "authorized_keys").write_text(sshfiles.public_key_text() + "\n")
        for p in (auth, auth / "authorized_keys"):
            os.chown(p, self.member.uid, self.member.home.stat().st_gid)
        lab, m = self.lab, self.member
        up = self.wa(
            "connect", "--detach", "--yes", "--no-browser", "--user", m.name, "--jump", lab.jump_host,
            "--host", lab.ws_host, "--remote-port", str(lab.hub_port), "--local-port", str(OURS),
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        config = self.work / "autossh_config"
        config.write_text(
            f"Host *\n  IdentityFile {sshfiles.paths.key_file()}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {sshfiles.known_hosts_path()}\n  StrictHostKeyChecking accept-new\n"
            "  BatchMode yes\n  ServerAliveInterval 5\n  ServerAliveCountMax 2\n  ExitOnForwardFailure yes\n"
        )
        self.autossh = self.lab.laptop_popen(
            [
                "autossh",
                "-M",
                "0",
                "-F",
                str(config),
                "-N",
                "-o",  # not -J: autossh 1.4 does not know -J takes a value, and hands ssh "-J -L"
                f"ProxyJump={m.name}@{lab.jump_host}",
                "-L",
                f"127.0.0.1:{AUTOSSH}:localhost:{lab.hub_port}",
                f"{m.name}@{lab.ws_host}",
            ],
            env={**self.env, "AUTOSSH_GATETIME": "0"},
        )
        both = self.measure(60)
        assert both["ours"] is not None and both["autossh"] is not None, both

    def measure(self, limit: float) -> dict[str, float | None]:
        assert self.poller.stdin is not None and self.poller.stdout is not None
        self.poller.stdin.write(f"go {limit}\n")
        self.poller.stdin.flush()
        result: dict[str, float | None] = json.loads(self.poller.stdout.readline())
        return result

    def healthy(self) -> None:
        """Both tunnels answer before the next fault (a fault's effects must not spill over)."""
        both = self.measure(120)
        if None in both.values():
            raise SystemExit(f"a tunnel did not come back between cases: {both}")

    def processes(self) -> list[int]:
        """Every process of both tunnels (ours: the supervisor and its ssh; autossh and its ssh)."""
        out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        mine = []
        for line in out.splitlines()[1:]:
            pid, _, args = line.strip().partition(" ")
            if (
                str(self.home) in args
                or "autossh" in args
                or f"{self.member.name}@" in args
                or ("wa_onboard" in args and _home_of(int(pid)) == str(self.home))
            ):
                mine.append(int(pid))
        return [p for p in mine if p != os.getpid()]

    def stop(self) -> None:
        self.wa("disconnect")
        if self.autossh is not None:
            self.autossh.terminate()
            self.autossh.wait(10)
        self.poller.kill()


def _home_of(pid: int) -> str:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return ""
    return next((v[5:].decode() for v in env if v.startswith(b"HOME=")), "")


def cut(b: Bench, seconds: float) -> dict[str, float | None]:
    b.lab.link_down("laptop-jump")
    time.sleep(seconds)
    b.lab.link_up("laptop-jump")
    return b.measure(600)


def sleep(b: Bench, seconds: float = SLEEP) -> dict[str, float | None]:
    frozen = b.processes()
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    b.lab.link_down("laptop-jump")
    time.sleep(seconds)
    b.lab.link_up("laptop-jump")
    for pid in frozen:
        os.kill(pid, signal.SIGCONT)
    return b.measure(600)


def restart_sshd(b: Bench, host: str) -> dict[str, float | None]:
    b.lab.stop_sshd(host, kill_sessions=True)
    time.sleep(2)
    b.lab.start_sshd(host)
    return b.measure(600)


def restart_hub(b: Bench) -> dict[str, float | None]:
    b.lab.stop_hub(keep_proxy=True)
    time.sleep(2)
    b.lab.start_hub()
    return b.measure(600)


def report(rows: list[tuple[str, dict[str, float | None]]]) -> None:
    def fmt(v: float | None) -> str:
        return f"{v:8.2f}" if v is not None else "   never"

    print(f"{'case':28} {'ours s':>8} {'autossh s':>9} {'ratio':>6}")
    for case, r in rows:
        ours, other = r["ours"], r["autossh"]
        ratio = f"{ours / other:6.2f}" if ours is not None and other else "     -"
        print(f"{case:28} {fmt(ours)} {fmt(other):>9} {ratio}")
    for who in ("ours", "autossh"):
        got = [r[who] for _, r in rows]
        done = [v for v in got if v is not None]
        worst = "never" if None in got else f"{max(done):.2f}"
        median = f"{statistics.median(done):.2f}" if done else "-"
        print(f"{who:8} median {median} s, worst {worst} s over {len(got)} cases")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default=",".join(map(str, CUTS)), help="link cuts, seconds (comma list)")
    parser.add_argument("--quick", action="store_true", help="cuts only: no sleep, no restarts")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab needs network namespaces")
    rows: list[tuple[str, dict[str, float | None]]] = []
    with tempfile.TemporaryDirectory(prefix="wa-recovery-") as tmp, Lab() as lab:
        work = Path(tmp)
        work.chmod(0o755)
        b = Bench(lab, work)
        try:
            b.start()
            for seconds in (float(s) for s in opts.cuts.split(",") if s):
                b.healthy()
                rows.append((f"link cut {seconds:g} s", cut(b, seconds)))
                print(rows[-1], flush=True)
            if not opts.quick:
                b.healthy()
                rows.append((f"sleep {SLEEP} s, link down", sleep(b)))
                for host in ("ws", "jump"):
                    b.healthy()
                    rows.append((f"{host} sshd restart", restart_sshd(b, host)))
                b.healthy()
                rows.append(("hub restart", restart_hub(b)))
        finally:
            b.stop()
    report(rows)


if __name__ == "__main__":
    main()
