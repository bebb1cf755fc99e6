"""Unit tests of the tunnel side: our ssh_config, the Include, ssh's messages, backoff, state and lock,
port holders, the hub probe, the CLI prompter and the OpenSSH engine's login dialogue (against a scripted
stand-in for ssh, so no network is needed)."""

from __future__ import annotations

import io
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wa_onboard.commands.prompter_cli import CliPrompter
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, PasswordOnce, SecretQuestion
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import procs, sshfiles, state as tunnelstate
from wa_onboard.core.tunnel.daemon import _notify_ready, _read_line
from wa_onboard.core.tunnel.engines import Engine, classify, hops
from wa_onboard.core.tunnel.engines.base import ConnectError, Failure
from wa_onboard.core.tunnel.engines.openssh import OpenSshEngine, _control_sockets_exist
from wa_onboard.core.tunnel.probe import hub_version, probe_hub
from wa_onboard.core.tunnel.reach import PathWatch
from wa_onboard.core.tunnel.supervisor import Backoff

PROFILE = Profile(user="bbadger", jump="best-tux.cae.wisc.edu", host="carproject-06.engr.wisc.edu:2222")


# --- ssh_config -------------------------------------------------------------------------------------


def test_config_has_both_hops_absolute_paths_and_keeps_other_profiles(isolated_home: Path) -> None:
    sshfiles.write_config(PROFILE)
    sshfiles.write_config(PROFILE.updated(host="carproject-07.engr.wisc.edu"), "ws7")
    text = sshfiles.config_path().read_text()
    assert sshfiles.config_path().stat().st_mode & 0o777 == 0o600
    assert "Host wa-jump\n    HostName best-tux.cae.wisc.edu\n    Port 22\n    User bbadger" in text
    assert "Host wa-ws\n    HostName carproject-06.engr.wisc.edu\n    Port 2222\n" in text
    assert f"    ProxyCommand ssh -F {sshfiles.config_path()} -W '[%h]:%p' wa-jump\n" in text
    assert "-W '[%h]:%p' wa-ws7-jump\n" in text and "ProxyJump" not in text
    assert f"    IdentityFile {isolated_home}/.ssh/wa_onboard_ed25519\n" in text
    assert f"    UserKnownHostsFile {isolated_home}/.ssh/wa-onboard/known_hosts\n" in text
    for line in (
        "IdentitiesOnly yes",
        "StrictHostKeyChecking ask",
        "ServerAliveInterval 15",
        "ServerAliveCountMax 3",
        "ExitOnForwardFailure yes",
        "ControlMaster auto",
    ):
        assert text.count(f"    {line}\n") == 4  # two hops, two profiles
    # rewriting one profile leaves the other as it was
    sshfiles.write_config(PROFILE.updated(user="other"))
    again = sshfiles.config_path().read_text()
    assert "User other" in again and "Host wa-ws7-ws\n    HostName carproject-07.engr.wisc.edu" in again
    assert again.count("# >>> wa-onboard profile default >>>") == 1


def test_openssh_reads_our_config(isolated_home: Path) -> None:
    sshfiles.write_config(PROFILE)
    out = subprocess.run(
        ["ssh", "-G", "-F", str(sshfiles.config_path()), "wa-ws"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert f"proxycommand ssh -F {sshfiles.config_path()} -W '[%h]:%p' wa-jump" in out and "port 2222" in out
    control = next(ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("controlpath "))
    assert len(control) + 17 <= 104  # macOS's socket path limit, with ssh's temporary suffix


def test_long_home_gets_a_short_private_control_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / ("h" * 80)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    short = sshfiles.control_dir()
    assert not str(short).startswith(str(home)) and short.stat().st_mode & 0o777 == 0o700


def test_paths_with_spaces_and_percent_are_quoted_and_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "my 100% home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    text = sshfiles.render_profile(PROFILE)
    assert f'IdentityFile "{str(home).replace("%", "%%")}/.ssh/wa_onboard_ed25519"' in text


def test_ensure_key_makes_an_ed25519_key_once(isolated_home: Path) -> None:
    key, created = sshfiles.ensure_key()
    assert created and key.stat().st_mode & 0o777 == 0o600
    assert sshfiles.public_key_text().startswith("ssh-ed25519 ")
    assert "wa-onboard@" in sshfiles.public_key_text()
    assert sshfiles.ensure_key() == (key, False)


# --- the Include in ~/.ssh/config --------------------------------------------------------------------


class Answers:
    def __init__(self, yes: bool) -> None:
        self.yes = yes
        self.asked: list[Any] = []

    def secret(self, question: SecretQuestion) -> str | None:
        return None

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        self.asked.append(question)
        return self.yes


def test_include_is_never_added_without_consent(isolated_home: Path) -> None:
    user_config = isolated_home / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700)
    user_config.write_text("Host *\n    User me\n")
    assert sshfiles.add_include(Answers(False)) is False
    assert user_config.read_text() == "Host *\n    User me\n"
    assert not user_config.with_name("config.wa-onboard.bak").exists()


def test_include_goes_on_top_once_with_a_backup(isolated_home: Path) -> None:
    user_config = isolated_home / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700)
    original = "Host *\n    User me\n"
    user_config.write_text(original)
    yes = Answers(True)
    assert sshfiles.add_include(yes) is True
    text = user_config.read_text()
    assert text.splitlines()[1] == f"Include {sshfiles.config_path()}" and text.endswith(original)
    assert user_config.with_name("config.wa-onboard.bak").read_text() == original
    assert sshfiles.add_include(yes) is True and user_config.read_text() == text  # idempotent, no question
    assert len(yes.asked) == 1 and not yes.asked[0].destructive
    assert sshfiles.include_present()


def test_include_inside_a_host_block_does_not_count(isolated_home: Path) -> None:
    assert not sshfiles.include_present(f"Host x\n    Include {sshfiles.config_path()}\n")
    assert sshfiles.include_present("# mine\nInclude ~/.ssh/wa-onboard/config\nHost x\n")


# --- telling ssh's failures apart --------------------------------------------------------------------

JUMP, WS = hops(PROFILE)


@pytest.mark.parametrize(
    ("text", "hop", "failure"),
    [
        (
            "ssh: Could not resolve hostname best-tux.cae.wisc.edu: Name or service not known",
            JUMP,
            Failure.JUMP_UNKNOWN,
        ),
        (
            "ssh: connect to host best-tux.cae.wisc.edu port 22: Connection refused",
            JUMP,
            Failure.JUMP_UNREACHABLE,
        ),
        (
            "ssh: connect to host best-tux.cae.wisc.edu port 22: No route to host",
            JUMP,
            Failure.JUMP_UNREACHABLE,
        ),
        (
            "ssh: connect to host best-tux.cae.wisc.edu port 22: Connection timed out",
            JUMP,
            Failure.JUMP_UNREACHABLE,
        ),
        (
            "channel 0: open failed: connect failed: Connection refused\r\nstdio forwarding failed\r\n"
            "Connection closed by UNKNOWN port 65535",
            WS,
            Failure.WS_UNREACHABLE,
        ),
        ("bbadger@best-tux.cae.wisc.edu: Permission denied (publickey,password).", JUMP, Failure.JUMP_AUTH),
        ("bbadger@carproject-06.engr.wisc.edu: Permission denied (publickey,password).", WS, Failure.WS_AUTH),
        (
            "No ED25519 host key is known for best-tux.cae.wisc.edu and you have requested strict checking.\r\n"
            "Host key verification failed.",
            JUMP,
            Failure.HOST_KEY_REJECTED,
        ),
        (  # ExitOnForwardFailure: the port was taken between our look and ssh's bind
            "bind [127.0.0.1]:8000: Address already in use\r\n"
            "channel_setup_fwd_listener_tcpip: cannot listen to port: 8000\r\n"
            "Could not request local forwarding.",
            WS,
            Failure.PORT_BUSY,
        ),
    ],
)
def test_classify(text: str, hop: Any, failure: Failure) -> None:
    assert classify(text, hop, JUMP).failure is failure


def test_batch_mode_permission_denied_is_password_needed() -> None:
    err = classify(
        "bbadger@best-tux.cae.wisc.edu: Permission denied (publickey,keyboard-interactive).",
        JUMP,
        JUMP,
        interactive=False,
    )
    assert err.failure is Failure.PASSWORD_NEEDED


def test_changed_host_key_names_the_removal_command(isolated_home: Path) -> None:
    text = (
        "@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
        "Host key for [carproject-06.engr.wisc.edu]:2222 has changed and you have requested strict checking.\r\n"
        "Host key verification failed.\r\n"
    )
    err = classify(text, WS, JUMP)
    assert err.failure is Failure.HOST_KEY_CHANGED
    assert f"ssh-keygen -R '[carproject-06.engr.wisc.edu]:2222' -f {sshfiles.known_hosts_path()}" in err.hint


# --- the login dialogue, against a scripted ssh -------------------------------------------------------

FAKE_SSH = textwrap.dedent('''\
    #!{python}
    """Plays ssh's side of a login: the script is in $FAKE_SSH_SCRIPT, one step per line."""
    import os, sys, getpass
    alias = sys.argv[-1]
    marker = next(a.split("echo ", 1)[1] for a in sys.argv if a.startswith("LocalCommand="))
    log = open(os.environ["FAKE_SSH_LOG"], "a")
    for step in open(os.environ["FAKE_SSH_SCRIPT"]).read().split("\\n---\\n"):
        kind, _, text = step.partition(" ")
        text = text.replace("ALIAS", alias)
        if kind == "ask":
            answer = getpass.getpass(text)
            log.write(f"{{alias}}:{{answer}}\\n"); log.flush()
            want = os.environ.get("FAKE_SSH_WANT", "")
            if want and answer != want:
                print("Permission denied, please try again.", file=sys.stderr)
                continue
        elif kind == "yesno":
            answer = input(text)
            if answer != "yes":
                print("Host key verification failed.", file=sys.stderr); sys.exit(255)
        elif kind == "say":
            print(text, file=sys.stderr)
        elif kind == "exit":
            sys.exit(int(text))
    print(marker, flush=True)
    import time; time.sleep(30)
''')


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    prog = tmp_path / "ssh"
    prog.write_text(FAKE_SSH.format(python=sys.executable))
    prog.chmod(0o755)
    log = tmp_path / "answers.log"
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))

    def engine(script: str, want: str = "") -> tuple[OpenSshEngine, Path]:
        (tmp_path / "script").write_text(script)
        monkeypatch.setenv("FAKE_SSH_SCRIPT", str(tmp_path / "script"))
        monkeypatch.setenv("FAKE_SSH_WANT", want)
        e = OpenSshEngine(PROFILE, ssh=str(prog), login_timeout=10)
        e.master_pid = lambda hop: None  # type: ignore[method-assign]  # no real master to ask
        return e, log

    return engine


class Scripted:
    def __init__(self, *answers: str, trust: bool = True) -> None:
        self.answers = list(answers)
        self.trust = trust
        self.questions: list[Any] = []

    def secret(self, question: SecretQuestion) -> str | None:
        self.questions.append(question)
        return self.answers.pop(0) if self.answers else None

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        self.questions.append(question)
        return self.trust


HOSTKEY = (
    "yesno The authenticity of host 'best-tux.cae.wisc.edu (10.0.0.1)' can't be established.\n"
    "ED25519 key fingerprint is SHA256:abcDEF123+/xyz.\nThis key is not known by any other names.\n"
    "Are you sure you want to continue connecting (yes/no/[fingerprint])? "
)


def test_host_key_password_and_mfa_answered_through_the_prompter(fake_ssh: Any) -> None:
    script = "\n---\n".join(
        [
            HOSTKEY,
            "ask (bbadger@best-tux.cae.wisc.edu) Password: ",
            "ask (bbadger@best-tux.cae.wisc.edu) Verification code: ",
        ]
    )
    engine, log = fake_ssh(script)
    asked = Scripted("s3cret", "123456", "654321")
    once = PasswordOnce(asked.secret)  # as the CLI's and the app's prompters answer
    try:
        engine.login(SimpleNamespace(secret=once.secret, confirm=asked.confirm), interactive=True)
    finally:
        engine.close()
    hk, pw, code = asked.questions[:3]
    assert hk == HostKeyQuestion("best-tux.cae.wisc.edu", "ED25519", "SHA256:abcDEF123+/xyz")
    assert (pw.prompt, pw.hop, pw.kind, pw.attempt) == (
        "Password:",
        "bbadger@best-tux.cae.wisc.edu",
        "password",
        1,
    )
    assert (code.prompt, code.kind) == ("Verification code:", "otp")
    # the workstation's password prompt got the password the jump host accepted; the code was asked again
    ws_pw = [q for q in asked.questions[3:] if isinstance(q, SecretQuestion) and q.kind == "password"]
    assert ws_pw == []
    assert "wa-ws:s3cret" in log.read_text()


def test_wrong_password_is_asked_again_at_most_three_times(fake_ssh: Any) -> None:
    script = "\n---\n".join(["ask ALIAS's password: "] * 5)
    engine, log = fake_ssh(script, want="right")
    asked = Scripted("a", "b", "c", "right")
    with pytest.raises(ConnectError) as err:
        engine.login(asked, interactive=True)
    engine.close()
    assert err.value.failure is Failure.JUMP_AUTH and "3 times" in err.value.message
    assert [q.attempt for q in asked.questions] == [1, 2, 3]
    assert "right" not in log.read_text()


def test_declined_host_key_and_missing_password(fake_ssh: Any) -> None:
    engine, _ = fake_ssh(HOSTKEY)
    with pytest.raises(ConnectError) as err:
        engine.login(Scripted(trust=False), interactive=True)
    assert err.value.failure is Failure.HOST_KEY_REJECTED
    engine, _ = fake_ssh("ask ALIAS's password: ")
    with pytest.raises(ConnectError) as err:
        engine.login(Scripted(), interactive=True)
    assert err.value.failure is Failure.PASSWORD_NEEDED


def test_ssh_failure_is_classified(fake_ssh: Any) -> None:
    engine, _ = fake_ssh(
        "say ssh: Could not resolve hostname best-tux.cae.wisc.edu: Name or service not known\n---\nexit 255"
    )
    with pytest.raises(ConnectError) as err:
        engine.login(Scripted(), interactive=True)
    assert err.value.failure is Failure.JUMP_UNKNOWN


# --- backoff, state, lock, ports --------------------------------------------------------------------


def test_backoff_grows_is_capped_and_jittered() -> None:
    b = Backoff(base=0.5, factor=2, cap=2.5, jitter=0.5, rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    assert all(0 < d <= 2.5 for d in delays)
    assert delays[0] <= 0.5 and all(d >= 1.25 for d in delays[3:])
    assert len(set(delays)) == len(delays)
    b.reset()
    assert b.next() <= 0.5


def test_state_file_roundtrip_is_private(isolated_home: Path) -> None:
    record = tunnelstate.TunnelRecord(
        "default",
        123,
        8000,
        "http://localhost:8000/jupyter/",
        "openssh",
        "connected",
        since=1.5,
        reconnects=2,
    )
    tunnelstate.write_record(record)
    assert tunnelstate.read_record("default") == record
    assert tunnelstate.state_file("default").stat().st_mode & 0o777 == 0o600
    tunnelstate.remove_record("default", pid=999)  # someone else's: kept
    assert tunnelstate.read_record("default") == record
    tunnelstate.remove_record("default", pid=123)
    assert tunnelstate.read_record("default") is None


def test_lock_is_exclusive_per_profile(isolated_home: Path) -> None:
    assert not tunnelstate.lock_is_held("default")
    with tunnelstate.ProfileLock("default"):
        assert tunnelstate.lock_is_held("default")
        assert not tunnelstate.lock_is_held("ws7")
        with pytest.raises(tunnelstate.LockHeld):
            tunnelstate.ProfileLock("default").acquire()
        code = (
            "import sys; from wa_onboard.core.tunnel import state as t\n"
            "sys.exit(3 if t.lock_is_held('default') else 0)"
        )
        assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert not tunnelstate.lock_is_held("default")


def test_port_holder_is_named() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,sys,time\ns=socket.socket();s.bind(('127.0.0.1',0));"
            "s.listen();print(s.getsockname()[1],flush=True);time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout
        port = int(proc.stdout.readline())
        assert not procs.port_is_free(port)
        holder = procs.port_holder(port)
        assert holder is not None and holder.pid == proc.pid and holder.name.startswith("python")
        assert str(holder) == f"{holder.name} (pid {proc.pid})"
        free = procs.next_free_port(port + 1)
        assert free is not None and free > port and procs.port_is_free(free)
    finally:
        proc.kill()
        proc.wait()


def test_a_listener_psutil_cannot_name_or_see(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux shows another user's socket without its process: named as such. macOS without root lets
    psutil read no socket table at all: lsof answers instead."""
    import psutil

    theirs = SimpleNamespace(status=psutil.CONN_LISTEN, laddr=SimpleNamespace(port=8000), pid=None)
    monkeypatch.setattr(psutil, "net_connections", lambda kind="inet": [theirs])
    monkeypatch.setattr(procs, "_holder_from_lsof", lambda port: procs.PortHolder(4242, "node"))
    assert procs.port_holder(8000) == procs.PortHolder(None, "a process of another user")
    assert procs.port_holder(8001) is None

    def denied(kind: str = "inet") -> list[Any]:
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", denied)
    assert procs.port_holder(8000) == procs.PortHolder(4242, "node")


# --- the hub probe --------------------------------------------------------------------------------


class _Hub(BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:
        code = self.code if self.path.startswith("/jupyter/") else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"version": "6.1.1"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("code", "failure"), [(503, Failure.HUB_UNAVAILABLE), (200, None)])
def test_probe_tells_503_and_404_apart(code: int, failure: Failure | None) -> None:
    handler = type("H", (_Hub,), {"code": code})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        probe = probe_hub(port, "/jupyter")
        assert probe.ok is (failure is None) and probe.failure is failure
        assert probe_hub(port, "/wrong").failure is Failure.HUB_WRONG_URL
    finally:
        server.shutdown()


def test_probe_reads_the_version_from_the_hub_header_without_a_second_request() -> None:
    paths_asked: list[str] = []

    class Versioned(_Hub):
        def do_GET(self) -> None:
            paths_asked.append(self.path)
            self.send_response(200)
            self.send_header("X-JupyterHub-Version", "6.1.1")  # what every JupyterHub handler sets
            self.send_header("Content-Length", "0")  # not the last line: each line ends in \r\n
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Versioned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        probe = probe_hub(port, "/jupyter", timeout=2.0)
        assert probe.ok and probe.version == "6.1.1"
        assert hub_version(port, "/jupyter", probe=probe) == "6.1.1"
    finally:
        server.shutdown()
    assert paths_asked == ["/jupyter/hub/health"]


def test_probe_reset_by_the_far_end_is_forward_refused() -> None:
    # what ssh's forward does when nothing listens on the workstation: accept, then close
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept_and_close() -> None:
        conn, _ = listener.accept()
        conn.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    probe = probe_hub(listener.getsockname()[1], "/jupyter", remote_port=8000)
    listener.close()
    assert probe.failure is Failure.FORWARD_REFUSED and "port 8000" in probe.message


# --- the CLI prompter ---------------------------------------------------------------------------------


def test_password_stdin_is_used_once_for_the_first_password_only() -> None:
    out = io.StringIO()
    p = CliPrompter(
        password_stdin=True, stdin=io.StringIO("pw-from-stdin\nsecond line\n"), out=out, interactive=False
    )
    assert p.secret(SecretQuestion("Password:", "u@jump")) == "pw-from-stdin"
    assert p.secret(SecretQuestion("Password:", "u@jump", attempt=2)) is None  # no terminal: declined
    assert p.secret(SecretQuestion("Verification code:", "u@jump", "otp")) is None
    assert "pw-from-stdin" not in out.getvalue()


def test_secret_prompt_shows_hop_and_server_text() -> None:
    seen: list[str] = []
    p = CliPrompter(
        out=io.StringIO(), interactive=True, ask_secret=lambda prompt: seen.append(prompt) or "123"
    )
    assert p.secret(SecretQuestion("Verification code:", "u@jump", "otp")) == "123"
    assert seen == ["[u@jump] Verification code: "]
    assert (
        CliPrompter(allow_secrets=False, interactive=True).secret(SecretQuestion("Password:", "u@h")) is None
    )


def test_yes_accepts_host_keys_and_safe_changes_only() -> None:
    out = io.StringIO()
    p = CliPrompter(assume_yes=True, out=out, interactive=False)
    assert p.confirm(HostKeyQuestion("jump", "ED25519", "SHA256:abc"))
    assert "SHA256:abc" in out.getvalue()  # the fingerprint is shown before it is trusted
    assert p.confirm(ConfirmQuestion("add a line?"))
    assert not p.confirm(ConfirmQuestion("delete the env?", destructive=True))
    no_tty = CliPrompter(out=io.StringIO(), interactive=False)
    assert not no_tty.confirm(HostKeyQuestion("jump", "ED25519", "SHA256:abc"))
    assert not no_tty.confirm(ConfirmQuestion("add a line?", default=True))
    asked = CliPrompter(out=io.StringIO(), interactive=True, ask_line=lambda prompt: "y")
    assert asked.confirm(HostKeyQuestion("jump", "ED25519", "SHA256:abc"))


def test_without_a_terminal_a_destructive_question_does_not_point_to_yes() -> None:
    """--yes never answers a destructive question: the refusal must not tell the member it would."""
    for assume_yes in (False, True):
        out = io.StringIO()
        p = CliPrompter(assume_yes=assume_yes, out=out, interactive=False)
        assert not p.confirm(ConfirmQuestion("delete the env?", destructive=True))
        said = out.getvalue()
        assert "--yes answers yes" not in said, said
        assert "--yes never answers" in said and "terminal" in said and "app" in said, said
    safe = io.StringIO()
    assert not CliPrompter(out=safe, interactive=False).confirm(ConfirmQuestion("add a line?"))
    assert "--yes answers yes" in safe.getvalue()


# --- status with nothing running ----------------------------------------------------------------------


def test_status_json_when_nothing_runs(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from wa_onboard import cli

    assert cli.main(["status", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    for key in ("profile", "connected", "url", "local_port", "pid", "since", "reconnects", "hub_version"):
        assert key in data
    assert data["connected"] is False and data["state"] == TunnelState.DOWN.value


def test_port_holder_survives_fds_closing_during_the_scan() -> None:
    """The scanning process itself has short-lived fds (the /proc listing); it must still find itself."""
    import os
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        holder = procs.port_holder(listener.getsockname()[1])
    assert holder is not None and holder.pid == os.getpid()


def test_hub_version_from_a_keep_alive_server_does_not_wait_for_eof() -> None:
    # HTTP/1.1 keep-alive (like JupyterHub answering a keep-alive request): the body ends at
    # Content-Length, and our client closes first (the TIME_WAIT stays on its side, not on the port)
    class KeepAlive(_Hub):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b'{"version": "6.1.1"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        probe = probe_hub(server.server_address[1], "/jupyter", timeout=2.0)
        assert probe.ok and probe.version is None  # no header (a proxy may drop it): ask /hub/api
        assert hub_version(server.server_address[1], "/jupyter", timeout=2.0, probe=probe) == "6.1.1"
    finally:
        server.shutdown()


def test_readiness_pipe_says_up_or_down_once() -> None:
    read, write = os.pipe()
    notify = _notify_ready(write)
    assert notify is not None
    for state in (TunnelState.CONNECTING, TunnelState.UP, TunnelState.DOWN):
        notify(TunnelStatus("default", state))
    assert _read_line(read, time.monotonic() + 2, lambda: True) == "connected"
    assert _read_line(read, time.monotonic() + 2, lambda: True) is None  # closed after the first
    os.close(read)


def test_readiness_wait_ends_when_the_supervisor_is_gone() -> None:
    read, write = os.pipe()
    try:
        assert _read_line(read, time.monotonic() + 5, lambda: False) is None
    finally:
        os.close(read)
        os.close(write)


def test_no_control_socket_means_no_master_to_ask(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a long temp HOME makes control_dir() fall back to a per-user dir in /tmp: keep this test out of it
    control = isolated_home / "cm"
    monkeypatch.setattr(sshfiles, "control_dir", lambda: control)
    control.mkdir(mode=0o700)
    assert not _control_sockets_exist()
    (control / "cm-0123").touch()
    assert _control_sockets_exist()


@pytest.mark.parametrize("engine", ["openssh", "paramiko"])
def test_a_reconnect_uses_a_short_connect_timeout_with_either_engine(engine: str) -> None:
    from wa_onboard.core.tunnel.engines import RECONNECT_CONNECT_TIMEOUT, make_engine

    profile = Profile(user="bbadger", engine=engine)
    short = make_engine(profile, "default", reconnecting=True).connect_timeout  # type: ignore[attr-defined]
    first = make_engine(profile, "default").connect_timeout  # type: ignore[attr-defined]
    assert short == RECONNECT_CONNECT_TIMEOUT
    assert (
        first is None or first > short
    )  # the engine's own default (ssh's ConnectTimeout 10, paramiko's 15 s)


# --- the local port: both loopbacks, and a port the system refuses ---------------------------------


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no [::1] on this machine")
def test_a_listener_on_the_ipv6_loopback_makes_the_port_busy() -> None:
    """Browsers try [::1] first for localhost: another program there must not be called free."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        squatter.bind(("::1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        assert procs.port_state(port) is procs.PortState.BUSY
        assert not procs.port_is_free(port)
        assert procs.next_free_port(port) != port
        assert procs.port_holder(port) is not None  # and it is named (Linux: /proc/net/tcp6)


def test_the_url_we_open_is_our_forwards_own_address() -> None:
    from wa_onboard.core.tunnel.supervisor import Supervisor

    assert PROFILE.url.startswith("http://127.0.0.1:")
    assert Supervisor(PROFILE, record_state=False).url == PROFILE.url


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (PermissionError(13, "Permission denied"), "denied"),
        (OSError(98, "Address already in use"), "busy"),
    ],
)
def test_bind_errors_are_told_apart(error: OSError, state: str) -> None:
    import errno

    error.errno = errno.EACCES if isinstance(error, PermissionError) else errno.EADDRINUSE
    assert procs.bind_error_state(error).value == state


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="needs root to drop to nobody")
def test_a_privileged_port_is_denied_not_busy_for_a_normal_user() -> None:
    """Nothing listens on port 80: a normal user just may not bind it (checked as uid nobody)."""
    code = "from wa_onboard.core.tunnel import procs as t; print(t.port_state(80).value)"
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "Permission denied" in done.stderr and "wa_onboard" not in done.stdout:
        pytest.skip(f"nobody cannot run this checkout: {done.stderr.strip()[-200:]}")
    assert done.stdout.strip() == "denied", done.stderr


class _NoLogin(Engine):
    """An engine that must not be used: the port is refused before any login."""

    name = "fake"

    def login(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("logged in although the port can never be ours")

    def close(self) -> None:
        pass


def test_connect_to_a_privileged_port_names_the_real_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    from wa_onboard.core.tunnel.supervisor import Supervisor

    monkeypatch.setattr(procs, "port_state", lambda port: procs.PortState.DENIED)
    sup = Supervisor(
        Profile(user="bbadger", local_port=80),
        engine_factory=lambda reconnecting: _NoLogin(),  # type: ignore[arg-type,return-value]
        record_state=False,
        explicit_port=True,
    )
    with pytest.raises(ConnectError) as caught:
        sup.start()
    assert caught.value.failure is Failure.PORT_PRIVILEGED
    assert "privileged" in caught.value.message and "in use" not in caught.value.message
    assert "--local-port" in caught.value.hint


# --- our supervisor, by its argv ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "profile", "ours"),
    [
        (
            ["/usr/bin/python3", "-m", "wa_onboard.core.tunnel.daemon", "--profile", "default"],
            "default",
            True,
        ),
        (  # started by the previous version, as the tunnel package's supervisor module
            ["/usr/bin/python3", "-m", "wa_onboard.core.tunnel.supervisor", "--profile", "default"],
            "default",
            True,
        ),
        (  # started by the version before that, from the flat core
            ["/usr/bin/python3", "-m", "wa_onboard.core.supervisor", "--profile", "default"],
            "default",
            True,
        ),
        (
            ["/usr/bin/python3", "-m", "wa_onboard.core.tunnel.daemon", "--profile", "ws7"],
            "default",
            False,
        ),
        (["/v/bin/python3.11", "/v/bin/wa-onboard", "connect", "--detach"], "default", True),
        (["/v/bin/python3", "/v/bin/wa-onboard", "--profile", "ws7", "open"], "ws7", True),
        (["/v/bin/python3", "/v/bin/wa-onboard", "--profile=ws7", "connect"], "default", False),
        (["python3", "-I", "-X", "dev", "-m", "wa_onboard", "connect", "--no-tui"], "default", True),
        (["python3", "-m", "wa_onboard", "status"], "default", False),  # holds no lock
        (["less", "/home/b/.local/state/wa-onboard/tunnel-default.log"], "default", False),
        (["vim", "/src/wa_onboard/core/tunnel/supervisor.py", "connect"], "default", False),
        (["python3", "/home/b/wa-onboard/notes.py", "connect"], "default", False),
        (["python3", "-c", "import wa_onboard; 'connect'"], "default", False),
        ([], "default", False),
    ],
)
def test_our_supervisor_is_known_by_its_argv_shape(argv: list[str], profile: str, ours: bool) -> None:
    assert procs.supervisor_argv_matches(argv, profile) is ours


def test_a_process_that_merely_mentions_wa_onboard_is_not_ours(isolated_home: Path) -> None:
    log = isolated_home / "wa-onboard" / "tunnel-default.log"
    log.parent.mkdir()
    log.write_text("")
    with subprocess.Popen(["tail", "-f", str(log)], stdout=subprocess.DEVNULL) as proc:
        try:
            assert procs.process_alive(proc.pid)
            assert not procs.is_our_supervisor(proc.pid, "default")
        finally:
            proc.kill()


def test_process_facts_of_a_child() -> None:
    """Alive, argv, parent, found by its argv, and pinned by its start time; once it ended (a zombie
    not reaped yet counts as ended), nothing reaches its pid any more."""
    import signal

    code = "import time; time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", code]) as child:
        try:
            assert procs.process_alive(child.pid)
            deadline = time.monotonic() + 10  # between fork and exec the child still has our argv
            while (
                procs.process_cmdline(child.pid) != [sys.executable, "-c", code]
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            assert procs.process_cmdline(child.pid) == [sys.executable, "-c", code]
            assert procs.process_parent(child.pid) == os.getpid()
            assert procs.descends_from(child.pid, os.getpid())
            assert not procs.descends_from(os.getpid(), child.pid)
            assert procs.pids_matching(lambda argv: argv[-1] == code) == [child.pid]
            pinned = procs.Pinned(child.pid)
            assert pinned.alive()
        finally:
            child.kill()
        deadline = time.monotonic() + 10
        while procs.process_alive(child.pid):  # a zombie until waited for
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not pinned.alive()
    assert not pinned.signal(signal.SIGTERM)
    assert not procs.process_alive(child.pid) and procs.process_cmdline(child.pid) is None


# --- status while the supervisor reconnects -----------------------------------------------------


class _Unreachable(Engine):
    """A reconnect attempt that fails the way a dead network does."""

    name = "fake"

    def login(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectError(Failure.JUMP_UNREACHABLE, "cannot reach the jump host x: timed out", "check Wi-Fi")

    def close(self) -> None:
        pass


def test_reconnect_attempts_are_in_the_state_file(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, open_path: PathWatch
) -> None:
    from wa_onboard.core.tunnel.supervisor import Supervisor

    seen: list[tunnelstate.TunnelRecord] = []
    stop = threading.Event()
    sup = Supervisor(
        PROFILE,
        engine_factory=lambda reconnecting: _Unreachable(),  # type: ignore[arg-type,return-value]
        backoff=Backoff(base=0.0, cap=0.0),
        path_watch=open_path,
    )
    real_write = tunnelstate.write_record

    def write(record: tunnelstate.TunnelRecord) -> None:
        real_write(record)
        seen.append(record)
        if record.reconnect_attempt >= 3:
            stop.set()

    monkeypatch.setattr(tunnelstate, "write_record", write)
    assert sup._reconnect(stop, "the tunnel's local port is closed") is False
    last = next(r for r in reversed(seen) if r.reconnect_attempt == 3)
    assert last.state == TunnelState.RECONNECTING.value
    assert last.reconnect_since is not None and last.last_error.startswith("cannot reach the jump host")
    assert seen[0].last_error == "the tunnel's local port is closed"


def test_status_during_a_reconnect_says_so_with_the_attempt(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wa_onboard import cli

    tunnelstate.write_record(
        tunnelstate.TunnelRecord(
            profile="default",
            pid=os.getpid(),
            local_port=8000,
            url=PROFILE.url,
            engine="openssh",
            state=TunnelState.RECONNECTING.value,
            message="reconnecting (attempt 3): cannot reach the jump host x: timed out",
            hint="check Wi-Fi",
            reconnect_attempt=3,
            reconnect_since=time.time() - 30,
            last_error="cannot reach the jump host x: timed out",
        )
    )
    monkeypatch.setattr(procs, "is_our_supervisor", lambda pid, name: pid == os.getpid())
    with tunnelstate.ProfileLock("default"):
        assert cli.main(["status"]) == 1
    out = capsys.readouterr().out
    assert "reconnecting since" in out and "attempt 3" in out and "cannot reach the jump host" in out
    assert "start it with" not in out and "disconnect" in out


def test_status_just_after_the_port_closed_says_the_tunnel_reconnects(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record still says connected, ssh is gone: the live supervisor will notice and reconnect."""
    from wa_onboard.core.tunnel.daemon import verify_status

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed_port = spare.getsockname()[1]  # nothing listens once this closes
    tunnelstate.write_record(
        tunnelstate.TunnelRecord(
            profile="default",
            pid=os.getpid(),
            local_port=closed_port,
            url=PROFILE.url,
            engine="openssh",
            state=TunnelState.UP.value,
            base_url="/jupyter",
        )
    )
    monkeypatch.setattr(procs, "is_our_supervisor", lambda pid, name: pid == os.getpid())
    with tunnelstate.ProfileLock("default"):
        status = verify_status("default", PROFILE)
    assert status.state is TunnelState.RECONNECTING and "reconnects on its own" in status.message


# --- no ssh on PATH: every command says what to install ---------------------------------------------


@pytest.fixture
def without_ssh(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """An environment whose PATH has no ssh (python is called by its absolute path), and a short
    private runtime dir so the control sockets' folder is this test's own."""
    import tempfile

    bare = tmp_path / "bin"
    bare.mkdir()
    runtime = tempfile.mkdtemp(prefix="wa", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield {**os.environ, "PATH": str(bare), "BROWSER": "true"}
    import shutil

    shutil.rmtree(runtime, ignore_errors=True)


def _wa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wa_onboard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_without_ssh_every_tunnel_command_says_to_install_it(without_ssh: dict[str, str]) -> None:
    from wa_onboard.core.tunnel.engines.base import INSTALL_SSH_HINT

    runs = [_wa(without_ssh, "connect", "--no-tui", "--no-browser", "--user", "bbadger")]
    sshfiles.write_config(Profile(user="bbadger"))  # set up: the daily commands start the login early
    runs += [_wa(without_ssh, "connect", "--detach", "--no-browser"), _wa(without_ssh, "open")]
    for done in runs:
        text = done.stdout + done.stderr
        assert done.returncode == 1, text
        assert INSTALL_SSH_HINT in text and "Traceback" not in text
        assert "error: connecting" not in text
    status = _wa(without_ssh, "status")
    assert "last: connecting" not in status.stdout and "OpenSSH client" in status.stdout + status.stderr


# --- stale control sockets ----------------------------------------------------------------------------


def _stale_socket(path: Path) -> None:
    """What a SIGKILLed master leaves: a socket file nobody listens on."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


@pytest.fixture
def control(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cm", dir="/tmp"))  # AF_UNIX paths must stay short
    monkeypatch.setattr(sshfiles, "control_dir", lambda: folder)
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def test_a_socket_no_master_answers_is_removed_and_a_live_one_kept(control: Path) -> None:
    from wa_onboard.core.tunnel.engines.openssh import remove_stale_socket

    stale, live, plain = control / "cm-stale", control / "cm-live", control / "cm-file"
    _stale_socket(stale)
    plain.write_text("")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as master:
        master.bind(str(live))
        master.listen()
        assert remove_stale_socket(str(stale)) and not stale.exists()
        assert not remove_stale_socket(str(live)) and live.exists()
    assert not remove_stale_socket(str(plain)) and plain.exists()  # not a socket: not ours to judge
    elsewhere = control.parent / f"{control.name}-x"
    elsewhere.mkdir()
    try:
        _stale_socket(elsewhere / "cm-1")
        assert not remove_stale_socket(str(elsewhere / "cm-1")) and (elsewhere / "cm-1").exists()
    finally:
        (elsewhere / "cm-1").unlink()
        elsewhere.rmdir()


def test_login_clears_the_socket_a_killed_master_left(control: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ssh -O check`` fails on it ("Connection refused"): the socket goes before a new master starts."""
    engine = OpenSshEngine(PROFILE)
    stale = control / "cm-0123abcd"
    _stale_socket(stale)
    monkeypatch.setattr(
        engine,
        "_control",
        lambda hop, command, *extra, timeout=10.0: (
            255,
            f"Control socket connect({stale}): Connection refused",
        ),
    )
    assert engine._live_master_or_clean(engine.jump_hop) is None
    assert not stale.exists()
