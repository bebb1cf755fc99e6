"""The one small interface through which the core asks the member anything.

The TUI answers with modals, the CLI with getpass / ``--password-stdin`` / ``--yes``. The core never
reads stdin itself: it asks a Prompter, which may refuse (return None / False).
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

SecretKind = Literal["password", "otp", "other"]

MAX_TRIES = 3
"""A refused password or code is asked again, this many tries in all; then the engine stops, before
the account gets locked. Every engine counts to this, and every front end shows it ("try 2 of 3")."""

#: words that mark a one-time code prompt (TOTP's "Verification code:", Duo's "Passcode or option")
OTP_WORDS = re.compile(r"(?i)verification|passcode|one[- ]time|\botp\b|token|code\b|option")
#: "password" as PAM writes it in the languages a campus machine may be set to
_PASSWORD_WORDS = re.compile(
    r"(?i)password|passphrase|passwort|kennwort|contrase(ñ|n)a|mot de passe|senha|wachtwoord|parola d"
)
#: terminal escape sequences (CSI ``ESC [ ... letter``, OSC ``ESC ] ... BEL/ST``, two-byte ``ESC x``)
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]"
)


def secret_kind(prompt: str) -> SecretKind:
    """Tell a password prompt from an MFA code prompt, so a front end can label the field.

    Both engines classify with this one function, so a prompt is named the same whichever asks.
    Whether the answer is masked is ``echo_allowed``'s to say: "other" (a PIN, a language we do not
    know) is masked like a password."""
    if _PASSWORD_WORDS.search(prompt):
        return "password"
    if OTP_WORDS.search(prompt):
        return "otp"
    return "other"


#: words that make a prompt secret even when it also says "code" ("PIN code:", "secret token")
_SECRET_WORDS = re.compile(r"(?i)\bpin\b|secret|private")


def echo_allowed(prompt: str) -> bool:
    """Whether a front end may show the answer as it is typed: only for a plain one-time code
    ("Verification code:"), which the member checks digit by digit and which is dead in a minute.
    Passwords in any language, PINs and every prompt we cannot classify are masked."""
    return (
        secret_kind(prompt) == "otp"
        and not _SECRET_WORDS.search(prompt)
        and not _PASSWORD_WORDS.search(prompt)
    )


def server_text(text: str) -> str:
    """Text a server (or a tool) wrote, made safe to show: escape sequences and every control or
    format character removed (newlines kept, tabs as spaces), so it cannot move the cursor, recolour
    or clear the terminal, or hide what follows. Front ends also show it literally (no markup)."""
    text = _ESCAPES.sub("", text.replace("\r\n", "\n")).replace("\t", " ")
    return "".join(ch for ch in text if ch == "\n" or not unicodedata.category(ch).startswith("C"))


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


class PasswordOnce:
    """The campus password asked once per login, whichever front end asks and whichever engine logs in.

    Both hops (jump host, workstation) take the same campus password, and an engine logs in to one
    after the other. The first password question goes to the member; a later first-try password
    question (the other hop, or the next login of the same run) gets that answer without asking. A
    second try anywhere (the answer was refused) goes to the member, and that answer is the one
    offered next. The CLI's and the app's prompters both answer through one of these. The answer
    lives only in memory, for ``max_age`` seconds at most, and ``forget()`` drops it at once.
    """

    def __init__(
        self,
        ask: Callable[[SecretQuestion], str | None],
        *,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask = ask
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._password: str | None = None
        self._typed_at = 0.0

    def secret(self, question: SecretQuestion) -> str | None:
        if question.kind != "password":
            return self._ask(question)
        with self._lock:
            if self._password is not None and self._clock() - self._typed_at > self._max_age:
                self._password = None
            if question.attempt == 1 and self._password is not None:
                return self._password
        answer = self._ask(question)
        if answer is not None:
            with self._lock:
                self._password, self._typed_at = answer, self._clock()
        return answer

    def forget(self) -> None:
        """Drop the password (a setup run is over, or the front end is leaving)."""
        with self._lock:
            self._password = None
