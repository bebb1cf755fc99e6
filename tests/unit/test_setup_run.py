"""The key install script, and the whole run as a front end starts it (``setup()``): the plan against
the fake workstation, a rerun, ``--yes``, and the per-profile lock."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from tests.unit.fake_workstation import FakeEngine, Workstation
from tests.unit.setup_support import Answers
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, NoPrompter, SecretQuestion
from wa_onboard.core.results import StepStatus
from wa_onboard.core.setup import conda_scripts as cs, kernel_scripts as ks, run as setup_run
from wa_onboard.core.setup.plan import (
    PlanEvent,
    SetupOptions,
    SetupOutcome,
    StepError,
    plan_succeeded,
)

# ------------------------------------------------------------------------------------------ key install


def test_key_install_appends_once_with_private_modes(ws: Workstation) -> None:
    auth = ws.home / ".ssh" / "authorized_keys"
    auth.parent.mkdir(mode=0o755)
    auth.write_text("ssh-rsa AAAA other@laptop")  # no newline at the end
    key = "ssh-ed25519 AAAAC3Nza wa-onboard@laptop"
    outs = [cs.parse(ws.shell().run(ks.install_key_script(key)).stdout).first("key") for _ in range(2)]
    assert outs == ["added", "present"]
    assert auth.read_text().splitlines() == ["ssh-rsa AAAA other@laptop", key]
    assert auth.stat().st_mode & 0o777 == 0o600 and auth.parent.stat().st_mode & 0o777 == 0o700


def test_key_install_works_from_a_non_bash_login_shell(ws: Workstation) -> None:
    from wa_onboard.core.remote import SubprocessShell

    shell = SubprocessShell(["env", f"HOME={ws.home}", "dash", "-c", 'eval "$1"', "ssh"])
    assert shell.run(ks.install_key_script("ssh-ed25519 AAAA k")).ok
    assert (ws.home / ".ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA k\n"


# ------------------------------------------------------------------------------------------ the whole plan


def plan_options(ws: Workstation, opened: list[str]) -> SetupOptions:
    return SetupOptions(
        engine_factory=lambda profile, name: FakeEngine(ws),  # type: ignore[arg-type,return-value]
        open_url=lambda url: opened.append(url) is None,
        start_tunnel=lambda profile, name: "tunnel up at http://localhost:8001/jupyter/",
        tunnel_up=lambda profile, name: None,
    )


def run_plan(options: SetupOptions, prompter: object) -> SetupOutcome:
    """The whole run as a front end starts it."""
    return setup_run.setup(Profile(user="bbadger"), options, prompter)  # type: ignore[arg-type]


def test_whole_plan_then_a_rerun_without_password(ws: Workstation) -> None:
    opened: list[str] = []
    prompter = Answers(password="pw")
    options = plan_options(ws, opened)
    steps = setup_run.build_plan()
    outcome = run_plan(options, prompter)
    results = list(outcome.results)
    assert outcome.succeeded and plan_succeeded(results, steps), results
    assert [r.step_id for r in results] == [s.id for s in steps] and len(steps) == 11
    assert opened == ["http://localhost:8001/jupyter/"] and outcome.browser_opened  # the tunnel's port
    assert outcome.url == "http://localhost:8001/jupyter/"
    assert "wa-onboard status" in results[9].summary
    assert sum(isinstance(q, SecretQuestion) for q in prompter.asked) == 2  # both hops, one password
    assert len((ws.home / ".ssh/authorized_keys").read_text().splitlines()) == 1

    outcome = run_plan(plan_options(ws, opened), NoPrompter())
    assert outcome.succeeded
    statuses = {r.step_id: r.status for r in outcome.results}
    checks = ("profile", "conda", "verify", "tunnel", "browser")
    assert all(statuses[s] is StepStatus.SKIPPED for s in statuses if s not in checks)
    assert len((ws.home / ".ssh/authorized_keys").read_text().splitlines()) == 1


def test_a_new_key_is_installed_even_when_a_running_tunnel_logs_in(ws: Workstation) -> None:
    """A login through the running tunnel's connection is no proof the key works: the new key is
    installed, else setup says done and the next tunnel of its own cannot log in."""
    options = dataclasses.replace(
        plan_options(ws, []),
        engine_factory=lambda profile, name: FakeEngine(ws, tunnel_running=True),  # type: ignore[arg-type,return-value]
    )
    results = {r.step_id: r for r in run_plan(options, Answers(password="pw")).results}
    assert results["key-install"].status is StepStatus.DONE, results["key-install"]
    assert FakeEngine(ws)._key_installed()


def test_already_done_only_for_what_an_earlier_run_did(ws: Workstation) -> None:
    """A first run said "already done" for the profile check, conda, the ipykernel that came with the env
    it had just made and a --no-browser skip. Now it says so only of work found done before the run."""
    tunnels: list[str] = []
    options = dataclasses.replace(
        plan_options(ws, []),
        no_browser=True,
        start_tunnel=lambda profile, name: (
            tunnels.append(name) or "tunnel up at http://localhost:8000/jupyter/"
        ),
        tunnel_up=lambda profile, name: (
            "tunnel up at http://localhost:8000/jupyter/ (pid 7)" if tunnels else None
        ),
    )
    first = run_plan(options, Answers(password="pw")).results
    assert len(first) == 11 and [r.summary for r in first if "already done" in r.summary] == []
    by_id = {r.step_id: r for r in first}
    assert by_id["browser"].summary.startswith("not opening a browser (--no-browser)")
    assert by_id["tunnel"].status is StepStatus.DONE and tunnels == ["default"]

    again = {r.step_id: r for r in run_plan(options, NoPrompter()).results}
    said = {step for step, r in again.items() if r.summary.startswith("already done: ")}
    assert said == {"key", "login", "key-install", "env", "ipykernel", "kernel", "tunnel"}
    assert tunnels == ["default"]  # not started twice


def test_wrong_password_fails_at_login_with_the_engines_hint(ws: Workstation) -> None:
    outcome = run_plan(plan_options(ws, []), Answers(password="nope"))
    assert outcome.failed is outcome.results[-1] and not outcome.succeeded
    assert outcome.results[-1].step_id == "login" and outcome.results[-1].hint == "check your password"


def test_yes_answers_host_keys_and_safe_questions_but_never_a_destructive_one() -> None:
    """``--yes`` in the app: the run answers before the dialogs, and says each answer in the log."""
    member = Answers(confirm=False)
    said: list[str] = []
    yes = setup_run.AssumeYes(member, said.append)
    assert yes.confirm(HostKeyQuestion("wa-jump", "ED25519", "SHA256:abc"))
    assert yes.confirm(ConfirmQuestion("Add an Include line?"))
    assert not yes.confirm(ConfirmQuestion("Delete the env?", destructive=True))  # the member's no
    assert yes.secret(SecretQuestion("Password:", "me@jump")) == "pw"  # secrets still go to the member
    assert [type(q).__name__ for q in member.asked] == ["ConfirmQuestion", "SecretQuestion"]
    assert said == [
        "trusted the host key of wa-jump (--yes): ED25519 SHA256:abc",
        "Add an Include line? yes (--yes)",
    ]

    events: list[PlanEvent] = []
    ctx = setup_run.new_context(Profile(), SetupOptions(assume_yes=True), Answers(), events.append)
    assert isinstance(ctx.prompter, setup_run.AssumeYes) and ctx.prompter.say == ctx.output
    assert not isinstance(
        setup_run.new_context(Profile(), SetupOptions(), Answers(), events.append).prompter,
        setup_run.AssumeYes,
    )


def test_a_second_setup_for_the_same_profile_is_refused() -> None:
    with setup_run.setup_lock("default"):
        with (
            pytest.raises(setup_run.SetupBusy, match="another setup for profile 'default' is running"),
            setup_run.setup_lock("default"),
        ):
            pass
        with setup_run.setup_lock("other"):
            pass
    with setup_run.setup_lock("default"):
        pass


def test_lock_is_held_across_threads_of_one_process_too() -> None:
    got: list[str] = []
    with setup_run.setup_lock("default"):

        def second() -> None:
            try:
                with setup_run.setup_lock("default"):
                    got.append("ran")
            except setup_run.SetupBusy:
                got.append("busy")

        t = threading.Thread(target=second)
        t.start()
        t.join()
    assert got == ["busy"]


def test_step_error_carries_hint_and_detail() -> None:
    err = StepError("m", "h", "d")
    assert (err.message, err.hint, err.detail) == ("m", "h", "d")
