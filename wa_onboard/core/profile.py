"""Profiles: what a member connects to, stored as ``[profiles.NAME]`` tables in one TOML file."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wa_onboard.core import paths, validate
from wa_onboard.core.errors import ConfigError, InvalidInput, WaError
from wa_onboard.core.places import DEFAULT_PROFILE as DEFAULT_PROFILE  # defined there for the early login

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def command_line(profile_name: str, sub: str) -> str:
    """``wa-onboard [--profile NAME] SUB``: the command a hint tells the member to type for that
    profile (``--profile`` only when it is not the default one)."""
    if profile_name == DEFAULT_PROFILE:
        return f"wa-onboard {sub}"
    return f"wa-onboard --profile {profile_name} {sub}"


class UnknownProfile(WaError):
    """A command other than setup named a profile the config file does not have."""

    exit_code = 2


def default_engine() -> str:
    """OpenSSH where it has connection sharing; paramiko on Windows, where it has none."""
    return "paramiko" if sys.platform == "win32" else "openssh"


@dataclass(frozen=True)
class Profile:
    """One way of reaching one hub. Every field is validated on the way in (``Profile.make``)."""

    user: str = ""
    """CAE user name, the same on the jump host and the workstation. Required."""
    jump: str = "best-tux.cae.wisc.edu"
    """The campus jump host, ``HOST[:PORT]``."""
    host: str = "carproject-06.engr.wisc.edu"
    """The workstation that runs the hub, ``HOST[:PORT]``, reached through the jump host."""
    local_port: int = 8000
    """Port on the laptop's 127.0.0.1 where the hub appears."""
    remote_port: int = 8000
    """Port the hub listens on, on the workstation's loopback."""
    base_url: str = "/jupyter"
    """The hub's URL prefix (JupyterHub's ``base_url``)."""
    env: str = "wa"
    """The member's own conda env, under ``~/.conda/envs``."""
    kernel_name: str = "WA"
    """Name the kernel is registered under (Jupyter lowercases it)."""
    display_name: str = "WA"
    """The name the Launcher shows."""
    python: str = "3.11"
    """Python version for a new env."""
    conda_module: str = "anaconda"
    """The environment module that provides conda on the workstation."""
    engine: str = field(default_factory=default_engine)
    """``openssh`` (pexpect + control master) or ``paramiko`` (in-process transports and forwarder)."""

    @classmethod
    def make(cls, values: Mapping[str, Any]) -> Profile:
        """Build a profile from raw values, validating each; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidInput(unknown[0], f"unknown profile field (known: {', '.join(sorted(names))})")
        clean: dict[str, Any] = {}
        for key, raw in values.items():
            kind = _FIELD_TYPES[key]
            if not isinstance(raw, kind) or isinstance(raw, bool):
                raise InvalidInput(key, f"must be {'a number' if kind is int else 'text'}, not {raw!r}")
            clean[key] = _VALIDATORS[key](raw)
        return cls(**clean)

    def updated(self, **changes: Any) -> Profile:
        """A copy with ``changes`` applied (validated); None values are ignored."""
        merged = self.to_dict()
        merged.update({k: v for k, v in changes.items() if v is not None})
        return Profile.make(merged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_complete(self) -> bool:
        """Enough to connect: the one field without a default is set."""
        return bool(self.user)

    @property
    def jump_address(self) -> tuple[str, int]:
        return validate.host_port(self.jump, "jump")

    @property
    def host_address(self) -> tuple[str, int]:
        return validate.host_port(self.host, "host")

    @property
    def url(self) -> str:
        """What the member's browser opens: 127.0.0.1, where our forward listens, not localhost
        (browsers try [::1] first for that name, where another program could answer)."""
        return f"http://127.0.0.1:{self.local_port}{self.base_url}/"

    def require_complete(self) -> None:
        if not self.is_complete:
            raise InvalidInput("user", "is required", "give it once with --user YOUR_CAE_USERNAME")


def _normalise_host_port(field_name: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        host, port = validate.host_port(value, field_name)
        return validate.format_host_port(host, port)

    return check


def _user_or_empty(value: str) -> str:
    return value if value == "" else validate.user(value)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "user": _user_or_empty,
    "jump": _normalise_host_port("jump"),
    "host": _normalise_host_port("host"),
    "local_port": lambda v: validate.port(v, "local-port"),
    "remote_port": lambda v: validate.port(v, "remote-port"),
    "base_url": validate.base_url,
    "env": validate.env_name,
    "kernel_name": validate.kernel_name,
    "display_name": validate.display_name,
    "python": validate.python_version,
    "conda_module": validate.conda_module,
    "engine": validate.engine,
}
_FIELD_TYPES: dict[str, type] = {
    f.name: (int if f.name.endswith("_port") else str) for f in dataclasses.fields(Profile)
}


class ProfileStore:
    """The TOML file of profiles. Reads are strict; writes are atomic, 0600 in a 0700 directory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_file()

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except IsADirectoryError:
            raise ConfigError(
                f"config path {self.path} is a folder, not a file", self._where_hint("a file in it")
            ) from None
        except NotADirectoryError:
            raise ConfigError(self._file_in_the_way(), self._where_hint("a file")) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {self.path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                f"at offset {exc.start})",
                f"fix or delete {self.path} (setup writes a new one)",
            ) from None
        except PermissionError:
            raise ConfigError(
                f"cannot read config file {self.path}: permission denied",
                f"make it readable for you: chmod u+r {self.path}",
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc.strerror or exc}") from None
        try:
            data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config file {self.path} is not valid TOML: {exc}",
                f"fix or delete {self.path} (setup writes a new one)",
            ) from None
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
            raise ConfigError(f"config file {self.path}: 'profiles' must hold tables like [profiles.default]")
        return data

    def names(self) -> list[str]:
        return sorted(self._read().get("profiles", {}))

    def load(self, name: str = DEFAULT_PROFILE) -> Profile | None:
        """The stored profile, or None when there is none by that name."""
        validate.profile_name(name)
        raw = self._read().get("profiles", {}).get(name)
        if raw is None:
            return None
        try:
            return Profile.make(raw)
        except InvalidInput as exc:
            raise ConfigError(
                f"config file {self.path}, profile {name!r}: {exc}", exc.hint or f"fix it in {self.path}"
            ) from None

    def save(self, profile: Profile, name: str = DEFAULT_PROFILE) -> None:
        import tomli_w  # only writers pay for it

        validate.profile_name(name)
        data = self._read()
        data.setdefault("profiles", {})[name] = profile.to_dict()
        header = "# wa-onboard profiles. Edit with care or use: wa-onboard setup --help\n"
        try:
            # through a symlink (dotfiles) to its target: the link stays a link
            paths.write_private_file(self.path.resolve(), header + tomli_w.dumps(data))
        except (NotADirectoryError, FileExistsError):
            raise ConfigError(self._file_in_the_way(), self._where_hint("a file")) from None
        except OSError as exc:
            where = Path(exc.filename) if exc.filename else self.path
            what = (
                f"cannot make the folder {where}"
                if where != self.path and where in self.path.parents
                else f"cannot write config file {self.path}"
            )
            raise ConfigError(
                f"{what}: {exc.strerror or exc}", self._where_hint("a file in a folder you can write")
            ) from None

    def _file_in_the_way(self) -> str:
        blocker = next((p for p in reversed(self.path.parents) if p.exists() and not p.is_dir()), None)
        return f"config path {self.path}: {blocker or 'a folder on the way'} is a file, not a folder"

    def _where_hint(self, wanted: str) -> str:
        """The fix for a config path that cannot be used: where it came from decides what to change."""
        if os.environ.get("WA_ONBOARD_CONFIG"):
            return f"WA_ONBOARD_CONFIG names {self.path}: point it at {wanted}, or unset it"
        return f"{self.path} is the default config path: make room for it (move away what is there)"
