"""The paramiko engine's logins: key first, then the password and any other prompt (MFA), each answered
through the member's prompter, a refused answer asked again at most MAX_TRIES times.

Kept apart from the engine so that the decisions can be tested against a fake transport.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import paramiko

from wa_onboard.core.errors import Cancelled
from wa_onboard.core.prompts import MAX_TRIES, Prompter, SecretQuestion, secret_kind
from wa_onboard.core.tunnel.engines.base import ConnectError, Failure, Hop

log = logging.getLogger("wa_onboard.core.tunnel.engines.paramiko")


class AuthTransport(Protocol):
    """What authentication needs from a paramiko Transport (a fake in the unit tests)."""

    def auth_none(self, username: str) -> list[str]: ...

    def auth_publickey(self, username: str, key: Any) -> list[str]: ...

    def auth_password(self, username: str, password: str, fallback: bool = ...) -> list[str]: ...

    def auth_interactive(
        self, username: str, handler: Callable[[str, str, Sequence[tuple[str, bool]]], list[str]]
    ) -> list[str]: ...

    def is_authenticated(self) -> bool: ...

    def is_active(self) -> bool: ...


def authenticate(
    transport: AuthTransport, hop: Hop, key: Any, prompter: Prompter, *, interactive: bool
) -> None:
    """Key first; then the password and any other prompt (MFA), each answered through ``prompter``.

    Where the server offers keyboard-interactive, it carries the password too (PAM asks
    ``Password:`` and then, for MFA accounts, ``Verification code:``), so it goes before the
    ``password`` method, as in OpenSSH's default order: sshd answers every PAM prompt of the
    ``password`` method with the password, so on an MFA account that method can only fail, and
    each failure counts towards a lockout. A refused answer is asked again, at most MAX_TRIES
    times. Methods required after a partial success follow in the same loop. Without
    ``interactive`` only the key is tried.
    """
    try:
        allowed = list(transport.auth_none(hop.user))
    except paramiko.BadAuthenticationType as exc:
        allowed = list(exc.allowed_types)
    except paramiko.AuthenticationException:
        allowed = ["publickey", "password", "keyboard-interactive"]
    done: set[str] = set()
    while not transport.is_authenticated():
        if key is not None and "publickey" in allowed and "publickey" not in done:
            done.add("publickey")
            allowed = _try(lambda: transport.auth_publickey(hop.user, key), allowed)
            continue
        if not interactive:
            raise ConnectError(
                Failure.PASSWORD_NEEDED,
                f"{hop.who} did not accept the key and wants a password",
                "run `wa-onboard setup` once to log in with your password and install the key",
                detail=f"server offers: {', '.join(allowed) or 'nothing'}",
            )
        rounds = {"keyboard-interactive": _interactive_round, "password": _password_round}
        method = next((m for m in rounds if m in allowed and m not in done), None)
        if method is None:
            raise ConnectError(
                hop.auth_failure,
                f"{hop.who} refused every login method we have",
                "check your user name; ask the lab admins whether your account may log in there",
                detail=f"server offers: {', '.join(allowed) or 'nothing'}",
            )
        done.add(method)
        allowed = _ask_until_accepted(transport, hop, prompter, rounds[method](transport, hop))


def _try(attempt: Callable[[], list[str]], allowed: list[str]) -> list[str]:
    """One non-interactive attempt: the methods still open afterwards."""
    try:
        return list(attempt())
    except paramiko.BadAuthenticationType as exc:
        return list(exc.allowed_types)
    except paramiko.AuthenticationException:
        return allowed


Round = Callable[[Prompter, int], "list[str] | None"]
"""One try at a prompting method: the methods still open, or None when the member declined."""


def _password_round(transport: AuthTransport, hop: Hop) -> Round:
    def run(prompter: Prompter, attempt: int) -> list[str] | None:
        question = SecretQuestion(f"{hop.who}'s password:", hop.who, "password", attempt)
        answer = prompter.secret(question)
        if answer is None:
            return None
        return list(transport.auth_password(hop.user, answer, fallback=False))

    return run


def _interactive_round(transport: AuthTransport, hop: Hop) -> Round:
    def run(prompter: Prompter, attempt: int) -> list[str] | None:
        declined = False
        raised: list[BaseException] = []

        def handler(title: str, instructions: str, prompts: Sequence[tuple[str, bool]]) -> list[str]:
            """Runs on paramiko's thread: an exception here would kill the transport, so it waits."""
            nonlocal declined
            answers: list[str] = []
            for text, _echo in prompts:
                shown = f"{instructions.strip()}\n{text.rstrip()}" if instructions.strip() else text.rstrip()
                answer = None
                if not declined:
                    try:
                        answer = prompter.secret(SecretQuestion(shown, hop.who, secret_kind(text), attempt))
                    except BaseException as exc:  # re-raised on the caller's thread below
                        raised.append(exc)
                declined = declined or answer is None
                answers.append(answer or "")
            return answers

        try:
            allowed = list(transport.auth_interactive(hop.user, handler))
        except paramiko.AuthenticationException:
            if raised:
                raise raised[0] from None
            if declined:
                return None
            raise
        if raised:
            raise raised[0]
        return allowed

    return run


def _ask_until_accepted(
    transport: AuthTransport, hop: Hop, prompter: Prompter, one_round: Round
) -> list[str]:
    for attempt in range(1, MAX_TRIES + 1):
        try:
            allowed = one_round(prompter, attempt)
        except paramiko.BadAuthenticationType as exc:
            return list(exc.allowed_types)
        except paramiko.AuthenticationException:
            if not transport.is_active():
                raise ConnectError(
                    hop.auth_failure,
                    f"{hop.who} closed the connection during login",
                    "too many tries or too slow an answer: try again",
                ) from None
            continue
        if allowed is None:
            raise Cancelled(f"login to {hop.who} cancelled: no answer given")
        return allowed
    raise ConnectError(
        hop.auth_failure,
        f"{hop.who} refused the password or code {MAX_TRIES} times",
        "check your CAE password (and MFA code); after more failures the account may be locked",
    )


def load_key(path: Path) -> paramiko.PKey | None:
    """Our dedicated key, or None when it does not exist (yet) or cannot be read without a passphrase."""
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        return None
    except (OSError, paramiko.SSHException, ValueError) as exc:
        log.warning("key %s not usable: %s", path, exc)
        return None
