"""A scripted backend for the app's tests, snapshots and screenshots: no ssh, no network.

Setup runs real ``core.setup.plan`` steps (so the app sees the same events and results as with the real
core) whose work is a script: lines of output, progress, questions for the member, a failure. A step
can be held at any point with a ``threading.Event`` so a test or a screenshot can catch the screen
mid-run. The tunnel and the doctor are fed from queues the test controls.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wa_onboard.core import doctor, paths, tunnel
from wa_onboard.core.doctor.registry import Outcome, fail, ok, run_checks, warn
from wa_onboard.core.errors import Cancelled
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, Prompter, SecretQuestion
from wa_onboard.core.results import CheckResult, TunnelState, TunnelStatus
from wa_onboard.core.setup import conda_scripts
from wa_onboard.core.setup.plan import (
    EventSink,
    NotNeeded,
    PlanEvent,
    SetupOptions,
    SetupOutcome,
    Step,
    StepContext,
    StepError,
    StepFinished,
    run_plan,
)
from wa_onboard.core.setup.run import build_plan, new_context
from wa_onboard.tui.backend import StepInfo

Question = SecretQuestion | HostKeyQuestion | ConfirmQuestion


@dataclass
class FakeStep(Step):
    """One scripted step."""

    id: str = ""
    title: str = ""
    skip: str | None = None
    """Say the work is already done (the step is skipped)."""
    not_needed: str | None = None
    """Skip the step without "already done" (``plan.NotNeeded``: the env this run made has ipykernel)."""
    output: Sequence[str] = ()
    progress: Sequence[tuple[str, float | None]] = ()
    questions: Sequence[Question] = ()
    fail: tuple[str, str, str] | None = None
    """(message, hint, detail) to fail with."""
    fail_times: int = 1
    """How many runs fail before the step succeeds (for Retry)."""
    stream: bool = False
    """Each output line is also the progress message, as ``setup.shell.run_script`` streams conda."""
    hold: threading.Event | None = None
    """The step waits here (after its output) until the event is set, so a test can look."""
    summary: str = ""
    seconds: float | None = None
    """The time the app shows for this step (real runs of a script take ~0 s; snapshots need a fixed one)."""
    answers: list[object] = field(default_factory=list)
    """What the member answered, in order (tests assert on it)."""
    runs: int = 0

    def done(self, ctx: StepContext) -> str | NotNeeded | None:
        return NotNeeded(self.not_needed) if self.not_needed else self.skip

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
        for message, fraction in self.progress:
            ctx.progress(message, fraction)
        for line in self.output:
            ctx.output(line)
            if self.stream:
                ctx.progress(line.strip()[:100])
        if self.hold is not None:
            while not self.hold.wait(0.02):
                ctx.check_cancelled()
        if self.fail is not None and self.runs <= self.fail_times:
            message, hint, detail = self.fail
            raise StepError(message, hint, detail)
        return self.summary


#: Where the demo member's files are on the laptop and on the workstation (Linux homes).
DEMO_HOME = "/home/{user}"
#: What the conda stand-in in the lab (and real conda) prints for ``conda create``, blank lines dropped as
#: ``setup.shell.run_script`` drops them; the drift test checks each line against the stand-in.
CONDA_CREATE_LINES = (
    "Channels:",
    " - defaults",
    "Platform: linux-64",
    "Collecting package metadata (repodata.json): done",
    "Solving environment: done",
    "## Package Plan ##",
)


def _in_home(home: str, path: Path) -> str:
    """A path under this user's home, shown under the demo member's home instead."""
    return f"{home}/{path.relative_to(Path.home().absolute()).as_posix()}"


def include_question(user: str = "bbadger") -> ConfirmQuestion:
    """``tunnel.add_include``'s question, for a laptop without a ~/.ssh/config yet."""
    home = DEMO_HOME.format(user=user)
    target = _in_home(home, tunnel.user_config_path())
    return ConfirmQuestion(
        f"Add an Include line to {target}?",
        f"Adds one line at the top of {target}:\n    Include {_in_home(home, tunnel.config_path())}\n"
        f"so `ssh {tunnel.aliases().ws}` and editors' remote features reach the workstation too. "
        "It only defines wa-* hosts; your other hosts are unchanged.",
        default=False,
    )


def password_question(user: str = "bbadger", profile: Profile | None = None) -> SecretQuestion:
    """The OpenSSH engine's question for ssh's password prompt on the jump host."""
    jump = (profile or Profile(user=user)).jump_address[0]
    return SecretQuestion(f"{user}@{jump}'s password:", f"{user}@{jump}", "password")


def mfa_question(user: str = "bbadger", profile: Profile | None = None) -> SecretQuestion:
    """The OpenSSH engine's question for a keyboard-interactive verification code on the jump host."""
    jump = (profile or Profile(user=user)).jump_address[0]
    return SecretQuestion("Verification code:", f"{user}@{jump}", "otp")


def host_key_question(profile: Profile | None = None) -> HostKeyQuestion:
    """The question for the jump host's key on a first connection (ssh prints type and fingerprint)."""
    jump = (profile or Profile()).jump_address[0]
    return HostKeyQuestion(jump, "ED25519", "SHA256:n2Wc6fJkBq0VZl3Cq0v8h2pO1Rz3X7yYbE4sQm9tKfA")


def conda_failure(python: str = "3.99") -> tuple[str, str, str]:
    """A failed ``conda create`` as the env step reports it: (message, hint, detail)."""
    lines = [
        "PackagesNotFoundError: The following packages are not available from current channels:",
        f"  - python={python}",
    ]
    failure = conda_scripts.conda_failure(lines, python=python)
    return f"conda create failed: {failure.line}", failure.hint, "\n".join(lines)


def demo_steps(user: str = "bbadger") -> list[FakeStep]:
    """The real plan's steps (``setup.build_plan``: ids and titles), scripted as a first run
    goes in the lab: the questions the core asks, the lines it streams, the summaries it returns.
    Every text is checked against the real modules by tests/tui/test_fake_drift.py."""
    profile = Profile(user=user)
    home = DEMO_HOME.format(user=user)
    jump, ws = profile.jump_address[0], profile.host_address[0]
    prefix = f"{home}/.conda/envs/{profile.env}"
    key, ssh_config = (_in_home(home, path) for path in (paths.key_file(), tunnel.config_path()))
    python = f"{prefix}/bin/python"
    url = profile.url
    scripts: dict[str, dict[str, Any]] = {
        "profile": dict(
            seconds=0.0,
            summary=f"{user}@{ws} via {jump}; env {profile.env}, kernel {profile.kernel_name} "
            f"({profile.display_name!r})",
        ),
        "key": dict(
            seconds=0.4,
            questions=[include_question(user)],
            summary=f"made {key} (ed25519); ~/.ssh/config includes {ssh_config}",
        ),
        "login": dict(
            seconds=6.2,
            questions=[host_key_question(profile), password_question(user, profile)],
            summary=f"logged in as {user} on {jump} and {ws}",
        ),
        "key-install": dict(seconds=1.8, summary="key added on the jump host, added on the workstation"),
        "conda": dict(seconds=1.2, summary="conda 24.9.2 from module anaconda; base /opt/anaconda3"),
        "env": dict(
            seconds=94.0,
            output=CONDA_CREATE_LINES,
            progress=[(f"conda create -n {profile.env} python={profile.python} ipykernel", None)],
            stream=True,
            summary=f"created env {profile.env} at {prefix} (python 3.11.9) in 88.4 s of conda",
        ),
        "ipykernel": dict(seconds=0.0, not_needed="ipykernel 6.29.5 came with the env this run created"),
        "kernel": dict(
            seconds=2.2,
            summary=f"registered {profile.kernel_name} ({profile.display_name!r}) -> {python}",
        ),
        "verify": dict(
            seconds=1.4,
            summary=f"{home}/.local/share/jupyter/kernels/{profile.kernel_name.lower()}/kernel.json: "
            f"argv[0] {python} imports ipykernel",
        ),
        "tunnel": dict(
            seconds=2.6,
            summary=f"tunnel up at {url} (background pid 4242); check it: wa-onboard status, "
            "stop it: wa-onboard disconnect",
        ),
        "browser": dict(seconds=0.3, summary=f"opened {url}; log in with your campus password"),
    }
    return [FakeStep(step.id, step.title, **scripts[step.id]) for step in build_plan()]


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


def demo_outcomes(user: str = "bbadger") -> dict[str, Outcome]:
    """What each of the doctor's checks says on a laptop whose tunnel runs while JupyterHub is down on
    the workstation (the lab's ``stop_hub()``). Checks not named here are skipped by the real runner."""
    profile = Profile(user=user)
    home = DEMO_HOME.format(user=user)
    jump, ws = profile.jump_address[0], profile.host_address[0]
    names = tunnel.aliases()
    port = profile.local_port
    ssh = "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024"
    fingerprint = "SHA256:3kqJ9hM4sQ0bX7cT1uWfLr8yVn2pZ6eA5dG0iKoHj1E"
    prefix = f"{home}/.conda/envs/{profile.env}"
    return {
        "local.ssh-client": ok(f"{ssh.split(',')[0].split()[0]} (ProxyJump supported)", ssh),
        "local.profile": ok(f"profile '{DEFAULT_PROFILE}': {user} on {ws} via {jump}"),
        "local.key": ok(f"key {paths.key_file().name} (mode 0600, {fingerprint})"),
        "local.ssh-config": ok(
            f"{_in_home(home, tunnel.config_path())} matches the profile ({names.jump}, {names.ws})"
        ),
        "local.port": ok(f"127.0.0.1:{port} is held by our tunnel (ssh (pid 4243))"),
        "network.resolve": ok(f"{jump} resolves to 128.104.158.20"),
        "network.tcp": ok(f"{jump}:22 (128.104.158.20) accepts TCP connections"),
        "network.banner": ok("SSH server answers: SSH-2.0-OpenSSH_8.7"),
        "ssh.jump": ok(f"key login as {user}@{jump} works (BatchMode)"),
        "ssh.workstation": ok(
            f"key login as {user}@{ws} through {jump} works; the tunnel's connection is live"
        ),
        "workstation.disk": warn(
            f"little space left: 812 MB free in {home}",
            "free space in your home on the workstation (e.g. `conda clean --all -y` drops cached packages)",
        ),
        "workstation.conda": ok("conda 24.9.2 via module anaconda", "/opt/anaconda3/bin/conda"),
        "workstation.env": ok(f"env '{profile.env}' at {prefix} (Python 3.11.9)"),
        "workstation.ipykernel": ok(f"ipykernel 6.29.5 imports in env '{profile.env}'"),
        "workstation.kernelspec": ok(
            f"kernel '{profile.kernel_name.lower()}' ({profile.display_name}) runs {prefix}/bin/python"
        ),
        "workstation.hub-port": fail(
            f"nothing listens on the workstation's port {profile.remote_port}: JupyterHub is not running",
            "ask the lab admins to start JupyterHub on the workstation"
            " (or fix the port: wa-onboard setup --remote-port N)",
        ),
        "tunnel.supervisor": ok("supervisor running (pid 4242, up since 09:41)"),
    }


def demo_checks(outcomes: dict[str, Outcome] | None = None) -> list[CheckResult]:
    """The doctor's real checks (ids, layers, order, and the skips that follow a failure, from
    ``core.doctor``'s registry and runner), each answering with its scripted outcome."""
    scripted = demo_outcomes() if outcomes is None else outcomes
    missing = fail("not scripted", "")

    def answer(check_id: str) -> Callable[[object], Outcome]:
        return lambda ctx: scripted.get(check_id, missing)

    checks = [replace(c, func=answer(c.id)) for c in doctor.REGISTRY.checks]
    results = run_checks(checks, None, max_workers=1)
    timed = {"network.tcp": 18, "ssh.jump": 95, "ssh.workstation": 140, "workstation.conda": 210}
    return [replace(r, duration_ms=timed.get(r.id, 2)) for r in results]


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
    assume_yes: bool = False
    """``setup --yes``: the run answers host keys and non-destructive questions, as the real one does."""
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

        options = SetupOptions(profile_name=name, assume_yes=self.assume_yes)
        ctx = new_context(profile, options, prompter, emit_scripted, cancel)
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
