"""What the setup tests share: a prompter with fixed answers, a step context on the fake workstation
(tests/unit/fake_workstation.py), and the conda steps run in order."""

from __future__ import annotations

from tests.unit.fake_workstation import Workstation
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion
from wa_onboard.core.results import StepStatus
from wa_onboard.core.setup import conda_scripts as cs, env_scripts as es, steps_conda as sc
from wa_onboard.core.setup.plan import (
    SetupOptions,
    StepContext,
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


def env_status(ws: Workstation) -> es.EnvState:
    """The env as the env step sees it on the fake workstation."""
    loc = fake_conda(ws)
    result = ws.shell().run(es.env_status_script(loc, "wa"))
    assert result.ok, result
    return es.parse_env_status(cs.parse(result.stdout), loc, "wa")
