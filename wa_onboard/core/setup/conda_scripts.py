"""The bash scripts the setup steps run on the workstation, and the parsers for what they print: here
the frame every script shares, finding conda, and conda's errors; the env's scripts are in
``env_scripts``, the kernelspec's and the key's in ``kernel_scripts``.

Every script is plain bash run through ``RemoteShell.run`` (a login shell, so ``module`` exists). It
speaks in ``WA <key> <value>`` lines and ``WA-BEGIN name`` / ``WA-END name`` blocks (for conda's JSON),
so parsing never depends on what conda or a login script prints around them. Every value that came
from the member is validated by the profile and passed through ``quote``; values that came from the
workstation (prefixes, module names) are quoted too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wa_onboard.core.remote import quote

#: where conda usually lives when it is neither on PATH nor a module
COMMON_INSTALLS = (
    "$HOME/anaconda3",
    "$HOME/miniconda3",
    "$HOME/miniforge3",
    "$HOME/mambaforge",
    "/opt/conda",
    "/opt/anaconda3",
    "/opt/miniconda3",
    "/opt/miniforge3",
    "/usr/local/anaconda3",
    "/usr/local/miniconda3",
    "/usr/local/miniforge3",
    "/usr/local/conda",
)
#: module names worth trying when the profile's module does not exist, best first
MODULE_PATTERNS = ("anaconda", "miniconda", "miniforge", "mambaforge", "conda", "mamba")


def script(body: str) -> str:
    """A subshell, so ``exit N`` ends only the script and the runner still sees the end marker."""
    return f"(\n{body.strip()}\n)"


@dataclass(frozen=True)
class ScriptOutput:
    """The ``WA key value`` lines and ``WA-BEGIN``/``WA-END`` blocks of one script run."""

    values: dict[str, list[str]] = field(default_factory=dict)
    blocks: dict[str, str] = field(default_factory=dict)
    other: tuple[str, ...] = ()
    """Everything else the script printed (conda's own words, for error excerpts)."""

    def first(self, key: str, default: str = "") -> str:
        found = self.values.get(key)
        return found[0] if found else default

    def all(self, key: str) -> list[str]:
        return self.values.get(key, [])

    def has(self, key: str) -> bool:
        return key in self.values


def parse(stdout: str) -> ScriptOutput:
    values: dict[str, list[str]] = {}
    blocks: dict[str, str] = {}
    other: list[str] = []
    block: str | None = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if block is not None:
            if line == f"WA-END {block}":
                blocks[block] = "\n".join(lines)
                block, lines = None, []
            else:
                lines.append(line)
        elif line.startswith("WA-BEGIN "):
            block = line[len("WA-BEGIN ") :]
        elif line.startswith("WA "):
            key, _, value = line[3:].partition(" ")
            values.setdefault(key, []).append(value)
        else:
            other.append(line)
    if block is not None:  # cut short: keep what came
        blocks[block] = "\n".join(lines)
    return ScriptOutput(values, blocks, tuple(other))


def json_block(out: ScriptOutput, name: str) -> dict[str, Any] | None:
    text = out.blocks.get(name, "")
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------------------- finding conda

_FIND_EXE = r"""
wa_conda_exe() {
    if [ -n "${CONDA_EXE:-}" ] && [ -x "$CONDA_EXE" ]; then printf '%s\n' "$CONDA_EXE"; return 0; fi
    wa_p=$(command -v conda 2>/dev/null) || return 1
    case $wa_p in /*) [ -x "$wa_p" ] && { printf '%s\n' "$wa_p"; return 0; } ;; esac
    return 1
}
"""


def find_conda_script(conda_module: str) -> str:
    """Login-shell PATH, then the module (or a likely-named one), then the usual install folders."""
    patterns = " ".join(MODULE_PATTERNS)
    installs = " ".join(f'"{p}"' if p.startswith("$HOME") else quote(p) for p in COMMON_INSTALLS)
    return script(
        _FIND_EXE
        + f"""
want={quote(conda_module)}
how=; mod=; exe=
if exe=$(wa_conda_exe); then
    how=path
elif type module >/dev/null 2>&1; then
    echo "WA modules yes"
    if wa_err=$(module load "$want" 2>&1) && exe=$(wa_conda_exe); then
        how=module; mod=$want
    else
        echo "WA module-missing $want"
        printf '%s\\n' "$wa_err" | head -n 5 | sed 's/^/WA module-error /'
        avail=$( (module -t avail) 2>&1 | sed 's/([^)]*)//g; s/[[:space:]]*$//' | grep -v ':$' | grep -v '^$')
        tried=
        for pat in {patterns}; do
            for cand in $(printf '%s\\n' "$avail" | grep -i -- "$pat"); do
                cand=${{cand%/}}
                case " $tried " in *" $cand "*) continue ;; esac
                tried="$tried $cand"
                echo "WA module-tried $cand"
                if module load "$cand" >/dev/null 2>&1 && exe=$(wa_conda_exe); then
                    how=module; mod=$cand; break 2
                fi
            done
        done
    fi
fi
if [ -z "$how" ]; then
    for d in {installs}; do
        echo "WA path-tried $d"
        if [ -x "$d/bin/conda" ]; then exe=$d/bin/conda; how=install; break; fi
    done
fi
if [ -z "$how" ]; then
    echo "WA found no"
    exit 3
fi
echo "WA found $how"
echo "WA module $mod"
echo "WA exe $exe"
echo "WA-BEGIN info"
"$exe" info --json 2>&1
rc=$?
echo "WA-END info"
echo "WA info-rc $rc"
"""
    )


@dataclass(frozen=True)
class CondaLocation:
    """Where conda is and how later scripts get it back (each script is a new login shell)."""

    how: str
    """``path``, ``module`` or ``install``."""
    exe: str
    module: str = ""
    version: str = ""
    root_prefix: str = ""
    envs_dirs: tuple[str, ...] = ()
    requested_module: str = ""

    @property
    def source(self) -> str:
        """In words, for the step's summary."""
        if self.how == "module":
            if self.requested_module and self.module != self.requested_module:
                return f"module {self.module} (there is no module {self.requested_module})"
            return f"module {self.module}"
        if self.how == "path":
            return f"the login shell's PATH ({self.exe})"
        return f"install folder {self.root_prefix or self.exe}"

    def prelude(self) -> str:
        """Bash that makes conda usable again in a fresh login shell: ``$conda`` is the executable."""
        lines = []
        if self.how == "module" and self.module:
            lines.append(f"module load {quote(self.module)} >/dev/null 2>&1")
        lines.append(f"conda={quote(self.exe)}")
        return "\n".join(lines) + "\n"

    def env_prefixes(self, env: str) -> list[str]:
        """Where ``conda create -n env`` can put the env (the first writable envs dir wins)."""
        return [f"{d.rstrip('/')}/{env}" for d in self.envs_dirs]


def parse_find_conda(out: ScriptOutput, requested_module: str) -> CondaLocation | None:
    if out.first("found") in ("", "no"):
        return None
    info = json_block(out, "info") or {}
    envs_dirs = info.get("envs_dirs") or []
    return CondaLocation(
        how=out.first("found"),
        exe=out.first("exe"),
        module=out.first("module"),
        version=str(info.get("conda_version", "")),
        root_prefix=str(info.get("root_prefix", "")),
        envs_dirs=tuple(str(d) for d in envs_dirs if isinstance(d, str)),
        requested_module=requested_module if out.has("module-missing") else "",
    )


def find_conda_report(out: ScriptOutput) -> str:
    """What was tried, for the failure's detail."""
    lines = []
    if not out.has("modules"):
        lines.append("no 'module' command in the login shell")
    for missing in out.all("module-missing"):
        lines.append(f"module load {missing}: failed")
    lines += [f"  {e}" for e in out.all("module-error") if e.strip()]
    tried = out.all("module-tried")
    lines.append(f"modules tried: {', '.join(tried)}" if tried else "no module named like conda is available")
    lines.append(f"install folders tried: {', '.join(out.all('path-tried'))}")
    return "\n".join(lines)


def install_ipykernel_script(loc: CondaLocation, prefix: str) -> str:
    """By prefix: the env conda lists may live outside the envs dirs, where ``-n`` does not look."""
    return script(loc.prelude() + f'"$conda" install -y -p {quote(prefix)} ipykernel 2>&1\n')


_CONDA_ERROR = re.compile(r"^([A-Z][A-Za-z]*(?:Error|NotFound|Exception)):\s*(.*)$")
_QUOTA = re.compile(r"errno 122|disk quota exceeded", re.IGNORECASE)


@dataclass(frozen=True)
class CondaFailure:
    """conda's own error line, and what to do about it."""

    kind: str
    line: str
    hint: str


def conda_failure(lines: Sequence[str], *, python: str = "") -> CondaFailure:
    """Pick conda's ``ErrorType: message`` line out of its output and name the fix."""
    error = next((m for m in (_CONDA_ERROR.match(line.strip()) for line in lines) if m), None)
    quota = next((line.strip() for line in lines if _QUOTA.search(line)), "")
    if quota:
        return CondaFailure(
            "quota",
            quota,
            "your disk quota on the workstation is full: free space (e.g. `conda clean --all -y` "
            "removes cached packages), then run setup again",
        )
    if error is None:
        tail = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        return CondaFailure("unknown", tail, "read conda's output above; run setup again once it is fixed")
    kind, line = error.group(1), error.group(0)
    hints = {
        "PackagesNotFoundError": f"python={python} or ipykernel is not in the configured channels: "
        "pick another version with --python (e.g. 3.11), or check `conda config --show channels`",
        "CondaHTTPError": "the workstation cannot reach the package server: check its network "
        "or proxy (`conda config --show proxy_servers`), or ask the lab admins",
        "NoWritableEnvsDirError": "no envs folder is writable: ask the lab admins, or add one with "
        "`conda config --append envs_dirs ~/.conda/envs`",
        "CondaValueError": "conda refused the request: check --env and --python",
    }
    return CondaFailure(kind, line, hints.get(kind, "read conda's error above; run setup again once fixed"))
