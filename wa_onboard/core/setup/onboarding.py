"""The onboarding plan: the eleven steps ``setup --no-tui`` and the TUI wizard both run.

Each step checks first (``done``), so a rerun skips what is finished and resumes where the last run
stopped. Remote work goes through the engine's RemoteShell as the bash scripts in ``conda_scripts``;
what the steps learn on the way (the engine, where conda is, the env's python) sits in
``ctx.state`` for the later steps.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wa_onboard.core import paths
from wa_onboard.core.errors import Cancelled, WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import ConfirmQuestion, NoPrompter, Prompter
from wa_onboard.core.remote import RemoteResult, RemoteShell, quote
from wa_onboard.core.results import StepResult
from wa_onboard.core.setup import conda_scripts as cs
from wa_onboard.core.setup import progress as setup_progress
from wa_onboard.core.setup.plan import NotNeeded, Step, StepContext, StepError, run_plan
from wa_onboard.core.tunnel import daemon, sshfiles, supervisor
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure

EngineFactory = Callable[[Profile, str], Engine]

#: how long conda may take to create or change an env (solving and downloading can be slow)
CONDA_TIMEOUT = 3600.0
SCRIPT_TIMEOUT = 120.0
#: failures where a key-only login fails only because a password (or a host-key answer) is wanted
_NEEDS_INTERACTIVE = {
    Failure.PASSWORD_NEEDED,
    Failure.JUMP_AUTH,
    Failure.WS_AUTH,
    Failure.HOST_KEY_REJECTED,
}


@dataclass(frozen=True)
class SetupOptions:
    """What the front end decided for this run (beyond the profile)."""

    profile_name: str = DEFAULT_PROFILE
    no_browser: bool = False
    engine_factory: EngineFactory | None = None
    """Builds an engine for the profile; the default picks OpenSSH or paramiko by ``profile.engine``."""
    open_url: Callable[[str], bool] | None = None
    """Opens the browser; the default is ``webbrowser.open`` (which honours $BROWSER)."""
    start_tunnel: Callable[[Profile, str], str] | None = None
    """Starts the background tunnel and returns a summary; the default is the supervisor's."""
    tunnel_up: Callable[[Profile, str], str | None] | None = None
    """A summary when the tunnel already runs (the step is then done); the default asks the supervisor."""


# --------------------------------------------------------------------------------------------- helpers


def default_engine(profile: Profile, profile_name: str) -> Engine:
    """The engine the profile names, as the tunnel supervisor makes it."""
    engine: Engine = supervisor.make_engine(profile, profile_name)
    return engine


def _options(ctx: StepContext) -> SetupOptions:
    found = ctx.state.get("options")
    return found if isinstance(found, SetupOptions) else SetupOptions()


def _new_engine(ctx: StepContext) -> Engine:
    options = _options(ctx)
    factory = options.engine_factory or default_engine
    return factory(ctx.profile, options.profile_name)


def _engine(ctx: StepContext) -> Engine:
    engine = ctx.state.get("engine")
    if engine is None:
        raise StepError("not logged in", "run setup again from the start")
    return engine  # type: ignore[no-any-return]


def workstation(ctx: StepContext) -> RemoteShell:
    """The workstation's shell: one a test put in ``ctx.state``, or the engine's."""
    shell: RemoteShell | None = ctx.state.get("workstation")
    if shell is None:
        shell = _engine(ctx).workstation()
        ctx.state["workstation"] = shell
    return shell


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


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
            _tail(result.stdout + result.stderr),
        )
    if not result.reached_script:
        raise StepError(
            f"lost the connection to the workstation while {doing}",
            "check your network (wa-onboard doctor), then run setup again: finished steps are skipped",
            _tail(result.stderr),
        )
    return result, cs.parse(result.stdout)


def _wa_command(ctx: StepContext, args: str) -> str:
    """``wa-onboard [--profile NAME] ARGS`` for this run's profile, for hints."""
    name = _options(ctx).profile_name
    flag = "" if name == DEFAULT_PROFILE else f" --profile {name}"
    return f"wa-onboard{flag} {args}"


# --------------------------------------------------------------------------------------------- the lock


class SetupBusy(WaError):
    """Another setup for the same profile is running."""


def lock_path(profile_name: str) -> Path:
    return paths.state_dir() / f"setup-{profile_name}.lock"


@contextlib.contextmanager
def setup_lock(profile_name: str) -> Iterator[None]:
    """One setup per profile at a time: a second one would race the first on the key and the env."""
    path = lock_path(profile_name)
    handle: IO[str] = paths.open_private(path)
    try:
        if not _try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SetupBusy(
                f"another setup for profile {profile_name!r} is running (pid {holder})",
                "wait for it to finish, then run setup again (finished steps are skipped)",
            )
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _try_lock(handle: IO[str]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------------------------- 1-4: ssh


class ValidateProfile(Step):
    id = "profile"
    title = "Check the profile"

    def run(self, ctx: StepContext) -> str:
        """A check, made on every run (so never "already done")."""
        profile: Profile = ctx.profile
        profile.require_complete()
        Profile.make(profile.to_dict())  # every field through its validator again
        return (
            f"{profile.user}@{profile.host} via {profile.jump}; env {profile.env}, "
            f"kernel {profile.kernel_name} ({profile.display_name!r})"
        )


class MakeKey(Step):
    id = "key"
    title = "Make this laptop's SSH key"

    def done(self, ctx: StepContext) -> str | None:
        key = paths.key_file()
        if key.exists() and key.with_name(key.name + ".pub").exists():
            self._write_config(ctx)
            return f"key {key}"
        return None

    def run(self, ctx: StepContext) -> str:
        key, created = sshfiles.ensure_key()
        self._write_config(ctx)
        if sshfiles.add_include(ctx.prompter):
            extra = f"; ~/.ssh/config includes {sshfiles.config_path()}"
        else:
            extra = "; ~/.ssh/config left as it was"
        return f"{'made' if created else 'kept'} {key} (ed25519){extra}"

    def verify(self, ctx: StepContext) -> None:
        key = paths.key_file()
        if not key.exists():
            raise StepError(
                f"the key {key} is missing after ssh-keygen", f"check that {key.parent} is writable"
            )
        if os.name == "posix" and key.stat().st_mode & 0o077:
            raise StepError(f"the key {key} is readable by others", f"chmod 600 {key}")

    @staticmethod
    def _write_config(ctx: StepContext) -> None:
        if _options(ctx).engine_factory is None:  # the real engines read our ssh_config
            sshfiles.write_config(ctx.profile, _options(ctx).profile_name)


def _login(ctx: StepContext, prompter: Prompter, *, interactive: bool) -> None:
    """Log in with a new engine; it carries the rest of the run (``close`` ends it)."""
    engine = _new_engine(ctx)
    try:
        engine.login(prompter, interactive=interactive)
    except BaseException:
        engine.close()  # closes only what this engine started: a live background tunnel stays
        raise
    ctx.state["engine"] = engine


class Login(Step):
    id = "login"
    title = "Log in to the jump host and the workstation"

    def done(self, ctx: StepContext) -> str | None:
        if "engine" in ctx.state:
            return "connected"
        try:
            _login(ctx, NoPrompter(), interactive=False)
        except ConnectError as exc:
            if exc.failure in _NEEDS_INTERACTIVE:
                return None
            raise StepError(exc.message, exc.hint, exc.detail) from None
        if not _engine(ctx).key_logs_in():
            # logged in through a running tunnel's connection: fine for the steps, but the key
            # itself is not proved, so the next step installs it
            return "connected through the running tunnel's ssh connection"
        ctx.state["key_login"] = True
        return "the key logs in to both hosts"

    def run(self, ctx: StepContext) -> str:
        try:
            _login(ctx, ctx.prompter, interactive=True)
        except ConnectError as exc:
            raise StepError(exc.message, exc.hint, exc.detail) from None
        return f"logged in as {ctx.profile.user} on {ctx.profile.jump} and {ctx.profile.host}"


class InstallKey(Step):
    id = "key-install"
    title = "Install the key on both hosts"

    def done(self, ctx: StepContext) -> str | None:
        return "key login already works on both hosts" if ctx.state.get("key_login") else None

    def run(self, ctx: StepContext) -> str:
        public = sshfiles.public_key_text()
        engine = _engine(ctx)
        said = []
        for hop, shell in (("jump host", engine.jump()), ("workstation", engine.workstation())):
            result, out = run_script(
                ctx, cs.install_key_script(public), f"installing the key on the {hop}", shell=shell
            )
            if not result.ok or not out.has("key"):
                raise StepError(
                    f"could not add the key to ~/.ssh/authorized_keys on the {hop}",
                    "check your home directory's quota and permissions there, then run setup again",
                    _tail(result.stdout + result.stderr),
                )
            said.append(f"{out.first('key')} on the {hop}")
        return "key " + ", ".join(said)

    def verify(self, ctx: StepContext) -> None:
        """Drop the password session and log in again with the key alone, on both hops: the proof.
        The new connection carries the rest of the run."""
        close(ctx)
        try:
            _login(ctx, NoPrompter(), interactive=False)
            if not _engine(ctx).key_logs_in():
                raise ConnectError(Failure.PASSWORD_NEEDED, "the host did not accept the key by itself")
        except ConnectError as exc:
            raise StepError(
                f"the key was installed but a key-only login still fails: {exc.message}",
                "the server may not accept keys for your account (ask the lab admins), or your home "
                "directory or ~/.ssh is writable by others there (chmod go-w ~ ~/.ssh)",
                exc.detail,
            ) from None
        ctx.state["key_login"] = True


# --------------------------------------------------------------------------------------------- 5-9: conda


def _conda(ctx: StepContext) -> cs.CondaLocation:
    loc = ctx.state.get("conda")
    if not isinstance(loc, cs.CondaLocation):
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
            ctx.state["conda"] = loc
            return f"conda {loc.version} from {loc.source}; base {loc.root_prefix}"
        if out.first("found") not in ("", "no"):
            raise StepError(
                f"conda at {out.first('exe')} did not answer `conda info --json`",
                "ask the lab admins to check the conda installation",
                _tail(out.blocks.get("info", "") + "\n" + result.stderr),
            )
        raise StepError(
            "conda was not found on the workstation",
            f"ask the lab admins which module provides conda, then run setup with --conda-module NAME "
            f"(tried {ctx.profile.conda_module!r}, the login PATH and the usual install folders)",
            cs.find_conda_report(out),
        )


def env_state(ctx: StepContext) -> cs.EnvState:
    loc = _conda(ctx)
    _, out = run_script(ctx, cs.env_status_script(loc, ctx.profile.env), "checking the conda env")
    state = cs.parse_env_status(out, loc, ctx.profile.env)
    ctx.state["env"] = state
    return state


def _healthy_env(ctx: StepContext) -> cs.EnvState:
    state = ctx.state.get("env")
    if not isinstance(state, cs.EnvState) or not state.healthy:
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
        state: cs.EnvState = ctx.state["env"]
        loc = _conda(ctx)
        notes: list[str] = []
        if state.marker:  # an earlier run of ours was interrupted while creating it
            state = self._settle_unfinished(ctx, state, notes)
        if state.healthy:
            return "; ".join([*notes, f"env {state.name} at {state.prefix} (python {state.python_version})"])
        if state.broken:
            self._rebuild_consent(ctx, state, loc)
            run_script(
                ctx,
                cs.remove_env_script(state.prefix, loc.env_prefixes(state.name)),
                "removing the broken env",
            )
            notes.append(f"removed the broken env at {state.prefix}")
        notes.extend(self._check_space(ctx, loc))
        self._create(ctx, loc)
        state = env_state(ctx)
        seconds = ctx.state.get("conda_seconds")
        took = f" in {seconds:.1f} s of conda" if seconds is not None else ""
        return "; ".join(
            [*notes, f"created env {state.name} at {state.prefix} (python {state.python_version}){took}"]
        )

    def verify(self, ctx: StepContext) -> None:
        state = ctx.state.get("env")
        if not isinstance(state, cs.EnvState) or not state.healthy:
            raise StepError(
                f"conda reported success but the env {ctx.profile.env} has no working python",
                "run setup again with --repair",
                f"prefix: {getattr(state, 'prefix', '') or '(not listed by conda)'}",
            )

    @staticmethod
    def _settle_unfinished(ctx: StepContext, state: cs.EnvState, notes: list[str]) -> cs.EnvState:
        """The marker an interrupted run left: its conda may have finished the env (kept), may still run
        (waited for, never signalled), or left a half-made folder (removed only with the member's yes)."""
        decision = cs.unfinished_action(state)
        if decision.action == "wait":
            ctx.progress(f"waiting for the conda create an interrupted run started (pid {state.creator_pid})")
            run_script(
                ctx,
                cs.wait_for_creator_script(state.name),
                "waiting for the conda create an interrupted run started",
                timeout=CONDA_TIMEOUT,
                stream=True,
            )
            notes.append("waited for the conda create an interrupted run had started")
            state = env_state(ctx)
            decision = cs.unfinished_action(state)
            if decision.action == "wait":
                raise StepError(
                    f"the conda create an earlier run started (pid {state.creator_pid}) is still running",
                    "wait for it to finish, then run setup again",
                )
        if decision.action == "remove":
            CreateEnv._half_made_consent(ctx, state, decision.remove)
            _, out = run_script(
                ctx, cs.cleanup_unfinished_script(state.name, decision.remove), "removing a half-made env"
            )
            notes += [f"removed the half-made {p} an interrupted run left" for p in out.all("removed")]
        else:
            run_script(ctx, cs.clear_marker_script(state.name), "clearing an interrupted run's marker")
            if state.healthy and state.finished:
                notes.append(
                    f"kept the env an interrupted run's conda finished ({state.prefix}); cleared its marker"
                )
        return env_state(ctx)

    @staticmethod
    def _half_made_consent(ctx: StepContext, state: cs.EnvState, folders: Sequence[str]) -> None:
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
    def _rebuild_consent(ctx: StepContext, state: cs.EnvState, loc: cs.CondaLocation) -> None:
        why = f"the env {state.name} at {state.prefix} is broken: it has no working bin/python"
        if state.prefix not in loc.env_prefixes(state.name):
            raise StepError(
                why + " (it is outside conda's envs folders, so setup does not delete it)",
                cs.outside_env_hint(state.prefix, _wa_command(ctx, "setup --env NAME")),
                state.prefix,
            )
        if not ctx.repair:
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
        _, out = run_script(ctx, cs.free_space_script(loc), "checking free space")
        free = out.first("free-kb")
        if free.isdigit() and int(free) < cs.LOW_SPACE_KB:
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
        script = cs.create_env_script(loc, profile.env, profile.python)
        try:
            result, out = run_script(ctx, script, "creating the env", timeout=CONDA_TIMEOUT, stream=True)
        except (KeyboardInterrupt, Cancelled):
            # stop the remote conda and remove only what this run was creating; then stop
            with contextlib.suppress(WaError, KeyboardInterrupt, OSError):
                workstation(ctx).run(cs.cleanup_unfinished_script(profile.env), timeout=60)
            raise Cancelled("stopped while creating the env; run setup again to finish") from None
        if result.ok:
            ctx.state["conda_seconds"] = cs.conda_seconds(out)
            ctx.state["env_created"] = True
            return
        failure = cs.conda_failure(out.other, python=profile.python)
        removed = out.all("removed")
        cleanup = f" (removed the half-made {', '.join(removed)})" if removed else ""
        raise StepError(
            f"conda create failed: {failure.line}{cleanup}", failure.hint, _tail("\n".join(out.other))
        )


class EnsureIpykernel(Step):
    id = "ipykernel"
    title = "Make sure ipykernel is in the env"

    def done(self, ctx: StepContext) -> str | NotNeeded | None:
        state = _healthy_env(ctx)
        if not state.ipykernel:
            return None
        if ctx.state.get("env_created"):
            return NotNeeded(f"ipykernel {state.ipykernel} came with the env this run created")
        return f"ipykernel {state.ipykernel}"

    def run(self, ctx: StepContext) -> str:
        loc, prefix = _conda(ctx), _healthy_env(ctx).prefix
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
                f"conda install ipykernel failed: {failure.line}", failure.hint, _tail(result.stdout)
            )
        return f"installed ipykernel {env_state(ctx).ipykernel}"

    def verify(self, ctx: StepContext) -> None:
        if not _healthy_env(ctx).ipykernel:
            raise StepError(
                f"ipykernel still does not import in the env {ctx.profile.env}",
                "try by hand on the workstation: "
                f"conda install -p {quote(_healthy_env(ctx).prefix)} ipykernel",
            )


def kernel_state(ctx: StepContext) -> cs.KernelState:
    state = _healthy_env(ctx)
    _, out = run_script(
        ctx, cs.kernel_status_script(state.python, ctx.profile.kernel_name), "checking the kernel"
    )
    found = cs.parse_kernel_status(out)
    ctx.state["kernel"] = found
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
        before: cs.KernelState = ctx.state["kernel"]
        profile: Profile = ctx.profile
        env = _healthy_env(ctx)
        if before.exists and not before.error and before.argv0_exists and not before.same_python:
            self._replace_consent(ctx, before, env)
        script = cs.register_kernel_script(env.python, profile.kernel_name, profile.display_name)
        result, _ = run_script(ctx, script, "registering the kernel")
        if not result.ok:
            raise StepError(
                "python -m ipykernel install failed",
                "check your home directory's quota and permissions on the workstation",
                _tail(result.stdout + result.stderr),
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
    def _replace_consent(ctx: StepContext, before: cs.KernelState, env: cs.EnvState) -> None:
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
                f"name: {_wa_command(ctx, 'setup --kernel-name NAME')}",
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


# --------------------------------------------------------------------------------------------- 10-11


def default_tunnel_up(profile: Profile, profile_name: str) -> str | None:
    """A summary when this profile's background tunnel is up and the hub answers through it."""
    status = daemon.verify_status(profile_name, profile)
    return f"tunnel up at {status.url} (pid {status.pid})" if status.connected else None


def default_start_tunnel(profile: Profile, profile_name: str) -> str:
    """Start the background supervisor exactly as ``connect --detach`` does."""
    summary: str = daemon.start_detached(profile, profile_name)
    return summary


class StartTunnel(Step):
    id = "tunnel"
    title = "Start the tunnel and check the hub"

    def done(self, ctx: StepContext) -> str | None:
        check = _options(ctx).tunnel_up or default_tunnel_up
        summary = check(ctx.profile, _options(ctx).profile_name)
        return self._how_to(ctx, summary) if summary else None

    def run(self, ctx: StepContext) -> str:
        options = _options(ctx)
        close(ctx)  # the background tunnel makes its own (key-only) connection
        start = options.start_tunnel or default_start_tunnel
        try:
            summary = start(ctx.profile, options.profile_name)
        except ConnectError as exc:
            raise StepError(exc.message, exc.hint, exc.detail) from None
        return self._how_to(ctx, summary)

    @staticmethod
    def _how_to(ctx: StepContext, summary: str) -> str:
        url = re.search(r"http://\S+", summary)
        if url:
            ctx.state["url"] = url.group(0)
        return f"{summary}; check it: {_wa_command(ctx, 'status')}, stop it: {_wa_command(ctx, 'disconnect')}"


class OpenBrowser(Step):
    id = "browser"
    title = "Open the hub in the browser"

    def done(self, ctx: StepContext) -> NotNeeded | None:
        url = ctx.state.setdefault("url", ctx.profile.url)
        if _options(ctx).no_browser:
            return NotNeeded(f"not opening a browser (--no-browser); open {url}")
        return None

    def run(self, ctx: StepContext) -> str:
        url = ctx.state["url"]
        opener = _options(ctx).open_url or _webbrowser_open
        opened = opener(url)
        ctx.state["browser_opened"] = opened
        if opened:
            return f"opened {url}; log in with your campus password"
        return f"no browser could be opened: open {url} yourself"


def _webbrowser_open(url: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


# --------------------------------------------------------------------------------------------- the plan


def build_plan(profile: Profile | None = None) -> list[Step]:
    """The eleven steps, in order."""
    return [
        ValidateProfile(),
        MakeKey(),
        Login(),
        InstallKey(),
        FindConda(),
        CreateEnv(),
        EnsureIpykernel(),
        RegisterKernel(),
        VerifyKernel(),
        StartTunnel(),
        OpenBrowser(),
    ]


def close(ctx: StepContext) -> None:
    """End the connection the steps opened (the background tunnel has its own)."""
    engine = ctx.state.pop("engine", None)
    ctx.state.pop("workstation", None)
    if engine is not None:
        engine.close()


def run_setup(
    ctx: StepContext, options: SetupOptions, steps: Sequence[Step] | None = None
) -> list[StepResult]:
    """The whole run for a front end: the per-profile lock, the plan, and closing what it opened."""
    ctx.state["options"] = options
    with setup_lock(options.profile_name):
        try:
            plan = list(steps) if steps is not None else build_plan(ctx.profile)
            return setup_progress.tracked(options.profile_name, len(plan), lambda: run_plan(plan, ctx))
        finally:
            close(ctx)
