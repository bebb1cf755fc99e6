"""Time to first frame and the dashboard's memory, on a real pseudo-terminal (80x24).

    python -m tests.tui.bench_tui [--runs 7]

First frame: from starting the process to the first screen's text appearing on the terminal
(imports, app start and the first paint; the fake backend, so no network time is counted).
Memory: the process's resident set (VmRSS) while the dashboard shows a live tunnel. For scale, the
same is measured for a bare ``python -c "import textual.app"``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parents[2]
ENV = {"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "BROWSER": "true"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def first_frame(mode: str, text: str) -> tuple[float, int]:
    started = time.perf_counter()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tests.tui.run_fake_app", mode],
        cwd=str(ROOT),
        dimensions=(24, 80),
        env=ENV,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
    )
    child.expect_exact(text)
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # let the dashboard settle (timers, the tunnel watcher)
    rss = rss_kib(child.pid)
    child.send("\x11")
    if mode == "dashboard":
        child.expect_exact("Keep running")
        child.send("s")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed, rss


def bare_textual() -> tuple[float, int]:
    code = "import time, textual.app; print(open('/proc/self/status').read())"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    rss = next(int(line.split()[1]) for line in out.splitlines() if line.startswith("VmRSS:"))
    return elapsed, rss


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = {
        "wizard (welcome)": [first_frame("wizard", "Welcome!") for _ in range(args.runs)],
        "dashboard": [first_frame("dashboard", "connected") for _ in range(args.runs)],
        "python -c 'import textual.app'": [bare_textual() for _ in range(args.runs)],
    }
    print(f"{args.runs} runs each, median (min-max); Python {sys.version.split()[0]}")
    for name, samples in rows.items():
        times = [t * 1000 for t, _ in samples]
        rss = [r / 1024 for _, r in samples]
        print(
            f"  {name:32} start to first text {statistics.median(times):5.0f} ms ({min(times):.0f}-{max(times):.0f})"
            f"   RSS {statistics.median(rss):5.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
