"""Where wa-onboard keeps things. Built from ``Path.home()`` and platformdirs so $HOME and XDG win.

OpenSSH expands ``~`` from the password database, not $HOME, so every path handed to ssh is made
absolute here.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from wa_onboard.core import prestart

APP = prestart.APP


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
    return Path(prestart.ssh_dir())  # one definition: the prestart reads it before paths loads


def control_dir() -> Path:
    """Where control sockets live: our ssh dir, or a short private dir when that path is too long
    (checked with lstat before use: prestart.private_dir_problem)."""
    folder = prestart.control_dir()
    if Path(folder) == ssh_dir():
        return Path(folder)
    problem = prestart.private_dir_problem(folder)
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
    """Create ``path`` (and parents) and make the leaf 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        path.chmod(0o700)
    return path


def write_private_file(path: Path, data: str) -> None:
    """Write atomically (temp file + rename) with mode 0600, so a crash never leaves half a file."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if os.name == "posix":
            tmp.chmod(0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
