"""Redaction with real secrets: keys made by ssh-keygen, a real TOTP code, a JupyterHub-style token and cookie,
passwords in the shapes logs hold them, and the member's password from its known value. The report built from a
log full of them holds none of them, and still holds what support needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import subprocess
import time
from pathlib import Path

import pytest

from wa_onboard.core.doctor.report import build_report
from wa_onboard.core.profile import Profile
from wa_onboard.core.redact import MARK, redact
from wa_onboard.core.results import CheckResult, CheckStatus
from wa_onboard.core.tunnel import state as tunnelstate


def totp(secret_b32: str) -> str:
    key = base64.b32decode(secret_b32)
    digest = hmac.new(key, struct.pack(">Q", int(time.time() // 30)), hashlib.sha1).digest()
    value = struct.unpack(">I", digest[(o := digest[-1] & 0x0F) : o + 4])[0] & 0x7FFFFFFF
    return str(value % 10**6).zfill(6)


def keygen(tmp_path: Path, kind: str, *extra: str) -> str:
    path = tmp_path / f"key_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path), *extra], check=True)
    return path.read_text()


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, str]:
    """name -> a real secret, and the log lines that carry them."""
    return {
        "ed25519": keygen(tmp_path, "ed25519"),
        "rsa_pem": keygen(tmp_path, "rsa", "-b", "2048", "-m", "PEM"),
        "password": "Tr0ub4dor&3 horse",  # the member's password, with a space and a '&'
        "token": secrets.token_hex(16),  # JupyterHub API tokens are 32 hex characters
        "cookie": "2|1:0|10:1732800000|20:jupyterhub-hub-login|44:"
        + base64.b64encode(secrets.token_bytes(32)).decode(),
        "xsrf": "2|d2f1c0a9|" + secrets.token_hex(16) + "|1732800000",
        "otp": totp(base64.b32encode(secrets.token_bytes(10)).decode()),
        "duo": "7654321",
    }


def log_text(p: dict[str, str]) -> str:
    lines = [
        "12:00:01 INFO connecting",
        f"12:00:02 DEBUG pexpect sent password={p['password']}",
        f'12:00:02 DEBUG config {{"user": "bbadger", "password": "{p["password"]}"}}',
        f"12:00:03 DEBUG login form: username=bbadger&password={p['password'].replace(' ', '+').replace('&', '%26')}&_xsrf={p['xsrf']}",
        f"12:00:03 DEBUG typed {p['password']} at the prompt",  # only the known value can catch this one
        "12:00:04 INFO (bbadger@best-tux.cae.wisc.edu) Verification code: " + p["otp"],
        "12:00:04 INFO Passcode or option (1-3): " + p["duo"],
        f"12:00:05 DEBUG Authorization: token {p['token']}",
        f"12:00:05 DEBUG GET /jupyter/hub/api/user?token={p['token']} -> 200",
        f"12:00:05 DEBUG headers {{'Authorization': 'Bearer {p['token']}'}}",
        f'12:00:06 DEBUG Cookie: jupyterhub-hub-login="{p["cookie"]}"; _xsrf={p["xsrf"]}',
        f"12:00:06 DEBUG Set-Cookie: jupyterhub-session-id={p['token']}; HttpOnly; Path=/jupyter/",
        *("12:00:07 DEBUG key: " + line for line in p["ed25519"].splitlines()),
        p["rsa_pem"],
        "12:00:08 INFO connected: port 8000, pid 4242, host key SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
    ]
    return "\n".join(lines) + "\n"


def secret_fragments(p: dict[str, str]) -> list[str]:
    key_lines = [ln for k in ("ed25519", "rsa_pem") for ln in p[k].splitlines() if "-----" not in ln]
    return [
        p["password"],
        p["token"],
        p["cookie"],
        p["cookie"][-20:],
        p["xsrf"],
        p["otp"],
        p["duo"],
        *key_lines,
    ]


def test_every_planted_secret_is_gone_and_the_useful_parts_stay(planted: dict[str, str]) -> None:
    out = redact(log_text(planted), secrets=[planted["password"]])
    for fragment in secret_fragments(planted):
        assert fragment not in out, fragment
    assert "Tr0ub4dor" not in out and "horse" not in out
    for kept in ("connecting", "port 8000, pid 4242", "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
                 "bbadger@best-tux.cae.wisc.edu", "Verification code: " + MARK, "Authorization: token " + MARK,
                 "[REDACTED PRIVATE KEY]", "GET /jupyter/hub/api/user?token=" + MARK + " -> 200"):  # fmt: skip
        assert kept in out, kept


def test_without_the_known_value_a_bare_password_in_prose_is_the_only_thing_left(
    planted: dict[str, str],
) -> None:
    out = redact(log_text(planted))
    leftovers = [f for f in secret_fragments(planted) if f in out]
    assert leftovers == [planted["password"]]  # "typed <password> at the prompt": needs the known value
    assert out.count("Tr0ub4dor") == 1


def test_harmless_text_is_untouched() -> None:
    text = "ssh: connect to host best-tux.cae.wisc.edu port 22: Connection timed out\nconda 24.9.2 via module anaconda\n"
    assert redact(text) == text


def test_report_from_a_log_full_of_secrets(planted: dict[str, str]) -> None:
    log = tunnelstate.log_file("default")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(log_text(planted))
    results = [
        CheckResult("local.key", "local", CheckStatus.OK, "key wa_onboard_ed25519", duration_ms=3),
        CheckResult(
            "ssh.jump",
            "ssh",
            CheckStatus.FAIL,
            "refused",
            detail=f"password={planted['password']}",
            hint="setup",
        ),
    ]
    versions = {"wa-onboard": "0.1.0", "OpenSSH": "OpenSSH_9.2p1", "conda": "24.9.2", "JupyterHub": "5.2.1"}
    text = build_report("default", Profile(user="bbadger"), results, versions, secrets=[planted["password"]])
    for fragment in secret_fragments(planted):
        assert fragment not in text, fragment
    for section in ("== profile default", "user = bbadger", "== versions", "JupyterHub  5.2.1",
                    "conda       24.9.2", "[fail] ssh.jump", "fix: setup", "== recent log", "port 8000, pid 4242"):  # fmt: skip
        assert section in text, section
