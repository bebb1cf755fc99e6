"""The base of every screen of the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen

if TYPE_CHECKING:
    from wa_onboard.tui.app import WaApp


class WaScreen(Screen[Any]):
    """Screens of this app: typed access to the app, and a few lines for the help screen."""

    HELP = ""

    def subtitle(self) -> str:
        """What the title bar says after the app's name."""
        return ""

    @property
    def wa(self) -> WaApp:
        return self.app  # type: ignore[return-value]
