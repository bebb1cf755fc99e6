"""Our OpenSSH tunnel vs plain ``ssh -N -L`` with ProxyJump, in the lab, alternating, in one run.

Run as root with the lab provisioned:  flock /tmp/wa-lab.lock python3 tests/bench/bench_tunnel.py [--rounds 3] [--mb 200]
Prints bulk throughput, 1-byte round trip, connect-to-healthy (cold, and with a live control master)
and recovery after a 10 s link cut: the median of each side and the median of the per-round ratios
(ours / plain, each round's pair measured back to back).

Why it is built this way (an earlier version measured 0.78x throughput that was not there):
- Both data paths cross the same processes (our workstation master and the jump master, which
  takes over the ``ssh -W`` pipes passed over its control socket; plain ssh and its ``-W`` child),
  with the same cipher, so any difference is in the measuring. One 200 MB transfer takes ~1.5 s on
  the lab's 2 cores, and single transfers vary by +-25 % with what else the machine runs.
- So every round measures ABBA (ours, plain, plain, ours; the next round BAAB): no side always goes
  first, a slow drift hits both alike, and each round gives a paired ratio.
- Warm-up first: one untimed transfer and one untimed connect per side (TCP slow start, channel
  windows, page cache, .pyc files), which the first measured sample used to pay alone.
- Ours runs as a member's install runs it (``pipx install .``: the package in a venv of its own,
  compiled .pyc files). This machine's system Python is not that: its site-packages carry a
  sandbox's CA-injecting .pth (it imports certifi at every start) and this checkout's editable
  finder, ~45 ms of every interpreter start that no member's laptop pays (``--python system``
  measures it anyway). So the benchmark makes a venv, copies the package into it and compiles it,
  and lets it import its dependencies from the system site-packages through a plain path line
  (a path line is not a .pth that runs code). Both interpreters' bare start is printed.
  (This environment also sets PYTHONDONTWRITEBYTECODE=1, so without compiling first the modules
  were compiled from source on every run: another ~30 ms of every connect.)
- The sink reads into one preallocated buffer, so Python allocation is not the bottleneck.
- Both tunnels stay up during the data tests: an idle ssh costs no CPU (checked with per-process
  CPU times), and tearing one down between samples would put a connect into the other's timing.
- Connect: ours is the daily ``wa-onboard connect --detach`` (settings from the profile, which the
  first connect saved) until it returns, having proved the hub healthy.
  Plain is ``ssh -fN`` (returns once its forwards listen) plus one health request made with curl,
  a client that owes nothing to Python. The earlier version made that request with a fresh Python
  (interpreter start and urllib imports); it is still printed as "plain + python probe s": in the
  lab both cost the same (curl loads its own pile of shared libraries).
- "connect cold, no prestart" is ours with ``WA_ONBOARD_NO_PRESTART=1``, once per round: the early
  jump login's share (core/prestart).
- Plain ``ssh -fN`` has no supervisor and never reconnects: its "recovery" is TCP outliving a 10 s
  cut, ours is the supervisor noticing and reconnecting; the goal for ours is <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lab"))

from lab import Lab, Member  # noqa: E402
from lab_helpers import members_own_master  # noqa: E402

SINK_PORT, ECHO_PORT = 9100, 9101
SERVER = r"""
import socket, threading, sys
def bulk(c):
    n = int(c.recv(32)); chunk = b"x" * 65536
    while n > 0:
        c.sendall(chunk[:min(n, 65536)]); n -= 65536
    c.close()
def echo(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (d := c.recv(1)):
        c.sendall(d)
def serve(port, fn):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen()
    while True:
        c, _ = s.accept(); threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(SINK_PORT, bulk), daemon=True).start()
serve(ECHO_PORT, echo)
""".replace("SINK_PORT", str(SINK_PORT)).replace("ECHO_PORT", str(ECHO_PORT))

CLIENT = r"""
import socket, sys, time, json
mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "bulk":
    buf = bytearray(1 << 20); view = memoryview(buf)
    t = time.perf_counter(); s.sendall(str(n).encode().ljust(32)); got = 0
    while (k := s.recv_into(view)):
        got += k
    print(json.dumps({"mbps": got * 8 / 1e6 / (time.perf_counter() - t)}))
else:
    times = []
    for _ in range(n):
        t = time.perf_counter(); s.sendall(b"x"); s.recv(1); times.append(time.perf_counter() - t)
    times.sort(); print(json.dumps({"rtt_ms": times[len(times) // 2] * 1000}))
"""

CURL = ["curl", "-sf", "-o", "/dev/null", "--noproxy", "*", "--max-time", "30"]

HEALTH = r"""
import sys, time, urllib.request
o = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        if o.open(sys.argv[1], timeout=2).status == 200: sys.exit(0)
    except Exception: time.sleep(0.05)
sys.exit(1)
"""


def member_install(work: Path) -> str:
    """A venv holding the package the way ``pipx install .`` leaves it; returns its python."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shutil.copytree(Path(__file__).resolve().parents[2] / "wa_onboard", site / "wa_onboard")
    system_site = next(p for p in sys.path if p.endswith("site-packages"))
    (site / "_bench_dependencies.pth").write_text(system_site + "\n")  # a path line, no code
    subprocess.run([str(py), "-m", "compileall", "-q", str(site / "wa_onboard")], check=True)
    return str(py)


def bare_start(python: str, env: dict[str, str], runs: int = 15) -> float:
    """Median seconds for ``python -c pass``: what every Python program pays before its first line."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([python, "-c", "pass"], env={**os.environ, **env}, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@dataclass
class Bench:
    """One benchmark run in the lab: the member, both tunnels' settings, and every sample taken."""

    lab: Lab
    member: Member
    work: Path
    env: dict[str, str]
    python: str
    plain_cfg: Path
    results: dict[str, dict[str, list[float]]] = field(default_factory=lambda: {"ours": {}, "plain": {}})
    ratios: dict[str, list[float]] = field(default_factory=dict)

    @property
    def wa(self) -> list[str]:
        return [self.python, "-m", "wa_onboard"]

    @property
    def daily(self) -> list[str]:
        """What a member types every day (settings from the profile the first connect saved)."""
        return [*self.wa, "connect", "--detach", "--no-browser"]

    @property
    def jump(self) -> str:
        return f"{self.member.name}@{self.lab.jump_host}"

    def run(
        self, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.lab.laptop_run(argv, env={**self.env, **(extra_env or {})}, timeout=120)

    def timed(self, argv: list[str], extra_env: dict[str, str] | None = None) -> float:
        t = time.perf_counter()
        r = self.run(argv, extra_env)
        assert r.returncode == 0, r.stdout + r.stderr
        return time.perf_counter() - t

    def health(self, port: int) -> list[str]:
        return [
            sys.executable,
            str(self.work / "health.py"),
            f"http://127.0.0.1:{port}/jupyter/hub/health",
            "30",
        ]

    @property
    def plain_forwards(self) -> list[str]:
        return [
            "-L",
            f"127.0.0.1:19000:localhost:{self.lab.hub_port}",
            "-L",
            f"127.0.0.1:19100:localhost:{SINK_PORT}",
            "-L",
            f"127.0.0.1:19101:localhost:{ECHO_PORT}",
        ]

    def disconnect(self) -> None:
        self.run([*self.wa, "disconnect"])

    def plain_up(self, probe: str = "curl") -> float:
        t = time.perf_counter()
        ssh = self.lab.laptop_popen(
            [
                "ssh",
                "-F",
                str(self.plain_cfg),
                "-fN",
                "-o",
                "ExitOnForwardFailure=yes",
                "-J",
                self.jump,
                *self.plain_forwards,
                f"{self.member.name}@{self.lab.ws_host}",
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert ssh.wait(60) == 0
        if probe == "curl":
            assert self.run([*CURL, "http://127.0.0.1:19000/jupyter/hub/health"]).returncode == 0
        else:
            assert self.run(self.health(19000)).returncode == 0
        return time.perf_counter() - t

    def plain_down(self) -> None:
        from wa_onboard.core.tunnel.engines.openssh import our_ssh_processes

        for pid in our_ssh_processes(
            str(self.plain_cfg), (self.jump, f"{self.member.name}@{self.lab.ws_host}")
        ):
            os.kill(pid, 15)  # by pid: only the ssh processes started with this benchmark's own config
        time.sleep(0.3)

    def add(self, who: str, key: str, value: float) -> None:
        self.results[who].setdefault(key, []).append(value)

    def pair(self, *keys: str) -> None:
        """The ratio of this round's two samples per side (the last two of each)."""
        for key in keys:
            ours, plain = self.results["ours"][key][-2:], self.results["plain"][key][-2:]
            self.ratios.setdefault(key, []).append(statistics.mean(ours) / statistics.mean(plain))


DATA_PORTS = {"ours": (18100, 18101), "plain": (19100, 19101)}  # (sink, echo) through each tunnel


def abba(rnd: int) -> tuple[str, ...]:
    return ("ours", "plain", "plain", "ours") if rnd % 2 == 0 else ("plain", "ours", "ours", "plain")


def set_up(lab: Lab, work: Path, env: dict[str, str], python: str) -> tuple[Bench, subprocess.Popen[bytes]]:
    """A member with our key authorized, the data server on the workstation, our tunnel up once (the profile
    saved) with extra forwards to the data server on our masters; plain ssh's config (same key and known_hosts,
    no sharing). Returns the bench and the data server."""
    from wa_onboard.core.tunnel import sshfiles

    m = lab.new_member()
    os.environ["HOME"] = env["HOME"]
    sshfiles.ensure_key()
    auth = m.home / ".ssh"
    auth.mkdir(mode=0o700, exist_ok=True)
    (auth / "authorized_keys").write_text(sshfiles.public_key_text() + "\n")
    for p in (auth, auth / "authorized_keys"):
        os.chown(p, m.uid, m.home.stat().st_gid)
    server = subprocess.Popen(lab.host_cmd("ws", ["/usr/bin/python3", str(work / "server.py")], m))
    time.sleep(1)
    plain_cfg = work / "plain_config"
    plain_cfg.write_text(
        f"Host *\n  IdentityFile {sshfiles.paths.key_file()}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {sshfiles.known_hosts_path()}\n  StrictHostKeyChecking accept-new\n  BatchMode yes\n"
    )
    b = Bench(lab, m, work, env, python, plain_cfg)
    flags = [
        "--user",
        m.name,
        "--jump",
        lab.jump_host,
        "--host",
        lab.ws_host,
        "--no-browser",
        "--remote-port",
        str(lab.hub_port),
        "--local-port",
        "18000",
    ]
    assert b.run([*b.wa, "connect", "--detach", "--yes", *flags]).returncode == 0  # saves the profile
    for local, remote in zip(DATA_PORTS["ours"], (SINK_PORT, ECHO_PORT), strict=True):
        r = b.run(
            [
                "ssh",
                "-F",
                str(sshfiles.config_path()),
                "-O",
                "forward",
                "-L",
                f"127.0.0.1:{local}:localhost:{remote}",
                "wa-ws",
            ]
        )
        assert r.returncode == 0, r.stderr
    return b, server


def throughput(b: Bench, who: str, mb: int) -> float:
    """Mbit/s of one bulk download of mb MB through who's tunnel."""
    out = b.run(
        [sys.executable, str(b.work / "client.py"), "bulk", str(DATA_PORTS[who][0]), str(mb * 1_000_000)]
    )
    assert out.returncode == 0, out.stderr
    return float(json.loads(out.stdout)["mbps"])


def round_trip(b: Bench, who: str) -> float:
    """Median ms of 500 one-byte round trips through who's tunnel."""
    rtt = b.run([sys.executable, str(b.work / "client.py"), "rtt", str(DATA_PORTS[who][1]), "500"])
    assert rtt.returncode == 0, rtt.stderr
    return float(json.loads(rtt.stdout)["rtt_ms"])


def measure_data(b: Bench, rounds: int, mb: int) -> None:
    """Throughput and round trip, both tunnels up, ABBA per round (each slot: a bulk transfer, then the
    round trips), after one unrecorded warm-up per side."""
    for who in DATA_PORTS:
        throughput(b, who, max(10, mb // 10))
        round_trip(b, who)
    for rnd in range(rounds):
        for who in abba(rnd):
            b.add(who, "throughput Mbit/s", throughput(b, who, mb))
            b.add(who, "round trip ms", round_trip(b, who))
        b.pair("throughput Mbit/s", "round trip ms")
    b.plain_down()
    b.disconnect()


def measure_connect(b: Bench, rounds: int) -> None:
    """Connect-to-healthy from cold, ABBA per round after one unrecorded warm-up per side; with each round,
    plain with a Python probe and ours without the early jump login (core/prestart): what it saves."""
    b.timed(b.daily)  # warm-up, not recorded
    b.disconnect()
    b.plain_up()
    b.plain_down()
    for rnd in range(rounds):
        for who in abba(rnd):
            if who == "ours":
                b.add("ours", "connect cold s", b.timed(b.daily))
                b.disconnect()
            else:
                b.add("plain", "connect cold s", b.plain_up())
                b.plain_down()
        b.pair("connect cold s")
        b.add("plain", "plain + python probe s", b.plain_up("python"))
        b.add("ours", "connect cold, no prestart s", b.timed(b.daily, {"WA_ONBOARD_NO_PRESTART": "1"}))
        b.disconnect()
        b.plain_down()


def measure_live_master(b: Bench, rounds: int) -> None:
    """Connect while a live master runs (a member's `ssh wa-ws` through the Include, or setup): it rides it."""
    for _ in range(rounds):
        master = b.lab.laptop_popen(members_own_master(), env=b.env)
        time.sleep(1.5)
        b.add("ours", "connect with live master s", b.timed(b.daily))
        b.disconnect()
        master.terminate()  # SIGTERM: ssh removes its control socket (SIGKILL would leave it stale)
        master.wait(10)


def measure_recovery(b: Bench, rounds: int) -> None:
    """Seconds until the hub answers again after a 10 s cut of the laptop-jump link."""
    for who in ("ours", "plain"):
        for _ in range(max(1, rounds // 2)):
            if who == "ours":
                assert b.run(b.daily).returncode == 0
                port = 18000
            else:
                b.plain_up()
                port = 19000
            b.lab.link_down("laptop-jump")
            time.sleep(10)
            b.lab.link_up("laptop-jump")
            t = time.perf_counter()
            ok = b.run([*b.health(port)[:-1], "120"]).returncode == 0
            b.add(who, "recovery after 10 s cut s", time.perf_counter() - t if ok else float("inf"))
            b.disconnect() if who == "ours" else b.plain_down()


def report(
    results: dict[str, dict[str, list[float]]], ratios: dict[str, list[float]], starts: dict[str, float]
) -> None:
    print(f"{'metric':32} {'ours':>10} {'plain':>10} {'ratio':>7} {'paired':>7}  (medians; n per side)")
    for key in results["ours"]:
        ours = statistics.median(results["ours"][key])
        plain = statistics.median(results["plain"][key]) if key in results["plain"] else float("nan")
        ratio = ours / plain if plain == plain else float("nan")
        paired = statistics.median(ratios[key]) if key in ratios else float("nan")
        n = len(results["ours"][key])
        print(f"{key:32} {ours:10.3f} {plain:10.3f} {ratio:7.2f} {paired:7.2f}  n={n}")
    for py, took in starts.items():
        print(f"bare interpreter start {took * 1000:.0f} ms: {py}")
    for key in results["plain"].keys() - results["ours"].keys():
        plain = statistics.median(results["plain"][key])
        print(f"{key:32} {'':>10} {plain:10.3f}  n={len(results['plain'][key])}")


def prepare(work: Path, which: str) -> tuple[dict[str, str], str]:
    """The laptop's environment and the python that runs ours (see the module docstring)."""
    home = work / "home"
    home.mkdir(mode=0o700)
    env = {
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / ".state"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        # an installed package has its .pyc files (pip compiles them); this dev checkout may not, and
        # PYTHONDONTWRITEBYTECODE=1 in this environment made every run compile ours from source again
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(work / "pycache"),
    }
    (work / "client.py").write_text(CLIENT)
    (work / "health.py").write_text(HEALTH)
    (work / "server.py").write_text(SERVER)
    work.chmod(0o755)  # the data server runs as the member on the workstation
    python = member_install(work) if which == "venv" else sys.executable
    if which == "system":
        package = Path(__file__).resolve().parents[2] / "wa_onboard"
        compiled = subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(package)], env={**os.environ, **env}, check=False
        )
        assert compiled.returncode == 0
    return env, python


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument(
        "--python",
        choices=("venv", "system"),
        default="venv",
        help="run ours from a venv like a member's install (default), or from this system Python",
    )
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wa-bench-"))
    env, python = prepare(work, opts.python)
    starts = {py: bare_start(py, env) for py in dict.fromkeys((python, sys.executable))}
    with Lab() as lab:
        b, server = set_up(lab, work, env, python)
        b.plain_up()
        measure_data(b, opts.rounds, opts.mb)
        measure_connect(b, opts.rounds)
        measure_live_master(b, opts.rounds)
        measure_recovery(b, opts.rounds)
        server.kill()
    report(b.results, b.ratios, starts)


if __name__ == "__main__":
    main()
