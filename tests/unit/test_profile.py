from __future__ import annotations

import stat
from pathlib import Path

import pytest

from wa_onboard.core import paths
from wa_onboard.core.errors import ConfigError, InvalidInput
from wa_onboard.core.profile import Profile, ProfileStore


def test_defaults_are_the_labs() -> None:
    p = Profile()
    assert (p.jump, p.host, p.local_port, p.remote_port) == (
        "best-tux.cae.wisc.edu",
        "carproject-06.engr.wisc.edu",
        8000,
        8000,
    )
    assert (p.base_url, p.env, p.kernel_name, p.display_name, p.python, p.conda_module) == (
        "/jupyter",
        "wa",
        "WA",
        "WA",
        "3.11",
        "anaconda",
    )
    assert p.engine == "openssh"
    assert not p.is_complete
    assert p.url == "http://127.0.0.1:8000/jupyter/"  # our forward, never a [::1] squatter


def test_config_path_honours_home_and_xdg(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.config_file() == isolated_home / ".config" / "wa-onboard" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(isolated_home / "xdg"))
    assert paths.config_file() == isolated_home / "xdg" / "wa-onboard" / "config.toml"
    monkeypatch.setenv("WA_ONBOARD_CONFIG", str(isolated_home / "elsewhere.toml"))
    assert paths.config_file() == isolated_home / "elsewhere.toml"


def test_save_and_load_several_profiles_with_private_modes(isolated_home: Path) -> None:
    store = ProfileStore()
    store.save(Profile(user="bbadger"))
    store.save(Profile(user="bbadger", host="carproject-07.engr.wisc.edu:2222", local_port=8001), "ws7")
    assert store.names() == ["default", "ws7"]
    assert store.load() == Profile(user="bbadger")
    assert store.load("ws7").host_address == ("carproject-07.engr.wisc.edu", 2222)  # type: ignore[union-attr]
    assert store.load("missing") is None
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert not list(store.path.parent.glob(".*tmp")), "no temp file left behind"


def test_updated_validates_and_ignores_none() -> None:
    p = Profile(user="a").updated(env="robots", local_port=None)
    assert p.env == "robots" and p.local_port == 8000
    with pytest.raises(InvalidInput, match="env"):
        p.updated(env="x y")


def test_corrupt_file_names_file_and_line(isolated_home: Path) -> None:
    store = ProfileStore()
    store.path.parent.mkdir(parents=True)
    store.path.write_text('[profiles.default]\nuser = "a"\nenv = \n')
    with pytest.raises(ConfigError) as info:
        store.load()
    assert str(store.path) in info.value.message
    assert "line 3" in info.value.message


def test_bad_value_in_file_names_profile_and_field(isolated_home: Path) -> None:
    store = ProfileStore()
    store.path.parent.mkdir(parents=True)
    store.path.write_text('[profiles.default]\nuser = "a"\nlocal_port = 99999\n')
    with pytest.raises(ConfigError, match=r"profile 'default'.*local-port"):
        store.load()
    store.path.write_text('[profiles.default]\nuser = "a"\nlocal_port = "8000"\n')
    with pytest.raises(ConfigError, match="must be a number"):
        store.load()
    store.path.write_text('[profiles.default]\nusr = "a"\n')
    with pytest.raises(ConfigError, match="unknown profile field"):
        store.load()
    store.path.write_text("profiles = 3\n")
    with pytest.raises(ConfigError, match="tables"):
        store.load()


def test_not_utf8_config_says_so_not_permissions(isolated_home: Path) -> None:
    store = ProfileStore()
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xff at offset 0\)") as info:
        store.load()
    assert "permission" not in info.value.hint and str(store.path) in info.value.hint


def test_config_path_that_is_a_folder_says_so(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = isolated_home / "conf"
    folder.mkdir()
    monkeypatch.setenv("WA_ONBOARD_CONFIG", str(folder))
    with pytest.raises(ConfigError, match="is a folder, not a file") as info:
        ProfileStore().load()
    assert "WA_ONBOARD_CONFIG" in info.value.hint and "permission" not in info.value.hint


def test_config_folder_that_cannot_be_made_is_a_config_error(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = isolated_home / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("WA_ONBOARD_CONFIG", str(blocker / "dir" / "c.toml"))
    for attempt in (ProfileStore().load, lambda: ProfileStore().save(Profile(user="bbadger"))):
        with pytest.raises(ConfigError) as info:
            attempt()
        assert info.value.message.endswith(f"{blocker} is a file, not a folder")
        assert "WA_ONBOARD_CONFIG" in info.value.hint


def test_profile_names_are_validated() -> None:
    with pytest.raises(InvalidInput, match="profile"):
        ProfileStore().load("../etc")


def test_a_config_file_in_a_folder_of_the_members_leaves_the_folder_alone(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``WA_ONBOARD_CONFIG=~/dotfiles/wa.toml``: the file is 0600, the member's folder keeps its mode."""
    folder = isolated_home / "dotfiles"
    folder.mkdir()
    folder.chmod(0o755)
    monkeypatch.setenv("WA_ONBOARD_CONFIG", str(folder / "wa.toml"))
    ProfileStore().save(Profile(user="bbadger"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "wa.toml").stat().st_mode) == 0o600
