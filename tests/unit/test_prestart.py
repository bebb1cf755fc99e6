"""core/prestart: when the entry point starts the jump login early, and that it stays light."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from wa_onboard.core import places
from wa_onboard.core.profile import Profile
from wa_onboard.core.tunnel import prestart, sshcmd, sshfiles

FLAGS = ["--user", "bbadger", "--jump", "jump.example:22", "--local-port=18000"]


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["connect", "--detach"], "default"),
        (["connect", "--detach", "--yes", "--no-browser"], "default"),
        (["connect", "--detach", *FLAGS], None),  # a changed setting: not the host the config names
        (["--profile", "work", "connect", "--detach"], "work"),
        (["connect", "--profile=lab-2", "--detach", "--engine", "openssh"], "lab-2"),
        (["connect"], None),  # the foreground tunnel has no supervisor to hand over to
        (["connect", "--detach", "--no-tui"], None),
        (["connect", "--detach", "--help"], None),
        (["connect", "--detach", "--engine", "paramiko"], None),
        (["open"], "default"),  # starts the background tunnel when it is down
        (["--profile", "work", "open"], "work"),
        (["open", "--yes"], None),  # open has no such flag: leave the error to the CLI
        (["status"], None),
        (["setup", "--detach"], None),
        (["connect", "--detach", "--profile", "../x"], None),
        (["connect", "--detach", "--profile"], None),
        ([], None),
    ],
)
def test_only_a_plain_connect_detach_starts_early(argv: list[str], name: str | None) -> None:
    assert prestart._profile_name(argv) == name


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private runtime folder of this test's own: the control sockets' folder (a long temp
    HOME sends them there) is then not the /tmp/wa-onboard-UID other test runs share."""
    folder = Path(tempfile.mkdtemp(prefix="wa", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.delenv("WA_ONBOARD_CONFIG", raising=False)
    return tmp_path


def test_worth_it_only_when_set_up_and_nothing_to_reuse(home: Path) -> None:
    assert prestart._worth_it("default") is None  # not set up: no ssh_config yet
    sshfiles.write_config(Profile(user="bbadger"))
    config = sshfiles.config_path().read_bytes()
    assert prestart._worth_it("default") == config
    assert prestart._worth_it("work") is None  # no Host block for that profile
    socket_file = sshfiles.control_dir() / "cm-0123"
    socket_file.write_text("")  # a live master (a tunnel, or the member's ssh wa-ws) may be there
    assert prestart._worth_it("default") is None
    socket_file.unlink()
    profiles = home / ".config" / "wa-onboard" / "config.toml"
    profiles.parent.mkdir(parents=True)
    profiles.write_text('[profiles.other]\nengine = "paramiko"\n')
    assert prestart._worth_it("default") is None  # no early ssh login for a paramiko profile


def test_the_control_dir_is_sshfiles_own(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Path(places.control_dir()) == sshfiles.control_dir()
    deep = home / ("x" * 80)
    deep.mkdir()
    monkeypatch.setenv("HOME", str(deep))  # too long for a socket path: a short dir instead
    assert Path(places.control_dir()) == sshfiles.control_dir() != Path(places.ssh_dir())


def test_only_the_master_login_would_start_is_adopted(home: Path) -> None:
    from wa_onboard.core.tunnel.engines.openssh import OpenSshEngine

    profile = Profile(user="bbadger")
    sshfiles.write_config(profile)
    as_read = sshfiles.config_path().read_bytes()
    early = sshcmd.Prestarted(None, sshcmd.new_marker(), "wa-jump", as_read)
    engine = OpenSshEngine(profile)
    assert engine._can_adopt(early, interactive=False)
    assert not engine._can_adopt(early, interactive=True)  # setup's login may prompt: a new master
    assert not OpenSshEngine(profile, "work")._can_adopt(early, interactive=False)  # another alias
    assert not OpenSshEngine(profile, connect_timeout=3)._can_adopt(early, interactive=False)
    sshfiles.write_config(profile.updated(user="other"))  # the config changed after ssh read it
    assert not engine._can_adopt(early, interactive=False)


def test_nothing_waits_without_a_prestart() -> None:
    assert prestart.take("default", Profile().to_dict(), False) is None


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_early_path_loads_nothing_heavy() -> None:
    # measured against a bare interpreter: a site .pth may load some of these at every start
    loaded = _modules_after(
        "from wa_onboard.core.tunnel import prestart\nprestart.maybe_start(['status'], print)"
    )
    added = loaded - _modules_after("pass")
    assert not added & {"typing", "dataclasses", "pathlib", "pexpect", "platformdirs", "argparse"}
    assert "wa_onboard.core.tunnel.prestart" in added


# --- the short control folder in a shared place: checked before anything follows or changes it -----


def _fallback(home: Path) -> Path:
    folder = Path(places.control_dir())
    assert folder != Path(places.ssh_dir()), "the test HOME must be long enough to need the fallback"
    return folder


def test_a_symlink_in_place_of_the_control_folder_is_refused_untouched(home: Path, runtime: Path) -> None:
    from wa_onboard.core.errors import WaError

    sshfiles.write_config(Profile(user="bbadger"))  # set up while the folder was fine
    shutil.rmtree(_fallback(home))
    decoy = runtime / "decoy"
    decoy.mkdir(mode=0o755)
    decoy.chmod(0o755)
    _fallback(home).symlink_to(decoy)
    assert prestart._worth_it("default") is None  # the early login does not use it
    with pytest.raises(WaError, match="symbolic link"):
        sshfiles.control_dir()
    assert decoy.stat().st_mode & 0o777 == 0o755  # not chmod-ed through the link


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_another_users_control_folder_is_refused_untouched(home: Path) -> None:
    from wa_onboard.core.errors import WaError

    theirs = _fallback(home)
    theirs.mkdir(mode=0o755)
    theirs.chmod(0o755)
    os.chown(theirs, 65534, 65534)  # nobody's
    with pytest.raises(WaError, match="another user"):
        sshfiles.control_dir()
    assert theirs.stat().st_mode & 0o777 == 0o755 and theirs.stat().st_uid == 65534


def test_our_own_control_folder_is_made_private(home: Path) -> None:
    ours = _fallback(home)
    ours.mkdir(mode=0o755)
    ours.chmod(0o755)
    assert sshfiles.control_dir() == ours and ours.stat().st_mode & 0o777 == 0o700
