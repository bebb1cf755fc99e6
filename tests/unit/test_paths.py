"""core/paths: what a private file or folder is, and that a folder we did not make is never changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.unit.normal_user import normal_home, run_as_normal_user
from wa_onboard.core import paths
from wa_onboard.core.setup import run as setup_run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_file_in_an_existing_folder_leaves_the_folder_alone(tmp_path: Path, umask_022: object) -> None:
    folder = tmp_path / "home"
    folder.mkdir(mode=0o755)
    paths.write_private_file(folder / "wa-report.txt", "x")
    assert mode(folder) == 0o755, "the member's folder ($HOME, /tmp) was chmodded"
    assert mode(folder / "wa-report.txt") == 0o600
    assert [p.name for p in folder.iterdir()] == ["wa-report.txt"], "a temp file was left behind"


def test_only_the_folders_it_makes_are_0700(tmp_path: Path, umask_022: object) -> None:
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    paths.ensure_private_dir(base / "a" / "b")
    assert (mode(base), mode(base / "a"), mode(base / "a" / "b")) == (0o755, 0o700, 0o700)
    (base / "a").chmod(0o750)
    paths.ensure_private_dir(base / "a" / "b")
    assert mode(base / "a") == 0o750, "an existing folder is not ours to change"


def test_the_temp_file_cannot_be_planted(tmp_path: Path) -> None:
    """The old temp name (.NAME.PID.tmp) was predictable and opened without O_EXCL: a symlink
    planted there in a shared folder made us overwrite its target."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / f".r.txt.{os.getpid()}.tmp").symlink_to(victim)
    paths.write_private_file(tmp_path / "r.txt", "report")
    assert victim.read_text() == "keep me"
    assert (tmp_path / "r.txt").read_text() == "report"


def test_a_normal_user_writes_into_a_sticky_shared_folder(tmp_path: Path) -> None:
    """``doctor --report /tmp/r.txt`` as a normal user: the file is written 0600, /tmp untouched
    (the old code chmodded the folder: 'Operation not permitted', or as root a broken /tmp)."""
    with normal_home() as home:
        shared = home.parent / f"{home.name}-shared"
        shared.mkdir()
        shared.chmod(0o1777)  # like /tmp: owned by root when the test runs as root
        try:
            code = "import sys; from pathlib import Path; from wa_onboard.core import paths; "
            code += "paths.write_private_file(Path(sys.argv[1]), 'report')"
            done = run_as_normal_user(["python", "-c", code, str(shared / "r.txt")], home)
            assert done.returncode == 0, done.stderr
            assert mode(shared) == 0o1777
            assert mode(shared / "r.txt") == 0o600
            assert (shared / "r.txt").stat().st_uid == home.stat().st_uid
        finally:
            for child in shared.iterdir():
                child.unlink()
            shared.rmdir()


def test_the_setup_lock_is_0600(isolated_home: Path, umask_022: object) -> None:
    with setup_run.setup_lock("default"):
        assert mode(setup_run.lock_path("default")) == 0o600
    lock = setup_run.lock_path("default")
    lock.chmod(0o644)  # as an older version left it
    with setup_run.setup_lock("default"):
        assert lock.read_text() == str(os.getpid())
    assert mode(lock) == 0o600


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("folder", "is a folder, not a file"),
        ("missing/r.txt", "the folder {tmp}/missing does not exist"),
        ("afile/r.txt", "{tmp}/afile is not a folder"),
        ("r.txt", None),
    ],
)
def test_new_file_problem_names_it(tmp_path: Path, where: str, problem: str | None) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("")
    found = paths.new_file_problem(tmp_path / where)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.endswith(problem.format(tmp=tmp_path))


def test_our_own_folder_left_open_to_others_is_made_private(isolated_home: Path) -> None:
    """~/.ssh/wa-onboard made 0777 (an old version, a copied home): another user could swap our ssh config
    or known_hosts. Ours (and a real folder of this user) is tightened; a folder we merely write into is not."""
    ours = paths.ssh_dir()
    ours.mkdir(parents=True)
    ours.chmod(0o777)
    paths.write_private_file(ours / "config", "x\n")
    assert stat.S_IMODE(ours.stat().st_mode) == 0o700
    elsewhere = isolated_home / "reports"
    elsewhere.mkdir(mode=0o755)
    elsewhere.chmod(0o755)
    paths.write_private_file(elsewhere / "r.txt", "x\n")
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755
