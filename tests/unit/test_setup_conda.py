"""The conda steps against a workstation on this machine (tests/unit/fake_workstation.py): the scripts
and their parsing, finding conda, the env, ipykernel and the kernel, each step's done/run/verify."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.unit.fake_workstation import Workstation, module_function
from tests.unit.setup_support import Answers, conda_steps, context, env_status, fake_conda, through_conda
from wa_onboard.core.errors import Cancelled
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, NoPrompter
from wa_onboard.core.results import StepStatus
from wa_onboard.core.setup import (
    conda_scripts as cs,
    env_scripts as es,
    kernel_scripts as ks,
    steps_conda as sc,
)
from wa_onboard.core.setup.plan import (
    PlanEvent,
    StepOutput,
    run_step,
)

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
