"""Benchmark: the paramiko engine's forward vs plain ``ssh -N -L ... -J`` on the same lab hosts.

Run as root, under the lab lock (it builds the lab, without the hub):

    flock /tmp/wa-lab.lock python3 tests/bench/bench_paramiko.py [--rounds 3] [--mb 64] [--trips 2000]

A byte source/sink/echo server runs on the workstation's loopback; both tunnels forward a laptop port to it.
Rounds alternate paramiko and ssh so drift hits both alike. Printed: download and upload MB/s and the median
1-byte round trip for each, and the ratios paramiko/ssh (throughput: higher is better; round trip: lower).
``--window``, ``--packet`` and ``--cipher`` override the engine's tuning for experiments.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SERVER_PORT = 9100
CHUNK = 1024 * 1024


# ------------------------------------------------------------------ the far end (on the workstation)


class Handler(socketserver.BaseRequestHandler):
    """b"D"+size: send size bytes. b"U"+size: read size bytes, answer b"k". b"E": echo until EOF."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = _recv_exact(sock, 1)
        except EOFError:  # wait_port's probe
            return
        if head == b"E":
            while data := sock.recv(65536):
                sock.sendall(data)
            return
        size = int.from_bytes(_recv_exact(sock, 8), "big")
        if head == b"D":
            block = b"x" * CHUNK
            left = size
            while left:
                n = min(left, CHUNK)
                sock.sendall(block[:n])
                left -= n
        elif head == b"U":
            buf = bytearray(CHUNK)
            left = size
            while left:
                n = sock.recv_into(buf, min(left, CHUNK))
                if not n:
                    return
                left -= n
            sock.sendall(b"k")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise EOFError
        out += data
    return out


def serve(port: int) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler) as server:
        server.daemon_threads = True
        server.serve_forever()


# ------------------------------------------------------------------ the measurements (on the laptop)


def download(port: int, size: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(b"D" + size.to_bytes(8, "big"))
        buf = bytearray(CHUNK)
        left = size
        while left:
            n = sock.recv_into(buf)
            if not n:
                raise EOFError("short download")
            left -= n
        return size / (time.perf_counter() - started) / 1e6


def upload(port: int, size: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        block = b"y" * CHUNK
        started = time.perf_counter()
        sock.sendall(b"U" + size.to_bytes(8, "big"))
        left = size
        while left:
            n = min(left, CHUNK)
            sock.sendall(block[:n])
            left -= n
        assert _recv_exact(sock, 1) == b"k"
        return size / (time.perf_counter() - started) / 1e6


def round_trip(port: int, trips: int) -> float:
    """Median seconds for one byte there and back, on one open connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"E")
        times = []
        for _ in range(trips):
            started = time.perf_counter()
            sock.sendall(b"!")
            _recv_exact(sock, 1)
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def sshtunnel_forward(engine: Any, args: argparse.Namespace) -> int:
    """sshtunnel's own forwarder (16 KiB select loop) on the workstation transport we authenticated."""
    import sshtunnel

    class Handed(sshtunnel.SSHTunnelForwarder):  # type: ignore[misc]
        def _connect_to_gateway(self) -> None:
            self._transport = engine._inner

    forwarder = Handed(
        (args.ws, 22),
        ssh_username=args.user,
        ssh_password="unused",  # never sent: the transport is already authenticated
        ssh_config_file=None,
        allow_agent=False,
        host_pkey_directories=[],
        remote_bind_address=("localhost", SERVER_PORT),
        local_bind_address=("127.0.0.1", 0),
    )
    forwarder.start()
    port: int = forwarder.local_bind_port
    return port


def inner(args: argparse.Namespace) -> None:
    """Inside the laptop namespace: both tunnels up, alternating rounds, one JSON line out."""
    from wa_onboard.core.profile import Profile
    from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion
    from wa_onboard.core.tunnel.engines import paramiko as engine_paramiko
    from wa_onboard.core.tunnel.engines.paramiko import ParamikoEngine

    if args.window:
        engine_paramiko.WINDOW_SIZE = args.window
    if args.packet:
        engine_paramiko.MAX_PACKET_SIZE = args.packet
    if args.cipher:
        engine_paramiko.CIPHERS = (args.cipher,)

    class Trusting:
        def secret(self, question: SecretQuestion) -> str | None:
            return None

        def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
            return True

    profile = Profile.make({"user": args.user, "jump": args.jump, "host": args.ws, "engine": "paramiko"})
    engine = ParamikoEngine(profile)
    engine.login(Trusting(), interactive=False)  # also writes known_hosts, which ssh then checks
    engine.forward(0, SERVER_PORT)
    ours = engine.local_port
    assert ours
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        theirs = s.getsockname()[1]
    ssh = subprocess.Popen(
        ["ssh", "-F", args.config, "-N", "-L", f"127.0.0.1:{theirs}:localhost:{SERVER_PORT}", "bench-ws"],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_port(theirs)
        size = args.mb * 1024 * 1024
        download(ours, 1024 * 1024)  # warm up both paths
        download(theirs, 1024 * 1024)
        contenders = [("paramiko", ours), ("ssh", theirs)]
        if args.sshtunnel:
            contenders.append(("sshtunnel", sshtunnel_forward(engine, args)))
        results: dict[str, dict[str, list[float]]] = {
            name: {"down": [], "up": [], "rtt": []} for name, _ in contenders
        }
        for _ in range(args.rounds):
            for name, port in contenders:
                results[name]["down"].append(download(port, size))
                results[name]["up"].append(upload(port, size))
                results[name]["rtt"].append(round_trip(port, args.trips))
        print(json.dumps(results), flush=True)
    finally:
        ssh.terminate()
        ssh.wait(10)
        engine.close()


# ------------------------------------------------------------------ the outside (root, builds the lab)


def outer(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "lab"))
    from lab import Lab

    with Lab(with_hub=False) as lab, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        member = lab.new_member()
        key = home / ".ssh" / "wa_onboard_ed25519"
        key.parent.mkdir(mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        auth = member.home / ".ssh"
        auth.mkdir(mode=0o700, exist_ok=True)
        (auth / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
        for p in (auth, auth / "authorized_keys"):
            os.chown(p, member.uid, member.home.stat().st_gid)
        known = home / ".ssh" / "wa-onboard" / "known_hosts"
        config = home / "bench_ssh_config"
        common = (
            f"    User {member.name}\n    IdentityFile {key}\n    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {known}\n    StrictHostKeyChecking yes\n    ControlMaster no\n"
            "    BatchMode yes\n"
        )
        config.write_text(
            f"Host bench-jump\n    HostName {lab.jump_host}\n{common}\n"
            f"Host bench-ws\n    HostName {lab.ws_host}\n    ProxyJump bench-jump\n{common}"
        )
        server = subprocess.Popen(
            lab.host_cmd("ws", [sys.executable, __file__, "--server"]), stdin=subprocess.DEVNULL
        )
        try:
            extra = [f"--{k}={v}" for k in ("window", "packet", "cipher") if (v := getattr(args, k))]
            extra += ["--sshtunnel"] if args.sshtunnel else []
            profiler = (
                ["py-spy", "record", "--format", "raw", "-o", args.profile, "--"] if args.profile else []
            )
            run = lab.laptop_run(
                [
                    *profiler,
                    sys.executable,
                    __file__,
                    "--inner",
                    f"--user={member.name}",
                    f"--jump={lab.jump_host}",
                    f"--ws={lab.ws_host}",
                    f"--config={config}",
                    f"--rounds={args.rounds}",
                    f"--mb={args.mb}",
                    f"--trips={args.trips}",
                    *extra,
                ],
                env={"HOME": str(home), "PYTHONPATH": str(ROOT)},
                timeout=3600,
            )
        finally:
            server.terminate()
            server.wait(10)
        if run.returncode != 0 or args.profile:
            print(run.stderr, file=sys.stderr)
        if run.returncode != 0:
            raise SystemExit(f"bench failed:\n{run.stdout}")
        report(json.loads(run.stdout.strip().splitlines()[-1]), args)


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Medians per tunnel, and each one's ratio to plain ssh (throughput: higher is better; RTT: lower)."""
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    names = [n for n in med if n != "ssh"]
    print(f"vs ssh -N -L -J: {args.rounds} alternating rounds of {args.mb} MiB each way, {args.trips} trips")
    print(f"{'':11}{'ssh':>10}" + "".join(f"{n:>11}{'ratio':>7}" for n in names))
    for key, label, scale in (("down", "down MB/s", 1), ("up", "up MB/s", 1), ("rtt", "RTT us", 1e6)):
        base = med["ssh"][key] * scale
        cells = "".join(f"{med[n][key] * scale:>11.1f}{med[n][key] * scale / base:>6.2f}x" for n in names)
        print(f"{label:11}{base:>10.1f}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--user", "--jump", "--ws", "--config"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--trips", type=int, default=2000)
    parser.add_argument("--window", type=int, default=0)
    parser.add_argument("--packet", type=int, default=0)
    parser.add_argument("--cipher", default="")
    parser.add_argument(
        "--sshtunnel",
        action="store_true",
        help="also measure sshtunnel's forwarder on our authenticated transport",
    )
    parser.add_argument("--profile", default="", help="record a py-spy profile (raw) of the laptop side here")
    args = parser.parse_args()
    if args.server:
        serve(SERVER_PORT)
    elif args.inner:
        inner(args)
    else:
        outer(args)


if __name__ == "__main__":
    main()
