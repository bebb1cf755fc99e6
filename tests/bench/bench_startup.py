"""Start-up cost of the command line, against importing textual (what --help must not pay).

Run: python3 tests/bench/bench_startup.py [--runs 20]
Prints the median wall time of each command over the runs, and the ratio to `import textual.app`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "wa-onboard --help": [sys.executable, "-m", "wa_onboard", "--help"],
    "wa-onboard status --help": [sys.executable, "-m", "wa_onboard", "status", "--help"],
    "python -c 'import textual.app'": [sys.executable, "-c", "import textual.app"],
}


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    results = {name: median_ms(argv, runs) for name, argv in COMMANDS.items()}
    textual = results["python -c 'import textual.app'"]
    for name, ms in results.items():
        print(f"{name:34} {ms:7.1f} ms   {ms / textual:5.2f}x of import textual.app")


if __name__ == "__main__":
    main()
