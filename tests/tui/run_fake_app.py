"""Run the real app on a real terminal with the fake backend (no ssh, no network).

    python -m tests.tui.run_fake_app wizard|dashboard|crash

For the terminal tests, the start-up benchmark, and for trying the app by hand.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.tui import run_app
from wa_onboard.tui.app import WaApp, make_app
from wa_onboard.tui.fake import FakeBackend


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "wizard"
    with tempfile.TemporaryDirectory() as home:
        store = ProfileStore(Path(home) / "config.toml")
        profile = Profile(user="bbadger") if mode == "dashboard" else None
        if mode == "crash":
            return run_app(CrashingApp(FakeBackend(), store, profile=Profile(user="bbadger")))
        app = make_app(FakeBackend(), store, profile=profile)
        return run_app(app)


class CrashingApp(WaApp):
    """A bug on the UI thread once the first screen is up (the exit code must say so)."""

    def on_mount(self) -> None:
        super().on_mount()
        self.set_timer(0.2, self._boom)

    def _boom(self) -> None:
        raise RuntimeError("a bug in the app")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
