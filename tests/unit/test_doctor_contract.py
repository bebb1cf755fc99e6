"""``doctor --json`` is a contract (like pipx's tests/test_result_contract.py): keys, types and values pinned.
Also the exit codes: 0 when nothing failed (warnings allowed), 1 otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wa_onboard import __version__, cli
from wa_onboard.commands import doctor as doctor_cmd
from wa_onboard.core import doctor
from wa_onboard.core.results import CheckResult, CheckStatus

TOP_KEYS = ["version", "profile", "ok", "checks"]
CHECK_KEYS = ["id", "layer", "status", "summary", "detail", "hint", "duration_ms"]
TYPES = {
    "id": str,
    "layer": str,
    "status": str,
    "summary": str,
    "detail": str,
    "hint": str,
    "duration_ms": int,
}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*argv, "doctor", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_json_contract_on_a_laptop_that_was_never_set_up(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys)
    assert list(data) == TOP_KEYS
    assert data["version"] == __version__ and data["profile"] == "default"
    assert data["ok"] is False and code == 1
    assert len(data["checks"]) == len(doctor.REGISTRY) >= 15
    for check in data["checks"]:
        assert list(check) == CHECK_KEYS
        for key, kind in TYPES.items():
            assert isinstance(check[key], kind), (key, check)
        assert check["status"] in {"ok", "warn", "fail", "skip"}
        assert check["layer"] in doctor.LAYERS
    by_id = {c["id"]: c for c in data["checks"]}
    assert by_id["local.profile"]["status"] == "fail"
    assert "--user" in by_id["local.profile"]["hint"]
    assert by_id["ssh.jump"] == {
        **by_id["ssh.jump"],
        "status": "skip",
        "summary": "because local.profile failed",
    }


def test_json_names_the_profile(capsys: pytest.CaptureFixture[str]) -> None:
    _, data = run_json(capsys, "--profile", "ws7")
    assert data["profile"] == "ws7"
    assert "wa-onboard --profile ws7 setup" in {c["id"]: c for c in data["checks"]}["local.profile"]["hint"]


def canned(*statuses: CheckStatus) -> doctor.DoctorRun:
    results = tuple(
        CheckResult(f"local.c{i}", "local", s, f"check {i}", hint="do x" if s is CheckStatus.FAIL else "")
        for i, s in enumerate(statuses)
    )
    return doctor.DoctorRun("default", results, {"wa-onboard": __version__})


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((CheckStatus.OK, CheckStatus.OK), 0),
        ((CheckStatus.OK, CheckStatus.WARN, CheckStatus.SKIP), 0),
        ((CheckStatus.OK, CheckStatus.FAIL, CheckStatus.SKIP), 1),
    ],
)
def test_exit_code_is_1_only_when_something_failed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    statuses: tuple[CheckStatus, ...],
    code: int,
) -> None:
    monkeypatch.setattr(doctor, "run_doctor", lambda *a, **k: canned(*statuses))
    assert cli.main(["doctor", "--json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is (code == 0)
    assert [c["status"] for c in data["checks"]] == [s.value for s in statuses]
    assert cli.main(["doctor"]) == code  # the table says the same
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert (
        f"{len(statuses)} checks:" in flat
        and f"{sum(s is CheckStatus.FAIL for s in statuses)} failed" in flat
    )
    if code:
        assert "fix: do x" in out


def test_to_json_is_the_documented_shape() -> None:
    data = doctor_cmd.to_json(canned(CheckStatus.WARN))
    assert data == {
        "version": __version__,
        "profile": "default",
        "ok": True,
        "checks": [
            {
                "id": "local.c0",
                "layer": "local",
                "status": "warn",
                "summary": "check 0",
                "detail": "",
                "hint": "",
                "duration_ms": 0,
            }
        ],
    }
    assert tuple(data) == doctor_cmd.JSON_KEYS and tuple(data["checks"][0]) == doctor_cmd.CHECK_KEYS


def test_tui_entry_points_stream_every_check_and_report_on_them() -> None:
    from wa_onboard.core.profile import Profile

    results = list(doctor.iter_checks(Profile(), name="default"))
    assert sorted(r.id for r in results) == sorted(c.id for c in doctor.REGISTRY.checks)
    text = doctor.render_report(Profile(), results, name="default")
    assert "== versions" in text and "OpenSSH" in text and "[fail] local.profile" in text
