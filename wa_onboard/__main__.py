"""``python -m wa_onboard``."""

from __future__ import annotations

import sys

from wa_onboard.cli import main

if __name__ == "__main__":
    sys.exit(main())
