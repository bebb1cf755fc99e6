"""The onboarding steps against a workstation on this machine: a login bash with its own HOME and a fake
conda (tests/unit/fake_workstation.py). The scripts, their parsing, and each step's done/run/verify."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.fake_workstation import FakeEngine, Workstation, make_workstation, module_function
from wa_onboard.core.errors import Cancelled
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, NoPrompter, SecretQuestion
from wa_onboard.core.remote import RemoteResult
from wa_onboard.core.results import StepStatus
from wa_onboard.core.setup import conda_scripts as cs
from wa_onboard.core.setup import env_scripts as es
from wa_onboard.core.setup import kernel_scripts as ks
from wa_onboard.core.setup import run as setup_run
from wa_onboard.core.setup import steps_conda as sc
from wa_onboard.core.setup.plan import (
    PlanEvent,
    SetupOptions,
    SetupOutcome,
    StepContext,
    StepError,
    StepOutput,
    plan_succeeded,
    run_step,
)


class Answers:
    """A prompter with fixed answers that records what it was asked."""

    def __init__(self, password: str | None = "pw", confirm: bool = False) -> None:
        self.password, self.answer = password, confirm
        self.asked: list[object] = []

    def secret(self, question: SecretQuestion) -> str | None:
        self.asked.append(question)
        return self.password

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        self.asked.append(question)
        return self.answer


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    return make_workstation(tmp_path)


def context(
    ws: Workstation, profile: Profile | None = None, repair: bool = False, **kw: object
) -> StepContext:
    options = SetupOptions(repair=repair)
    ctx = StepContext(profile=profile or Profile(user="bbadger"), options=options, **kw)  # type: ignore[arg-type]
    ctx.run.workstation = ws.shell()
    return ctx


def fake_conda(ws: Workstation) -> cs.CondaLocation:
    """Where FindConda finds the fake workstation's conda."""
    return cs.CondaLocation("path", str(ws.conda_bin / "conda"), envs_dirs=(str(ws.home / ".conda/envs"),))


def through_conda(ctx: StepContext) -> None:
    result = run_step(sc.FindConda(), ctx)
    assert result.status is StepStatus.DONE, result


# ------------------------------------------------------------------------------------------ parsing


def test_parse_lines_and_blocks_ignore_other_output() -> None:
    out = cs.parse(
        'noise\nWA found module\nWA-BEGIN info\n{\n "a": 1\n}\nWA-END info\nWA module-tried x\nWA module-tried y\n'
    )
    assert out.first("found") == "module" and out.all("module-tried") == ["x", "y"]
    assert json.loads(out.blocks["info"]) == {"a": 1} and out.other == ("noise",)


@pytest.mark.parametrize(
    ("lines", "kind", "in_hint"),
    [
        (
            ["Collecting", "PackagesNotFoundError: The following packages are not available"],
            "PackagesNotFoundError",
            "--python",
        ),
        (["CondaHTTPError: HTTP 000 CONNECTION FAILED for url <https://x>"], "CondaHTTPError", "network"),
        (["OSError: [Errno 122] Disk quota exceeded: '/h/.conda/envs/wa/lib'"], "quota", "quota"),
        (["something odd", "last words"], "unknown", "conda's output"),
    ],
)
def test_conda_failure_picks_condas_own_error_line(lines: list[str], kind: str, in_hint: str) -> None:
    failure = cs.conda_failure(lines, python="3.11")
    assert failure.kind == kind and in_hint in failure.hint
    assert failure.line in [line.strip() for line in lines]


def test_member_values_reach_scripts_quoted() -> None:
    loc = cs.CondaLocation("module", "/opt/c/bin/conda", module="ana conda", envs_dirs=("/h/.conda/envs",))
    text = es.create_env_script(loc, "wa", "3.11")
    assert "module load 'ana conda'" in text and "-n wa python=3.11 ipykernel" in text
    text = ks.register_kernel_script("/h/.conda/envs/wa/bin/python", "WA", 'Robot\'s "WA" $(x)')
    assert "--display-name 'Robot'\"'\"'s \"WA\" $(x)'" in text
    with pytest.raises(ValueError):
        es.remove_env_script("/", ["/h/.conda/envs/wa"])


# ------------------------------------------------------------------------------------------ finding conda


def test_conda_on_the_login_path(ws: Workstation) -> None:
    ctx = context(ws)
    through_conda(ctx)
    loc = ctx.run.conda
    assert loc is not None
    assert (loc.how, loc.version, loc.root_prefix) == ("path", "24.9.2", str(ws.conda_root))
    assert loc.envs_dirs[0] == str(ws.home / ".conda" / "envs")


def test_conda_from_the_profiles_module_even_with_a_chatty_login(ws: Workstation) -> None:
    ws.write_profile(
        "echo 'Welcome to CAE!'; echo 'WA found path'", module_function({"anaconda": ws.conda_bin})
    )
    ctx = context(ws)
    result = run_step(sc.FindConda(), ctx)
    assert result.summary == f"conda 24.9.2 from module anaconda; base {ws.conda_root}"


def test_a_differently_named_module_is_found_and_named(ws: Workstation) -> None:
    ws.write_profile(
        module_function({"miniforge3/24.1": ws.conda_bin}, ["gcc/12", "python/3.11", "miniforge3/24.1"])
    )
    ctx = context(ws)
    result = run_step(sc.FindConda(), ctx)
    assert "module miniforge3/24.1 (there is no module anaconda)" in result.summary


def test_common_install_folder(ws: Workstation) -> None:
    (ws.home / "miniconda3").symlink_to(ws.conda_root)
    ws.write_profile()
    ctx = context(ws)
    through_conda(ctx)
    assert ctx.run.conda is not None and ctx.run.conda.how == "install"


def test_no_conda_anywhere_says_what_was_tried(ws: Workstation) -> None:
    ws.write_profile(module_function({}, ["gcc/12"]))
    result = run_step(sc.FindConda(), context(ws, Profile(user="bbadger", conda_module="anaconda3/2024")))
    assert result.status is StepStatus.FAILED and result.summary == "conda was not found on the workstation"
    assert "--conda-module" in result.hint
    assert "module load anaconda3/2024: failed" in result.detail
    assert f"install folders tried: {ws.home}/anaconda3" in result.detail


# ------------------------------------------------------------------------------------------ the env


def conda_steps(ctx: StepContext, summaries: dict[str, str] | None = None) -> list[StepStatus]:
    steps = [sc.FindConda(), sc.CreateEnv(), sc.EnsureIpykernel(), sc.RegisterKernel(), sc.VerifyKernel()]
    statuses = []
    for step in steps:
        result = run_step(step, ctx)
        statuses.append(result.status)
        if summaries is not None:
            summaries[step.id] = result.summary
        if result.status is StepStatus.FAILED:
            raise AssertionError(result)
    return statuses


def test_fresh_env_kernel_and_a_rerun_that_touches_nothing(ws: Workstation) -> None:
    events: list[PlanEvent] = []
    ctx = context(ws, emit=events.append)
    S, D = StepStatus.SKIPPED, StepStatus.DONE
    said: dict[str, str] = {}
    assert conda_steps(ctx, said) == [D, D, S, D, D]  # ipykernel came with the env
    assert said["ipykernel"] == "ipykernel 6.29.5 came with the env this run created"
    prefix = ws.env_prefix("wa")
    spec = json.loads((ws.home / ".local/share/jupyter/kernels/wa/kernel.json").read_text())
    assert spec["argv"][0] == str(prefix / "bin" / "python") and spec["display_name"] == "WA"
    assert any(isinstance(e, StepOutput) and "Collecting package metadata" in e.line for e in events)
    assert not (ws.home / ".local/state/wa-onboard/conda-create-wa").exists()
    assert re.search(r"created env wa at .* \(python 3\.\d+\.\d+\) in [\d.]+ s of conda$", said["env"])
    creates = [c for c in ws.calls() if c.startswith("create")]
    assert creates == ["create -y -n wa python=3.11 ipykernel"]
    before = os.stat(prefix / "bin" / "python", follow_symlinks=False).st_mtime_ns

    again = context(ws)
    assert conda_steps(again) == [D, S, S, S, D]  # finding conda and checking the kernel are checks
    assert [c for c in ws.calls() if c.startswith("create")] == creates  # never recreated
    assert os.stat(prefix / "bin" / "python", follow_symlinks=False).st_mtime_ns == before


def test_missing_ipykernel_is_installed(ws: Workstation) -> None:
    ctx = context(ws)
    conda_steps(ctx)
    site = next(ws.env_prefix("wa").glob("lib/python3*/site-packages/ipykernel"))
    shutil.rmtree(site)
    statuses = conda_steps(context(ws))
    assert statuses[2] is StepStatus.DONE and f"install -y -p {ws.env_prefix('wa')} ipykernel" in ws.calls()


def test_kernel_pointing_at_a_deleted_env_is_fixed(ws: Workstation) -> None:
    conda_steps(context(ws))
    spec_path = ws.home / ".local/share/jupyter/kernels/wa/kernel.json"
    spec = json.loads(spec_path.read_text())
    spec["argv"][0] = str(ws.home / ".conda/envs/old/bin/python")
    spec_path.write_text(json.dumps(spec))
    ctx = context(ws)
    through_conda(ctx)
    assert run_step(sc.CreateEnv(), ctx).status is StepStatus.SKIPPED
    run_step(sc.EnsureIpykernel(), ctx)
    result = run_step(sc.RegisterKernel(), ctx)
    assert result.status is StepStatus.DONE and "no longer exists" in result.summary
    assert json.loads(spec_path.read_text())["argv"][0] == str(ws.env_prefix("wa") / "bin" / "python")
    assert run_step(sc.VerifyKernel(), ctx).status is StepStatus.DONE


def broken_env(ws: Workstation) -> Path:
    conda_steps(context(ws))
    prefix = ws.env_prefix("wa")
    (prefix / "bin" / "python").unlink()
    (prefix / "my-notes.txt").write_text("keep me unless they agree")
    return prefix


def test_broken_env_is_explained_and_never_rebuilt_without_repair(ws: Workstation) -> None:
    prefix = broken_env(ws)
    ctx = context(ws, prompter=Answers(confirm=True))
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.FAILED and "no working bin/python" in result.summary
    assert "--repair" in result.hint and (prefix / "my-notes.txt").exists()
    assert ctx.prompter.asked == []  # type: ignore[attr-defined]


def test_repair_asks_a_destructive_question_and_a_no_keeps_the_env(ws: Workstation) -> None:
    prefix = broken_env(ws)
    prompter = Answers(confirm=False)
    ctx = context(ws, prompter=prompter, repair=True)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.FAILED and "no consent" in result.summary
    (question,) = prompter.asked
    assert isinstance(question, ConfirmQuestion) and question.destructive and str(prefix) in question.detail
    assert (prefix / "my-notes.txt").exists()


def test_repair_with_consent_rebuilds(ws: Workstation) -> None:
    prefix = broken_env(ws)
    ctx = context(ws, prompter=Answers(confirm=True), repair=True)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.DONE and f"removed the broken env at {prefix}" in result.summary
    assert (prefix / "bin" / "python").exists() and not (prefix / "my-notes.txt").exists()


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        (
            "packages",
            "PackagesNotFoundError: The following packages are not available from current channels:",
        ),
        ("http", "CondaHTTPError: HTTP 000 CONNECTION FAILED"),
        ("quota", "OSError: [Errno 122] Disk quota exceeded"),
    ],
)
def test_conda_create_failure_shows_condas_line_and_removes_only_its_own_half_env(
    ws: Workstation, fault: str, line: str
) -> None:
    ws.set_fault(fault)
    other = ws.env_prefix("other")
    other.mkdir(parents=True)
    ctx = context(ws)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.FAILED and line in result.summary
    assert result.hint and line in result.detail
    assert not ws.env_prefix("wa").exists() and other.exists()
    if fault == "quota":
        assert "removed the half-made" in result.summary


def test_a_failed_create_never_removes_an_env_it_did_not_make(ws: Workstation) -> None:
    """A folder that was there before the run (and not ours) is left alone even when conda fails."""
    loc = fake_conda(ws)
    existing = ws.env_prefix("wa")
    existing.mkdir(parents=True)
    (existing / "precious").write_text("x")
    ws.set_fault("packages")
    result = ws.shell().run(es.create_env_script(loc, "wa", "3.11"))
    assert result.exit_code == 1 and (existing / "precious").exists()


def test_cancel_during_create_stops_cleanly_and_a_rerun_finishes(ws: Workstation) -> None:
    ws.set_fault("slow")
    ctx = context(ws)

    def emit(event: PlanEvent) -> None:
        if isinstance(event, StepOutput) and event.line.startswith("extracting 2"):
            ctx.cancel.set()

    ctx.emit = emit
    through_conda(ctx)
    with pytest.raises(Cancelled):
        run_step(sc.CreateEnv(), ctx)
    assert not ws.env_prefix("wa").exists()
    assert not (ws.home / ".local/state/wa-onboard/conda-create-wa").exists()
    ws.set_fault("")
    assert conda_steps(context(ws))[1] is StepStatus.DONE


# ------------------------------------------------------------------------------------------ an interrupted create
# The connection dropped during `conda create`: the remote script died before removing its marker and
# record, while conda (in its own session) may have finished, may still run, or may have died half-way.


def state_dir(ws: Workstation) -> Path:
    return ws.home / ".local/state/wa-onboard"


def leave_marker(
    ws: Workstation, record: list[str] | None = None, prefixes: list[Path] | None = None
) -> None:
    """What a create script that died leaves: the marker (folders it may create) and the process record."""
    state_dir(ws).mkdir(parents=True, exist_ok=True)
    listed = prefixes if prefixes is not None else [ws.env_prefix("wa")]
    (state_dir(ws) / "conda-create-wa").write_text("".join(f"{p}\n" for p in listed))
    if record is not None:
        (state_dir(ws) / "conda-create-wa.pid").write_text("".join(f"{line}\n" for line in record))


def proc_record(
    pid: int, *, host: str | None = None, start_shift: int = 0, argv: list[str] | None = None
) -> list[str]:
    """A record as create_env_script writes it, for pid (optionally with a wrong host or start time)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    start = int(stat.rsplit(")", 1)[1].split()[19]) + start_shift
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    conda_argv = (
        argv if argv is not None else ["/x/bin/conda", "create", "-y", "-n", "wa", "python=3.11", "ipykernel"]
    )
    return [str(pid), host or os.uname().nodename, boot, str(start), *conda_argv]


@pytest.fixture
def foreign_sleep() -> Iterator[subprocess.Popen[bytes]]:
    """Another process of the member's (a training run, say) in its own session, as a reused pid would be."""
    proc = subprocess.Popen(["setsid", "sleep", "300"])
    for _ in range(100):
        if Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep"):
            break
        time.sleep(0.02)
    yield proc
    proc.kill()
    proc.wait()


def finished_env(ws: Workstation) -> tuple[Path, int]:
    conda_steps(context(ws))
    prefix = ws.env_prefix("wa")
    (prefix / "my-notes.txt").write_text("the member's own file")
    return prefix, prefix.stat().st_ino


def env_status(ws: Workstation) -> es.EnvState:
    loc = fake_conda(ws)
    result = ws.shell().run(es.env_status_script(loc, "wa"))
    assert result.ok, result
    return es.parse_env_status(cs.parse(result.stdout), loc, "wa")


@pytest.mark.parametrize(
    ("how", "creator"),
    [
        ("reused pid, other start time", "gone"),
        ("reused pid, same start time, other command", "gone"),
        ("another campus machine", "elsewhere"),
        ("a record from before records had start times", "unknown"),
    ],
)
def test_a_finished_env_is_kept_and_a_foreign_process_is_never_signalled(
    ws: Workstation, foreign_sleep: subprocess.Popen[bytes], how: str, creator: str
) -> None:
    """The reviewer's reproduction: a healthy env plus a user file, a stale marker and a record whose pid is
    now an unrelated `setsid sleep`. Before the fix setup killed the sleep and recreated the env."""
    prefix, inode = finished_env(ws)
    pid = foreign_sleep.pid
    record = {
        "reused pid, other start time": proc_record(pid, start_shift=-7),
        "reused pid, same start time, other command": proc_record(pid),
        "another campus machine": proc_record(pid, host="carproject-07"),
        "a record from before records had start times": [str(pid)],
    }[how]
    leave_marker(ws, record)
    assert env_status(ws).creator == creator
    prompter = Answers(confirm=True)
    ctx = context(ws, prompter=prompter)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.DONE, result
    assert "kept the env an interrupted run's conda finished" in result.summary
    assert prompter.asked == []  # nothing to remove, nothing to ask
    assert foreign_sleep.poll() is None, "a process setup did not start was signalled"
    assert prefix.stat().st_ino == inode and (prefix / "my-notes.txt").exists()
    assert not any(state_dir(ws).iterdir())  # marker, record and log gone
    assert [c for c in ws.calls() if c.startswith("create")] == ["create -y -n wa python=3.11 ipykernel"]


def test_cleanup_signals_only_a_process_that_matches_the_whole_record(
    ws: Workstation, foreign_sleep: subprocess.Popen[bytes]
) -> None:
    """The Ctrl-C cleanup (and the consented removal) stop the recorded conda only: a record whose host,
    start time and pid match a process whose command line is not that conda leaves it alone."""
    half = ws.env_prefix("wa")
    (half / "conda-meta").mkdir(parents=True)
    leave_marker(ws, proc_record(foreign_sleep.pid))
    out = cs.parse(ws.shell().run(es.cleanup_unfinished_script("wa")).stdout)
    assert out.first("not-stopped") == "gone" and not out.has("stopped")
    assert foreign_sleep.poll() is None and not half.exists()
    # the same record with the sleep's own command line is a match: that one is stopped
    leave_marker(ws, proc_record(foreign_sleep.pid, argv=["sleep", "300"]))
    assert env_status(ws).creator == "running"
    out = cs.parse(ws.shell().run(es.cleanup_unfinished_script("wa")).stdout)
    assert out.first("stopped") == str(foreign_sleep.pid)
    assert foreign_sleep.wait(timeout=10) is not None


def start_create(ws: Workstation) -> tuple[threading.Thread, list[RemoteResult], list[str]]:
    """Run the create script in a thread; return once conda runs and its record is written."""
    results: list[RemoteResult] = []
    script = es.create_env_script(fake_conda(ws), "wa", "3.11")
    runner = threading.Thread(target=lambda: results.append(ws.shell().run(script)))
    runner.start()
    record_file = state_dir(ws) / "conda-create-wa.pid"
    for _ in range(200):
        if record_file.exists() and len(record_file.read_text().splitlines()) > 4:
            break
        time.sleep(0.05)
    return runner, results, record_file.read_text().splitlines()


def test_the_create_script_records_host_start_time_and_command_line(ws: Workstation) -> None:
    ws.set_fault("slow:6")
    runner, results, lines = start_create(ws)
    pid = int(lines[0])
    assert lines == proc_record(
        pid, argv=[str(ws.conda_bin / "conda"), "create", "-y", "-n", "wa", "python=3.11", "ipykernel"]
    )
    assert env_status(ws).creator == "running"
    runner.join(timeout=60)
    (result,) = results
    assert result.ok and "extracting 5" in result.stdout  # conda's output, followed from its log
    assert not any(state_dir(ws).iterdir())


def test_a_conda_still_running_is_waited_for_then_its_env_kept(ws: Workstation) -> None:
    """The script died (its shell killed, as when the session went) while conda runs on: the next run
    waits for that conda instead of killing it, and keeps what it made."""
    ws.set_fault("slow:12")
    first, _, lines = start_create(ws)
    conda_pid = int(lines[0])
    script_shell = int(re.findall(r"^PPid:\s+(\d+)", Path(f"/proc/{conda_pid}/status").read_text(), re.M)[0])
    os.kill(script_shell, signal.SIGKILL)  # the script dies; conda, in its own session, does not
    assert (state_dir(ws) / "conda-create-wa").exists()

    events: list[PlanEvent] = []
    ctx = context(ws, prompter=Answers(confirm=True), emit=events.append)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.DONE, result
    assert "waited for the conda create" in result.summary and "kept the env" in result.summary
    assert (ws.env_prefix("wa") / "bin/python").exists()
    assert [c for c in ws.calls() if c.startswith("create")] == ["create -y -n wa python=3.11 ipykernel"]
    assert ctx.prompter.asked == []  # type: ignore[attr-defined]
    first.join(timeout=30)


@pytest.mark.parametrize("answer", [False, True])
def test_a_half_made_env_is_removed_only_with_the_members_yes(ws: Workstation, answer: bool) -> None:
    half = ws.env_prefix("wa")
    (half / "conda-meta").mkdir(parents=True)
    (half / "partial").write_text("x")
    leave_marker(ws, ["4194000", "carproject-07", "boot", "123", "/x/conda", "create"])
    prompter = Answers(confirm=answer)
    ctx = context(ws, prompter=prompter)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    (question,) = prompter.asked
    assert isinstance(question, ConfirmQuestion) and question.destructive  # so --yes never answers it
    assert str(half) in question.detail and "carproject-07" in question.detail
    if answer:
        assert result.status is StepStatus.DONE and f"removed the half-made {half}" in result.summary
        assert (half / "bin/python").exists() and not (half / "partial").exists()
    else:
        assert result.status is StepStatus.FAILED and "not removed (no consent)" in result.summary
        assert "--yes never answers this" in result.hint and f"rm -rf {half}" in result.hint
        assert (half / "partial").exists() and (state_dir(ws) / "conda-create-wa").exists()


def test_no_prompter_means_no_removal(ws: Workstation) -> None:
    """Non-interactive (the NoPrompter a daily or scripted run gets): a clear failure, nothing removed."""
    half = ws.env_prefix("wa")
    (half / "conda-meta").mkdir(parents=True)
    leave_marker(ws)
    ctx = context(ws)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.FAILED and "not removed (no consent)" in result.summary
    assert half.exists()


_FINISHED = {"prefix": "/e/wa", "python_version": "3.11.9", "ipykernel": "6.29.5", "finished": True}


@pytest.mark.parametrize(
    ("facts", "action", "remove"),
    [
        pytest.param(
            {"creator": "running", **_FINISHED, "leftovers": ("/e/wa",)}, "wait", (), id="ours runs"
        ),
        pytest.param({**_FINISHED, "leftovers": ("/e/wa",)}, "clear", (), id="finished: kept"),
        pytest.param(
            {**_FINISHED, "creator": "elsewhere", "leftovers": ("/e/wa",)}, "clear", (), id="kept too"
        ),
        pytest.param(
            {**_FINISHED, "finished": False, "leftovers": ("/e/wa",)}, "remove", ("/e/wa",), id="no history"
        ),
        pytest.param(
            {**_FINISHED, "ipykernel": "", "leftovers": ("/e/wa",)}, "remove", ("/e/wa",), id="no ipykernel"
        ),
        pytest.param({"prefix": "/e/wa", "leftovers": ("/e/wa",)}, "remove", ("/e/wa",), id="no python"),
        pytest.param({"leftovers": ()}, "clear", (), id="nothing made"),
        pytest.param(
            {"creator": "elsewhere", "leftovers": ("/e/wa",)}, "remove", ("/e/wa",), id="half, elsewhere"
        ),
        pytest.param({"leftovers": ("/not/in/marker",)}, "clear", (), id="not ours"),
    ],
)
def test_unfinished_decision(facts: dict[str, object], action: str, remove: tuple[str, ...]) -> None:
    state = es.EnvState("wa", marker=True, unfinished=("/e/wa", "/other/wa"), **facts)  # type: ignore[arg-type]
    assert es.unfinished_action(state) == es.Unfinished(action, remove)


# ------------------------------------------------------------------------------------------ env outside the envs dirs


def moved_env(ws: Workstation) -> Path:
    """A working env conda lists from ~/.conda/environments.txt, outside every envs dir."""
    conda_steps(context(ws))
    scratch = ws.home / "scratch/bob/wa"
    scratch.parent.mkdir(parents=True)
    ws.env_prefix("wa").rename(scratch)
    (ws.home / ".conda/environments.txt").write_text(f"{scratch}\n")
    return scratch


def test_a_listed_env_outside_the_envs_dirs_is_probed_where_it_is(ws: Workstation) -> None:
    scratch = moved_env(ws)
    state = env_status(ws)
    assert (state.prefix, state.healthy, state.python) == (str(scratch), True, f"{scratch}/bin/python")
    site = next(scratch.glob("lib/python3*/site-packages/ipykernel"))
    shutil.rmtree(site)
    ctx = context(ws)
    said: dict[str, str] = {}
    statuses = conda_steps(ctx, said)
    assert statuses[1] is StepStatus.SKIPPED and str(scratch) in said["env"]
    assert statuses[2] is StepStatus.DONE and f"install -y -p {scratch} ipykernel" in ws.calls()
    spec = json.loads((ws.home / ".local/share/jupyter/kernels/wa/kernel.json").read_text())
    assert spec["argv"][0] == f"{scratch}/bin/python"


def test_repair_of_a_broken_env_outside_the_envs_dirs_fails_cleanly(ws: Workstation) -> None:
    scratch = moved_env(ws)
    (scratch / "bin/python").unlink()
    prompter = Answers(confirm=True)
    ctx = context(ws, prompter=prompter, repair=True)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)  # was: ValueError from remove_env_script
    assert result.status is StepStatus.FAILED and "outside conda's envs folders" in result.summary
    assert f"conda env remove -p {scratch}" in result.hint and "--env NAME" in result.hint
    assert prompter.asked == [] and scratch.exists()


# ------------------------------------------------------------------------------------------ a kernel of the same name


def foreign_kernel(ws: Workstation) -> tuple[Path, Path]:
    """The member's own 'wa' kernel for another env's python, which exists."""
    other = ws.home / "other-env/bin/python"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    spec_path = ws.home / ".local/share/jupyter/kernels/wa/kernel.json"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(
        json.dumps({"argv": [str(other), "-m", "ipykernel_launcher"], "display_name": "Mine"})
    )
    return spec_path, other


@pytest.mark.parametrize("prompter", [NoPrompter(), Answers(confirm=False)], ids=["no prompter", "no"])
def test_a_kernel_of_the_same_name_for_another_python_is_not_replaced_without_a_yes(
    ws: Workstation, prompter: object
) -> None:
    spec_path, other = foreign_kernel(ws)
    before = spec_path.read_text()
    ctx = context(ws, prompter=prompter)
    through_conda(ctx)
    assert run_step(sc.CreateEnv(), ctx).status is StepStatus.DONE
    run_step(sc.EnsureIpykernel(), ctx)
    result = run_step(sc.RegisterKernel(), ctx)
    assert result.status is StepStatus.FAILED and "not replaced (no consent)" in result.summary
    assert str(other) in result.summary and "--kernel-name NAME" in result.hint
    assert spec_path.read_text() == before


def test_a_kernel_of_the_same_name_is_replaced_after_a_yes(ws: Workstation) -> None:
    spec_path, other = foreign_kernel(ws)
    prompter = Answers(confirm=True)
    ctx = context(ws, prompter=prompter)
    through_conda(ctx)
    run_step(sc.CreateEnv(), ctx)
    run_step(sc.EnsureIpykernel(), ctx)
    assert run_step(sc.RegisterKernel(), ctx).status is StepStatus.DONE
    (question,) = prompter.asked
    assert isinstance(question, ConfirmQuestion) and str(other) in question.detail
    assert not question.destructive  # a kernelspec is a small file: --yes may answer
    assert json.loads(spec_path.read_text())["argv"][0] == str(ws.env_prefix("wa") / "bin/python")


def test_low_space_is_a_warning(ws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(es, "LOW_SPACE_KB", 1 << 60)
    ctx = context(ws)
    through_conda(ctx)
    result = run_step(sc.CreateEnv(), ctx)
    assert result.status is StepStatus.DONE and "warning: only" in result.summary


# ------------------------------------------------------------------------------------------ key install


def test_key_install_appends_once_with_private_modes(ws: Workstation) -> None:
    auth = ws.home / ".ssh" / "authorized_keys"
    auth.parent.mkdir(mode=0o755)
    auth.write_text("ssh-rsa AAAA other@laptop")  # no newline at the end
    key = "ssh-ed25519 AAAAC3Nza wa-onboard@laptop"
    outs = [cs.parse(ws.shell().run(ks.install_key_script(key)).stdout).first("key") for _ in range(2)]
    assert outs == ["added", "present"]
    assert auth.read_text().splitlines() == ["ssh-rsa AAAA other@laptop", key]
    assert auth.stat().st_mode & 0o777 == 0o600 and auth.parent.stat().st_mode & 0o777 == 0o700


def test_key_install_works_from_a_non_bash_login_shell(ws: Workstation) -> None:
    from wa_onboard.core.remote import SubprocessShell

    shell = SubprocessShell(["env", f"HOME={ws.home}", "dash", "-c", 'eval "$1"', "ssh"])
    assert shell.run(ks.install_key_script("ssh-ed25519 AAAA k")).ok
    assert (ws.home / ".ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA k\n"


# ------------------------------------------------------------------------------------------ the whole plan


def plan_options(ws: Workstation, opened: list[str]) -> SetupOptions:
    return SetupOptions(
        engine_factory=lambda profile, name: FakeEngine(ws),  # type: ignore[arg-type,return-value]
        open_url=lambda url: opened.append(url) is None,
        start_tunnel=lambda profile, name: "tunnel up at http://localhost:8001/jupyter/",
        tunnel_up=lambda profile, name: None,
    )


def run_plan(options: SetupOptions, prompter: object) -> SetupOutcome:
    """The whole run as a front end starts it."""
    return setup_run.setup(Profile(user="bbadger"), options, prompter)  # type: ignore[arg-type]


def test_whole_plan_then_a_rerun_without_password(ws: Workstation) -> None:
    opened: list[str] = []
    prompter = Answers(password="pw")
    options = plan_options(ws, opened)
    steps = setup_run.build_plan()
    outcome = run_plan(options, prompter)
    results = list(outcome.results)
    assert outcome.succeeded and plan_succeeded(results, steps), results
    assert [r.step_id for r in results] == [s.id for s in steps] and len(steps) == 11
    assert opened == ["http://localhost:8001/jupyter/"] and outcome.browser_opened  # the tunnel's port
    assert outcome.url == "http://localhost:8001/jupyter/"
    assert "wa-onboard status" in results[9].summary
    assert sum(isinstance(q, SecretQuestion) for q in prompter.asked) == 2  # both hops, one password
    assert len((ws.home / ".ssh/authorized_keys").read_text().splitlines()) == 1

    outcome = run_plan(plan_options(ws, opened), NoPrompter())
    assert outcome.succeeded
    statuses = {r.step_id: r.status for r in outcome.results}
    checks = ("profile", "conda", "verify", "tunnel", "browser")
    assert all(statuses[s] is StepStatus.SKIPPED for s in statuses if s not in checks)
    assert len((ws.home / ".ssh/authorized_keys").read_text().splitlines()) == 1


def test_a_new_key_is_installed_even_when_a_running_tunnel_logs_in(ws: Workstation) -> None:
    """A login through the running tunnel's connection is no proof the key works: the new key is
    installed, else setup says done and the next tunnel of its own cannot log in."""
    options = dataclasses.replace(
        plan_options(ws, []),
        engine_factory=lambda profile, name: FakeEngine(ws, tunnel_running=True),  # type: ignore[arg-type,return-value]
    )
    results = {r.step_id: r for r in run_plan(options, Answers(password="pw")).results}
    assert results["key-install"].status is StepStatus.DONE, results["key-install"]
    assert FakeEngine(ws)._key_installed()


def test_already_done_only_for_what_an_earlier_run_did(ws: Workstation) -> None:
    """A first run said "already done" for the profile check, conda, the ipykernel that came with the env
    it had just made and a --no-browser skip. Now it says so only of work found done before the run."""
    tunnels: list[str] = []
    options = dataclasses.replace(
        plan_options(ws, []),
        no_browser=True,
        start_tunnel=lambda profile, name: (
            tunnels.append(name) or "tunnel up at http://localhost:8000/jupyter/"
        ),
        tunnel_up=lambda profile, name: (
            "tunnel up at http://localhost:8000/jupyter/ (pid 7)" if tunnels else None
        ),
    )
    first = run_plan(options, Answers(password="pw")).results
    assert len(first) == 11 and [r.summary for r in first if "already done" in r.summary] == []
    by_id = {r.step_id: r for r in first}
    assert by_id["browser"].summary.startswith("not opening a browser (--no-browser)")
    assert by_id["tunnel"].status is StepStatus.DONE and tunnels == ["default"]

    again = {r.step_id: r for r in run_plan(options, NoPrompter()).results}
    said = {step for step, r in again.items() if r.summary.startswith("already done: ")}
    assert said == {"key", "login", "key-install", "env", "ipykernel", "kernel", "tunnel"}
    assert tunnels == ["default"]  # not started twice


def test_wrong_password_fails_at_login_with_the_engines_hint(ws: Workstation) -> None:
    outcome = run_plan(plan_options(ws, []), Answers(password="nope"))
    assert outcome.failed is outcome.results[-1] and not outcome.succeeded
    assert outcome.results[-1].step_id == "login" and outcome.results[-1].hint == "check your password"


def test_yes_answers_host_keys_and_safe_questions_but_never_a_destructive_one() -> None:
    """``--yes`` in the app: the run answers before the dialogs, and says each answer in the log."""
    member = Answers(confirm=False)
    said: list[str] = []
    yes = setup_run.AssumeYes(member, said.append)
    assert yes.confirm(HostKeyQuestion("wa-jump", "ED25519", "SHA256:abc"))
    assert yes.confirm(ConfirmQuestion("Add an Include line?"))
    assert not yes.confirm(ConfirmQuestion("Delete the env?", destructive=True))  # the member's no
    assert yes.secret(SecretQuestion("Password:", "me@jump")) == "pw"  # secrets still go to the member
    assert [type(q).__name__ for q in member.asked] == ["ConfirmQuestion", "SecretQuestion"]
    assert said == [
        "trusted the host key of wa-jump (--yes): ED25519 SHA256:abc",
        "Add an Include line? yes (--yes)",
    ]

    events: list[PlanEvent] = []
    ctx = setup_run.new_context(Profile(), SetupOptions(assume_yes=True), Answers(), events.append)
    assert isinstance(ctx.prompter, setup_run.AssumeYes) and ctx.prompter.say == ctx.output
    assert not isinstance(
        setup_run.new_context(Profile(), SetupOptions(), Answers(), events.append).prompter,
        setup_run.AssumeYes,
    )


def test_a_second_setup_for_the_same_profile_is_refused() -> None:
    with setup_run.setup_lock("default"):
        with (
            pytest.raises(setup_run.SetupBusy, match="another setup for profile 'default' is running"),
            setup_run.setup_lock("default"),
        ):
            pass
        with setup_run.setup_lock("other"):
            pass
    with setup_run.setup_lock("default"):
        pass


def test_lock_is_held_across_threads_of_one_process_too() -> None:
    got: list[str] = []
    with setup_run.setup_lock("default"):

        def second() -> None:
            try:
                with setup_run.setup_lock("default"):
                    got.append("ran")
            except setup_run.SetupBusy:
                got.append("busy")

        t = threading.Thread(target=second)
        t.start()
        t.join()
    assert got == ["busy"]


def test_step_error_carries_hint_and_detail() -> None:
    err = StepError("m", "h", "d")
    assert (err.message, err.hint, err.detail) == ("m", "h", "d")
