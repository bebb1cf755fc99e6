"""``python -m wa_onboard`` and the ``wa-onboard`` command."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~15 ms to import: this runs before the early login starts
if TYPE_CHECKING:
    from wa_onboard.core.tunnel.prestart import Serve


def main() -> int:
    """Start the jump login early when that can help (core/prestart, which loads nothing heavy),
    then import and run the CLI."""
    from wa_onboard.core.tunnel import prestart

    prestart.maybe_start(sys.argv[1:], _load_supervisor)
    from wa_onboard.cli import main as cli_main

    return cli_main()


def _load_supervisor() -> Serve:
    """What a speculative supervisor serves its orders with (imported in it, while ssh logs in)."""
    from wa_onboard.core.tunnel import daemon

    return daemon.serve_prestarted


if __name__ == "__main__":
    sys.exit(main())
