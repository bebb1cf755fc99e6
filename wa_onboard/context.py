"""What every command gets (the profile, its store, the parsed flags), apart from the parser.

Both front ends take it: ``cli.main`` builds it, the commands and the app (``tui.launch``) read it; kept
here so the app never imports ``cli``, which imports the app.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from wa_onboard.core import validate
from wa_onboard.core.profile import Profile, ProfileStore

_FLAG_FIELDS = (
    "user",
    "jump",
    "host",
    "local_port",
    "remote_port",
    "base_url",
    "env",
    "kernel_name",
    "display_name",
    "python",
    "conda_module",
    "engine",
)


def profile_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The profile fields the member gave on the command line."""
    changes = {f: getattr(args, f) for f in _FLAG_FIELDS if getattr(args, f, None) is not None}
    for port_field in ("local_port", "remote_port"):
        if port_field in changes:
            changes[port_field] = validate.port(changes[port_field], port_field.replace("_", "-"))
    return changes


@dataclass
class CommandContext:
    """What every command gets: which profile, where it is stored, and the parsed flags."""

    profile_name: str
    store: ProfileStore
    args: argparse.Namespace

    def load_profile(self, *, save_flags: bool = False) -> Profile:
        """The stored profile with command-line changes applied; saved when asked, changed and
        complete (a profile without a user is asked for, not kept).

        Only setup makes a new profile (``main`` refuses other commands an unknown one). A change
        to an existing profile is said on stderr, so no setting sticks silently.
        """
        stored = self.store.load(self.profile_name)
        profile = stored or Profile()
        changes = profile_changes(self.args)
        if changes:
            profile = profile.updated(**changes)
            if save_flags and profile != stored and profile.is_complete:
                self.store.save(profile, self.profile_name)
                _say_saved(self.profile_name, stored, profile, self.store)
        return profile


def _say_saved(name: str, before: Profile | None, after: Profile, store: ProfileStore) -> None:
    if before is None:
        sys.stderr.write(f"wa-onboard: saved the new profile {name} in {store.path}\n")
        return
    old, new = before.to_dict(), after.to_dict()
    changed = ", ".join(f"{k} {new[k]} (was {old[k]})" for k in new if new[k] != old[k])
    sys.stderr.write(f"wa-onboard: saved to profile {name} in {store.path}: {changed}\n")
