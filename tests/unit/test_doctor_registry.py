"""The doctor's check registry: declaration rules, dependency skipping, concurrency, streaming, cancel."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from wa_onboard.core.doctor import LAYERS, REGISTRY
from wa_onboard.core.doctor.registry import Check, CheckFailed, Outcome, Registry, fail, ok, run_checks, warn
from wa_onboard.core.results import CheckResult, CheckStatus


def const(outcome: Outcome) -> Any:
    return lambda ctx: outcome


def test_declaration_rules() -> None:
    reg = Registry()
    reg.add(Check("a", "local", "a", const(ok("a"))))
    with pytest.raises(ValueError, match="duplicate"):
        reg.add(Check("a", "local", "a", const(ok("a"))))
    with pytest.raises(ValueError, match="unknown layer"):
        reg.add(Check("b", "kitchen", "b", const(ok("b"))))
    with pytest.raises(ValueError, match="unknown or later"):  # declared-before-use: no cycles possible
        reg.add(Check("c", "local", "c", const(ok("c")), ("d",)))


def chain() -> Registry:
    """a fails; b needs a; c needs b; d needs nothing; e needs d and c."""
    reg = Registry()
    reg.add(Check("a", "local", "a", const(fail("a broke", "fix a"))))
    reg.add(Check("b", "network", "b", const(ok("b")), ("a",)))
    reg.add(Check("c", "ssh", "c", const(ok("c")), ("b",)))
    reg.add(Check("d", "local", "d", const(warn("d is iffy", "look at d"))))
    reg.add(Check("e", "tunnel", "e", const(ok("e")), ("d", "c")))
    return reg


def test_dependents_of_a_failure_are_skipped_naming_the_root_cause() -> None:
    results = {r.id: r for r in run_checks(chain().checks, None)}
    assert results["a"].status is CheckStatus.FAIL and results["a"].hint == "fix a"
    for skipped in ("b", "c", "e"):
        assert results[skipped].status is CheckStatus.SKIP
        assert results[skipped].summary == "because a failed"  # the root, not the nearest skip
    assert results["d"].status is CheckStatus.WARN  # a warning blocks nothing


def test_results_in_declaration_order_and_streamed_once_each_after_their_dependencies() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def record(r: CheckResult) -> None:
        with lock:
            seen.append(r.id)

    results = run_checks(chain().checks, None, record)
    assert [r.id for r in results] == ["a", "b", "c", "d", "e"]
    assert sorted(seen) == ["a", "b", "c", "d", "e"]
    assert seen.index("a") < seen.index("b") < seen.index("c") < seen.index("e")
    assert seen.index("d") < seen.index("e")


def test_independent_checks_run_at_the_same_time() -> None:
    """Each of three checks waits for the other two at a barrier: only a concurrent run gets through."""
    barrier = threading.Barrier(3, timeout=10)

    def meet(ctx: object) -> Outcome:
        barrier.wait()
        return ok("met")

    reg = Registry()
    for name in ("x", "y", "z"):
        reg.add(Check(name, "local", name, meet))
    assert {r.status for r in run_checks(reg.checks, None)} == {CheckStatus.OK}


def test_a_check_never_starts_before_its_dependencies_finish() -> None:
    finished: set[str] = set()
    lock = threading.Lock()

    def step(name: str, needs: tuple[str, ...]) -> Any:
        def run(ctx: object) -> Outcome:
            with lock:
                assert set(needs) <= finished, f"{name} started before {needs}"
            with lock:
                finished.add(name)
            return ok(name)

        return run

    reg = Registry()
    reg.add(Check("p", "local", "p", step("p", ())))
    reg.add(Check("q", "local", "q", step("q", ())))
    reg.add(Check("r", "network", "r", step("r", ("p", "q")), ("p", "q")))
    reg.add(Check("s", "ssh", "s", step("s", ("r",)), ("r",)))
    assert {r.status for r in run_checks(reg.checks, None)} == {CheckStatus.OK}


def test_exceptions_become_failures_and_never_stop_the_others() -> None:
    def raises_check_failed(ctx: object) -> Outcome:
        raise CheckFailed("no facts", "run it again", "ssh said no")

    def crashes(ctx: object) -> Outcome:
        raise KeyError("boom")

    reg = Registry()
    reg.add(Check("f", "local", "f", raises_check_failed))
    reg.add(Check("g", "local", "g", crashes))
    reg.add(Check("h", "local", "h", const(ok("fine"))))
    results = {r.id: r for r in run_checks(reg.checks, None)}
    assert (results["f"].status, results["f"].hint, results["f"].detail) == (
        CheckStatus.FAIL,
        "run it again",
        "ssh said no",
    )
    assert results["g"].status is CheckStatus.FAIL and "crashed" in results["g"].summary and results["g"].hint
    assert results["h"].status is CheckStatus.OK


def test_cancel_skips_what_has_not_started() -> None:
    cancel = threading.Event()

    def first(ctx: object) -> Outcome:
        cancel.set()
        return ok("first")

    reg = Registry()
    reg.add(Check("one", "local", "one", first))
    reg.add(Check("two", "network", "two", const(ok("two")), ("one",)))
    reg.add(Check("three", "ssh", "three", const(ok("three")), ("two",)))
    results = {r.id: r for r in run_checks(reg.checks, None, cancel=cancel)}
    assert results["one"].status is CheckStatus.OK
    assert [results[i].summary for i in ("two", "three")] == ["cancelled", "cancelled"]


def test_the_real_registry() -> None:
    checks = REGISTRY.checks
    assert len(checks) >= 15
    assert {c.layer for c in checks} == set(LAYERS)
    ids = [c.id for c in checks]
    assert len(set(ids)) == len(ids)
    for c in checks:
        assert c.id.startswith(c.layer + "."), c.id
        assert c.title
        for dep in c.depends:  # never on a layer above
            assert LAYERS.index(REGISTRY[dep].layer) <= LAYERS.index(c.layer), (c.id, dep)
    # every workstation check rides the one ssh login check
    ws = [c for c in checks if c.layer == "workstation"]
    assert all(_reaches(c, "ssh.workstation") for c in ws)
    assert _reaches(REGISTRY["tunnel.hub"], "workstation.hub-health")


def _reaches(check: Check, target: str) -> bool:
    return target in check.depends or any(_reaches(REGISTRY[d], target) for d in check.depends)
