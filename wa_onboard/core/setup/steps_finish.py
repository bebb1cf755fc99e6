"""Steps 10-11: start the background tunnel (as ``connect --detach`` does) and prove the hub answers
through it, then open the hub in the member's browser."""

from __future__ import annotations

import re

from wa_onboard.core import tunnel
from wa_onboard.core.browser import open_url
from wa_onboard.core.profile import Profile
from wa_onboard.core.setup.plan import NotNeeded, Step, StepContext, StepError
from wa_onboard.core.setup.shell import close, command
from wa_onboard.core.tunnel import ConnectError


def default_tunnel_up(profile: Profile, profile_name: str) -> str | None:
    """A summary when this profile's background tunnel is up and the hub answers through it."""
    status = tunnel.verify_status(profile_name, profile)
    return f"tunnel up at {status.url} (pid {status.pid})" if status.connected else None


def default_start_tunnel(profile: Profile, profile_name: str) -> str:
    """Start the background supervisor exactly as ``connect --detach`` does."""
    summary: str = tunnel.start_detached(profile, profile_name)
    return summary


class StartTunnel(Step):
    id = "tunnel"
    title = "Start the tunnel and check the hub"

    def done(self, ctx: StepContext) -> str | None:
        check = ctx.options.tunnel_up or default_tunnel_up
        summary = check(ctx.profile, ctx.options.profile_name)
        return self._how_to(ctx, summary) if summary else None

    def run(self, ctx: StepContext) -> str:
        close(ctx)  # the background tunnel makes its own (key-only) connection
        start = ctx.options.start_tunnel or default_start_tunnel
        try:
            summary = start(ctx.profile, ctx.options.profile_name)
        except ConnectError as exc:
            raise StepError(exc.message, exc.hint, exc.detail) from None
        return self._how_to(ctx, summary)

    @staticmethod
    def _how_to(ctx: StepContext, summary: str) -> str:
        url = re.search(r"http://\S+", summary)
        if url:
            ctx.run.url = url.group(0)
        return f"{summary}; check it: {command(ctx, 'status')}, stop it: {command(ctx, 'disconnect')}"


class OpenBrowser(Step):
    id = "browser"
    title = "Open the hub in the browser"

    def done(self, ctx: StepContext) -> NotNeeded | None:
        url = ctx.run.url = ctx.run.url or ctx.profile.url
        if ctx.options.no_browser:
            return NotNeeded(f"not opening a browser (--no-browser); open {url}")
        return None

    def run(self, ctx: StepContext) -> str:
        url = ctx.run.url
        opener = ctx.options.open_url or open_url
        opened = opener(url)
        ctx.run.browser_opened = opened
        if opened:
            return f"opened {url}; log in with your campus password"
        return f"no browser could be opened: open {url} yourself"
