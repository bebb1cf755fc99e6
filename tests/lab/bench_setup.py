"""Benchmark: wall time of a fresh ``wa-onboard setup`` in the lab, and how much of it is conda's own work.

Root, provisioned lab:  flock /tmp/wa-lab.lock python3 tests/lab/bench_setup.py [RUNS] [ENGINE]

Each run: a new member and an empty laptop home, ``setup --no-tui --yes --password-stdin --no-browser``
from the laptop namespace. Printed per run: the whole setup, its "Create your conda env" step, and the
time the ``conda create`` process itself ran on the workstation (measured there by the create script).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import Lab
from test_setup import setup_argv, steps

STOP = "from wa_onboard.core.tunnel import daemon; daemon.stop_supervisor('default')"


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    engine = sys.argv[2] if len(sys.argv) > 2 else "openssh"
    rows = []
    with Lab() as lab:
        for _ in range(runs):
            member = lab.new_member()
            home = Path(tempfile.mkdtemp(prefix="wa-bench-"))
            home.chmod(0o700)
            env = {"HOME": str(home), "BROWSER": "true"}
            argv = setup_argv(lab, member, "--yes", "--password-stdin", "--engine", engine)
            started = time.monotonic()
            r = lab.laptop_run(argv, env=env, input=member.password + "\n", timeout=900)
            wall = time.monotonic() - started
            lab.laptop_run([sys.executable, "-c", STOP], env=env)
            lab.remove_member(member)
            if r.returncode != 0:
                print(r.stdout, r.stderr)
                return 1
            _, step, summary = steps(r.stdout)["Create your conda env"]
            found = re.search(r"in ([\d.]+) s of conda", summary)
            conda = float(found.group(1)) if found else float("nan")
            rows.append((wall, step, conda))
            print(f"setup {wall:5.1f} s   env step {step:5.1f} s   conda create itself {conda:5.1f} s")
    wall, step, conda = (statistics.median(column) for column in zip(*rows, strict=True))
    print(
        f"median of {runs} ({engine}): setup {wall:.1f} s, env step {step:.1f} s, "
        f"conda create itself {conda:.1f} s ({100 * conda / wall:.0f}% of the setup)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
