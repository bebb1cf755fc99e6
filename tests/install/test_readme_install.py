"""The README's install lines, run verbatim as a new member would: a fresh non-root account on this
Debian/Ubuntu machine, in a copy of the checkout, then ``wa-onboard --version`` in a new login shell.

The lines are read from README.md, so the two cannot drift. Root is needed to make the account (and
for the ``sudo`` line); anyone else gets a skip that says so. Packages come from the distribution's
archive and from PyPI (pip's own configuration of this machine, e.g. a local mirror, applies).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from wa_onboard import __version__

REPO = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "*.egg-info", "build"
)

pytestmark = [
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to make a fresh user"
    ),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("apt-get", "useradd", "userdel", "runuser")),
        reason="the install lines under test are Debian/Ubuntu's (apt, useradd, runuser)",
    ),
]


def readme_block(after: str) -> list[str]:
    """The lines of the first fenced block after the line ``after`` in the README's Install section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Install\n") :]
    section = section[: section.index("\n## ", 1)]
    found = re.search(re.escape(after) + r"\n\n```\n(.*?)```", section, re.S)
    assert found, f"README's Install section has no code block after {after!r}"
    return [line for line in found[1].splitlines() if line.strip()]


def test_the_platform_blocks_differ_only_in_how_pipx_is_had() -> None:
    debian, mac = readme_block("Debian, Ubuntu:"), readme_block("macOS, with [Homebrew](https://brew.sh):")
    assert debian[0] == "sudo apt install pipx" and mac[0] == "brew install pipx"
    assert debian[1:] == mac[1:] and "pipx install ." in debian


@pytest.fixture
def fresh_user() -> Iterator[str]:
    name = f"wainst{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def as_user(user: str, command: str, cwd: str = "~") -> subprocess.CompletedProcess[str]:
    """``command`` in a new login shell of ``user`` (its own PATH from ~/.profile), as a terminal would."""
    return subprocess.run(
        ["runuser", "--login", user, "--command", f"cd {cwd} && {command}"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def as_root(line: str) -> subprocess.CompletedProcess[str]:
    """A ``sudo`` line: the member types their password and answers apt's question with yes."""
    if shutil.which("sudo") is None:
        line = line.removeprefix("sudo ")  # root needs no sudo; the rest of the line is verbatim
    return subprocess.run(
        ["sh", "-c", line],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def test_the_readme_install_lines_work_for_a_fresh_user(fresh_user: str) -> None:
    home = Path(f"~{fresh_user}").expanduser()
    checkout = home / "wa-onboard"
    shutil.copytree(REPO, checkout, ignore=IGNORED, symlinks=True)
    subprocess.run(["chown", "-R", f"{fresh_user}:", str(checkout)], check=True)
    for line in readme_block("Debian, Ubuntu:"):
        if line.startswith("sudo "):
            done = as_root(line)
            if done.returncode != 0 and "apt" in line:  # a machine whose package lists were never fetched
                subprocess.run(["apt-get", "update"], capture_output=True, check=False)
                done = as_root(line)
        else:
            done = as_user(fresh_user, line, cwd="~/wa-onboard")
        assert done.returncode == 0, f"README line {line!r} failed:\n{done.stdout}\n{done.stderr}"
    found = as_user(fresh_user, "command -v wa-onboard && wa-onboard --version")
    assert found.returncode == 0, found.stdout + found.stderr
    where, version = found.stdout.splitlines()
    assert where == f"{home}/.local/bin/wa-onboard"
    assert version == f"wa-onboard {__version__}"
