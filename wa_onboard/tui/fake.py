"""A scripted backend for the app's tests, snapshots and screenshots: no ssh, no network.

Setup runs real ``core.plan`` steps (so the app sees the same events and results as with the real
core) whose work is a script: lines of output, progress, questions for the member, a failure. A step
can be held at any point with a ``threading.Event`` so a test or a screenshot can catch the screen
mid-run. The tunnel and the doctor are fed from queues the test controls.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from wa_onboard.core.errors import Cancelled
from wa_onboard.core.plan import EventSink, PlanEvent, Step, StepContext, StepError, StepFinished, run_plan
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, Prompter, SecretQuestion
from wa_onboard.core.results import CheckResult, CheckStatus, TunnelState, TunnelStatus
from wa_onboard.tui.backend import SetupOutcome, StepInfo

Question = SecretQuestion | HostKeyQuestion | ConfirmQuestion


@dataclass
class FakeStep(Step):
    """One scripted step."""

    id: str = ""
    title: str = ""
    skip: str | None = None
    """Say the work is already done (the step is skipped)."""
    output: Sequence[str] = ()
    progress: Sequence[tuple[str, float | None]] = ()
    questions: Sequence[Question] = ()
    fail: tuple[str, str, str] | None = None
    """(message, hint, detail) to fail with."""
    fail_times: int = 1
    """How many runs fail before the step succeeds (for Retry)."""
    hold: threading.Event | None = None
    """The step waits here (after its output) until the event is set, so a test can look."""
    summary: str = ""
    seconds: float | None = None
    """The time the app shows for this step (real runs of a script take ~0 s; snapshots need a fixed one)."""
    answers: list[object] = field(default_factory=list)
    """What the member answered, in order (tests assert on it)."""
    runs: int = 0

    def done(self, ctx: StepContext) -> str | None:
        return self.skip

    def run(self, ctx: StepContext) -> str:
        self.runs += 1
        for question in self.questions:
            if isinstance(question, SecretQuestion):
                answer: object = ctx.prompter.secret(question)
                if answer is None:
                    raise StepError("login cancelled", "run setup again when you have your password")
            else:
                answer = ctx.prompter.confirm(question)
                if not answer and isinstance(question, HostKeyQuestion):
                    raise StepError(
                        f"host key of {question.host} not trusted", "compare the fingerprint, then retry"
                    )
            self.answers.append(answer)
        for line in self.output:
            ctx.output(line)
        for message, fraction in self.progress:
            ctx.progress(message, fraction)
        if self.hold is not None:
            while not self.hold.wait(0.02):
                ctx.check_cancelled()
        if self.fail is not None and self.runs <= self.fail_times:
            message, hint, detail = self.fail
            raise StepError(message, hint, detail)
        return self.summary


def demo_steps(user: str = "bbadger") -> list[FakeStep]:
    """The real plan's steps (core.onboarding.build_plan), with a first run's questions and output."""
    jump = f"{user}@best-tux.cae.wisc.edu"
    include = ConfirmQuestion(
        "Add an Include line to ~/.ssh/config?",
        "Adds one line at the top of ~/.ssh/config:\n    Include ~/.ssh/wa-onboard/config\n"
        "so `ssh wa-ws` and editors' remote features reach the workstation too. It only defines "
        "wa-* hosts; your other hosts are unchanged.",
    )
    host_key = HostKeyQuestion(
        "best-tux.cae.wisc.edu", "ED25519", "SHA256:n2Wc6fJkBq0VZl3Cq0v8h2pO1Rz3X7yYbE4sQm9tKfA"
    )
    return [
        FakeStep("profile", "Check the profile", seconds=0.0, summary="all values valid"),
        FakeStep(
            "key",
            "Make this laptop's SSH key",
            seconds=0.4,
            questions=[include],
            output=["Generating public/private ed25519 key pair."],
            summary="~/.ssh/wa_onboard_ed25519",
        ),
        FakeStep(
            "login",
            "Log in to the jump host and the workstation",
            seconds=6.2,
            questions=[host_key, SecretQuestion(f"{jump}'s password:", jump)],
            output=[f"Authenticated to best-tux.cae.wisc.edu as {user} (password)."],
        ),
        FakeStep(
            "key-install",
            "Install the key on both hosts",
            seconds=1.8,
            output=["key added to ~/.ssh/authorized_keys"],
            summary="key login works on both hosts",
        ),
        FakeStep(
            "conda",
            "Find conda on the workstation",
            seconds=1.2,
            output=["module load anaconda", "conda 24.9.2 in /opt/anaconda3"],
            summary="conda 24.9.2 (module anaconda)",
        ),
        FakeStep(
            "env",
            "Create your conda env",
            seconds=94.0,
            output=[
                "Channels:",
                " - defaults",
                "Collecting package metadata (repodata.json): done",
                "Solving environment: done",
                "Downloading and Extracting Packages: ...working...",
            ],
            progress=[("Downloading packages (31 of 52)", 0.6)],
            summary="~/.conda/envs/wa",
        ),
        FakeStep("ipykernel", "Make sure ipykernel is in the env", seconds=3.1, skip="ipykernel 6.29.5"),
        FakeStep("kernel", "Register the kernel", seconds=2.2, summary="WA -> ~/.conda/envs/wa/bin/python"),
        FakeStep("verify", "Check the kernel works", seconds=1.4),
        FakeStep("tunnel", "Start the tunnel and check the hub", seconds=2.6, summary="hub 5.2.1"),
        FakeStep("browser", "Open the hub in the browser", seconds=0.3),
    ]


def status(state: TunnelState, **changes: object) -> TunnelStatus:
    """A tunnel snapshot with the lab's defaults, for scripts and tests."""
    base = TunnelStatus(
        profile="default",
        state=state,
        url="http://localhost:8000/jupyter/",
        local_port=8000,
        pid=4242,
        since=1_700_000_000.0,
        reconnects=0,
        hub_version="5.2.1",
        latency_ms=23.4,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class FakeTunnel:
    """A tunnel session fed by the test: ``push`` a snapshot, the dashboard shows it."""

    can_detach = True

    def __init__(self, initial: Sequence[TunnelStatus]) -> None:
        self._queue: queue.Queue[TunnelStatus | None] = queue.Queue()
        self.calls: list[str] = []
        self.last: TunnelStatus | None = None
        for item in initial:
            self._queue.put(item)

    def push(self, item: TunnelStatus) -> None:
        self._queue.put(item)

    def statuses(self) -> Iterator[TunnelStatus]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.last = item
            yield item

    def reconnect(self) -> None:
        self.calls.append("reconnect")
        last = self.last or status(TunnelState.DOWN)
        self.push(replace(last, state=TunnelState.RECONNECTING))
        self.push(replace(last, state=TunnelState.UP, reconnects=last.reconnects + 1, message="", hint=""))

    def stop(self) -> None:
        self.calls.append("stop")
        last = self.last or status(TunnelState.DOWN)
        self.push(replace(last, state=TunnelState.DOWN, pid=None, since=None, message="stopped"))
        self._queue.put(None)

    def detach(self) -> None:
        self.calls.append("detach")
        self._queue.put(None)


def demo_checks() -> list[CheckResult]:
    """A doctor run on a laptop whose hub is down on the workstation."""
    ok, fail, skip, warn = CheckStatus.OK, CheckStatus.FAIL, CheckStatus.SKIP, CheckStatus.WARN
    return [
        CheckResult("ssh-client", "local", ok, "OpenSSH_9.2p1 (ProxyJump supported)", duration_ms=4),
        CheckResult("profile", "local", ok, "profile 'default' is valid", duration_ms=1),
        CheckResult("key", "local", ok, "key ~/.ssh/wa_onboard_ed25519 is 0600", duration_ms=1),
        CheckResult("local-port", "local", ok, "127.0.0.1:8000 is free", duration_ms=2),
        CheckResult("jump-dns", "network", ok, "best-tux.cae.wisc.edu resolves", duration_ms=12),
        CheckResult("jump-tcp", "network", ok, "port 22 answers", duration_ms=18),
        CheckResult("jump-key", "ssh", ok, "key login on the jump host", duration_ms=95),
        CheckResult("ws-key", "ssh", ok, "key login on the workstation", duration_ms=140),
        CheckResult("conda", "workstation", ok, "conda 24.9.2 via module anaconda", duration_ms=210),
        CheckResult("env", "workstation", ok, "env 'wa' exists", duration_ms=30),
        CheckResult("quota", "workstation", warn, "home is 91% full (1.8 GB free)",
                    hint="free space: conda clean --all", duration_ms=25),
        CheckResult(
            "hub-listening",
            "workstation",
            fail,
            "nothing listens on the workstation's port 8000",
            detail="ss -ltn: no socket on 127.0.0.1:8000",
            hint="the hub is down: ask the lab admins to run `systemctl start jupyterhub`",
            duration_ms=40,
        ),
        CheckResult("hub-health", "tunnel", skip, "because hub-listening failed"),
        CheckResult("websocket", "tunnel", skip, "because hub-listening failed"),
    ]  # fmt: skip


@dataclass
class FakeBackend:
    """A Backend whose every answer comes from the script above (or the test's own)."""

    steps: list[FakeStep] = field(default_factory=demo_steps)
    tunnel_session: FakeTunnel = field(
        default_factory=lambda: FakeTunnel([status(TunnelState.CONNECTING), status(TunnelState.UP)])
    )
    checks: list[CheckResult] = field(default_factory=demo_checks)
    check_hold: threading.Event | None = None
    """The doctor stops after half its checks until this is set (a test looks at a run in progress)."""
    browser_opens: bool = True
    opened: list[str] = field(default_factory=list)
    setup_runs: int = 0
    doctor_runs: int = 0

    def setup_steps(self, name: str, profile: Profile) -> list[StepInfo]:
        return [StepInfo(s.id, s.title) for s in self.steps]

    def run_setup(
        self, name: str, profile: Profile, prompter: Prompter, emit: EventSink, cancel: threading.Event
    ) -> SetupOutcome:
        self.setup_runs += 1
        scripted = {s.id: s.seconds for s in self.steps if s.seconds is not None}

        def emit_scripted(event: PlanEvent) -> None:
            if isinstance(event, StepFinished) and event.result.step_id in scripted:
                event = StepFinished(replace(event.result, seconds=scripted[event.result.step_id]))
            emit(event)

        ctx = StepContext(profile=profile, prompter=prompter, emit=emit_scripted, cancel=cancel)
        results = run_plan(self.steps, ctx)
        opened = any(r.step_id == "browser" and r.status.value == "done" for r in results)
        if opened:
            self.opened.append(profile.url)
        return SetupOutcome(tuple(results), len(self.steps), profile.url, opened and self.browser_opens)

    def tunnel(self, name: str, profile: Profile, prompter: Prompter) -> FakeTunnel:
        return self.tunnel_session

    def doctor(self, name: str, profile: Profile, cancel: threading.Event) -> Iterator[CheckResult]:
        self.doctor_runs += 1
        half = len(self.checks) // 2
        for index, check in enumerate(self.checks):
            if index == half and self.check_hold is not None:
                while not self.check_hold.wait(0.02):
                    if cancel.is_set():
                        raise Cancelled()
            yield check

    def report(self, name: str, profile: Profile, results: Sequence[CheckResult]) -> str:
        lines = [f"wa-onboard report, profile {name} ({profile.user}@{profile.host})"]
        lines += [f"[{r.status.value}] {r.layer}/{r.id}: {r.summary}" for r in results]
        return "\n".join(lines) + "\n"

    def open_browser(self, url: str) -> bool:
        self.opened.append(url)
        return self.browser_opens
