"""The honest answer for a subcommand whose issue has not landed yet."""

from __future__ import annotations

import sys

from wa_onboard.core.errors import WaError


def not_implemented(command: str) -> int:
    raise WaError(
        f"'{command}' is not implemented yet in this version",
        "see the README for what works today",
    )


def stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
