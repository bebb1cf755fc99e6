"""Run the real app on a real terminal with the fake backend (no ssh, no network).

    python -m tests.tui.run_fake_app wizard|dashboard

For the terminal tests, the start-up benchmark, and for trying the app by hand.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.tui.app import make_app
from wa_onboard.tui.fake import FakeBackend


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "wizard"
    with tempfile.TemporaryDirectory() as home:
        store = ProfileStore(Path(home) / "config.toml")
        profile = Profile(user="bbadger") if mode == "dashboard" else None
        app = make_app(FakeBackend(), store, profile=profile)
        return int(app.run() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
