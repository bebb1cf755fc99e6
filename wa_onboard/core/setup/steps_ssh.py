"""Steps 1-4, the laptop and the login: check the profile, make the key, log in to both hosts, and
install the key there (proved by a key-only login, which then carries the rest of the run)."""

from __future__ import annotations

import os

from wa_onboard.core import paths, tunnel
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import NoPrompter, Prompter
from wa_onboard.core.setup.kernel_scripts import install_key_script
from wa_onboard.core.setup.plan import Step, StepContext, StepError
from wa_onboard.core.setup.shell import close, engine, new_engine, run_script, tail
from wa_onboard.core.tunnel import ConnectError, Failure

#: failures where a key-only login fails only because a password (or a host-key answer) is wanted
_NEEDS_INTERACTIVE = {
    Failure.PASSWORD_NEEDED,
    Failure.JUMP_AUTH,
    Failure.WS_AUTH,
    Failure.HOST_KEY_REJECTED,
}


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
        key, created = tunnel.ensure_key()
        self._write_config(ctx)
        if tunnel.add_include(ctx.prompter):
            extra = f"; ~/.ssh/config includes {tunnel.config_path()}"
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
        if ctx.options.engine_factory is None:  # the real engines read our ssh_config
            tunnel.write_config(ctx.profile, ctx.options.profile_name)


def _login(ctx: StepContext, prompter: Prompter, *, interactive: bool) -> None:
    """Log in with a new engine; it carries the rest of the run (``close`` ends it)."""
    made = new_engine(ctx)
    try:
        made.login(prompter, interactive=interactive)
    except BaseException:
        made.close()  # closes only what this engine started: a live background tunnel stays
        raise
    ctx.run.engine = made


class Login(Step):
    id = "login"
    title = "Log in to the jump host and the workstation"

    def done(self, ctx: StepContext) -> str | None:
        if ctx.run.engine is not None:
            return "connected"
        try:
            _login(ctx, NoPrompter(), interactive=False)
        except ConnectError as exc:
            if exc.failure in _NEEDS_INTERACTIVE:
                return None
            raise StepError(exc.message, exc.hint, exc.detail) from None
        if not engine(ctx).key_logs_in():
            # logged in through a running tunnel's connection: fine for the steps, but the key
            # itself is not proved, so the next step installs it
            return "connected through the running tunnel's ssh connection"
        ctx.run.key_login = True
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
        return "key login already works on both hosts" if ctx.run.key_login else None

    def run(self, ctx: StepContext) -> str:
        public = tunnel.public_key_text()
        logged_in = engine(ctx)
        said = []
        for hop, remote in (("jump host", logged_in.jump()), ("workstation", logged_in.workstation())):
            result, out = run_script(
                ctx, install_key_script(public), f"installing the key on the {hop}", shell=remote
            )
            if not result.ok or not out.has("key"):
                raise StepError(
                    f"could not add the key to ~/.ssh/authorized_keys on the {hop}",
                    "check your home directory's quota and permissions there, then run setup again",
                    tail(result.stdout + result.stderr),
                )
            said.append(f"{out.first('key')} on the {hop}")
        return "key " + ", ".join(said)

    def verify(self, ctx: StepContext) -> None:
        """Drop the password session and log in again with the key alone, on both hops: the proof.
        The new connection carries the rest of the run."""
        close(ctx)
        try:
            _login(ctx, NoPrompter(), interactive=False)
            if not engine(ctx).key_logs_in():
                raise ConnectError(Failure.PASSWORD_NEEDED, "the host did not accept the key by itself")
        except ConnectError as exc:
            raise StepError(
                f"the key was installed but a key-only login still fails: {exc.message}",
                "the server may not accept keys for your account (ask the lab admins), or your home "
                "directory or ~/.ssh is writable by others there (chmod go-w ~ ~/.ssh)",
                exc.detail,
            ) from None
        ctx.run.key_login = True
