"""The program's own SSH files: its ssh_config, its key, and the optional Include in ~/.ssh/config.

Why a config file of our own: with ProxyJump, OpenSSH hands ``-o`` options to the final host only,
never to the jump host; a ``-F`` file reaches both hops, and the member's ``~/.ssh/config`` cannot
change how we connect. Every path in it is absolute (OpenSSH expands ``~`` from the password
database, not from $HOME). One file holds a pair of Host blocks per profile, each pair between
marker lines so that writing one profile leaves the others as they were.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wa_onboard.core import paths, prestart
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import ConfirmQuestion, Prompter

BACKUP_SUFFIX = ".wa-onboard.bak"


@dataclass(frozen=True)
class Aliases:
    """The Host names a profile gets in our ssh_config."""

    jump: str
    ws: str


def aliases(profile_name: str = DEFAULT_PROFILE) -> Aliases:
    return Aliases(*prestart.alias_names(profile_name))


def config_path() -> Path:
    return paths.ssh_dir() / "config"


def known_hosts_path() -> Path:
    return paths.ssh_dir() / "known_hosts"


def has_control_master() -> bool:
    """Windows' OpenSSH has no connection sharing (``getsockname failed: Not a socket``)."""
    return sys.platform != "win32"


def control_dir() -> Path:
    """Where control sockets live (paths.control_dir: checked before use)."""
    return paths.control_dir()


def _ssh_value(value: str, tokens: str = "") -> str:
    """A path for ssh_config: ``%`` escaped (paths are %-expanded), then ssh's own ``tokens``
    appended, quoted if it holds a space."""
    escaped = value.replace("%", "%%") + tokens
    return f'"{escaped}"' if re.search(r"\s", escaped) else escaped


def _block(alias: str, host: str, port: int, user: str, proxy: str | None) -> list[str]:
    # keyboard-interactive before password: a PAM server then asks the password and the MFA code in
    # one exchange, instead of failing the password method first and asking the password twice.
    lines = [f"Host {alias}", f"    HostName {host}", f"    Port {port}", f"    User {user}"]
    if proxy:
        lines.append(f"    ProxyJump {proxy}")
    lines += [
        f"    IdentityFile {_ssh_value(str(paths.key_file()))}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {_ssh_value(str(known_hosts_path()))}",
        "    StrictHostKeyChecking ask",
        "    HashKnownHosts no",
        "    CheckHostIP no",
        "    UpdateHostKeys no",
        "    PreferredAuthentications publickey,keyboard-interactive,password",
        "    NumberOfPasswordPrompts 3",
        "    ConnectTimeout 10",
        "    ServerAliveInterval 15",
        "    ServerAliveCountMax 3",
        "    ExitOnForwardFailure yes",
        "    ForwardAgent no",
        "    ForwardX11 no",
    ]
    if has_control_master():
        lines += [
            "    ControlMaster auto",
            f"    ControlPath {_ssh_value(str(control_dir() / 'cm-'), '%C')}",
            "    ControlPersist 10m",
        ]
    return lines


def _markers(profile_name: str) -> tuple[str, str]:
    return (f"# >>> wa-onboard profile {profile_name} >>>", f"# <<< wa-onboard profile {profile_name} <<<")


def render_profile(profile: Profile, profile_name: str = DEFAULT_PROFILE) -> str:
    """The two Host blocks of one profile, between its marker lines."""
    profile.require_complete()
    names = aliases(profile_name)
    jump_host, jump_port = profile.jump_address
    ws_host, ws_port = profile.host_address
    begin, end = _markers(profile_name)
    lines = [begin]
    lines += _block(names.jump, jump_host, jump_port, profile.user, None)
    lines.append("")
    lines += _block(names.ws, ws_host, ws_port, profile.user, names.jump)
    lines.append(end)
    return "\n".join(lines) + "\n"


_HEADER = (
    "# Written by wa-onboard for its own use (ssh -F this file). Edits are overwritten.\n"
    "# It only defines wa-* hosts, so including it from ~/.ssh/config changes nothing else.\n"
)


def render_config(existing: str, profile: Profile, profile_name: str = DEFAULT_PROFILE) -> str:
    """``existing`` with this profile's block replaced (or added); other profiles stay as they were."""
    begin, end = _markers(profile_name)
    block = render_profile(profile, profile_name)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(existing):
        return pattern.sub(lambda _m: block, existing, count=1)
    body = existing if existing.startswith(_HEADER) else _HEADER
    if not body.endswith("\n\n"):
        body += "\n"
    return body + block


def write_config(profile: Profile, profile_name: str = DEFAULT_PROFILE) -> Path:
    """Write our ssh_config for this profile (only when it changed); 0600 in a 0700 directory."""
    path = config_path()
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    wanted = render_config(existing, profile, profile_name)
    if wanted != existing:
        paths.write_private_file(path, wanted)
    return path


def ssh_argv(profile_name: str = DEFAULT_PROFILE, *options: str, hop: str = "ws") -> list[str]:
    """``ssh -F <our config> [options] <alias>``; options go before the alias."""
    names = aliases(profile_name)
    return ["ssh", "-F", str(config_path()), *options, names.ws if hop == "ws" else names.jump]


# --- the key ---------------------------------------------------------------------------------------


def _run_keygen(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise WaError(
            "ssh-keygen was not found",
            "install the OpenSSH client (Debian/Ubuntu: apt install openssh-client; macOS has it), "
            "or use --engine paramiko",
        ) from None


def key_comment() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "", socket.gethostname()) or "laptop"
    return f"wa-onboard@{host}"


def ensure_key() -> tuple[Path, bool]:
    """The dedicated ed25519 key, made (without a passphrase) when absent. Returns (path, created)."""
    key = paths.key_file()
    pub = key.with_name(key.name + ".pub")
    paths.ensure_private_dir(key.parent)
    if key.exists():
        if not pub.exists():
            done = _run_keygen(["ssh-keygen", "-y", "-f", str(key)])
            if done.returncode != 0:
                raise WaError(
                    f"cannot read the key {key}: {done.stderr.strip()}",
                    f"move {key} away and run setup again to make a new one",
                )
            pub.write_text(done.stdout, encoding="utf-8")
        if os.name == "posix":
            key.chmod(0o600)
        return key, False
    done = _run_keygen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key_comment(), "-f", str(key)])
    if done.returncode != 0 or not key.exists():
        raise WaError(f"ssh-keygen failed: {done.stderr.strip()}", f"check that {key.parent} is writable")
    if os.name == "posix":
        key.chmod(0o600)
    return key, True


def public_key_text() -> str:
    """The one line that goes into authorized_keys."""
    pub = paths.key_file().with_name(paths.key_file().name + ".pub")
    try:
        return pub.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise WaError(f"no public key at {pub}", "run wa-onboard setup to make the key") from None


# --- the optional Include in the member's ~/.ssh/config --------------------------------------------


def user_config_path() -> Path:
    return Path.home().absolute() / ".ssh" / "config"


def include_line() -> str:
    return f"Include {_ssh_value(str(config_path()))}"


def _is_our_include(line: str) -> bool:
    words = line.strip().split(None, 1)
    if len(words) != 2 or words[0].lower() != "include":
        return False
    targets = {str(config_path()), "~/.ssh/" + paths.APP + "/config", paths.APP + "/config"}
    return any(t.strip('"') in targets for t in words[1].split())


def include_present(text: str | None = None) -> bool:
    """Our Include is in effect: before the first Host/Match line (inside a block it is conditional)."""
    if text is None:
        try:
            text = user_config_path().read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
    for line in text.splitlines():
        keyword = line.strip().split(None, 1)[0].lower() if line.strip() else ""
        if keyword in ("host", "match"):
            return False
        if _is_our_include(line):
            return True
    return False


def with_include(text: str) -> str:
    """``text`` with our Include at the top (OpenSSH: first match wins, and the included file only
    defines wa-* aliases, so the member's other hosts resolve exactly as before)."""
    head = f"# Added by wa-onboard: makes `ssh {aliases().ws}` work (remove this line to undo)\n"
    return head + include_line() + "\n\n" + text


def add_include(prompter: Prompter) -> bool:
    """Add the Include line, with consent. Idempotent; backs the file up before the first change.
    Returns True when the line is in place (added now or before), False when the member declined."""
    target = user_config_path()
    try:
        text = target.read_text(encoding="utf-8")
        exists = True
    except FileNotFoundError:
        text, exists = "", False
    if include_present(text):
        return True
    detail = (
        f"Adds one line at the top of {target}:\n    {include_line()}\n"
        f"so `ssh {aliases().ws}` and editors' remote features reach the workstation too. "
        "It only defines wa-* hosts; your other hosts are unchanged."
        + (f" A backup goes to {target}{BACKUP_SUFFIX}." if exists else "")
    )
    question = ConfirmQuestion(f"Add an Include line to {target}?", detail, default=False)
    if not prompter.confirm(question):
        return False
    backup = target.with_name(target.name + BACKUP_SUFFIX)
    if exists and not backup.exists():
        shutil.copy2(target, backup)
    paths.write_private_file(target, with_include(text))
    return True
