"""The program's own known_hosts file, read and written in OpenSSH's format.

Both engines trust the same keys: OpenSSH reads this file itself (``UserKnownHostsFile`` in our
ssh_config), the paramiko engine reads it here. So this module follows OpenSSH's rules: hosts on
port 22 are written ``host``, others ``[host]:port``; hashed lines (``|1|salt|hash``) and ``*``/``?``/
``!`` patterns are honoured when reading; we only ever append plain lines and never remove one (the
member removes a changed key with ``ssh-keygen -R`` once they have checked it). Plain stdlib, so
nothing here needs paramiko.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wa_onboard.core import paths
from wa_onboard.core.tunnel import sshfiles


def default_path() -> Path:
    """The known_hosts file both engines use (our ssh_config names it for OpenSSH)."""
    return sshfiles.known_hosts_path()


def host_id(host: str, port: int = 22) -> str:
    """How OpenSSH names a host in known_hosts: ``host``, or ``[host]:port`` off port 22."""
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -lf`` and the first-contact question print it."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def removal_command(host: str, port: int = 22, path: Path | None = None) -> str:
    """The command that drops a host's old entry, for the member to run once they trust the new key."""
    target = path or default_path()
    return f"ssh-keygen -R {shlex.quote(host_id(host, port))} -f {shlex.quote(str(target))}"


@dataclass(frozen=True)
class KnownKey:
    key_type: str
    blob: bytes
    marker: str = ""
    """``@revoked`` or ``@cert-authority`` when the line has one."""
    line_number: int = 0


class Verdict(str, enum.Enum):
    KNOWN = "known"
    """The presented key is on file for this host."""
    UNKNOWN = "unknown"
    """No key at all on file for this host: ask the member."""
    CHANGED = "changed"
    """Other keys (of any type) are on file for this host, not this one: refuse."""
    REVOKED = "revoked"
    """The key is marked ``@revoked``: refuse."""


_HASHED = re.compile(r"\|1\|([A-Za-z0-9+/=]+)\|([A-Za-z0-9+/=]+)")


def _pattern_matches(pattern: str, name: str) -> bool:
    """One OpenSSH host pattern (``*`` and ``?`` wildcards, or a hashed entry) against a host id."""
    hashed = _HASHED.fullmatch(pattern)
    if hashed:
        try:
            salt = base64.b64decode(hashed.group(1))
            want = base64.b64decode(hashed.group(2))
        except (binascii.Error, ValueError):
            return False
        got = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
        return hmac.compare_digest(got, want)
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, name) is not None


def _host_matches(patterns: str, name: str) -> bool:
    """A comma-separated pattern list: any positive match, and no negated (``!``) one."""
    matched = False
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], name):
                return False
        elif _pattern_matches(pattern, name):
            matched = True
    return matched


def parse(text: str, name: str) -> list[KnownKey]:
    """Every key on file for the host id ``name`` (see ``host_id``); broken lines are skipped."""
    name = name.lower()
    found: list[KnownKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = ""
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3 or not _host_matches(fields[0], name):
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        found.append(KnownKey(fields[1], blob, marker, number))
    return found


def known_keys(host: str, port: int = 22, path: Path | None = None) -> list[KnownKey]:
    """The keys on file for ``host:port`` (none when the file does not exist yet)."""
    try:
        text = (path or default_path()).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return parse(text, host_id(host, port))


def judge(known: Iterable[KnownKey], key_type: str, blob: bytes) -> Verdict:
    """What OpenSSH concludes about a presented key, given the keys on file for its host.

    A host with any key on file is judged against all of them: a key of another type than the
    one we trust is CHANGED, as OpenSSH says ("REMOTE HOST IDENTIFICATION HAS CHANGED"), never a
    first contact to ask about (a man in the middle can simply offer ECDSA where ed25519 is on
    file). Only a host with nothing on file is UNKNOWN. ``@cert-authority`` lines are not host keys."""
    plain = []
    for entry in known:
        if entry.marker == "@revoked":
            if entry.blob == blob:
                return Verdict.REVOKED
        elif not entry.marker:
            plain.append(entry)
    if any(e.blob == blob and e.key_type == key_type for e in plain):
        return Verdict.KNOWN
    return Verdict.CHANGED if plain else Verdict.UNKNOWN


def line(host: str, port: int, key_type: str, blob: bytes) -> str:
    """One plain known_hosts line (never hashed, so the member can read what we trust)."""
    return f"{host_id(host, port)} {key_type} {base64.b64encode(blob).decode('ascii')}"


def append(host: str, port: int, key_type: str, blob: bytes, path: Path | None = None) -> Path:
    """Add a trusted key at the end of the file; the file is 0600 in a 0700 directory."""
    target = path or default_path()
    paths.ensure_private_dir(target.parent)
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        needs_newline = False
        if size:
            handle.seek(size - 1)
            needs_newline = handle.read(1) != b"\n"
        text = ("\n" if needs_newline else "") + line(host, port, key_type, blob) + "\n"
        handle.write(text.encode("ascii"))
    if os.name == "posix":
        target.chmod(0o600)
    return target
