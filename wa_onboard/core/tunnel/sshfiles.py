"""The program's own SSH files: its ssh_config, its key, and the optional Include in ~/.ssh/config.

Why a config file of our own: with ProxyJump, OpenSSH hands ``-o`` options to the final host only,
never to the jump host; a ``-F`` file reaches both hops, and the member's ``~/.ssh/config`` cannot
change how we connect. Every path in it is absolute (OpenSSH expands ``~`` from the password
database, not from $HOME). One file holds a pair of Host blocks per profile, each pair between
marker lines so that writing one profile leaves the others as they were.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath

from wa_onboard.core import paths, validate
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import MAX_TRIES, ConfirmQuestion, Prompter
from wa_onboard.core.tunnel import sshcmd
from wa_onboard.core.tunnel.sshcmd import INSTALL_SSH_HINT

BACKUP_SUFFIX = ".wa-onboard.bak"


@dataclass(frozen=True)
class Aliases:
    """The Host names a profile gets in our ssh_config."""

    jump: str
    ws: str


def aliases(profile_name: str = DEFAULT_PROFILE) -> Aliases:
    return Aliases(*sshcmd.alias_names(profile_name))


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


# --- what may be written into an ssh_config -------------------------------------------------------
#
# ssh_config has no escaping for newlines or '#', splits words on whitespace, reads '"' and "'" as quotes
# and '\\' as an escape, and %-expands (and ${VAR}-expands) many values. So every value we write goes
# through one of the three guards below, which raise rather than write anything else: validation is the
# first line of defence, these are the last.

_WORD = re.compile(r"[A-Za-z0-9._:-]+")
"""A profile value (user, host, port, alias): nothing that ssh_config could read as more than one word."""
_PATH_UNWRITABLE = re.compile(r"[\"'\\\x00-\x1f\x7f-\x9f]|\$\{")


def _word(value: str | int, what: str) -> str:
    """One plain word of ours: only ``[A-Za-z0-9._:-]``, so never whitespace, '#', a quote, '%' or a
    control character, whatever reached this point."""
    text = str(value)
    if not _WORD.fullmatch(text):
        raise WaError(
            f"refusing to write the {what} {validate.shown(text)} into the ssh config",
            "give plain host and user names (letters, digits, '.', '-', ':')",
        )
    return text


def _path(path: PurePath, *, expanded: bool = True, tokens: str = "") -> str:
    """An absolute path as one ssh_config word. ``expanded``: the keyword %-expands its value (IdentityFile,
    UserKnownHostsFile, ControlPath; not Include), so a '%' of the path is written '%%'; ``tokens`` (ssh's
    own, e.g. ``%C``) are appended after that. Quoted when it holds whitespace or '#' (a home such as
    ``/Users/Bucky Badger``); a path with a quote, a backslash, ``${`` or a control character cannot be
    written at all. Windows paths are written with '/', which OpenSSH for Windows reads too."""
    text = path.as_posix()
    if _PATH_UNWRITABLE.search(text):
        raise WaError(
            f"cannot name {validate.shown(text)} in an ssh config (quotes, backslashes, '${{' and "
            "control characters cannot be written there)",
            "use a home folder (or WA_ONBOARD paths) without those characters",
        )
    value = (text.replace("%", "%%") if expanded else text) + tokens
    return f'"{value}"' if re.search(r"[\s#]", value) else value


def proxy_command(jump_alias: str, *options: str) -> str:
    """The workstation's hop: ``ssh -F <our config> [options] -W [%h]:%p <jump alias>``, every word
    quoted for the shell and %-escaped for ssh. Written out rather than ``ProxyJump`` because OpenSSH
    pastes the ``-F`` path unquoted into the ProxyCommand it makes for ProxyJump (a home with a space
    breaks it); the doctor uses it with its own ``options`` (``-o`` options never reach a jump hop)."""
    _path(config_path())  # the same refusals as any path we write
    if any(_PATH_UNWRITABLE.search(w) for w in options):
        raise WaError(f"refusing to write the ssh option {validate.shown(options)} into a ProxyCommand")
    return sshcmd.proxy_command(config_path().as_posix(), _word(jump_alias, "jump alias"), *options)


def _block(alias: str, host: str, port: int, user: str, jump_alias: str | None) -> list[str]:
    # keyboard-interactive before password: a PAM server then asks the password and the MFA code in
    # one exchange, instead of failing the password method first and asking the password twice.
    lines = [
        f"Host {_word(alias, 'alias')}",
        f"    HostName {_word(host, 'host name')}",
        f"    Port {_word(port, 'port')}",
        f"    User {_word(user, 'user name')}",
    ]
    if jump_alias:
        lines.append(f"    ProxyCommand {proxy_command(jump_alias)}")
    lines += [
        f"    IdentityFile {_path(paths.key_file())}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {_path(known_hosts_path())}",
        "    StrictHostKeyChecking ask",
        "    HashKnownHosts no",
        "    CheckHostIP no",
        "    UpdateHostKeys no",
        "    PreferredAuthentications publickey,keyboard-interactive,password",
        f"    NumberOfPasswordPrompts {MAX_TRIES}",  # ssh asks no more often than we allow
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
            f"    ControlPath {_path(control_dir() / 'cm-', tokens='%C')}",
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
    with contextlib.suppress(OSError):  # ssh appends to it, and would create it 0644 itself
        paths.open_private(known_hosts_path()).close()
    return path


# --- the key ---------------------------------------------------------------------------------------


def _run_keygen(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise WaError("ssh-keygen was not found", INSTALL_SSH_HINT) from None


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
    # Include does not %-expand its argument; it is quoted when the home path holds a space.
    return f"Include {_path(config_path(), expanded=False)}"


_INCLUDE = re.compile(r"\s*include(?:\s*=\s*|\s+)(?P<args>.*)", re.IGNORECASE)
_KEYWORD = re.compile(r"\s*(?P<keyword>[A-Za-z]+)")


def _include_targets(line: str) -> list[Path]:
    """The files an ``Include`` line names, read as OpenSSH reads them: quoted or not, ``~/`` is the
    home, a relative path is under ``~/.ssh``, a word starting with '#' ends the line."""
    match = _INCLUDE.fullmatch(line)
    if not match:
        return []
    try:
        words = shlex.split(match.group("args"))
    except ValueError:  # an unbalanced quote: ssh refuses the line too
        return []
    home = Path.home().absolute()
    targets = []
    for word in words:
        if word.startswith("#"):
            break
        if word.startswith("~/"):
            targets.append(home / word[2:])
        elif Path(word).is_absolute():
            targets.append(Path(word))
        else:
            targets.append(home / ".ssh" / word)
    return targets


def _is_our_include(line: str) -> bool:
    ours = os.path.normpath(config_path())
    return any(os.path.normpath(target) == ours for target in _include_targets(line))


def include_present(text: str | None = None) -> bool:
    """Our Include is in effect: before the first Host/Match line (inside a block it is conditional)."""
    if text is None:
        try:
            text = _read_user_config(user_config_path())
        except FileNotFoundError:
            return False
    for line in text.splitlines():
        keyword = _KEYWORD.match(line)
        if keyword and keyword.group("keyword").lower() in ("host", "match"):
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
    """Add the Include line, with consent. Idempotent. Before each change the file as it was goes to
    the backup (complete, written temp + rename); a symlinked config (dotfiles) is written through to
    its target, so the link stays a link. Returns True when the line is in place (added now or
    before), False when the member declined."""
    target = user_config_path()
    try:
        text = _read_user_config(target)
        exists = True
    except FileNotFoundError:
        text, exists = "", False
    if include_present(text):
        return True
    backup = target.with_name(target.name + BACKUP_SUFFIX)
    detail = (
        f"Adds one line at the top of {target}:\n    {include_line()}\n"
        f"so `ssh {aliases().ws}` and editors' remote features reach the workstation too. "
        "It only defines wa-* hosts; your other hosts are unchanged."
        + (f" A backup goes to {backup}." if exists else "")
    )
    question = ConfirmQuestion(f"Add an Include line to {target}?", detail, default=False)
    if not prompter.confirm(question):
        return False
    if exists:
        paths.write_private_file(backup, text, errors="surrogateescape")
    paths.write_private_file(target.resolve(), with_include(text), errors="surrogateescape")
    return True


def _read_user_config(target: Path) -> str:
    """The member's ~/.ssh/config as text, every byte kept: ssh reads it as bytes, so a comment in
    Latin-1 is fine there and must survive our edit (surrogateescape writes it back as it was)."""
    try:
        return target.read_text(encoding="utf-8", errors="surrogateescape")
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        raise WaError(
            f"cannot read {target}: {exc.strerror or exc}",
            f"make {target} a readable file (or move it away), then run setup again",
        ) from None
