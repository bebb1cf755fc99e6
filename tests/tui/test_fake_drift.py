"""The fake backend (wa_onboard/tui/fake.py) may not show what the real app never shows.

The app's screens were once tested only against the fake, whose check ids had no dots: the real
diagnostics screen crashed on every open while every test passed. So every id, name and text the
fake feeds the app is checked here against the real modules: the plan's steps
(``core.setup.build_plan``), the doctor's registry and runner, and the string templates in the
modules that produce each text (an f-string's fields match any text). A fake text that no real
template can produce fails, naming the text and the module it should come from.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from wa_onboard.core.doctor import REGISTRY, checks_local, checks_remote, checks_tunnel, registry
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion
from wa_onboard.core.results import CheckStatus, TunnelState
from wa_onboard.core.setup import build_plan, conda_scripts, steps_conda, steps_finish, steps_ssh
from wa_onboard.core.setup.plan import Step
from wa_onboard.core.tunnel import sshfiles, supervisor
from wa_onboard.core.tunnel.engines import hops
from wa_onboard.core.tunnel.engines.transcript import secret_question
from wa_onboard.tui import fake

ROOT = Path(__file__).resolve().parents[2]
CONDA_STANDIN = ROOT / "tests" / "lab" / "conda_standin" / "conda"
ANY = "\x00"  # stands for an f-string field while a template is assembled
#: the modules the plan's steps live in: every text a step says comes from one of them
STEP_MODULES = (steps_ssh, steps_conda, steps_finish)


@dataclass(frozen=True)
class Templates:
    """Every string a module can build from literals: plain strings, f-strings, ``a + b`` chains."""

    where: str
    patterns: tuple[re.Pattern[str], ...]

    def produces(self, text: str) -> bool:
        return any(p.fullmatch(text) for p in self.patterns)


def _parts(node: ast.expr) -> list[str] | None:
    """The node as literal pieces and ANY fields; None when it is no string expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out: list[str] = []
        for value in node.values:
            out += [value.value] if isinstance(value, ast.Constant) else [ANY]
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _parts(node.left), _parts(node.right)
        if left is None and right is None:
            return None
        return (left or [ANY]) + (right or [ANY])
    return None


def templates(*sources: ModuleType | Path) -> Templates:
    found: list[re.Pattern[str]] = []
    names = []
    for source in sources:
        if isinstance(source, Path):
            text, names = source.read_text(), [*names, source.name]
        else:
            text, names = inspect.getsource(source), [*names, source.__name__]
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.expr):
                continue
            parts = _parts(node)
            # a template of placeholders and punctuation (f"{a} {b}") would match any text at all
            if parts is None or sum(c.isalnum() for p in parts if p != ANY for c in p) < 4:
                continue
            regex = "".join(".*?" if p == ANY else re.escape(p) for p in parts)
            found.append(re.compile(regex, re.S))
    return Templates(", ".join(names), tuple(found))


def assert_produced(texts: Iterable[tuple[str, str]], real: Templates) -> None:
    strays = [f"{what}: {text!r}" for what, text in texts if text and not real.produces(text)]
    assert not strays, f"texts no template in {real.where} produces:\n" + "\n".join(strays)


# -- the plan: steps, their questions, output and summaries ----------------------------------------


def test_the_fake_plan_is_the_real_plan() -> None:
    real = [(s.id, s.title) for s in build_plan()]
    assert [(s.id, s.title) for s in fake.demo_steps()] == real


def test_step_summaries_are_the_plans_own() -> None:
    real = templates(*STEP_MODULES)
    texts = [(f"step {s.id}", s.skip or s.not_needed or s.summary) for s in fake.demo_steps()]
    assert all(text for _, text in texts), "every real step says what it did"
    assert_produced(texts, real)


def test_the_fake_skips_only_steps_the_real_plan_can_skip() -> None:
    """A first run shows "already done" only where a real step can say so (its own ``done``): the profile
    check and finding conda run every time, so the fake may not show them "already done" either."""
    real = {s.id: type(s) for s in build_plan()}
    for step in fake.demo_steps():
        if step.skip or step.not_needed:
            assert real[step.id].done is not Step.done, f"step {step.id}: the real one is never skipped"


def test_the_failure_is_what_the_env_step_says_for_condas_error() -> None:
    message, hint, detail = fake.conda_failure()
    assert_produced([("failure", message)], templates(*STEP_MODULES))
    failure = conda_scripts.conda_failure(detail.splitlines(), python="3.99")
    assert (message, hint) == (f"conda create failed: {failure.line}", failure.hint)


def test_the_log_shows_what_conda_prints() -> None:
    env = next(s for s in fake.demo_steps() if s.id == "env")
    assert env.stream, "the env step streams conda's lines into the log and the progress line"
    standin = templates(CONDA_STANDIN)
    # the stand-in prints `label: done` through stage(label): the label is the literal
    lines = [("conda", line.removesuffix(": done")) for line in env.output]
    assert_produced([(w, line) for w, line in lines], _with_line_parts(standin))
    assert all(line.strip() for line in env.output), "run_script drops blank lines"
    steps_with_output = [s.id for s in fake.demo_steps() if s.output]
    assert steps_with_output == ["env"], "only conda's create streams into the log in a first run"
    for message, fraction in env.progress:
        assert fraction is None, "conda's progress has no fraction"
        assert_produced([("progress", message)], templates(*STEP_MODULES))


def _with_line_parts(real: Templates) -> Templates:
    """A multi-line print is several log lines: each line of a literal is a template of its own."""
    extra = []
    for pattern in real.patterns:
        if "\\\n" in pattern.pattern or "\n" in pattern.pattern:
            for piece in re.split(r"\\?\n", pattern.pattern):
                if piece:
                    extra.append(re.compile(piece, re.S))
    return Templates(real.where, real.patterns + tuple(extra))


def test_the_questions_are_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = {s.id: s for s in fake.demo_steps()}
    profile = Profile(user="bbadger")
    jump_hop = hops(profile)[0]

    # the Include consent: ask the real function on a laptop with no ~/.ssh/config, and decline
    home = Path(fake.DEMO_HOME.format(user="bbadger"))
    monkeypatch.setenv("HOME", str(tmp_path))
    asked: list[ConfirmQuestion] = []

    class Recorder:
        def confirm(self, question: ConfirmQuestion) -> bool:
            asked.append(question)
            return False

    assert sshfiles.add_include(Recorder()) is False  # type: ignore[arg-type]
    real = asked[0]
    monkeypatch.undo()
    (mine,) = steps["key"].questions
    assert isinstance(mine, ConfirmQuestion)
    shown = (mine.title, mine.detail, mine.default, mine.destructive)
    assert shown == tuple(
        str(v).replace(str(tmp_path), str(home)) if isinstance(v, str) else v
        for v in (real.title, real.detail, real.default, real.destructive)
    )

    # the login: the host key of the jump host, then the password as the OpenSSH engine reads ssh
    host_key, password = steps["login"].questions
    assert isinstance(host_key, HostKeyQuestion) and host_key.host == jump_hop.host
    assert isinstance(password, SecretQuestion)
    assert secret_question(password.prompt + " ", "", jump_hop) == password
    mfa = fake.mfa_question()
    assert secret_question(f"({mfa.hop}) {mfa.prompt} ", "", jump_hop) == mfa


# -- the doctor: ids, layers, order, skips and texts -----------------------------------------------


def test_the_fake_doctor_runs_the_real_checks() -> None:
    results = fake.demo_checks()
    assert [(r.id, r.layer) for r in results] == [(c.id, c.layer) for c in REGISTRY.checks]
    unknown = set(fake.demo_outcomes()) - {c.id for c in REGISTRY.checks}
    assert not unknown, f"the fake scripts checks the doctor does not have: {unknown}"
    statuses = {r.status for r in results}
    assert {CheckStatus.OK, CheckStatus.WARN, CheckStatus.FAIL, CheckStatus.SKIP} <= statuses


def test_check_texts_are_the_checks_own() -> None:
    real = templates(checks_local, checks_remote, checks_tunnel, registry)
    texts = []
    for r in fake.demo_checks():
        texts += [(f"{r.id} summary", r.summary), (f"{r.id} hint", r.hint)]
    assert_produced(texts, real)


def test_the_fake_tunnel_says_what_the_supervisor_says() -> None:
    session = fake.FakeTunnel([fake.status(TunnelState.UP)])
    session.stop()
    said = [s.message for s in session.statuses()]
    assert_produced([("stop", m) for m in said], templates(supervisor))


def test_the_matcher_catches_a_drifted_text() -> None:
    """The check above can fail: a text from the old fake is produced by no real template."""
    real = templates(checks_local, checks_remote, checks_tunnel, registry)
    assert not real.produces("the hub took a nap on port 8000")  # no real check says this
    assert real.produces("because workstation.hub-port failed")
    with pytest.raises(AssertionError, match="hub-listening"):
        assert_produced([("hub-listening", "because hub-listening failed as a fake said")], real)
