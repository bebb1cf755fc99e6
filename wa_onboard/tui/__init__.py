"""The Textual app. Imported only when the app runs, so the CLI stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wa_onboard.commands._pending import not_implemented

if TYPE_CHECKING:
    from wa_onboard.cli import CommandContext


def launch(ctx: CommandContext) -> int:
    ctx.load_profile()
    return not_implemented("the app")
