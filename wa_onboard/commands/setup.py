"""``wa-onboard setup``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wa_onboard.commands._pending import not_implemented

if TYPE_CHECKING:
    from wa_onboard.cli import CommandContext


def run(command: str, ctx: CommandContext) -> int:
    ctx.load_profile(save_flags=True)
    return not_implemented(command)
