"""The one small interface through which the core asks the member anything.

The TUI answers with modals, the CLI with getpass / ``--password-stdin`` / ``--yes``. The core never
reads stdin itself: it asks a Prompter, which may refuse (return None / False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

SecretKind = Literal["password", "otp", "other"]

#: words that mark a one-time code prompt (TOTP's "Verification code:", Duo's "Passcode or option")
OTP_WORDS = re.compile(r"(?i)verification|passcode|one[- ]time|\botp\b|token|code\b|option")
_PASSWORD_WORDS = re.compile(r"(?i)password|passphrase")


def secret_kind(prompt: str) -> SecretKind:
    """Tell a password prompt from an MFA code prompt, so a front end can label (and mask) the field.

    Both engines classify with this one function, so a prompt is named the same whichever asks."""
    if _PASSWORD_WORDS.search(prompt):
        return "password"
    if OTP_WORDS.search(prompt):
        return "otp"
    return "other"


@dataclass(frozen=True)
class SecretQuestion:
    """A password or MFA prompt, shown as the server wrote it."""

    prompt: str
    """The server's own prompt text, e.g. ``Verification code:``."""
    hop: str
    """Which host asks: the jump host or the workstation (``user@host``)."""
    kind: SecretKind = "password"
    attempt: int = 1
    """1 for the first ask; higher after 'Permission denied, please try again.'"""


@dataclass(frozen=True)
class HostKeyQuestion:
    """First contact with a host: trust this key?"""

    host: str
    key_type: str
    fingerprint: str
    """``SHA256:...`` as OpenSSH prints it."""


@dataclass(frozen=True)
class ConfirmQuestion:
    """A yes/no about a change to the member's files or env."""

    title: str
    detail: str = ""
    default: bool = False
    destructive: bool = False
    """``--yes`` never answers a destructive question."""


class Prompter(Protocol):
    def secret(self, question: SecretQuestion) -> str | None:
        """The answer, or None when the member declines (the caller then fails cleanly)."""
        ...

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool: ...


class NoPrompter:
    """For daily, non-interactive use: every question is declined, so nothing waits on a person."""

    def secret(self, question: SecretQuestion) -> str | None:
        return None

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        return False
