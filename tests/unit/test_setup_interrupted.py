"""A ``conda create`` that an earlier run started and did not see end (the connection dropped): what
is kept, what is waited for, and what is removed (only ours, only with the member's yes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.fake_workstation import Workstation
from tests.unit.setup_support import Answers, conda_steps, context, env_status, fake_conda, through_conda
from wa_onboard.core.prompts import ConfirmQuestion
from wa_onboard.core.remote import RemoteResult
from wa_onboard.core.results import StepStatus
from wa_onboard.core.setup import conda_scripts as cs, env_scripts as es, steps_conda as sc
from wa_onboard.core.setup.plan import (
    PlanEvent,
    run_step,
)

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
