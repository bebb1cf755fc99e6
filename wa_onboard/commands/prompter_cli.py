"""The command line's answers to the core's questions: getpass, ``--password-stdin``, ``--yes``.

Secrets are read without echo and never printed; fingerprints are printed before any question
about them. ``--yes`` accepts new host keys and non-destructive changes only.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import TextIO

from wa_onboard.core.prompts import (
    MAX_TRIES,
    ConfirmQuestion,
    HostKeyQuestion,
    PasswordOnce,
    SecretQuestion,
    server_text,
)


def _has_tty() -> bool:
    if sys.platform == "win32":  # no /dev/tty (and no O_NOCTTY)
        return sys.stdin.isatty()
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


class CliPrompter:
    """A Prompter for plain terminals and scripts."""

    def __init__(
        self,
        *,
        assume_yes: bool = False,
        password_stdin: bool = False,
        allow_secrets: bool = True,
        stdin: TextIO | None = None,
        out: TextIO | None = None,
        ask_secret: Callable[[str], str] | None = None,
        ask_line: Callable[[str], str] | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.assume_yes = assume_yes
        self.password_stdin = password_stdin
        self.allow_secrets = allow_secrets
        """False for daily commands: a password question is declined (the core then says why)."""
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stderr
        self.ask_secret = ask_secret or (lambda prompt: getpass.getpass(prompt, stream=self.out))
        self.ask_line = ask_line or self._input
        self.interactive = _has_tty() if interactive is None else interactive
        self._stdin_used = False
        self._passwords = PasswordOnce(self._ask_secret)

    def _input(self, prompt: str) -> str:
        self.out.write(prompt)
        self.out.flush()
        return input()

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def secret(self, question: SecretQuestion) -> str | None:
        """The password is asked (or read from stdin) once for both hops: see ``PasswordOnce``."""
        return self._passwords.secret(question)

    def _ask_secret(self, question: SecretQuestion) -> str | None:
        if not self.allow_secrets:
            return None
        if self.password_stdin and question.kind == "password" and not self._stdin_used:
            self._stdin_used = True  # one line, read once, for the first password prompt only
            line = self.stdin.readline()
            if line:
                return line.rstrip("\r\n")
        if not self.interactive:
            return None
        hop = server_text(question.hop).replace("\n", " ")
        if question.attempt > 1:
            self._say(f"{hop}: that was not accepted (try {question.attempt} of {MAX_TRIES})")
        # the server's words, which may carry escape codes meant to rewrite the terminal
        *instructions, prompt = server_text(question.prompt).splitlines() or [""]
        for line in instructions:
            self._say(f"  {line}")
        try:
            return self.ask_secret(f"[{hop}] {prompt.strip()} ")
        except EOFError:
            return None

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        if isinstance(question, HostKeyQuestion):
            self._say(f"First connection to {question.host}. Its host key:")
            self._say(f"  {question.key_type} {question.fingerprint}")
            self._say("  Compare it with the fingerprint the lab admins publish.")
            if self.assume_yes:
                self._say("  trusted (--yes)")
                return True
            return self._ask_yes_no("Trust this host key?", default=False)
        self._say(question.title)
        if question.detail:
            for line in question.detail.splitlines():
                self._say(f"  {line}")
        if self.assume_yes and not question.destructive:
            self._say("  yes (--yes)")
            return True
        return self._ask_yes_no("Go ahead?", default=question.default, yes_answers=not question.destructive)

    def _ask_yes_no(self, prompt: str, *, default: bool, yes_answers: bool = True) -> bool:
        """``yes_answers``: whether --yes would have said yes here (never to a destructive change)."""
        if not self.interactive:
            if yes_answers:
                self._say("  no (no terminal to ask in; --yes answers yes)")
            else:
                self._say(
                    "  no (no terminal to ask in; --yes never answers this one: run it at a terminal, "
                    "or in the app, to say yes yourself)"
                )
            return False
        suffix = " [Y/n] " if default else " [y/N] "
        try:
            answer = self.ask_line(prompt + suffix).strip().lower()
        except EOFError:
            return default
        if not answer:
            return default
        return answer in ("y", "yes")
