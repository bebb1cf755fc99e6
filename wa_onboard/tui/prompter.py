"""The core's questions, answered with modals.

The core calls the prompter from a worker thread and needs the answer before it can go on, so the
prompter posts a message to the app (thread-safe, never blocks the UI), the app pushes the modal,
and the worker waits on a threading.Event that the modal's dismiss callback sets. When the app goes
away mid-question, ``close()`` releases every waiter with a refusal, so no thread hangs the exit.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.message import Message

from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, PasswordOnce, SecretQuestion

if TYPE_CHECKING:
    from textual.app import App


class QuestionAsked(Message):
    """A worker needs the member's answer; ``answer`` must be called exactly once."""

    def __init__(self, question: SecretQuestion | HostKeyQuestion | ConfirmQuestion, answer: Any) -> None:
        super().__init__()
        self.question = question
        self.answer = answer


class ModalPrompter:
    """A core ``Prompter`` backed by the app's modals."""

    def __init__(self, app: App[Any]) -> None:
        self._app = app
        self._closed = threading.Event()
        self._passwords = PasswordOnce(self._ask_secret)
        self._declined = threading.Event()

    def _ask(self, question: SecretQuestion | HostKeyQuestion | ConfirmQuestion, refusal: Any) -> Any:
        if self._closed.is_set():
            return refusal
        answered = threading.Event()
        box: list[Any] = []

        def answer(value: Any) -> None:
            if not answered.is_set():
                box.append(value)
                answered.set()

        if not self._app.post_message(QuestionAsked(question, answer)):
            return refusal
        while not answered.wait(0.05):
            if self._closed.is_set():
                return refusal
        return box[0]

    def secret(self, question: SecretQuestion) -> str | None:
        """One dialog for the campus password, whichever engine asks for which hop: ``PasswordOnce``."""
        return self._passwords.secret(question)

    def _ask_secret(self, question: SecretQuestion) -> str | None:
        value = self._ask(question, None)
        if not isinstance(value, str):
            self._declined.set()
            return None
        return value

    def take_declined(self) -> bool:
        """Whether the member cancelled a password or code dialog since the last call: the core's
        hint then speaks to the command line ("--password-stdin"); the app has a retry key instead."""
        declined = self._declined.is_set()
        self._declined.clear()
        return declined

    def forget(self) -> None:
        """A setup run is over: the password it was given is dropped."""
        self._passwords.forget()

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        return self._ask(question, False) is True

    def close(self) -> None:
        """The app is leaving: every open and future question is refused."""
        self._closed.set()
        self._passwords.forget()
