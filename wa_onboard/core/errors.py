"""Errors that cross the core/front-end boundary, each with the exit code it maps to."""

from __future__ import annotations


class WaError(Exception):
    """An expected failure: a message for the member and a hint that names the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(WaError):
    """A value the member gave (flag, profile field) breaks a rule. Nothing has run yet."""

    exit_code = 2

    def __init__(self, field: str, rule: str, hint: str = "") -> None:
        super().__init__(f"invalid {field}: {rule}", hint)
        self.field = field
        self.rule = rule


class ConfigError(WaError):
    """The config file cannot be read or parsed."""

    exit_code = 2


class Cancelled(WaError):
    """The member said no, or pressed Ctrl-C, at a question."""

    exit_code = 130

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)
