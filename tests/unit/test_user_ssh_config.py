"""The one edit we make to the member's own ~/.ssh/config: the Include line, with their yes.

A dotfiles symlink stays a symlink, our line is recognised however it is written (a home with a space is
quoted), and every change leaves one complete backup of the file as it was, written temp + rename.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wa_onboard.core import paths
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion
from wa_onboard.core.tunnel import sshfiles

ORIGINAL = "Host *\n    User me\n"


class Answers:
    def __init__(self, yes: bool) -> None:
        self.yes = yes
        self.asked: list[HostKeyQuestion | ConfirmQuestion] = []

    def secret(self, question: SecretQuestion) -> str | None:
        return None

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        self.asked.append(question)
        return self.yes


def user_config(home: Path, text: str | None = ORIGINAL) -> Path:
    path = home / ".ssh" / "config"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    if text is not None:
        path.write_text(text)
    return path


def backup_of(config: Path) -> Path:
    return config.with_name("config" + sshfiles.BACKUP_SUFFIX)


def test_a_symlinked_config_is_written_through_to_its_target(isolated_home: Path) -> None:
    dotfiles = isolated_home / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "ssh_config"
    real.write_text(ORIGINAL)
    link = user_config(isolated_home, None)
    link.symlink_to("../dotfiles/ssh_config")
    assert sshfiles.add_include(Answers(True)) is True
    assert link.is_symlink() and link.readlink() == Path("../dotfiles/ssh_config")
    assert sshfiles.include_line() in real.read_text() and real.read_text().endswith(ORIGINAL)
    assert backup_of(link).read_text() == ORIGINAL and not backup_of(link).is_symlink()
    assert sorted(p.name for p in dotfiles.iterdir()) == ["ssh_config"]  # no temp file left
    assert sshfiles.include_present()


def test_a_home_with_a_space_gets_one_quoted_line_that_ssh_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "Bucky Badger"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    config = user_config(home)
    yes = Answers(True)
    assert sshfiles.add_include(yes) is True
    line = f'Include "{home}/.ssh/wa-onboard/config"'
    assert sshfiles.include_line() == line and line in config.read_text()
    assert sshfiles.add_include(yes) is True  # recognised: no second line, no second question
    assert config.read_text().count("Include") == 1 and len(yes.asked) == 1
    # and OpenSSH itself follows it to our hosts
    from wa_onboard.core.profile import Profile

    sshfiles.write_config(Profile(user="bbadger"))
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), "wa-ws"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert out.returncode == 0, out.stderr
    assert "hostname carproject-06.engr.wisc.edu" in out.stdout.splitlines()


@pytest.mark.parametrize(
    "written",
    [
        'Include "{cfg}"',
        "Include '{cfg}'",
        "include {cfg}",
        "  Include={cfg}",
        "Include ~/.ssh/other.conf {cfg}",
        'Include "{cfg}" # ours',
        "Include ~/.ssh/wa-onboard/config",
        "Include wa-onboard/config",
    ],
)
def test_our_include_is_recognised_however_it_is_written(written: str, isolated_home: Path) -> None:
    line = written.format(cfg=sshfiles.config_path())
    assert sshfiles.include_present(f"# mine\n{line}\nHost x\n    User y\n")
    config = user_config(isolated_home, f"{line}\n{ORIGINAL}")
    answers = Answers(True)
    assert sshfiles.add_include(answers) is True
    assert answers.asked == [] and config.read_text() == f"{line}\n{ORIGINAL}"


@pytest.mark.parametrize(
    "written",
    [
        "Include {cfg}.old",
        "# Include {cfg}",
        "Include other/config",
        'Include "{cfg}',  # unbalanced: ssh refuses the line
        "Host x\nInclude {cfg}",  # inside a Host block it is conditional
    ],
)
def test_lines_that_are_not_our_include(written: str) -> None:
    assert not sshfiles.include_present(written.format(cfg=sshfiles.config_path()) + "\n")


def test_every_change_leaves_one_complete_backup(isolated_home: Path) -> None:
    config = user_config(isolated_home)
    backup = backup_of(config)
    backup.write_text("Host *\n    Us")  # a copy killed half way by an older version
    assert sshfiles.add_include(Answers(True)) is True
    assert backup.read_text() == ORIGINAL
    assert backup.stat().st_mode & 0o777 == 0o600
    # the member takes our line out and changes their file: the next change backs up that file
    edited = "Host work\n    HostName w.example\n"
    config.write_text(edited)
    assert sshfiles.add_include(Answers(True)) is True
    assert backup.read_text() == edited


def test_an_interrupted_backup_changes_nothing(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = user_config(isolated_home)
    backup = backup_of(config)
    backup.write_text("the previous backup\n")
    real_write = paths.write_private_file

    def killed_at_backup(path: Path, data: str, errors: str = "strict") -> None:
        if path == backup:
            raise KeyboardInterrupt
        real_write(path, data, errors)

    monkeypatch.setattr(paths, "write_private_file", killed_at_backup)
    with pytest.raises(KeyboardInterrupt):
        sshfiles.add_include(Answers(True))
    assert config.read_text() == ORIGINAL  # the config is only changed once its backup is complete
    assert backup.read_text() == "the previous backup\n"


def test_declined_writes_nothing(isolated_home: Path) -> None:
    config = user_config(isolated_home)
    assert sshfiles.add_include(Answers(False)) is False
    assert config.read_text() == ORIGINAL and not backup_of(config).exists()


def test_a_config_that_is_not_utf8_keeps_every_byte(isolated_home: Path) -> None:
    """A Latin-1 comment (ssh reads bytes) was a UnicodeDecodeError traceback on the first setup, and
    the next run, with the key made, never offered the line again."""
    path = user_config(isolated_home, None)
    original = b"# caf\xe9 (Latin-1)\nHost *\n    User me\n"
    path.write_bytes(original)
    assert sshfiles.add_include(Answers(True)) is True
    assert path.read_bytes().endswith(original)
    assert sshfiles.include_present()
    backup = path.with_name(path.name + sshfiles.BACKUP_SUFFIX)
    assert backup.read_bytes() == original


def test_a_config_that_is_a_folder_is_said_in_words(isolated_home: Path) -> None:
    from wa_onboard.core.errors import WaError

    (isolated_home / ".ssh" / "config").mkdir(parents=True)
    with pytest.raises(WaError, match="cannot read"):
        sshfiles.add_include(Answers(True))
