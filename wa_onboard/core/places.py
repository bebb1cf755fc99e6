"""Where wa-onboard's own ssh files live, and its name: what the early login (tunnel/prestart) needs
before anything heavy is imported, and what paths and profile build on.

Only ``os`` and ``sys`` at the top (no typing, dataclasses or pathlib: they cost ~20 ms here, and this
runs first thing on the daily command).
"""

# ruff: noqa: PTH100, PTH102, PTH111, PTH118 - os.path, not pathlib: pathlib costs ~5 ms to import here

from __future__ import annotations

import os
import sys

APP = "wa-onboard"
DEFAULT_PROFILE = "default"


def ssh_dir() -> str:
    """The program's own ssh files: config, known_hosts, control sockets (absolute: OpenSSH expands
    ``~`` from the password database, not $HOME)."""
    return os.path.join(os.path.abspath(os.path.expanduser("~")), ".ssh", APP)


#: OpenSSH adds ".XXXXXXXXXXXXXXXX" to a ControlPath while it binds; macOS allows 104 bytes in all.
_SOCKET_PATH_MAX = 104 - 17
_HASH_LEN = 40  # %C is a SHA1 in hex


def control_dir() -> str:
    """Where control sockets live: our ssh dir, or a short dir when that path is too long for a
    socket (paths.control_dir creates it and checks that it is private: private_dir_problem)."""
    preferred = ssh_dir()
    if len(preferred) + len("/cm-") + _HASH_LEN <= _SOCKET_PATH_MAX:
        return preferred
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and len(runtime) < 40:
        base = runtime
    else:
        import tempfile  # only for long home paths (~5 ms)

        base = tempfile.gettempdir()
    return os.path.join(base, f"wa-onboard-{os.getuid() if hasattr(os, 'getuid') else 0}")


def private_dir_problem(path: str) -> str | None:
    """Make ``path`` (0700) when absent, then vouch for it: what is wrong with it, or None.

    The short control folder lives in a shared place (/tmp), where another user may have put a
    symlink or a folder of their own under our name first, to receive our control sockets (and
    with them our logged-in connections). So ``lstat`` comes before anything that follows a link or
    changes a mode: a symlink or another user's folder is refused untouched; only our own real
    folder is tightened to 0700, through a descriptor that cannot follow a link swapped in."""
    if sys.platform == "win32":  # no control sockets there
        return None
    import stat  # already loaded by os: free

    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot be made ({exc.strerror})"
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != os.getuid():
        return "belongs to another user"
    if info.st_mode & 0o077:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            return f"cannot be opened ({exc.strerror})"
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino, now.st_uid) != (info.st_dev, info.st_ino, info.st_uid):
                return "was replaced while it was checked"
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    return None


def ssh_config() -> str:
    """Our own ssh_config (every ssh we run reads it with ``-F``)."""
    return os.path.join(ssh_dir(), "config")
