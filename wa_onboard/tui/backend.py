"""The seam between the app and the core: one object that runs setup, the tunnel and the doctor.

The app takes a Backend in its constructor. ``RealBackend`` wires the core modules (imported lazily,
so a module that has not landed yet gives an honest message instead of a crash); tests and the
screenshot script use ``wa_onboard.tui.fake.FakeBackend``. Every method here may block: the app calls
them from thread workers only, and they report back through callbacks or iterators, never by printing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from wa_onboard.core.browser import open_url
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import Prompter
from wa_onboard.core.results import CheckResult, TunnelState, TunnelStatus
from wa_onboard.core.setup.plan import EventSink, SetupOutcome


@dataclass(frozen=True)
class StepInfo:
    """A step as the wizard lists it before it runs."""

    id: str
    title: str


class TunnelSession(Protocol):
    """One profile's tunnel as the dashboard drives it."""

    can_detach: bool
    """True when the tunnel can outlive the app (a background supervisor)."""

    def statuses(self) -> Iterator[TunnelStatus]:
        """Snapshots as the state changes; blocks between them; ends after stop() or detach()."""
        ...

    def reconnect(self) -> None:
        """Bring the tunnel up again now (or for the first time after a stop)."""
        ...

    def stop(self) -> None:
        """Take the tunnel down and leave no process behind."""
        ...

    def detach(self) -> None:
        """Stop watching; the tunnel keeps running in the background."""
        ...


class Backend(Protocol):
    """Everything slow the app needs. Called from thread workers only."""

    def setup_steps(self, name: str, profile: Profile) -> list[StepInfo]:
        """The steps a setup run will go through, in order (listed as pending first)."""
        ...

    def run_setup(
        self, name: str, profile: Profile, prompter: Prompter, emit: EventSink, cancel: threading.Event
    ) -> SetupOutcome:
        """Run the plan; progress goes to ``emit``, questions to ``prompter``."""
        ...

    def tunnel(self, name: str, profile: Profile, prompter: Prompter) -> TunnelSession:
        """A session for this profile's tunnel (it starts one when none is running)."""
        ...

    def doctor(self, name: str, profile: Profile, cancel: threading.Event) -> Iterator[CheckResult]:
        """The checks, each yielded as soon as it finishes."""
        ...

    def report(self, name: str, profile: Profile, results: Sequence[CheckResult]) -> str:
        """The redacted support report for these results."""
        ...

    def open_browser(self, url: str) -> bool:
        """Open ``url`` in the member's browser (honours $BROWSER); False if none could be opened."""
        ...


class RealBackend:
    """The core, wired for the app. The flags are ``setup``'s: ``--yes``, ``--repair``, ``--no-browser``."""

    def __init__(self, *, assume_yes: bool = False, repair: bool = False, no_browser: bool = False) -> None:
        self.assume_yes = assume_yes
        self.repair = repair
        self.no_browser = no_browser

    def setup_steps(self, name: str, profile: Profile) -> list[StepInfo]:
        from wa_onboard.core import setup

        return [StepInfo(step.id, step.title) for step in setup.build_plan()]

    def run_setup(
        self, name: str, profile: Profile, prompter: Prompter, emit: EventSink, cancel: threading.Event
    ) -> SetupOutcome:
        from wa_onboard.core import setup

        options = setup.SetupOptions(
            profile_name=name, no_browser=self.no_browser, assume_yes=self.assume_yes, repair=self.repair
        )
        return setup.setup(profile, options, prompter, emit, cancel)

    def tunnel(self, name: str, profile: Profile, prompter: Prompter) -> TunnelSession:
        try:
            session: TunnelSession = tui_session(name, profile)
        except WaError as exc:
            return UnavailableTunnel(name, profile, exc)
        return session

    def doctor(self, name: str, profile: Profile, cancel: threading.Event) -> Iterator[CheckResult]:
        from wa_onboard.core import doctor

        yield from doctor.iter_checks(profile, cancel=cancel, name=name)

    def report(self, name: str, profile: Profile, results: Sequence[CheckResult]) -> str:
        from wa_onboard.core import doctor

        text: str = doctor.render_report(profile, list(results), name=name)
        return text

    def open_browser(self, url: str) -> bool:
        return open_url(url)


class UnavailableTunnel:
    """What the dashboard shows when no tunnel session could be had: down, and why. ``r`` (or ``o``'s
    "connect now") tries again for a session, which starts the background tunnel as
    ``wa-onboard connect --detach`` does; when there is still none, the error says why (the app
    shows it), rather than nothing happening."""

    def __init__(self, name: str, profile: Profile, error: WaError) -> None:
        self.name = name
        self.profile = profile
        self._session: TunnelSession | None = None
        self.can_detach = False
        """As the session's, once there is one."""
        self._status = TunnelStatus(
            profile=name,
            state=TunnelState.DOWN,
            url=profile.url,
            local_port=profile.local_port,
            message=error.message,
            hint=error.hint,
        )

    def statuses(self) -> Iterator[TunnelStatus]:
        if self._session is not None:
            yield from self._session.statuses()
        else:
            yield self._status

    def reconnect(self) -> None:
        if self._session is not None:
            self._session.reconnect()
            return
        try:
            self._session = tui_session(self.name, self.profile)
        except WaError as exc:
            raise WaError(f"cannot start the tunnel from here: {exc.message}", exc.hint) from None
        self.can_detach = self._session.can_detach

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()

    def detach(self) -> None:
        if self._session is not None:
            self._session.detach()


class BackgroundSession:
    """The TUI dashboard's tunnel: a background supervisor, watched through its state file, so the
    tunnel outlives the app when the member leaves it running."""

    can_detach = True

    def __init__(self, profile_name: str, profile: Profile) -> None:
        self.profile_name = profile_name
        self.profile = profile
        self._done = threading.Event()
        self._restart = threading.Event()
        self._stopped = False

    def statuses(self) -> Iterator[TunnelStatus]:
        """Snapshots until stop() or detach(); a stop ends on a DOWN one, so a watcher never keeps
        showing the tunnel it just stopped as connected."""
        from wa_onboard.core import tunnel
        from wa_onboard.core.tunnel import ConnectError

        last: TunnelStatus | None = None
        self._restart.set()
        while not self._done.is_set():
            if self._restart.is_set():
                self._restart.clear()
                yield TunnelStatus(self.profile_name, TunnelState.CONNECTING, url=self.profile.url)
                try:
                    tunnel.start_detached(self.profile, self.profile_name)
                except ConnectError as exc:
                    yield TunnelStatus(
                        self.profile_name,
                        TunnelState.DOWN,
                        url=self.profile.url,
                        message=exc.message,
                        hint=exc.hint,
                    )
                    last = None
                    self._done.wait(2.0)
                    continue
            status = tunnel.verify_status(self.profile_name, self.profile)
            if status != last:
                yield status
                last = status
            self._done.wait(2.0)
        if self._stopped:
            yield TunnelStatus(
                self.profile_name,
                TunnelState.DOWN,
                url=self.profile.url,
                local_port=self.profile.local_port,
                message="stopped",
            )

    def reconnect(self) -> None:
        """A new tunnel now; after stop() too (the next statuses() starts it)."""
        from wa_onboard.core import tunnel

        tunnel.stop_supervisor(self.profile_name)
        self._stopped = False
        self._done.clear()
        self._restart.set()

    def stop(self) -> None:
        from wa_onboard.core import tunnel

        tunnel.stop_supervisor(self.profile_name)
        self._stopped = True
        self._done.set()

    def detach(self) -> None:
        self._done.set()


def tui_session(profile_name: str, profile: Profile) -> BackgroundSession:
    return BackgroundSession(profile_name, profile)
