"""Where wa-onboard keeps things. Built from ``Path.home()`` and platformdirs so $HOME and XDG win.

OpenSSH expands ``~`` from the password database, not $HOME, so every path handed to ssh is made
absolute here.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO

import platformdirs

from wa_onboard.core import places

APP = places.APP


def config_file() -> Path:
    """The profiles file; ``WA_ONBOARD_CONFIG`` overrides it."""
    override = os.environ.get("WA_ONBOARD_CONFIG")
    if override:
        return Path(override).expanduser().absolute()
    return platformdirs.user_config_path(APP, appauthor=False) / "config.toml"


def state_dir() -> Path:
    """Run-time state: tunnel state files, locks, logs."""
    return platformdirs.user_state_path(APP, appauthor=False)


def ssh_dir() -> Path:
    """The program's own ssh files: config, known_hosts, control sockets."""
    return Path(places.ssh_dir())  # one definition: the early login reads it before paths loads


def control_dir() -> Path:
    """Where control sockets live: our ssh dir, or a short private dir when that path is too long
    (checked with lstat before use: places.private_dir_problem)."""
    folder = places.control_dir()
    if Path(folder) == ssh_dir():
        return Path(folder)
    problem = places.private_dir_problem(folder)
    if problem is not None:
        from wa_onboard.core.errors import WaError

        raise WaError(
            f"{folder} {problem}: it is not a private folder of yours, and control sockets there "
            "could be taken over",
            "if it is yours, remove it and try again; if not, tell the computer's admins, and meanwhile "
            "set XDG_RUNTIME_DIR to a private folder of yours with a short path",
        )
    return Path(folder)


def key_file() -> Path:
    """The dedicated key, made on first setup."""
    return Path.home().absolute() / ".ssh" / "wa_onboard_ed25519"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each made 0700.

    Only the folders made here are chmodded: one that already exists may be $HOME, ``/tmp`` or a
    folder the member chose for a report, and is not ours to change.
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made by someone else meanwhile: not ours
        if sys.platform != "win32":
            folder.chmod(0o700)  # mkdir's mode is cut by the umask; 0700 is what we promise
    if path in _own_dirs():
        _tighten(path)
    return path


def _own_dirs() -> tuple[Path, ...]:
    """The folders named for this tool alone: ours to keep 0700 even when something else made them."""
    return (
        ssh_dir(),
        state_dir(),
        platformdirs.user_config_path(APP, appauthor=False),
    )


def _tighten(folder: Path) -> None:
    """Make one of our own folders 0700 if it is open to others (an older version, a copied home, a
    umask of 000): another local user could otherwise swap our ssh config or known_hosts. Only a real
    folder owned by this user is changed; a symlink or someone else's folder is left as it is."""
    if sys.platform == "win32":
        return
    try:
        info = folder.lstat()
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077:
        folder.chmod(0o700)


def open_private(path: Path) -> IO[str]:
    """Open a file of ours for reading and writing, such as a lock, creating it 0600.

    ``open("a+")`` would leave it 0644 under the usual umask; one an older version left so is made 0600.
    """
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if sys.platform != "win32" and os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "r+", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def write_private_file(path: Path, data: str, errors: str = "strict") -> None:
    """Write atomically (temp file + rename) with mode 0600, so a crash never leaves half a file.

    Missing folders are made 0700; the folder the file lands in is otherwise left as it is. The
    temp file is made with O_EXCL under a random name, so a shared folder such as /tmp is safe.
    """
    ensure_private_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=errors, newline="\n") as handle:
            if sys.platform != "win32":
                os.fchmod(handle.fileno(), 0o600)  # mkstemp's 0600 is still cut by an odd umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def new_file_problem(path: Path) -> str | None:
    """What would stop a file being written at ``path`` (its folder must exist), or None.

    Asked before long work (the doctor's checks), so a mistyped path is named at once, and in
    words: "Permission denied" from the rename does not say that the path is a folder.
    """
    if path.is_dir():
        return f"{path} is a folder, not a file"
    parent = path.parent
    if not parent.exists():
        return f"the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"you cannot write in the folder {parent}"
    if sys.platform != "win32" and path.exists():
        folder, existing, me = parent.stat(), path.lstat(), os.geteuid()
        if folder.st_mode & stat.S_ISVTX and me not in (0, folder.st_uid, existing.st_uid):
            return f"{path} belongs to another user (and {parent} lets only its owner replace it)"
    return None
