"""The one way to open the member's browser. A leaf: imports nothing of ours."""

from __future__ import annotations


def open_url(url: str) -> bool:
    """Open ``url`` in the member's browser (``webbrowser`` honours $BROWSER); False when none could be
    opened, so the caller can say "open it yourself"."""
    import webbrowser  # only when a browser is opened: it is slow to import

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
