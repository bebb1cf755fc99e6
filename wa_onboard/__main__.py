"""``python -m wa_onboard`` and the ``wa-onboard`` command."""

from __future__ import annotations

import sys


def main() -> int:
    """Start the jump login early when that can help (core/prestart, which loads nothing heavy),
    then import and run the CLI."""
    from wa_onboard.core.tunnel import prestart

    prestart.maybe_start(sys.argv[1:])
    from wa_onboard.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
