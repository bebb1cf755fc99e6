"""How fast is ``wa-onboard doctor``, and what does sharing one ssh round trip save?

Run as root with the lab provisioned (takes the lab lock):
    flock /tmp/wa-lab.lock python3 tests/bench/bench_doctor.py [--rounds 5]

Onboards a fresh member with the real ``setup`` (which leaves the supervisor's tunnel and its control
masters up), then, in the laptop namespace, alternating each round:
  - full: a whole doctor run (all checks, in process), with the live connection;
  - shared: the workstation facts the way the doctor gets them, one script over the live control master;
  - per-check: each workstation check over its own fresh ssh connection (new login through the jump host),
    one after the other, each running only the part of the script that check needs.
Prints medians and the ratio per-check / shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lab"))

from lab import Lab  # noqa: E402

MEASURE = r"""
import json, sys, time
from wa_onboard.core.doctor import run_doctor
from wa_onboard.core.doctor import facts
from wa_onboard.core.tunnel import sshclient, sshcmd
from wa_onboard.core.doctor.context import DoctorContext
from wa_onboard.core.profile import ProfileStore
from wa_onboard.core.remote import SubprocessShell

rounds = int(sys.argv[1])
profile = ProfileStore().load("default")
out = {"full": [], "shared": [], "per_check": [], "per_check_each": {}, "statuses": None}
for _ in range(rounds):
    t = time.perf_counter()
    run = run_doctor("default")
    out["full"].append(time.perf_counter() - t)
    out["statuses"] = sorted({r.status.value for r in run.results})
    out["checks"] = len(run.results)

    ctx = DoctorContext()
    ctx.set_profile(profile)
    assert sshclient.master_alive("default"), "no live control master"
    t = time.perf_counter()
    shared = ctx.workstation_run(fresh=False)
    out["shared"].append(time.perf_counter() - t)
    assert shared.result.ok, shared.result.stderr

    total = 0.0
    for check_id, parts in facts.NEEDS.items():
        shell = SubprocessShell(sshclient.ssh_argv("default", "ws", fresh=True), env=sshcmd.quiet_env())
        t = time.perf_counter()
        r = shell.run(facts.script(profile, parts))
        took = time.perf_counter() - t
        assert r.ok, (check_id, r.stderr)
        total += took
        out["per_check_each"].setdefault(check_id, []).append(took)
    out["per_check"].append(total)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wa-bench-doctor-"))
    home = work / "home"
    home.mkdir(mode=0o700)
    env = {"HOME": str(home), "BROWSER": "true"}
    with Lab() as lab:
        member = lab.new_member()
        setup = lab.laptop_run(
            [sys.executable, "-m", "wa_onboard", "setup", "--no-tui", "--no-browser", "--yes", "--password-stdin",
             "--user", member.name, "--jump", lab.jump_host, "--host", lab.ws_host,
             "--remote-port", str(lab.hub_port), "--base-url", lab.base_url],
            env=env, input=member.password + "\n", timeout=600,
        )  # fmt: skip
        if setup.returncode != 0:
            raise SystemExit(f"setup failed:\n{setup.stdout}\n{setup.stderr}")
        try:
            r = lab.laptop_run([sys.executable, "-c", MEASURE, str(opts.rounds)], env=env, timeout=1800)
            if r.returncode != 0:
                raise SystemExit(f"measurement failed:\n{r.stdout}\n{r.stderr}")
            data = json.loads(r.stdout.strip().splitlines()[-1])
        finally:
            lab.laptop_run([sys.executable, "-m", "wa_onboard", "disconnect"], env=env, timeout=60)
            lab.remove_member(member)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    print(f"doctor benchmark, {opts.rounds} rounds, lab (laptop -> jump -> workstation), live control master")
    print(f"  check statuses seen in the full runs: {data['statuses']}")
    print(f"  full doctor run (all {data['checks']} checks, in process): median {med(data['full']):.3f} s "
          f"(min {min(data['full']):.3f}, max {max(data['full']):.3f})")  # fmt: skip
    print(f"  workstation facts, one script over the live master:  median {med(data['shared']):.3f} s")
    print(f"  workstation checks, one fresh ssh login each ({len(data['per_check_each'])} logins): "
          f"median {med(data['per_check']):.3f} s")  # fmt: skip
    for check_id, times in data["per_check_each"].items():
        print(f"      {check_id:24} {med(times):.3f} s")
    print(f"  ratio per-check / shared: {med(data['per_check']) / med(data['shared']):.1f}x")


if __name__ == "__main__":
    main()
