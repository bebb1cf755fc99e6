"""Nothing a member types can become an ssh_config directive: proved for every value, not case by case.

For every value the validators accept (user, jump and host with their ports, any profile name, and the home
paths we write into the file), OpenSSH itself (``ssh -G -F <file> <alias>``) reads back exactly that value
and nothing else changes: every other option is what it is for a plain baseline profile. Every value the
validators refuse ends the command line with exit 2 and a one-line error. A home path that cannot be
written safely (a quote, a backslash, ``${``, a control character) is refused by the writer, not written.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from wa_onboard import cli
from wa_onboard.core import paths, validate
from wa_onboard.core.errors import InvalidInput, WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.tunnel import sshfiles

pytestmark = pytest.mark.skipif(
    shutil.which("ssh") is None, reason="needs OpenSSH's ssh (ssh -G is the oracle)"
)

#: a few dozen examples each (every one runs ssh -G twice, a subprocess): about 4 s in all.
#: WA_PROPERTY_EXAMPLES=600 searches deeper (about a minute).
SETTINGS = settings(
    max_examples=int(os.environ.get("WA_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: what a profile changes in ssh -G's output; everything else must be exactly the baseline's
VARYING = {
    "host",
    "hostname",
    "port",
    "user",
    "identityfile",
    "userknownhostsfile",
    "controlpath",
    "proxycommand",
}

users = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", fullmatch=True)
labels = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", fullmatch=True)
dns_names = st.builds(
    lambda parts, dot: ".".join(parts) + dot,
    st.lists(labels, min_size=1, max_size=4),
    st.sampled_from(["", "."]),
).filter(lambda name: len(name) <= 253 and not name.rstrip(".").rsplit(".", 1)[-1].isdigit())
ports = st.integers(min_value=1, max_value=65535)


@st.composite
def host_ports(draw: st.DrawFn) -> str:
    """``HOST[:PORT]`` as a member types it: a DNS name, an IPv4 or an IPv6 address ([addr]:port)."""
    kind = draw(st.sampled_from(["dns", "v4", "v6"]))
    port = draw(st.none() | ports)
    if kind == "dns":
        host = draw(dns_names)
        return host if port is None else f"{host}:{port}"
    address = str(draw(st.ip_addresses(v=4 if kind == "v4" else 6)))
    if port is None:
        return address
    return f"[{address}]:{port}" if kind == "v6" else f"{address}:{port}"


profile_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", fullmatch=True)
#: a home folder's name: any printable text (spaces, '#', '%', '$', non-ASCII) but what cannot be written
home_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\"'\\"), min_size=1, max_size=24
).filter(lambda name: name not in (".", "..") and "${" not in name)


@contextlib.contextmanager
def home_at(path: Path) -> Iterator[Path]:
    """HOME for one example (hypothesis runs many examples in one test function)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = os.environ["HOME"]
    os.environ["HOME"] = str(path)
    try:
        yield path
    finally:
        os.environ["HOME"] = old
        shutil.rmtree(path, ignore_errors=True)


def ssh_g(alias: str) -> list[tuple[str, str]]:
    """What OpenSSH reads from our file for an alias: (option, value) lines."""
    out = subprocess.run(
        ["ssh", "-G", "-F", str(sshfiles.config_path()), alias],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=10,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [(key, value) for key, _, value in (line.partition(" ") for line in out.stdout.splitlines())]


def expand(command: str, host: str, port: int) -> str:
    """ssh's %-expansion of a ProxyCommand; any token but %h, %p and %% is a failure."""
    return re.sub(r"%(.)", lambda m: {"h": host, "p": str(port), "%": "%"}[m.group(1)], command)


def read_back(profile: Profile, profile_name: str) -> dict[str, list[tuple[str, str]]]:
    """Write our config for the profile; check that ssh reads exactly its values; return the other lines."""
    sshfiles.write_config(profile, profile_name)
    names = sshfiles.aliases(profile_name)
    others: dict[str, list[tuple[str, str]]] = {}
    for role, alias, (host, port) in (
        ("jump", names.jump, profile.jump_address),
        ("ws", names.ws, profile.host_address),
    ):
        lines = ssh_g(alias)
        got = {key: value for key, value in lines if key in VARYING}
        assert got["host"] == alias
        assert got["hostname"] == host
        assert got["port"] == str(port)
        assert got["user"] == profile.user
        assert got["identityfile"] == str(paths.key_file()).replace("%", "%%")  # ssh -G shows it unexpanded
        assert got["userknownhostsfile"] == str(sshfiles.known_hosts_path())
        control = got["controlpath"]
        prefix = str(sshfiles.control_dir() / "cm-")
        assert control.startswith(prefix) and re.fullmatch(r"[0-9a-f]{40}", control[len(prefix) :])
        if role == "ws":
            # what sh -c runs for the hop, once ssh has expanded its tokens
            argv = shlex.split(expand(got["proxycommand"], host, port))
            assert argv == ["ssh", "-F", str(sshfiles.config_path()), "-W", f"[{host}]:{port}", names.jump]
        else:
            assert "proxycommand" not in got
        assert sum(key in VARYING for key, _ in lines) == len(got)  # each said once
        others[role] = sorted(line for line in lines if line[0] not in VARYING)
    return others


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    with home_at(tmp_path_factory.mktemp("baseline") / "home"):
        return read_back(Profile.make({"user": "bbadger"}), "default")


@SETTINGS
@given(user=users, jump=host_ports(), host=host_ports(), profile_name=profile_names, home_name=home_names)
@example(
    user="bbadger", jump="[2001:db8::1]:2200", host="ws.example", profile_name="p", home_name="Bucky Badger"
)
@example(user="_x", jump="192.0.2.1", host="A.B.", profile_name="default", home_name="a #b %C $HOME {x}")
def test_accepted_values_are_read_back_exactly_and_add_nothing(
    baseline: dict[str, list[tuple[str, str]]],
    tmp_path_factory: pytest.TempPathFactory,
    user: str,
    jump: str,
    host: str,
    profile_name: str,
    home_name: str,
) -> None:
    try:
        profile = Profile.make({"user": user, "jump": jump, "host": host})
    except InvalidInput:
        assume(False)  # not a value the validators accept (the other test covers those)
        return
    with home_at(tmp_path_factory.mktemp("h") / home_name):
        assert read_back(profile, profile_name) == baseline


def run_cli(argv: list[str]) -> tuple[int, str]:
    """The command line in-process: exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return code, err.getvalue()


hostile_text = st.text(max_size=60) | st.builds(
    lambda address, zone: f"{address}%{zone}", st.ip_addresses(v=6).map(str), st.text(max_size=20)
)


def accepted(field: str, value: str) -> tuple[Profile, str]:
    """The profile (and profile name) the validators make of ``value`` given for ``field``; raises
    InvalidInput when they refuse it."""
    if field == "profile":
        return Profile.make({"user": "bbadger"}), validate.profile_name(value)
    if field.endswith("-port"):
        port = validate.port(value, field)
        return Profile.make({"user": "bbadger", field.replace("-", "_"): port}), "default"
    profile = Profile.make({"user": "bbadger", field: value})
    profile.require_complete()
    return profile, "default"


@SETTINGS
@given(
    field=st.sampled_from(["user", "jump", "host", "local-port", "remote-port", "profile"]),
    value=hostile_text,
)
@example(field="jump", value="[fe80::1%h\n ProxyCommand sh -c 'touch ~/PWNED'\n #]")
@example(field="host", value="fe80::1%eth0")
@example(field="user", value="a b" * 2000)
@example(field="profile", value="x\nHost *")
def test_any_text_is_either_read_back_exactly_or_refused_with_exit_2(
    baseline: dict[str, list[tuple[str, str]]],
    tmp_path_factory: pytest.TempPathFactory,
    field: str,
    value: str,
) -> None:
    try:
        profile, profile_name = accepted(field, value)
    except InvalidInput as refused:
        with home_at(tmp_path_factory.mktemp("h") / "home") as home:
            code, err = run_cli(
                ["setup", "--no-tui", f"--{field}={value}", *([] if field == "user" else ["--user=bb"])]
            )
            assert code == 2, err
            lines = err.splitlines()
            assert lines[0].startswith("wa-onboard: error: invalid "), err
            assert len(lines) <= 2 and all(len(line) < 300 for line in lines), err  # one line (and a hint)
            assert not (home / ".ssh").exists()  # no ssh_config, no key: nothing ran
            if refused.rule != "is required":  # (an empty --user is saved, then asked for)
                assert not paths.config_file().exists()
        return
    with home_at(tmp_path_factory.mktemp("h") / "home"):
        assert read_back(profile, profile_name) == baseline


@SETTINGS
@given(
    name=st.text(min_size=1, max_size=12).filter(lambda n: "/" not in n and n not in (".", "..")),
    bad=st.sampled_from(['"', "'", "\\", "${X}", "\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85"]),
)
def test_a_home_path_that_cannot_be_written_is_refused_not_written(
    tmp_path_factory: pytest.TempPathFactory, name: str, bad: str
) -> None:
    home_name = name + bad
    assume("\x00" not in name and "/" not in home_name)
    try:
        folder = tmp_path_factory.mktemp("h") / home_name
        folder.mkdir()
    except (OSError, ValueError):
        assume(False)  # the file system itself refuses this name
        return
    with home_at(folder):
        with pytest.raises(WaError, match="cannot name") as info:
            sshfiles.write_config(Profile.make({"user": "bbadger"}))
        assert "\n" not in str(info.value)
        assert not sshfiles.config_path().exists()


@pytest.mark.parametrize(
    ("value", "what"),
    [("h\n ProxyCommand x", "host name"), ("a b", "user name"), ("x#y", "host name"), ("%h", "host name")],
)
def test_the_writer_refuses_what_validation_missed(value: str, what: str) -> None:
    """The last line of defence: a Profile built around validation still cannot write a directive."""
    bad = Profile(user=value) if what == "user name" else Profile(user="bb", host=value)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(validate, "host_port", lambda text, field, default_port=22: (text, default_port))
        with pytest.raises(WaError, match=f"refusing to write the {what}"):
            sshfiles.write_config(bad)
    assert not sshfiles.config_path().exists()


def test_windows_paths_are_written_with_forward_slashes() -> None:
    """OpenSSH for Windows reads 'C:/Users/...'; a backslash would be an escape character to ssh_config."""
    from pathlib import PureWindowsPath

    home = PureWindowsPath("C:\\Users\\Bucky Badger\\.ssh\\wa_onboard_ed25519")
    assert sshfiles._path(home) == '"C:/Users/Bucky Badger/.ssh/wa_onboard_ed25519"'
    assert sshfiles._path(PureWindowsPath("C:\\Users\\bb\\cm-"), tokens="%C") == "C:/Users/bb/cm-%C"
