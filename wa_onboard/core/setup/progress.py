"""Whether a profile's setup ever finished, and where it stopped if not.

A first run that fails (or is killed) leaves a complete profile behind, so the profile alone
cannot tell a finished setup from a broken one: the next ``wa-onboard`` would open the dashboard
on a tunnel that was never set up. One small file per profile in the state folder says it. No file
means a profile set up before this record existed: it counts as finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from wa_onboard.core import paths
from wa_onboard.core.results import StepResult, StepStatus


@dataclass(frozen=True)
class SetupProgress:
    """The last setup run of a profile, as far as it got."""

    finished: bool
    step: str = ""
    """The step it stopped at (its id), when it did not finish."""
    message: str = ""
    """That step's failure, in one line ("" when the run was interrupted)."""


def progress_path(profile_name: str) -> Path:
    return paths.state_dir() / f"setup-{profile_name}.json"


def load(profile_name: str) -> SetupProgress | None:
    """The record, or None when there is none (or it cannot be read: then nothing is claimed)."""
    try:
        data = json.loads(progress_path(profile_name).read_text(encoding="utf-8"))
        return SetupProgress(
            finished=bool(data["finished"]),
            step=str(data.get("step", "")),
            message=str(data.get("message", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unfinished(profile_name: str) -> SetupProgress | None:
    """The record of a setup that started and did not finish, else None."""
    progress = load(profile_name)
    return progress if progress is not None and not progress.finished else None


def record(profile_name: str, progress: SetupProgress) -> None:
    paths.write_private_file(progress_path(profile_name), json.dumps(asdict(progress)) + "\n")


def outcome(results: Sequence[StepResult], total: int) -> SetupProgress:
    """What a run's results say: finished only when every step ran and none failed."""
    failed = next((r for r in results if r.status is StepStatus.FAILED), None)
    if failed is not None:
        return SetupProgress(False, failed.step_id, failed.summary)
    if len(results) < total:
        return SetupProgress(False, "", "not every step ran")
    return SetupProgress(True)


def tracked(profile_name: str, total: int, run: Callable[[], list[StepResult]]) -> list[StepResult]:
    """Run a setup plan, recording "unfinished" before it starts and its outcome after; a run
    that is killed or interrupted leaves "unfinished" behind, which is the truth."""
    record(profile_name, SetupProgress(False, "", "setup was interrupted"))
    results = run()
    record(profile_name, outcome(results, total))
    return results
