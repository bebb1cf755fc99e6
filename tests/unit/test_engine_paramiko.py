"""The paramiko engine's decisions, without a network: auth order and retries against a fake transport,
host-key rules and the loopback-only listener. The real thing runs in tests/lab/test_tunnel_paramiko.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import paramiko
import pytest

from wa_onboard.core.errors import Cancelled
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion, secret_kind
from wa_onboard.core.tunnel import hostkeys as known_hosts
from wa_onboard.core.tunnel.engines.base import ConnectError, Failure, Hop
from wa_onboard.core.tunnel.engines.paramiko import ParamikoEngine, _prefer_known
from wa_onboard.core.tunnel.engines.paramiko_auth import authenticate
from wa_onboard.core.tunnel.engines.paramiko_channels import ChannelSocket, listen

HOP = Hop("jump", "wa-jump", "bucky", "best-tux.cae.wisc.edu", 22)
KEY = object()


class FakeTransport:
    """An sshd's userauth as paramiko's Transport reports it: allowed methods, partial success, refusals."""

    def __init__(
        self,
        methods: Sequence[str],
        *,
        password: str = "right",
        code: str | None = None,
        key_ok: bool = False,
        then: Sequence[str] = (),
        drop_after: int | None = None,
    ) -> None:
        self.methods = list(methods)
        self.password = password
        self.code = code
        self.key_ok = key_ok
        self.then = list(then)  # methods still required after the first success (AuthenticationMethods)
        self.drop_after = drop_after
        self.authenticated = False
        self.active = True
        self.log: list[str] = []
        self.failures = 0

    def _fail(self) -> None:
        self.failures += 1
        if self.drop_after is not None and self.failures >= self.drop_after:
            self.active = False
        raise paramiko.AuthenticationException("Authentication failed.")

    def _succeed(self) -> list[str]:
        if self.then:
            self.methods, self.then = self.then, []
            return list(self.methods)
        self.authenticated = True
        return []

    def _check(self, method: str) -> None:
        self.log.append(method)
        if method not in self.methods:
            raise paramiko.BadAuthenticationType("Bad authentication type", self.methods)

    def auth_none(self, username: str) -> list[str]:
        raise paramiko.BadAuthenticationType("Bad authentication type", self.methods)

    def auth_publickey(self, username: str, key: Any) -> list[str]:
        self._check("publickey")
        if not self.key_ok:
            self._fail()
        return self._succeed()

    def auth_password(self, username: str, password: str, fallback: bool = True) -> list[str]:
        assert fallback is False  # paramiko's fallback would send the password by itself
        self._check("password")
        if password != self.password:
            self._fail()
        return self._succeed()

    def auth_interactive(
        self, username: str, handler: Callable[[str, str, Sequence[tuple[str, bool]]], list[str]]
    ) -> list[str]:
        self._check("keyboard-interactive")
        prompts = [("Password: ", False)] + ([("Verification code: ", False)] if self.code else [])
        answers = handler("", "", prompts)
        if answers != [self.password] + ([self.code] if self.code else []):
            self._fail()
        return self._succeed()

    def is_authenticated(self) -> bool:
        return self.authenticated

    def is_active(self) -> bool:
        return self.active


class Answers:
    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.asked: list[SecretQuestion] = []

    def secret(self, question: SecretQuestion) -> str | None:
        self.asked.append(question)
        return self.answers.pop(0) if self.answers else None

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        raise AssertionError("no confirm expected")


def test_key_first_and_nothing_asked() -> None:
    t = FakeTransport(["publickey", "password"], key_ok=True)
    authenticate(t, HOP, KEY, Answers(), interactive=False)
    assert t.authenticated and t.log == ["publickey"]


def test_without_prompts_a_refused_key_is_password_needed() -> None:
    t = FakeTransport(["publickey", "password", "keyboard-interactive"])
    prompter = Answers("right")
    with pytest.raises(ConnectError) as err:
        authenticate(t, HOP, KEY, prompter, interactive=False)
    assert err.value.failure is Failure.PASSWORD_NEEDED
    assert prompter.asked == [] and t.log == ["publickey"]


def test_no_key_file_goes_straight_to_the_password() -> None:
    t = FakeTransport(["publickey", "password"])
    prompter = Answers("right")
    authenticate(t, HOP, None, prompter, interactive=True)
    assert t.log == ["password"]
    assert prompter.asked == [
        SecretQuestion(
            "bucky@best-tux.cae.wisc.edu's password:", "bucky@best-tux.cae.wisc.edu", "password", 1
        )
    ]


def test_wrong_password_asked_again_up_to_three_times() -> None:
    t = FakeTransport(["publickey", "password"])
    prompter = Answers("typo", "typo2", "right")
    authenticate(t, HOP, KEY, prompter, interactive=True)
    assert t.authenticated
    assert [q.attempt for q in prompter.asked] == [1, 2, 3]
    assert t.log == ["publickey", "password", "password", "password"]


def test_three_wrong_passwords_fail_without_a_fourth_try() -> None:
    t = FakeTransport(["password", "keyboard-interactive"])
    prompter = Answers("a", "b", "c", "right")
    with pytest.raises(ConnectError) as err:
        authenticate(t, HOP, KEY, prompter, interactive=True)
    assert err.value.failure is Failure.JUMP_AUTH
    assert len(prompter.asked) == 3 and t.failures == 3
    assert "locked" in err.value.hint


def test_keyboard_interactive_prompts_as_the_server_wrote_them() -> None:
    t = FakeTransport(["publickey", "keyboard-interactive"], code="123456")
    prompter = Answers("right", "123456")
    authenticate(t, HOP, KEY, prompter, interactive=True)
    assert t.authenticated
    assert [(q.prompt, q.kind, q.attempt) for q in prompter.asked] == [
        ("Password:", "password", 1),
        ("Verification code:", "otp", 1),
    ]


def test_keyboard_interactive_goes_before_password_when_both_are_offered() -> None:
    # sshd answers every PAM prompt of the "password" method with the password: on an MFA account
    # that method can only fail, and would burn lockout attempts.
    t = FakeTransport(["publickey", "password", "keyboard-interactive"], code="123456")
    prompter = Answers("right", "123456")
    authenticate(t, HOP, KEY, prompter, interactive=True)
    assert t.log == ["publickey", "keyboard-interactive"]


def test_wrong_code_retries_the_whole_round() -> None:
    t = FakeTransport(["keyboard-interactive"], code="123456")
    prompter = Answers("right", "000000", "right", "123456")
    authenticate(t, HOP, None, prompter, interactive=True)
    assert [(q.kind, q.attempt) for q in prompter.asked] == [
        ("password", 1),
        ("otp", 1),
        ("password", 2),
        ("otp", 2),
    ]


def test_partial_success_continues_with_the_next_method() -> None:
    # AuthenticationMethods publickey,keyboard-interactive: the key alone is not enough
    t = FakeTransport(["publickey"], key_ok=True, then=["keyboard-interactive"], code="123456")
    prompter = Answers("right", "123456")
    authenticate(t, HOP, KEY, prompter, interactive=True)
    assert t.authenticated and t.log == ["publickey", "keyboard-interactive"]
    # ... and without prompts that is a password-needed, not a silent hang
    t2 = FakeTransport(["publickey"], key_ok=True, then=["keyboard-interactive"], code="123456")
    with pytest.raises(ConnectError) as err:
        authenticate(t2, HOP, KEY, Answers(), interactive=False)
    assert err.value.failure is Failure.PASSWORD_NEEDED


def test_declining_the_prompt_cancels() -> None:
    with pytest.raises(Cancelled):
        authenticate(FakeTransport(["password"]), HOP, None, Answers(None), interactive=True)
    with pytest.raises(Cancelled):
        authenticate(
            FakeTransport(["keyboard-interactive"], code="1"),
            HOP,
            None,
            Answers("right", None),
            interactive=True,
        )


def test_server_hanging_up_mid_login_is_an_auth_failure() -> None:
    t = FakeTransport(["password"], drop_after=1)
    with pytest.raises(ConnectError) as err:
        authenticate(t, HOP, None, Answers("a", "b"), interactive=True)
    assert err.value.failure is Failure.JUMP_AUTH
    assert "closed the connection" in err.value.message


def test_no_usable_method() -> None:
    with pytest.raises(ConnectError) as err:
        authenticate(FakeTransport(["gssapi-with-mic"]), HOP, KEY, Answers(), interactive=True)
    assert err.value.failure is Failure.JUMP_AUTH and "gssapi-with-mic" in err.value.detail


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("Password: ", "password"),
        ("bucky@host's password:", "password"),
        ("Verification code: ", "otp"),
        ("Passcode or option (1-3): ", "otp"),
        ("Enter PASSCODE:", "otp"),
        ("Enter passphrase for key:", "password"),
        ("(bucky@jump) Password:", "password"),
        ("Favourite colour?", "other"),
    ],
)
def test_secret_kind(prompt: str, kind: str) -> None:
    assert secret_kind(prompt) == kind


def test_known_key_types_are_preferred_like_openssh() -> None:
    offered = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
    assert _prefer_known(offered, []) == offered
    assert _prefer_known(offered, ["ssh-rsa"]) == [
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
    ]
    assert _prefer_known(offered, ["ecdsa-sha2-nistp256"])[0] == "ecdsa-sha2-nistp256"


def test_listener_is_loopback_only_and_a_busy_port_is_named() -> None:
    sock = listen(0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1"
        with pytest.raises(ConnectError) as err:
            listen(port)
        assert err.value.failure is Failure.PORT_BUSY and str(port) in err.value.message
    finally:
        sock.close()


class FakeHostKey:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def get_name(self) -> str:
        return "ssh-ed25519"

    def asbytes(self) -> bytes:
        return self.blob


class FakeKeyTransport:
    def __init__(self, blob: bytes) -> None:
        self.key = FakeHostKey(blob)

    def get_remote_server_key(self) -> FakeHostKey:
        return self.key


class Trust:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[HostKeyQuestion | ConfirmQuestion] = []

    def secret(self, question: SecretQuestion) -> str | None:
        raise AssertionError("no secret expected")

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        self.asked.append(question)
        return self.answer


def engine(tmp_path: Path) -> ParamikoEngine:
    profile = Profile.make({"user": "bucky", "jump": "best-tux.cae.wisc.edu", "host": "ws.example:2222"})
    return ParamikoEngine(profile, known_hosts_path=tmp_path / "kh" / "known_hosts")


def test_first_contact_asks_with_the_openssh_fingerprint_and_remembers(tmp_path: Path) -> None:
    e = engine(tmp_path)
    prompter = Trust(True)
    e._check_host_key(FakeKeyTransport(b"new-key"), e.ws_hop, [], prompter)
    assert prompter.asked == [
        HostKeyQuestion("[ws.example]:2222", "ssh-ed25519", known_hosts.fingerprint(b"new-key"))
    ]
    known = known_hosts.known_keys("ws.example", 2222, e.known_hosts_path)
    assert [k.blob for k in known] == [b"new-key"]
    e._check_host_key(FakeKeyTransport(b"new-key"), e.ws_hop, known, Trust(False))  # known now: no question


def test_declined_key_is_not_written(tmp_path: Path) -> None:
    e = engine(tmp_path)
    with pytest.raises(ConnectError) as err:
        e._check_host_key(FakeKeyTransport(b"k"), e.jump_hop, [], Trust(False))
    assert err.value.failure is Failure.HOST_KEY_REJECTED
    assert not e.known_hosts_path.exists()


def test_changed_key_refused_with_the_removal_command_and_old_key_kept(tmp_path: Path) -> None:
    e = engine(tmp_path)
    known_hosts.append("ws.example", 2222, "ssh-ed25519", b"old", e.known_hosts_path)
    before = e.known_hosts_path.read_text()
    known = known_hosts.known_keys("ws.example", 2222, e.known_hosts_path)
    prompter = Trust(True)
    with pytest.raises(ConnectError) as err:
        e._check_host_key(FakeKeyTransport(b"new"), e.ws_hop, known, prompter)
    assert err.value.failure is Failure.HOST_KEY_CHANGED
    assert f"ssh-keygen -R '[ws.example]:2222' -f {e.known_hosts_path}" in err.value.hint
    assert known_hosts.fingerprint(b"new") in err.value.message
    assert prompter.asked == [] and e.known_hosts_path.read_text() == before


def test_unknown_jump_host_is_told_apart(tmp_path: Path) -> None:
    profile = Profile.make({"user": "bucky", "jump": "nonexistent.invalid"})
    with pytest.raises(ConnectError) as err:
        ParamikoEngine(profile, known_hosts_path=tmp_path / "kh")._dial_jump()
    assert err.value.failure is Failure.JUMP_UNKNOWN


def test_refused_jump_port_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile = Profile.make({"user": "bucky", "jump": f"127.0.0.1:{port}"})
    with pytest.raises(ConnectError) as err:
        ParamikoEngine(profile, known_hosts_path=tmp_path / "kh")._dial_jump()
    assert err.value.failure is Failure.JUMP_UNREACHABLE


def test_nothing_to_use_before_login(tmp_path: Path) -> None:
    e = engine(tmp_path)
    assert not e.is_alive()
    with pytest.raises(ConnectError):
        e.workstation()
    e.close()  # harmless when nothing is open


class GulpChannel:
    """A channel that hands out what it holds, and counts the reads."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sizes: list[int] = []
        self.closed = False

    def recv(self, size: int) -> bytes:
        self.sizes.append(size)
        return self.chunks.pop(0) if self.chunks else b""


def test_tunnel_socket_serves_small_reads_from_one_big_one() -> None:
    channel = GulpChannel([b"SSH-2.0-x\r\n" + b"a" * 100, b"b" * 10])
    sock = ChannelSocket(channel)
    got = [sock.recv(4), sock.recv(200), sock.recv(3), sock.recv(100), sock.recv(5)]
    assert got == [b"SSH-", b"2.0-x\r\n" + b"a" * 100, b"bbb", b"b" * 7, b""]
    assert len(channel.sizes) == 3 and min(channel.sizes) >= 1 << 20  # never a small read from the buffer


def test_a_prompter_failing_on_paramikos_thread_surfaces_on_ours() -> None:
    class Broken(Answers):
        def secret(self, question: SecretQuestion) -> str | None:
            raise Cancelled("closed the dialog")

    with pytest.raises(Cancelled, match="closed the dialog"):
        authenticate(FakeTransport(["keyboard-interactive"]), HOP, None, Broken(), interactive=True)


# --- a real paramiko server that never answers ---------------------------------------------------


class _SilentServer(paramiko.ServerInterface):
    """Lets anyone in and opens sessions, then never answers an exec request (a hung sshd, a
    workstation swapping to death): the reply paramiko's exec_command waits for never comes."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.release.wait(60)  # holds the server's transport thread: no reply at all
        return False


@pytest.fixture
def silent_workstation() -> Iterator[paramiko.Transport]:
    """An authenticated client transport to a real in-process paramiko server that never answers exec."""
    release = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    client_sock = socket.create_connection(listener.getsockname())
    server_sock, _ = listener.accept()
    listener.close()
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.ECDSAKey.generate())
    server.start_server(event=threading.Event(), server=_SilentServer(release))  # negotiates in its thread
    client = paramiko.Transport(client_sock)
    client.start_client(timeout=10)
    client.auth_none("bbadger")
    try:
        yield client
    finally:
        release.set()
        client.close()
        server.close()


def test_a_command_the_server_never_answers_ends_at_its_timeout(
    silent_workstation: paramiko.Transport,
) -> None:
    """exec_command used to run before the timer started, and paramiko waits for the reply forever."""
    from wa_onboard.core.tunnel.engines.paramiko_channels import ChannelShell

    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(ChannelShell(silent_workstation, "ws").run("true", timeout=1.0)),
        daemon=True,
    )
    runner.start()
    runner.join(30)  # a generous bound for "it returned", not a speed check
    assert not runner.is_alive(), "run() still blocked on a server that never answers"
    assert results[0].exit_code == -1 and not results[0].reached_script
