"""The run's connection to the workstation, as the steps use it: the engine the login step made, the
workstation's shell, and ``run_script``, which turns a lost connection or a timeout into a StepError
that says what was going on. ``close`` ends the connection (the background tunnel has its own).
"""

from __future__ import annotations

from collections.abc import Callable

from wa_onboard.core import tunnel
from wa_onboard.core.profile import Profile, command_line
from wa_onboard.core.remote import RemoteResult, RemoteShell
from wa_onboard.core.setup import conda_scripts as cs
from wa_onboard.core.setup.plan import StepContext, StepError
from wa_onboard.core.tunnel import Engine

#: how long conda may take to create or change an env (solving and downloading can be slow)
CONDA_TIMEOUT = 3600.0
SCRIPT_TIMEOUT = 120.0


def default_engine(profile: Profile, profile_name: str) -> Engine:
    """The engine the profile names, as the tunnel supervisor makes it."""
    engine: Engine = tunnel.make_engine(profile, profile_name)
    return engine


def new_engine(ctx: StepContext) -> Engine:
    factory = ctx.options.engine_factory or default_engine
    return factory(ctx.profile, ctx.options.profile_name)


def engine(ctx: StepContext) -> Engine:
    """The engine the login step made."""
    if ctx.run.engine is None:
        raise StepError("not logged in", "run setup again from the start")
    return ctx.run.engine


def workstation(ctx: StepContext) -> RemoteShell:
    """The workstation's shell: one a test put in ``ctx.run``, or the engine's."""
    if ctx.run.workstation is None:
        ctx.run.workstation = engine(ctx).workstation()
    return ctx.run.workstation


def close(ctx: StepContext) -> None:
    """End the connection the steps opened (the background tunnel has its own)."""
    found, ctx.run.engine, ctx.run.workstation = ctx.run.engine, None, None
    if found is not None:
        found.close()


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def command(ctx: StepContext, args: str) -> str:
    """``wa-onboard [--profile NAME] ARGS`` for this run's profile, for hints."""
    return command_line(ctx.options.profile_name, args)


def run_script(
    ctx: StepContext,
    script: str,
    doing: str,
    *,
    shell: RemoteShell | None = None,
    timeout: float = SCRIPT_TIMEOUT,
    stream: bool = False,
) -> tuple[RemoteResult, cs.ScriptOutput]:
    """Run one script; a lost connection or a timeout becomes a StepError that says what was going on.

    With ``stream``, the script's own lines (conda's output) go out as StepOutput/StepProgress, and a
    cancel request (the TUI's Cancel button) stops the run between two lines.
    """
    on_line: Callable[[str], None] | None = None
    if stream:

        def on_line(line: str) -> None:
            if line and not line.startswith("WA"):
                ctx.output(line)
                ctx.progress(line.strip()[:100])
            ctx.check_cancelled()

    ctx.check_cancelled()
    result = (shell or workstation(ctx)).run(script, timeout=timeout, on_line=on_line)
    if result.exit_code == -1:
        raise StepError(
            f"the workstation did not finish {doing} within {int(timeout)} s",
            "check the workstation's load and your network, then run setup again",
            tail(result.stdout + result.stderr),
        )
    if not result.reached_script:
        raise StepError(
            f"lost the connection to the workstation while {doing}",
            "check your network (wa-onboard doctor), then run setup again: finished steps are skipped",
            tail(result.stderr),
        )
    return result, cs.parse(result.stdout)
