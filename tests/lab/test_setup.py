"""``wa-onboard setup`` end to end in the lab: a fresh laptop home and a never-onboarded account, through the
real OpenSSH engine from the laptop namespace, real sshd/PAM, lmod, the conda stand-in and JupyterHub.

Run (root, provisioned lab):  flock /tmp/wa-lab.lock python3 -m pytest tests/lab/test_setup.py -x -q
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lab import Lab, Member

STEP_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+)\s+([\d.]+)s  ([^:]+): (.*)$")
Setup = Callable[..., subprocess.CompletedProcess[str]]


def setup_argv(lab: Lab, member: Member, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "wa_onboard", "setup", "--no-tui", "--no-browser",
        "--user", member.name, "--jump", lab.jump_host, "--host", lab.ws_host,
        "--remote-port", str(lab.hub_port), "--base-url", lab.base_url, *extra,
    ]  # fmt: skip


def steps(output: str) -> dict[str, tuple[str, float, str]]:
    """title -> (status, seconds, summary) from setup's one line per step."""
    found = {}
    for line in output.splitlines():
        m = STEP_LINE.match(line)
        if m:
            found[m.group(5)] = (m.group(3), float(m.group(4)), m.group(6))
    return found


@pytest.fixture
def laptop_env(laptop_home: Path) -> dict[str, str]:
    return {"HOME": str(laptop_home), "BROWSER": "true"}


@pytest.fixture
def setup(
    lab: Lab, laptop_home: Path, laptop_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    """Runs setup on the laptop; afterwards stops the background tunnel it left (as `disconnect` would)."""

    def run(
        member: Member, *extra: str, stdin: str = "", timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        argv = setup_argv(lab, member, "--yes", "--password-stdin", *extra)
        return lab.laptop_run(argv, env=laptop_env, input=stdin, timeout=timeout)

    yield run
    monkeypatch.setenv("HOME", str(laptop_home))
    from wa_onboard.core.tunnel import daemon

    daemon.stop_supervisor("default")


@pytest.fixture(autouse=True)
def conda_as_shipped(lab: Lab) -> Iterator[None]:
    yield
    lab.set_conda_fault(None)
    lab.set_conda_module("anaconda")


def files_under(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def env_stamp(member: Member) -> dict[str, tuple[int, int]]:
    prefix = member.home / ".conda/envs/wa"
    return {
        str(p): (os.lstat(p).st_ino, os.lstat(p).st_mtime_ns)
        for p in (prefix, prefix / "bin/python", prefix / "conda-meta", prefix / "conda-meta/history")
    }


def key_lines(member: Member, laptop_home: Path) -> int:
    key = (laptop_home / ".ssh/wa_onboard_ed25519.pub").read_text().strip()
    return (member.home / ".ssh/authorized_keys").read_text().splitlines().count(key)


@pytest.mark.parametrize("engine", ["openssh", "paramiko"])
def test_fresh_setup_then_a_rerun_that_changes_nothing(
    lab: Lab, member: Member, laptop_home: Path, laptop_env: dict[str, str], setup: Setup, engine: str
) -> None:
    started = time.monotonic()
    r = setup(member, "--engine", engine, stdin=member.password + "\n")
    wall = time.monotonic() - started
    assert r.returncode == 0, r.stdout + r.stderr
    done = steps(r.stdout)
    assert len(done) == 11 and all(status in ("done", "ok") for status, _, _ in done.values()), r.stdout
    assert [t for t, (_, _, summary) in done.items() if "already done" in summary] == []  # a first run
    conda_seconds = done["Create your conda env"][1]
    print(f"\nfresh setup ({engine}): {wall:.1f} s wall, of which the conda env step {conda_seconds:.1f} s")
    assert "tunnel up at http://127.0.0.1:8000/jupyter/" in done["Start the tunnel and check the hub"][2]
    assert "wa-onboard status" in r.stdout and "wa-onboard disconnect" in r.stdout

    # the password is nowhere: not in the laptop home (config, ssh files, tunnel log), not in the lab's logs
    secret = member.password.encode()
    leaks = [p for p in files_under(laptop_home) if secret in p.read_bytes()]
    assert leaks == []
    for log in (lab.sshd_log("jump"), lab.sshd_log("ws"), lab.hub_log()):
        assert member.password not in log
    assert member.password not in r.stdout + r.stderr
    assert key_lines(member, laptop_home) == 1
    assert (laptop_home / ".ssh/wa_onboard_ed25519").stat().st_mode & 0o777 == 0o600

    specs = lab.hub_login_kernelspecs(member)
    assert specs["kernelspecs"]["wa"]["spec"]["display_name"] == "WA"

    stamp = env_stamp(member)
    again = setup(member, stdin="")  # nothing on stdin: the key must be enough
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = steps(again.stdout)
    assert len(rerun) == 11 and all(s in ("done", "ok") for s, _, _ in rerun.values()), again.stdout
    checks = {"Check the profile", "Find conda on the workstation", "Check the kernel works"}
    skipped = {t for t, (s, _, summary) in rerun.items() if s == "ok" and summary.startswith("already done")}
    assert skipped == set(rerun) - checks - {"Open the hub in the browser"}, again.stdout
    assert "      | " not in again.stdout  # conda never ran
    assert env_stamp(member) == stamp and key_lines(member, laptop_home) == 1
    # the rerun's own connection is gone, and the background tunnel it found is still up
    state = "from wa_onboard.core.tunnel import daemon; print(daemon.verify_status('default').state.value)"
    status = lab.laptop_run([sys.executable, "-c", state], env=laptop_env)
    assert status.stdout.strip() == "connected", status


def test_mfa_member_types_the_password_once_and_a_code(
    lab: Lab, mfa_member: Member, laptop_env: dict[str, str], setup: Setup
) -> None:
    import pexpect

    cmd = lab.laptop_cmd(setup_argv(lab, mfa_member, "--yes"))
    child = pexpect.spawn(cmd[0], cmd[1:], env={**os.environ, **laptop_env}, encoding="utf-8", timeout=300)
    child.logfile_read = log = io.StringIO()
    child.expect(r"\] [^\n]*[Pp]assword: ?")
    child.sendline(mfa_member.password)
    child.expect_exact("Verification code:")
    child.sendline(mfa_member.totp_code())
    child.expect(pexpect.EOF)
    child.close()
    transcript = log.getvalue()
    assert child.exitstatus == 0, transcript
    assert transcript.count("assword:") == 1  # asked once: the workstation got the same password
    assert mfa_member.password not in transcript  # typed without echo
    assert len(steps(transcript)) == 11


def test_no_conda_module_at_all(lab: Lab, member: Member, setup: Setup) -> None:
    lab.set_conda_module(None)
    r = setup(member, stdin=member.password + "\n")
    assert r.returncode == 1
    assert steps(r.stdout)["Find conda on the workstation"][0] == "FAILED"
    assert (
        "setup failed at 'Find conda on the workstation': conda was not found on the workstation" in r.stderr
    )
    assert "module load anaconda: failed" in r.stderr and "hint: ask the lab admins" in r.stderr
    assert "--conda-module" in r.stderr


def test_differently_named_module_and_a_kernel_pointing_at_a_deleted_env(
    lab: Lab, member: Member, setup: Setup
) -> None:
    lab.set_conda_module("miniforge3")
    stale = member.home / ".local/share/jupyter/kernels/wa/kernel.json"
    lab.ws_run(
        f"mkdir -p {stale.parent} && printf '%s' "
        f'\'{{"argv": ["{member.home}/.conda/envs/old/bin/python", "-m", "ipykernel_launcher"], '
        f'"display_name": "WA", "language": "python"}}\' > {stale}',
        user=member,
    )
    r = setup(member, stdin=member.password + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    found = steps(r.stdout)
    assert "from module miniforge3 (there is no module anaconda)" in found["Find conda on the workstation"][2]
    assert "no longer exists (a deleted env)" in found["Register the kernel"][2]
    assert json.loads(stale.read_text())["argv"][0] == f"{member.home}/.conda/envs/wa/bin/python"


def test_broken_env_needs_repair_and_consent(
    lab: Lab, member: Member, laptop_env: dict[str, str], setup: Setup
) -> None:
    prefix = member.home / ".conda/envs/wa"
    lab.ws_run(
        f"mkdir -p {prefix}/conda-meta && touch {prefix}/conda-meta/history {prefix}/notes.txt", user=member
    )
    r = setup(member, stdin=member.password + "\n")
    assert r.returncode == 1 and "no working bin/python" in r.stderr and "--repair" in r.stderr
    r = setup(member, "--repair")  # --yes never answers a destructive question
    assert r.returncode == 1 and "not rebuilt (no consent)" in r.stderr
    assert (prefix / "notes.txt").exists()

    import pexpect

    argv = setup_argv(lab, member, "--repair")
    cmd = lab.laptop_cmd(argv)
    child = pexpect.spawn(cmd[0], cmd[1:], env={**os.environ, **laptop_env}, encoding="utf-8", timeout=300)
    child.expect_exact("Delete and rebuild the env wa?")
    child.expect_exact("Go ahead? [y/N]")
    assert str(prefix) in child.before
    child.sendline("yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert (prefix / "bin/python").exists() and not (prefix / "notes.txt").exists()


@pytest.mark.parametrize(
    ("fault", "line"),
    [("http", "CondaHTTPError: HTTP 000 CONNECTION FAILED"), ("quota", "[Errno 122] Disk quota exceeded")],
)
def test_conda_create_failure(lab: Lab, member: Member, setup: Setup, fault: str, line: str) -> None:
    lab.set_conda_fault(fault)
    r = setup(member, stdin=member.password + "\n")
    assert r.returncode == 1
    assert "setup failed at 'Create your conda env': conda create failed:" in r.stderr and line in r.stderr
    assert "hint:" in r.stderr
    assert not (member.home / ".conda/envs/wa").exists()  # the half-made env was this run's: removed
    if fault == "quota":
        assert "removed the half-made" in r.stderr


def test_chatty_login_shell(lab: Lab, member: Member, setup: Setup) -> None:
    for name in (".bash_profile", ".bashrc"):
        (member.home / name).write_text(
            f"echo 'Welcome to the WA lab! WA found no'\necho '__WA_ONBOARD_END_x__ 0'\n[ -f ~/.bashrc ] && [ {name} = .bash_profile ] && . ~/.bashrc\n"
        )
        os.chown(member.home / name, member.uid, member.uid)
    r = setup(member, stdin=member.password + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Welcome" not in r.stdout


def test_login_shell_that_is_not_bash(lab: Lab, setup: Setup) -> None:
    m = lab.new_member(shell="/usr/bin/tcsh")
    try:
        (m.home / ".login").write_text("echo 'tcsh says hello'\n")
        r = setup(m, stdin=m.password + "\n")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "key added" in steps(r.stdout)["Install the key on both hosts"][2]
    finally:
        lab.remove_member(m)


def setup_until_conda_runs(lab: Lab, member: Member, laptop_env: dict[str, str]) -> subprocess.Popen[str]:
    """A first setup on the laptop, returned once the workstation's `conda create` is running."""
    argv = setup_argv(lab, member, "--yes", "--password-stdin")
    first = lab.laptop_popen(argv, env=laptop_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert first.stdin and first.stdout
    first.stdin.write(member.password + "\n")
    first.stdin.close()
    first.stdin = None  # so communicate() does not flush it
    seen = []
    for line in first.stdout:
        seen.append(line)
        if "Collecting package metadata" in line:  # conda create is running
            return first
    raise AssertionError("".join(seen))


def test_ctrl_c_during_create_a_second_setup_and_the_rerun(
    lab: Lab, member: Member, laptop_env: dict[str, str], setup: Setup
) -> None:
    lab.set_conda_fault("slow", slow_seconds=4)
    first = setup_until_conda_runs(lab, member, laptop_env)

    second = setup(member, stdin=member.password + "\n", timeout=60)
    assert second.returncode == 1
    assert "another setup for profile 'default' is running" in second.stderr

    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, out + err
    assert "stopped while creating the env" in out + err
    ps = lab.ws_run(["pgrep", "-u", member.name, "-f", "conda create"])
    assert ps.stdout.strip() == "", "conda still running after Ctrl-C"
    assert not (member.home / ".conda/envs/wa").exists()

    lab.set_conda_fault(None)
    r = setup(member, stdin="")  # the key went in before the interruption
    assert r.returncode == 0, r.stdout + r.stderr
    assert steps(r.stdout)["Create your conda env"][0] == "done"


def test_wifi_gone_during_create_keeps_the_env_conda_finished_and_foreign_processes(
    lab: Lab, member: Member, laptop_env: dict[str, str], setup: Setup
) -> None:
    """Issue 10.1: the laptop's link goes while conda creates the env; the jump host drops the session (as
    its ClientAlive would), so the remote script dies; conda, in its own session, finishes. Meanwhile the
    record's pid is taken by another of the member's processes (pids are reused; homes are shared). The
    rerun must keep that env (same inode), register WA, and leave the other process alone."""
    lab.set_conda_fault("slow", slow_seconds=2)
    first = setup_until_conda_runs(lab, member, laptop_env)
    state = member.home / ".local/state/wa-onboard"
    record = state / "conda-create-wa.pid"
    conda_pid = int(record.read_text().split()[0])
    prefix = member.home / ".conda/envs/wa"
    foreign = subprocess.Popen(lab.host_cmd("ws", ["setsid", "sleep", "600"], user=member))
    lab.link_down("laptop-jump")
    try:
        lab.end_sessions("jump", member)
        deadline = time.monotonic() + 180
        while Path(f"/proc/{conda_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not Path(f"/proc/{conda_pid}").exists(), "conda did not finish"
        assert (prefix / "conda-meta/history").exists(), "conda died with the connection"
        out, err = first.communicate(timeout=180)
        assert first.returncode == 1 and "lost the connection" in out + err, out + err
    finally:
        lab.link_up("laptop-jump")
    try:
        assert (state / "conda-create-wa").exists() and record.exists()  # the script died before its cleanup
        lines = record.read_text().splitlines()
        record.write_text("\n".join([str(foreign.pid), *lines[1:]]) + "\n")  # the pid is someone else's now
        inode = prefix.stat().st_ino

        r = setup(member, stdin="")  # the key went in before the cut
        assert r.returncode == 0, r.stdout + r.stderr
        env_step = steps(r.stdout)["Create your conda env"]
        assert env_step[0] == "done" and "kept the env an interrupted run's conda finished" in env_step[2]
        assert prefix.stat().st_ino == inode
        spec = json.loads((member.home / ".local/share/jupyter/kernels/wa/kernel.json").read_text())
        assert spec["argv"][0] == f"{prefix}/bin/python" and spec["display_name"] == "WA"
        assert foreign.poll() is None, "setup signalled a process it did not start"
        assert not (state / "conda-create-wa").exists() and not record.exists()
    finally:
        foreign.kill()
        foreign.wait()
