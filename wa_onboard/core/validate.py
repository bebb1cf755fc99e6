"""Rules for every value a member can supply.

Each function takes the raw text, returns the normalised value, or raises InvalidInput naming the
field and the rule. These run before anything touches ssh or a remote shell, so a value that
passes here is safe to pass as one argv element and, quoted, inside a remote script. The rules are
stricter than the systems behind them where that costs nothing (no leading '-', which would read
as an option to ssh, conda or jupyter).
"""

from __future__ import annotations

import ipaddress
import re
import socket

from wa_onboard.core.errors import InvalidInput

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ENV = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KERNEL = re.compile(r"[a-z0-9._-]{1,64}")
_PYTHON = re.compile(r"3\.[0-9]{1,2}(?:\.[0-9]{1,2})?")
_MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/-]{0,127}")
_BASE_URL = re.compile(r"(?:/[A-Za-z0-9._~-]+)*")
_PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

ENGINES = ("openssh", "paramiko")
SHOWN_MAX = 40
"""A bad value is quoted in the error up to this many characters (a pasted 5000-character blob is not)."""


def shown(value: object) -> str:
    """A rejected value as an error quotes it: ``repr`` (control characters visible), cut with an
    ellipsis and its length when long, so the one-line error stays one readable line."""
    if isinstance(value, str) and len(value) > SHOWN_MAX:
        return f"{value[:SHOWN_MAX]!r}… ({len(value)} characters)"
    return repr(value)


def user(value: str, field: str = "user") -> str:
    """A campus (POSIX) user name."""
    if not _USER.fullmatch(value):
        raise InvalidInput(
            field,
            f"{shown(value)} is not a user name (letters, digits, '_', '.', '-'; "
            "starts with a letter or '_'; at most 32 characters)",
            "use your CAE username, e.g. --user bbadger",
        )
    return value


def hostname(value: str, field: str) -> str:
    """A DNS name or an IP address, never something ssh could read as an option.

    No IPv6 zone id (``fe80::1%eth0``): ``ipaddress`` takes almost anything after ``%`` (spaces,
    newlines, ``#``), which would end up in our ssh_config, and ssh_config has no escaping."""
    if "%" in value:
        raise InvalidInput(
            field,
            f"{shown(value)}: an IPv6 zone id ('%...') is not supported",
            "give a host name or an address without the zone id",
        )
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped or 1 < int(address) < 2**32):
            # ::ffff:a.b.c.d and ::a.b.c.d are written differently by Python and by ssh (libc)
            raise InvalidInput(
                field, f"{shown(value)} is an IPv4 address written as IPv6; write it as a.b.c.d"
            )
        return str(address)
    labels = value.rstrip(".").split(".")
    if (
        not value
        or len(value) > 253
        or value.startswith("-")
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
    ):
        raise InvalidInput(
            field,
            f"{shown(value)} is not a host name (labels of letters, digits and '-', separated by '.')",
        )
    if labels[-1].isdigit() or _inet_aton_accepts(value):
        # ssh (inet_aton) reads "127.1", "0" or "010.1.1.1" as an IPv4 address of its own making
        raise InvalidInput(
            field,
            f"{shown(value)} reads as a shortened IPv4 address; write the address as four numbers a.b.c.d",
        )
    return value.rstrip(".").lower()


def _inet_aton_accepts(value: str) -> bool:
    try:
        socket.inet_aton(value)
    except OSError:
        return False
    return True


def port(value: int | str, field: str) -> int:
    """A TCP port, 1-65535, in plain digits (int() would also take ' 80', '8_0' and other scripts' digits)."""
    try:
        if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,5}", value):
            raise ValueError(value)
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"{shown(value)} is not a port number (1-65535)") from None
    if isinstance(value, bool) or not 1 <= number <= 65535:
        raise InvalidInput(field, f"{shown(value)} is not a port number (1-65535)")
    return number


def host_port(value: str, field: str, default_port: int = 22) -> tuple[str, int]:
    """``HOST[:PORT]``; an IPv6 literal with a port is written ``[addr]:port``."""
    text = value.strip()
    if text.startswith("["):
        addr, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInput(field, f"{shown(value)}: write an IPv6 address with a port as [addr]:port")
        return hostname(addr, field), port(rest[1:], f"{field} port") if rest else default_port
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return hostname(host, field), port(port_text, f"{field} port")
    return hostname(text, field), default_port


def format_host_port(host: str, port_number: int, default_port: int = 22) -> str:
    """The inverse of host_port: the short form when the port is the default."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port_number == default_port else f"{shown}:{port_number}"


def env_name(value: str, field: str = "env") -> str:
    """A conda env name this tool will create: conda's rules, and no path tricks."""
    if not _ENV.fullmatch(value) or value.startswith("-") or value in (".", ".."):
        raise InvalidInput(
            field,
            f"{shown(value)} is not allowed (1-64 of letters, digits, '.', '_', '-'; not starting with '-')",
            "pick a plain name such as --env wa",
        )
    if value.lower() in ("base", "root"):
        raise InvalidInput(field, f"{shown(value)} is conda's own environment and is read-only here")
    return value


def kernel_name(value: str, field: str = "kernel-name") -> str:
    """A Jupyter kernel name; Jupyter lowercases it and allows ``[a-z0-9._-]``."""
    lowered = value.lower()
    if not _KERNEL.fullmatch(lowered) or lowered.startswith("-") or lowered in (".", ".."):
        raise InvalidInput(
            field,
            f"{shown(value)} is not a kernel name Jupyter accepts (letters, digits, '.', '_', '-')",
        )
    return value


def display_name(value: str, field: str = "display-name") -> str:
    """The name the Launcher shows: any printable text."""
    if not value.strip() or len(value) > 128 or _CONTROL.search(value):
        raise InvalidInput(field, "must be 1-128 printable characters, no control characters")
    return value


def python_version(value: str, field: str = "python") -> str:
    if not _PYTHON.fullmatch(value):
        raise InvalidInput(field, f"{shown(value)} is not a Python version such as 3.11")
    return value


def conda_module(value: str, field: str = "conda-module") -> str:
    """An environment-module name such as ``anaconda`` or ``anaconda3/2024.02``."""
    if not _MODULE.fullmatch(value) or ".." in value:
        raise InvalidInput(field, f"{shown(value)} is not a module name (e.g. anaconda or anaconda3/2024.02)")
    return value


def base_url(value: str, field: str = "base-url") -> str:
    """The hub's URL prefix, normalised to ``/prefix`` (no trailing slash; empty for the root)."""
    text = value.strip()
    if text and not text.startswith("/"):
        text = "/" + text
    text = text.rstrip("/")
    if not _BASE_URL.fullmatch(text) or any(part in (".", "..") for part in text.split("/")):
        raise InvalidInput(field, f"{shown(value)} is not a URL path such as /jupyter")
    return text


def engine(value: str, field: str = "engine") -> str:
    if value not in ENGINES:
        raise InvalidInput(field, f"{shown(value)} is not one of: {', '.join(ENGINES)}")
    return value


def profile_name(value: str, field: str = "profile") -> str:
    if not _PROFILE.fullmatch(value):
        raise InvalidInput(field, f"{shown(value)} is not a profile name (letters, digits, '_', '-')")
    return value
