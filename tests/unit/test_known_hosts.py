"""Our known_hosts file must mean to us what it means to OpenSSH: checked against ssh-keygen itself."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from wa_onboard.core.tunnel import hostkeys as known_hosts
from wa_onboard.core.tunnel.hostkeys import Verdict

needs_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")


def make_key(tmp_path: Path, name: str, kind: str = "ed25519") -> tuple[str, bytes, Path]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)], check=True)
    key_type, b64 = Path(f"{path}.pub").read_text().split()[:2]
    return key_type, base64.b64decode(b64), path


@needs_keygen
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    for kind in ("ed25519", "ecdsa", "rsa"):
        _, blob, path = make_key(tmp_path, kind, kind)
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"], capture_output=True, text=True
        )
        assert known_hosts.fingerprint(blob) == out.stdout.split()[1]
        assert "=" not in known_hosts.fingerprint(blob)


def test_host_id_brackets_other_ports() -> None:
    assert known_hosts.host_id("Best-Tux.cae.wisc.edu") == "best-tux.cae.wisc.edu"
    assert known_hosts.host_id("best-tux.cae.wisc.edu", 2222) == "[best-tux.cae.wisc.edu]:2222"


@needs_keygen
def test_appended_lines_are_found_by_ssh_keygen(tmp_path: Path) -> None:
    kh = tmp_path / "ssh" / "known_hosts"
    key_type, blob, _ = make_key(tmp_path, "a")
    known_hosts.append("jump.example", 22, key_type, blob, kh)
    known_hosts.append("ws.example", 2222, key_type, blob, kh)
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    assert oct(kh.parent.stat().st_mode & 0o777) == "0o700"
    assert kh.read_text().splitlines()[1].startswith("[ws.example]:2222 ssh-ed25519 AAAA")
    for host in ("jump.example", "[ws.example]:2222"):
        out = subprocess.run(["ssh-keygen", "-F", host, "-f", str(kh)], capture_output=True, text=True)
        assert out.returncode == 0, host
    # and we read back what we wrote, port for port
    assert [k.blob for k in known_hosts.known_keys("ws.example", 2222, kh)] == [blob]
    assert known_hosts.known_keys("ws.example", 22, kh) == []


def test_append_keeps_a_last_line_without_newline(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("# the member's own comment")
    known_hosts.append("h", 22, "ssh-ed25519", b"\x00\x01", kh)
    assert kh.read_text() == "# the member's own comment\nh ssh-ed25519 AAE=\n"


@needs_keygen
def test_hashed_lines_written_by_ssh_keygen_are_read(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    key_type, blob, _ = make_key(tmp_path, "a")
    known_hosts.append("jump.example", 22, key_type, blob, kh)
    known_hosts.append("ws.example", 2222, key_type, blob, kh)
    subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert "jump.example" not in kh.read_text()  # hashed now
    assert [k.blob for k in known_hosts.known_keys("jump.example", 22, kh)] == [blob]
    assert [k.blob for k in known_hosts.known_keys("ws.example", 2222, kh)] == [blob]
    assert known_hosts.known_keys("other.example", 22, kh) == []


def test_patterns_negation_markers_and_junk() -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            "*.wisc.edu,!evil.wisc.edu ssh-ed25519 AAE=",
            "best-tu? ssh-rsa AAI=",
            "@revoked * ssh-ed25519 AAM=",
            "@cert-authority *.wisc.edu ssh-ed25519 AAQ=",
            "broken-line-without-key",
            "bad.example ssh-ed25519 not-base64!",
        ]
    )
    found = known_hosts.parse(text, "best-tux.cae.wisc.edu")
    assert [(k.key_type, k.blob, k.marker) for k in found] == [
        ("ssh-ed25519", b"\x00\x01", ""),
        ("ssh-ed25519", b"\x00\x03", "@revoked"),
        ("ssh-ed25519", b"\x00\x04", "@cert-authority"),
    ]
    assert [k.key_type for k in known_hosts.parse(text, "best-tux")] == ["ssh-rsa", "ssh-ed25519"]
    assert [k.marker for k in known_hosts.parse(text, "evil.wisc.edu")] == ["@revoked", "@cert-authority"]
    assert [k.marker for k in known_hosts.parse(text, "bad.example")] == ["@revoked"]  # its own line is junk


def test_judge_like_openssh() -> None:
    on_file = [known_hosts.KnownKey("ssh-ed25519", b"A"), known_hosts.KnownKey("ssh-rsa", b"R")]
    assert known_hosts.judge(on_file, "ssh-ed25519", b"A") is Verdict.KNOWN
    assert known_hosts.judge(on_file, "ssh-ed25519", b"B") is Verdict.CHANGED
    # a key of another type than the ones on file is a change, as OpenSSH says, not a first contact
    assert known_hosts.judge(on_file, "ecdsa-sha2-nistp256", b"E") is Verdict.CHANGED
    assert known_hosts.judge([], "ssh-ed25519", b"A") is Verdict.UNKNOWN
    revoked = [known_hosts.KnownKey("ssh-ed25519", b"A", "@revoked")]
    assert known_hosts.judge(revoked, "ssh-ed25519", b"A") is Verdict.REVOKED
    # a CA line is not a host key: a key "signed" by it is still unknown to us
    ca = [known_hosts.KnownKey("ssh-ed25519", b"C", "@cert-authority")]
    assert known_hosts.judge(ca, "ssh-ed25519", b"A") is Verdict.UNKNOWN


@needs_keygen
def test_removal_command_removes_exactly_that_host(tmp_path: Path) -> None:
    kh = tmp_path / "dir with space" / "known_hosts"
    key_type, blob, _ = make_key(tmp_path, "a")
    known_hosts.append("ws.example", 2222, key_type, blob, kh)
    known_hosts.append("jump.example", 22, key_type, blob, kh)
    command = known_hosts.removal_command("ws.example", 2222, kh)
    assert command == f"ssh-keygen -R '[ws.example]:2222' -f '{kh}'"
    subprocess.run(["sh", "-c", command], check=True, capture_output=True)
    assert known_hosts.known_keys("ws.example", 2222, kh) == []
    assert len(known_hosts.known_keys("jump.example", 22, kh)) == 1


def test_default_path_is_the_one_our_ssh_config_names(isolated_home: Path) -> None:
    assert known_hosts.default_path() == isolated_home / ".ssh" / "wa-onboard" / "known_hosts"


@needs_keygen
@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
@pytest.mark.parametrize("port", [22, 2222])
def test_a_key_of_another_type_is_changed_not_unknown(tmp_path: Path, hashed: bool, port: int) -> None:
    """ed25519 on file, ECDSA (or RSA) offered: refused like OpenSSH, for hashed and ``[host]:port`` lines.
    Only a host (and port) with nothing on file is a first contact."""
    kh = tmp_path / "known_hosts"
    ed_type, ed_blob, _ = make_key(tmp_path, "ed", "ed25519")
    known_hosts.append("ws.example", port, ed_type, ed_blob, kh)
    if hashed:
        subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
        assert "ws.example" not in kh.read_text()
    on_file = known_hosts.known_keys("ws.example", port, kh)
    assert [k.key_type for k in on_file] == ["ssh-ed25519"]
    assert known_hosts.judge(on_file, ed_type, ed_blob) is Verdict.KNOWN
    for kind in ("ecdsa", "rsa"):
        other_type, other_blob, _ = make_key(tmp_path, kind, kind)
        assert other_type != ed_type
        assert known_hosts.judge(on_file, other_type, other_blob) is Verdict.CHANGED, kind
    # the same host on another port, and another host, have nothing on file: first contact
    other_port = 2222 if port == 22 else 22
    assert (
        known_hosts.judge(known_hosts.known_keys("ws.example", other_port, kh), ed_type, ed_blob)
        is Verdict.UNKNOWN
    )
    assert (
        known_hosts.judge(known_hosts.known_keys("jump.example", port, kh), ed_type, ed_blob)
        is Verdict.UNKNOWN
    )


def test_judge_reads_written_lines_for_bracketed_ports() -> None:
    text = "[ws.example]:2222 ssh-ed25519 AAE=\nws.example ecdsa-sha2-nistp256 AAI=\n"
    on_2222 = known_hosts.parse(text, known_hosts.host_id("ws.example", 2222))
    assert known_hosts.judge(on_2222, "ssh-ed25519", b"\x00\x01") is Verdict.KNOWN
    assert known_hosts.judge(on_2222, "ecdsa-sha2-nistp256", b"\x00\x02") is Verdict.CHANGED
    on_22 = known_hosts.parse(text, known_hosts.host_id("ws.example"))
    assert known_hosts.judge(on_22, "ecdsa-sha2-nistp256", b"\x00\x02") is Verdict.KNOWN
    assert known_hosts.judge(on_22, "ssh-ed25519", b"\x00\x01") is Verdict.CHANGED
    # a revoked key stays revoked whatever else is on file
    revoked = known_hosts.parse(text + "@revoked * ssh-ed25519 AAE=\n", "[ws.example]:2222")
    assert known_hosts.judge(revoked, "ssh-ed25519", b"\x00\x01") is Verdict.REVOKED


def test_openssh_changed_key_refusal_shows_the_new_fingerprint() -> None:
    """The member must be able to compare what the host sends now with what the admins publish."""
    from wa_onboard.core.profile import Profile
    from wa_onboard.core.tunnel.engines import classify, hops
    from wa_onboard.core.tunnel.engines.base import Failure

    jump, ws = hops(Profile.make({"user": "bbadger"}))
    # what OpenSSH 9.2 prints when ed25519 is on file and the host now sends ECDSA
    text = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n"
        "The fingerprint for the ECDSA key sent by the remote host is\r\n"
        "SHA256:1IKpZo2LzztDIY+BScd0E5VoKv3b6hQ5payMgGmIprs.\r\n"
        "Offending ED25519 key in /h/.ssh/wa-onboard/known_hosts:2\r\n"
        "Host key for carproject-06.engr.wisc.edu has changed and you have requested strict checking.\r\n"
        "Host key verification failed.\r\n"
    )
    err = classify(text, ws, jump)
    assert err.failure is Failure.HOST_KEY_CHANGED
    assert "ECDSA key SHA256:1IKpZo2LzztDIY+BScd0E5VoKv3b6hQ5payMgGmIprs" in err.message
    assert "SHA256:1IKpZo2LzztDIY+BScd0E5VoKv3b6hQ5payMgGmIprs." not in err.message
