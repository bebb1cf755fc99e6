"""Typed results shared by the setup steps, the doctor and the tunnel; front ends only render them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StepStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class StepResult:
    """How one onboarding step ended."""

    step_id: str
    status: StepStatus
    summary: str
    detail: str = ""
    """An excerpt of the output that matters (conda's error line, ssh's last words)."""
    hint: str = ""
    """What to do about it: a command to run or an action to take."""
    seconds: float = 0.0


class CheckStatus(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One doctor check."""

    id: str
    layer: str
    status: CheckStatus
    summary: str
    detail: str = ""
    hint: str = ""
    duration_ms: int = 0


class TunnelState(str, enum.Enum):
    CONNECTING = "connecting"
    UP = "connected"
    RECONNECTING = "reconnecting"
    DOWN = "down"


@dataclass(frozen=True)
class TunnelStatus:
    """A snapshot of the tunnel, as the supervisor (or ``status``) sees it."""

    profile: str
    state: TunnelState
    url: str = ""
    local_port: int = 0
    pid: int | None = None
    since: float | None = None
    """Unix time the tunnel last came up."""
    reconnects: int = 0
    hub_version: str | None = None
    latency_ms: float | None = None
    message: str = ""
    hint: str = ""

    @property
    def connected(self) -> bool:
        return self.state is TunnelState.UP
