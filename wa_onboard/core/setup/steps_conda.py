"""Steps 5-9, on the workstation: find conda, create the member's env once (never recreate one that
exists; after an interrupted run, keep what finished and remove what is half-made only with the
member's yes), make sure ipykernel is in it, register the kernel, and check that it works."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from wa_onboard.core.errors import Cancelled, WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion
from wa_onboard.core.remote import quote
from wa_onboard.core.setup import conda_scripts as cs, env_scripts as es, kernel_scripts as ks
from wa_onboard.core.setup.plan import NotNeeded, Step, StepContext, StepError
from wa_onboard.core.setup.shell import CONDA_TIMEOUT, command, run_script, tail, workstation


def found_conda(ctx: StepContext) -> cs.CondaLocation:
    loc = ctx.run.conda
    if loc is None:
        raise StepError("conda has not been found yet", "run setup again from the start")
    return loc


class FindConda(Step):
    id = "conda"
    title = "Find conda on the workstation"

    def run(self, ctx: StepContext) -> str:
        """Looked up on every run (each script is a new login shell that needs it), never "already done"."""
        module = ctx.profile.conda_module
        result, out = run_script(ctx, cs.find_conda_script(module), "looking for conda")
        loc = cs.parse_find_conda(out, module)
        if loc is not None and loc.version:
            ctx.run.conda = loc
            return f"conda {loc.version} from {loc.source}; base {loc.root_prefix}"
        if out.first("found") not in ("", "no"):
            raise StepError(
                f"conda at {out.first('exe')} did not answer `conda info --json`",
                "ask the lab admins to check the conda installation",
                tail(out.blocks.get("info", "") + "\n" + result.stderr),
            )
        raise StepError(
            "conda was not found on the workstation",
            f"ask the lab admins which module provides conda, then run setup with --conda-module NAME "
            f"(tried {ctx.profile.conda_module!r}, the login PATH and the usual install folders)",
            cs.find_conda_report(out),
        )


def env_state(ctx: StepContext) -> es.EnvState:
    loc = found_conda(ctx)
    _, out = run_script(ctx, es.env_status_script(loc, ctx.profile.env), "checking the conda env")
    state = es.parse_env_status(out, loc, ctx.profile.env)
    ctx.run.env = state
    return state


def healthy_env(ctx: StepContext) -> es.EnvState:
    state = ctx.run.env
    if state is None or not state.healthy:
        raise StepError(f"the env {ctx.profile.env} is not usable", "run setup again")
    return state


def _consent_to_delete(
    ctx: StepContext, title: str, why: str, folders: Sequence[str], *, refused: str, fix: str
) -> None:
    """Ask before deleting env folders: a destructive question, which ``--yes`` never answers."""
    where = ", ".join(folders)
    question = ConfirmQuestion(
        title,
        f"{why} Deleting removes {where} and everything in it, then creates the env again with "
        f"python={ctx.profile.python} and ipykernel.",
        default=False,
        destructive=True,
    )
    if not ctx.prompter.confirm(question):
        raise StepError(
            f"{refused} (no consent)", f"answer yes when asked (--yes never answers this), or {fix}", where
        )


class CreateEnv(Step):
    id = "env"
    title = "Create your conda env"

    def done(self, ctx: StepContext) -> str | None:
        state = env_state(ctx)
        if state.healthy and not state.marker:
            return f"env {state.name} at {state.prefix} (python {state.python_version})"
        return None

    def run(self, ctx: StepContext) -> str:
        state = ctx.run.env or env_state(ctx)
        loc = found_conda(ctx)
        notes: list[str] = []
        if state.marker:  # an earlier run of ours was interrupted while creating it
            state = self._settle_unfinished(ctx, state, notes)
        if state.healthy:
            return "; ".join([*notes, f"env {state.name} at {state.prefix} (python {state.python_version})"])
        if state.broken:
            self._rebuild_consent(ctx, state, loc)
            run_script(
                ctx,
                es.remove_env_script(state.prefix, loc.env_prefixes(state.name)),
                "removing the broken env",
            )
            notes.append(f"removed the broken env at {state.prefix}")
        notes.extend(self._check_space(ctx, loc))
        self._create(ctx, loc)
        state = env_state(ctx)
        seconds = ctx.run.conda_seconds
        took = f" in {seconds:.1f} s of conda" if seconds is not None else ""
        return "; ".join(
            [*notes, f"created env {state.name} at {state.prefix} (python {state.python_version}){took}"]
        )

    def verify(self, ctx: StepContext) -> None:
        state = ctx.run.env
        if state is None or not state.healthy:
            raise StepError(
                f"conda reported success but the env {ctx.profile.env} has no working python",
                "run setup again with --repair",
                f"prefix: {getattr(state, 'prefix', '') or '(not listed by conda)'}",
            )

    @staticmethod
    def _settle_unfinished(ctx: StepContext, state: es.EnvState, notes: list[str]) -> es.EnvState:
        """The marker an interrupted run left: its conda may have finished the env (kept), may still run
        (waited for, never signalled), or left a half-made folder (removed only with the member's yes)."""
        decision = es.unfinished_action(state)
        if decision.action == "wait":
            ctx.progress(f"waiting for the conda create an interrupted run started (pid {state.creator_pid})")
            run_script(
                ctx,
                es.wait_for_creator_script(state.name),
                "waiting for the conda create an interrupted run started",
                timeout=CONDA_TIMEOUT,
                stream=True,
            )
            notes.append("waited for the conda create an interrupted run had started")
            state = env_state(ctx)
            decision = es.unfinished_action(state)
            if decision.action == "wait":
                raise StepError(
                    f"the conda create an earlier run started (pid {state.creator_pid}) is still running",
                    "wait for it to finish, then run setup again",
                )
        if decision.action == "remove":
            CreateEnv._half_made_consent(ctx, state, decision.remove)
            _, out = run_script(
                ctx, es.cleanup_unfinished_script(state.name, decision.remove), "removing a half-made env"
            )
            notes += [f"removed the half-made {p} an interrupted run left" for p in out.all("removed")]
        else:
            run_script(ctx, es.clear_marker_script(state.name), "clearing an interrupted run's marker")
            if state.healthy and state.finished:
                notes.append(
                    f"kept the env an interrupted run's conda finished ({state.prefix}); cleared its marker"
                )
        return env_state(ctx)

    @staticmethod
    def _half_made_consent(ctx: StepContext, state: es.EnvState, folders: Sequence[str]) -> None:
        where = ", ".join(folders)
        caution = ""
        if state.creator == "elsewhere":
            caution = (
                f" That run's conda was started on {state.creator_host or 'another machine'}, where it may "
                "still be running: answer no if a setup is running there."
            )
        elif state.creator == "unknown":
            caution = " Whether that run's conda still runs cannot be told: answer no if a setup is running."
        _consent_to_delete(
            ctx,
            f"Remove the half-made env {state.name}?",
            f"An earlier setup was interrupted while conda was creating {where}, and it did not "
            f"finish.{caution}",
            folders,
            refused=f"the env {state.name} at {where} is half-made (an interrupted setup); not removed",
            fix=f"remove it yourself on the workstation: rm -rf {' '.join(quote(f) for f in folders)}; "
            "then run setup again",
        )

    @staticmethod
    def _rebuild_consent(ctx: StepContext, state: es.EnvState, loc: cs.CondaLocation) -> None:
        why = f"the env {state.name} at {state.prefix} is broken: it has no working bin/python"
        if state.prefix not in loc.env_prefixes(state.name):
            raise StepError(
                why + " (it is outside conda's envs folders, so setup does not delete it)",
                es.outside_env_hint(state.prefix, command(ctx, "setup --env NAME")),
                state.prefix,
            )
        if not ctx.options.repair:
            raise StepError(
                why + " (an interrupted conda create, or files deleted)",
                "run setup again with --repair to rebuild it (it asks first; whatever was installed "
                "in it is removed)",
                state.prefix,
            )
        _consent_to_delete(
            ctx,
            f"Delete and rebuild the env {state.name}?",
            f"{why}.",
            [state.prefix],
            refused=why + "; not rebuilt",
            fix=f"remove it yourself: conda env remove -n {state.name}",
        )

    @staticmethod
    def _check_space(ctx: StepContext, loc: cs.CondaLocation) -> list[str]:
        _, out = run_script(ctx, es.free_space_script(loc), "checking free space")
        free = out.first("free-kb")
        if free.isdigit() and int(free) < es.LOW_SPACE_KB:
            warning = (
                f"warning: only {int(free) / 1024 / 1024:.1f} GB free in {out.first('dir')}; "
                "conda may run out of space"
            )
            ctx.output(warning)
            return [warning]
        return []

    @staticmethod
    def _create(ctx: StepContext, loc: cs.CondaLocation) -> None:
        profile: Profile = ctx.profile
        ctx.progress(f"conda create -n {profile.env} python={profile.python} ipykernel")
        script = es.create_env_script(loc, profile.env, profile.python)
        try:
            result, out = run_script(ctx, script, "creating the env", timeout=CONDA_TIMEOUT, stream=True)
        except (KeyboardInterrupt, Cancelled):
            # stop the remote conda and remove only what this run was creating; then stop
            with contextlib.suppress(WaError, KeyboardInterrupt, OSError):
                workstation(ctx).run(es.cleanup_unfinished_script(profile.env), timeout=60)
            raise Cancelled("stopped while creating the env; run setup again to finish") from None
        if result.ok:
            ctx.run.conda_seconds = es.conda_seconds(out)
            ctx.run.env_created = True
            return
        failure = cs.conda_failure(out.other, python=profile.python)
        removed = out.all("removed")
        cleanup = f" (removed the half-made {', '.join(removed)})" if removed else ""
        raise StepError(
            f"conda create failed: {failure.line}{cleanup}", failure.hint, tail("\n".join(out.other))
        )


class EnsureIpykernel(Step):
    id = "ipykernel"
    title = "Make sure ipykernel is in the env"

    def done(self, ctx: StepContext) -> str | NotNeeded | None:
        state = healthy_env(ctx)
        if not state.ipykernel:
            return None
        if ctx.run.env_created:
            return NotNeeded(f"ipykernel {state.ipykernel} came with the env this run created")
        return f"ipykernel {state.ipykernel}"

    def run(self, ctx: StepContext) -> str:
        loc, prefix = found_conda(ctx), healthy_env(ctx).prefix
        ctx.progress(f"conda install -p {prefix} ipykernel")
        result, out = run_script(
            ctx,
            cs.install_ipykernel_script(loc, prefix),
            "installing ipykernel",
            timeout=CONDA_TIMEOUT,
            stream=True,
        )
        if not result.ok:
            failure = cs.conda_failure(out.other)
            raise StepError(
                f"conda install ipykernel failed: {failure.line}", failure.hint, tail(result.stdout)
            )
        return f"installed ipykernel {env_state(ctx).ipykernel}"

    def verify(self, ctx: StepContext) -> None:
        if not healthy_env(ctx).ipykernel:
            raise StepError(
                f"ipykernel still does not import in the env {ctx.profile.env}",
                "try by hand on the workstation: "
                f"conda install -p {quote(healthy_env(ctx).prefix)} ipykernel",
            )


def kernel_state(ctx: StepContext) -> ks.KernelState:
    state = healthy_env(ctx)
    _, out = run_script(
        ctx, ks.kernel_status_script(state.python, ctx.profile.kernel_name), "checking the kernel"
    )
    found = ks.parse_kernel_status(out)
    ctx.run.kernel = found
    return found


class RegisterKernel(Step):
    id = "kernel"
    title = "Register the kernel"

    def done(self, ctx: StepContext) -> str | None:
        kernel = kernel_state(ctx)
        if kernel.problem(ctx.profile.display_name):
            return None
        return f"kernel {ctx.profile.kernel_name} ({ctx.profile.display_name!r}) at {kernel.path}"

    def run(self, ctx: StepContext) -> str:
        before = ctx.run.kernel or kernel_state(ctx)
        profile: Profile = ctx.profile
        env = healthy_env(ctx)
        if before.exists and not before.error and before.argv0_exists and not before.same_python:
            self._replace_consent(ctx, before, env)
        script = ks.register_kernel_script(env.python, profile.kernel_name, profile.display_name)
        result, _ = run_script(ctx, script, "registering the kernel")
        if not result.ok:
            raise StepError(
                "python -m ipykernel install failed",
                "check your home directory's quota and permissions on the workstation",
                tail(result.stdout + result.stderr),
            )
        fixed = f" (was: {before.problem(profile.display_name)})" if before.exists else ""
        return f"registered {profile.kernel_name} ({profile.display_name!r}) -> {env.python}{fixed}"

    def verify(self, ctx: StepContext) -> None:
        problem = kernel_state(ctx).problem(ctx.profile.display_name)
        if problem:
            raise StepError(
                f"after registering: {problem}", "run setup again; if it repeats, run wa-onboard doctor"
            )

    @staticmethod
    def _replace_consent(ctx: StepContext, before: ks.KernelState, env: es.EnvState) -> None:
        """A kernel of that name that starts another, existing python is someone's (the member's own
        kernel for another env): ``ipykernel install`` would delete its folder, so ask first."""
        name = ctx.profile.kernel_name
        question = ConfirmQuestion(
            f"Replace the kernel {name}?",
            f"A kernel named {name} is registered at {before.path}; it starts {before.argv0}, not the env "
            f"{env.name}'s python ({env.python}). Replacing it deletes that kernelspec folder and makes "
            f"{name} start {env.python}; the env {before.argv0} belongs to is not touched.",
            default=False,
        )
        if not ctx.prompter.confirm(question):
            raise StepError(
                f"a kernel named {name} already exists and starts {before.argv0}; not replaced (no consent)",
                "answer yes when asked (or run with --yes), or keep it and register the env under another "
                f"name: {command(ctx, 'setup --kernel-name NAME')}",
                before.path,
            )


class VerifyKernel(Step):
    id = "verify"
    title = "Check the kernel works"

    def run(self, ctx: StepContext) -> str:
        """A check, made on every run (so never "already done")."""
        kernel = kernel_state(ctx)
        problem = kernel.problem(ctx.profile.display_name)
        if problem:
            raise StepError(
                f"the kernel is not usable: {problem}",
                "run setup again (it re-registers the kernel); with a broken env use --repair",
                kernel.path,
            )
        return f"{kernel.path}: argv[0] {kernel.argv0} imports ipykernel"
