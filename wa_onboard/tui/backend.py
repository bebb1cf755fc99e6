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
        from wa_onboard.core.tunnel import supervisor

        try:
            session: TunnelSession = supervisor.tui_session(name, profile, prompter)
        except WaError as exc:
            return UnavailableTunnel(name, profile, exc, prompter)
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

    def __init__(self, name: str, profile: Profile, error: WaError, prompter: Prompter | None = None) -> None:
        self.name = name
        self.profile = profile
        self.prompter = prompter
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
        from wa_onboard.core.tunnel import supervisor

        try:
            self._session = supervisor.tui_session(self.name, self.profile, self.prompter)
        except WaError as exc:
            raise WaError(f"cannot start the tunnel from here: {exc.message}", exc.hint) from None
        self.can_detach = self._session.can_detach

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()

    def detach(self) -> None:
        if self._session is not None:
            self._session.detach()
