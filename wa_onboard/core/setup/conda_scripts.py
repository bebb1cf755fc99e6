"""The bash scripts the setup steps run on the workstation, and the parsers for what they print.

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
#: below this, creating an env gets a warning (python + ipykernel need a few hundred MB)
LOW_SPACE_KB = 2 * 1024 * 1024
#: remote directory (under $HOME) for our bookkeeping: the unfinished-create markers
STATE_DIR = "$HOME/.local/state/wa-onboard"


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


def _json_block(out: ScriptOutput, name: str) -> dict[str, Any] | None:
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
    info = _json_block(out, "info") or {}
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


# ----------------------------------------------------------------------------------------- the env

_MARKER = STATE_DIR + "/conda-create-"

#: bash functions that tell whether the ``conda create`` an earlier run recorded is still that process.
#: Homes are shared over NFS between campus machines and pids are reused, so a pid alone proves nothing:
#: the record (``<marker>.pid``) holds the pid, the host, the boot, the process's start time (field 22 of
#: /proc/PID/stat, fixed at fork) and the argv we started; all must match before anything is signalled.
_CREATOR = r"""
wa_proc_ident() (  # host, boot id and start time of pid $1, one a line; fails when there is no such process
    [ -d /proc/self ] || exit 1
    s=$(cat "/proc/$1/stat" 2>/dev/null) || exit 1
    s=${s##*) }
    set -f
    set -- $s
    [ -n "${20:-}" ] && [ "$1" != Z ] || exit 1
    printf '%s\n%s\n%s\n' "$(uname -n)" "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" "${20}"
)
wa_creator() (  # the state of the process recorded in file $1: none, unknown, elsewhere, gone or running
    [ -f "$1" ] || { echo none; exit 0; }
    { IFS= read -r pid; IFS= read -r host; IFS= read -r boot; IFS= read -r start; } <"$1"
    case $pid in ''|*[!0-9]*) echo unknown; exit 0 ;; esac
    if [ -z "$host" ] || [ -z "$start" ] || [ ! -d /proc/self ]; then echo unknown; exit 0; fi
    if [ "$host" != "$(uname -n)" ]; then echo elsewhere; exit 0; fi
    [ "$boot" = "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" ] || { echo gone; exit 0; }
    now=$(wa_proc_ident "$pid") || { echo gone; exit 0; }
    [ "$now" = "$(printf '%s\n%s\n%s' "$host" "$boot" "$start")" ] || { echo gone; exit 0; }
    want=$(tail -n +5 "$1")
    n=$(printf '%s\n' "$want" | wc -l)
    have=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | tail -n "$n")
    if [ -n "$want" ] && [ "$have" = "$want" ]; then echo running; else echo gone; fi
)
wa_stop_creator() {  # stop the recorded conda (its process group) only while the record matches it
    if [ "$(wa_creator "$1")" != running ]; then return 1; fi
    IFS= read -r wa_pid <"$1"
    kill -TERM -- "-$wa_pid" 2>/dev/null || kill -TERM "$wa_pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 -- "-$wa_pid" 2>/dev/null || kill -0 "$wa_pid" 2>/dev/null || break
        sleep 0.5
    done
    wa_st=$(wa_creator "$1")
    # the group is still ours while its leader is, or while no other process has taken the leader's pid
    if [ "$wa_st" = running ] || [ ! -e "/proc/$wa_pid" ]; then
        kill -KILL -- "-$wa_pid" 2>/dev/null \
            || { [ "$wa_st" = running ] && kill -KILL "$wa_pid" 2>/dev/null; }
    fi
    echo "WA stopped $wa_pid"
}
"""


def _marker_lines(env: str) -> str:
    return f'marker="{_MARKER}"{quote(env)}\nrecord="$marker.pid"\n'


_PROBE = r"""
wa_probed=
wa_probe() {
    case "
$wa_probed
" in *"
$1
"*) return 0 ;; esac
    wa_probed="$wa_probed
$1"
    [ -e "$1" ] || return 0
    echo "WA dir $1"
    [ -f "$1/conda-meta/history" ] && echo "WA history $1"
    if [ -x "$1/bin/python" ]; then
        echo "WA python $1/bin/python"
        v=$("$1/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) \
            && echo "WA pyver $1 $v"
        if k=$("$1/bin/python" -c 'import ipykernel; print(ipykernel.__version__)' 2>/dev/null); then
            echo "WA ipykernel $1 $k"
        else  # why not, for the doctor's hint
            "$1/bin/python" -c 'import ipykernel' 2>&1 | tail -n 1 | sed "s|^|WA ipykernel-error $1 |"
        fi
    fi
}
"""


def env_status_script(loc: CondaLocation, env: str) -> str:
    """conda's own env list, the state of every place the env is or can be (conda's list may name a
    prefix outside the envs dirs, from ``environments.txt``), and our unfinished-create marker."""
    candidates = " ".join(quote(p) for p in loc.env_prefixes(env))
    return script(loc.prelude() + env_status_body(env, candidates))


def env_status_body(env: str, candidates: str) -> str:
    """The bash of env_status_script after ``$conda`` is set; ``candidates``: bash words for the env's
    places in conda's envs dirs. The doctor runs this same bash, with the dirs it found in bash."""
    return (
        _CREATOR
        + _PROBE
        + _marker_lines(env)
        + f"""
wa_env={quote(env)}
wa_list=$("$conda" env list --json 2>&1)
echo "WA-BEGIN envs"
printf '%s\\n' "$wa_list"
echo "WA-END envs"
for p in {candidates}; do wa_probe "$p"; done
while IFS= read -r p; do
    [ "${{p##*/}}" = "$wa_env" ] && wa_probe "$p"
done < <(printf '%s\\n' "$wa_list" | grep -o '"/[^"]*"' | tr -d '"')
if [ -f "$marker" ]; then
    while IFS= read -r p; do
        echo "WA unfinished $p"
        [ -e "$p" ] && echo "WA leftover $p"
    done <"$marker"
    echo "WA marker yes"
    echo "WA creator $(wa_creator "$record")"
    if [ -f "$record" ]; then
        {{ IFS= read -r r_pid; IFS= read -r r_host; }} <"$record"
        echo "WA creator-pid $r_pid"
        echo "WA creator-host $r_host"
    fi
fi
"""
    )


def outside_env_hint(prefix: str, other_name_command: str) -> str:
    """The fix for a broken env outside conda's envs folders, which setup never deletes (setup and the
    doctor say the same)."""
    return (
        f"remove it yourself on the workstation (conda env remove -p {quote(prefix)}), or use another env "
        f"name: {other_name_command}"
    )


#: what ``wa_creator`` says about the recorded ``conda create``
CREATOR_STATES = ("none", "unknown", "elsewhere", "gone", "running")


@dataclass(frozen=True)
class EnvState:
    """What the workstation says about the member's env."""

    name: str
    prefix: str = ""
    """Where it is (or would be); empty when it does not exist."""
    listed: bool = False
    """conda itself lists it."""
    python: str = ""
    """``<prefix>/bin/python`` when it exists and runs."""
    python_version: str = ""
    ipykernel: str = ""
    """ipykernel's version when the env's python imports it."""
    finished: bool = False
    """conda wrote the env's ``conda-meta/history`` (it does so when a transaction completes)."""
    unfinished: tuple[str, ...] = ()
    """Prefixes an interrupted run of ours started creating (the marker's list)."""
    leftovers: tuple[str, ...] = ()
    """Those of ``unfinished`` that exist now."""
    marker: bool = False
    creator: str = "none"
    """The interrupted run's ``conda create``: one of CREATOR_STATES (``running`` only when the host,
    boot, start time and command line all match the record)."""
    creator_host: str = ""
    creator_pid: str = ""

    @property
    def exists(self) -> bool:
        return bool(self.prefix)

    @property
    def healthy(self) -> bool:
        return self.exists and bool(self.python_version)

    @property
    def broken(self) -> bool:
        return self.exists and not self.healthy


def parse_env_status(out: ScriptOutput, loc: CondaLocation, env: str) -> EnvState:
    listed = [
        str(p)
        for p in (_json_block(out, "envs") or {}).get("envs", [])
        if str(p).rstrip("/").endswith(f"/{env}")
    ]
    dirs = out.all("dir")
    candidates = loc.env_prefixes(env)
    # conda's list wins (an envs dir first, as ``-n`` resolves it); else a folder where conda would put it
    prefix = next((p for p in listed if p in candidates), listed[0] if listed else "")
    if not prefix and dirs:
        prefix = dirs[0]
    versions = dict(v.rsplit(" ", 1) for v in out.all("pyver") if " " in v)
    kernels = dict(v.rsplit(" ", 1) for v in out.all("ipykernel") if " " in v)
    python = f"{prefix}/bin/python" if prefix and prefix in versions else ""
    creator = out.first("creator", "none")
    return EnvState(
        name=env,
        prefix=prefix,
        listed=bool(listed),
        python=python,
        python_version=versions.get(prefix, ""),
        ipykernel=kernels.get(prefix, ""),
        finished=prefix in out.all("history"),
        unfinished=tuple(out.all("unfinished")),
        leftovers=tuple(out.all("leftover")),
        marker=out.has("marker"),
        creator=creator if creator in CREATOR_STATES else "unknown",
        creator_host=out.first("creator-host"),
        creator_pid=out.first("creator-pid"),
    )


@dataclass(frozen=True)
class Unfinished:
    """What to do about the marker an interrupted ``conda create`` of ours left."""

    action: str
    """``wait`` (our conda still runs), ``clear`` (nothing of ours to remove: drop the marker), or
    ``remove`` (half-made folders, removed only with the member's yes)."""
    remove: tuple[str, ...] = ()


def unfinished_action(state: EnvState) -> Unfinished:
    """Decide from facts alone: a finished, healthy env is kept; only folders the marker says we were
    making, that exist and are not that env, are offered for removal; our running conda is waited for.

    Finished means conda's history file is there and the env's python runs and imports ipykernel: the
    real conda touches the history when a transaction starts, but links ipykernel (which needs most of
    the rest) near its end, and rolls a failed create back."""
    if state.creator == "running":
        return Unfinished("wait")
    keep = state.prefix if state.healthy and state.finished and state.ipykernel else ""
    remove = tuple(p for p in state.leftovers if p != keep and p in state.unfinished)
    return Unfinished("remove", remove) if remove else Unfinished("clear")


def free_space_script(loc: CondaLocation) -> str:
    """Free space where the env will go: the first envs dir, or its nearest existing parent."""
    first = loc.envs_dirs[0] if loc.envs_dirs else "$HOME/.conda/envs"
    target = quote(first) if loc.envs_dirs else f'"{first}"'
    return script(
        f"""
d={target}
while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done
echo "WA dir $d"
df -Pk "$d" 2>/dev/null | awk 'NR==2 {{print "WA free-kb " $4}}'
"""
    )


#: follows conda's log until conda ends (GNU tail), else prints it once conda is done
_FOLLOW = r"""
wa_follow() {  # wa_follow PID LOG
    if tail --pid="$$" -n 0 /dev/null >/dev/null 2>&1; then
        tail -s 0.2 --pid="$1" -n +1 -f "$2" 2>/dev/null
    else
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        cat "$2" 2>/dev/null
    fi
}
"""


def create_env_script(loc: CondaLocation, env: str, python: str) -> str:
    """``conda create`` once, with a marker listing the folders this run may create.

    The marker lets a later run (or the Ctrl-C handler) remove a half-made env that we made, and
    nothing else; the record beside it names the conda process exactly (see ``_CREATOR``). conda runs
    in its own process group, writing to a log we follow, so a dropped connection neither stops it
    (no broken pipe) nor leaves a group the Ctrl-C handler cannot stop.
    """
    candidates = " ".join(quote(p) for p in loc.env_prefixes(env))
    argv = ["create", "-y", "-n", env, f"python={python}", "ipykernel"]
    args = " ".join(quote(a) for a in argv)
    return script(
        loc.prelude()
        + _CREATOR
        + _FOLLOW
        + _marker_lines(env)
        + f"""
umask 077
mkdir -p "{STATE_DIR}" || exit 4
: >"$marker"
for p in {candidates}; do [ -e "$p" ] || printf '%s\\n' "$p" >>"$marker"; done
log="$marker.log"
: >"$log"
umask 022
if command -v setsid >/dev/null 2>&1; then run=setsid; else run=; fi
t0=${{EPOCHREALTIME:-}}
$run "$conda" {args} >"$log" 2>&1 </dev/null &
pid=$!
{{
    printf '%s\\n' "$pid"
    wa_proc_ident "$pid" || printf '\\n\\n\\n'
    printf '%s\\n' "$conda" {args}
}} >"$record"
echo "WA pid $pid"
wa_follow "$pid" "$log"
wait "$pid"
rc=$?
[ -n "$t0" ] && echo "WA conda-seconds $t0 $EPOCHREALTIME"
if [ "$rc" -ne 0 ]; then
    while IFS= read -r p; do
        if [ -e "$p" ]; then rm -rf -- "$p" && echo "WA removed $p"; fi
    done <"$marker"
fi
rm -f -- "$marker" "$record" "$log"
echo "WA rc $rc"
exit "$rc"
"""
    )


def wait_for_creator_script(env: str) -> str:
    """Follow the conda an interrupted run started until it ends; it is never signalled here."""
    return script(
        _CREATOR
        + _FOLLOW
        + _marker_lines(env)
        + """
if [ "$(wa_creator "$record")" = running ]; then
    IFS= read -r pid <"$record"
    wa_follow "$pid" "$marker.log"
    while [ "$(wa_creator "$record")" = running ]; do sleep 1; done
fi
echo "WA creator $(wa_creator "$record")"
"""
    )


def clear_marker_script(env: str) -> str:
    """Forget an interrupted create whose env finished (or never began): the marker files only."""
    return script(_marker_lines(env) + 'rm -f -- "$marker" "$record" "$marker.log"\necho "WA cleared"\n')


def cleanup_unfinished_script(env: str, only: Sequence[str] | None = None) -> str:
    """Stop an interrupted ``conda create`` of ours (only if the record still matches it) and remove the
    folders it was making: all the marker lists, or ``only`` those of them (each must be in the marker)."""
    if only is None:
        select = 'while IFS= read -r p; do printf "%s\\n" "$p"; done <"$marker"'
    else:
        select = "printf '%s\\n' " + " ".join(quote(p) for p in only) if only else ":"
    return script(
        _CREATOR
        + _marker_lines(env)
        + f"""
if [ -f "$record" ]; then wa_stop_creator "$record" || echo "WA not-stopped $(wa_creator "$record")"; fi
if [ -f "$marker" ]; then
    {select} | while IFS= read -r p; do
        [ -n "$p" ] && grep -qxF -- "$p" "$marker" || continue
        if [ -e "$p" ]; then rm -rf -- "$p" && echo "WA removed $p"; fi
    done
fi
rm -f -- "$marker" "$record" "$marker.log"
"""
    )


def remove_env_script(prefix: str, allowed: Sequence[str]) -> str:
    """Remove a broken env folder, after the member agreed. Only a folder where conda keeps this env."""
    if prefix not in allowed:
        raise ValueError(f"{prefix!r} is not one of the env's own folders")
    return script(f'rm -rf -- {quote(prefix)} && echo "WA removed" {quote(prefix)}')


def conda_seconds(out: ScriptOutput) -> float | None:
    """How long conda itself ran (bash 5's EPOCHREALTIME at both ends), or None when unknown."""
    try:
        start, end = (float(t.replace(",", ".")) for t in out.first("conda-seconds").split())
    except ValueError:
        return None
    return end - start


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


# ----------------------------------------------------------------------------------------- the kernel

_KERNEL_PY = r"""
import json, os, sys
name = sys.argv[1]
try:
    from jupyter_core.paths import jupyter_data_dir
    data = jupyter_data_dir()
except Exception:
    data = os.environ.get("JUPYTER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "jupyter")
path = os.path.join(data, "kernels", name, "kernel.json")
out = {"path": path, "exists": os.path.isfile(path), "me": os.path.realpath(sys.executable)}
if out["exists"]:
    try:
        with open(path) as f:
            spec = json.load(f)
        argv = spec.get("argv") or [""]
        out.update(argv0=argv[0], display_name=spec.get("display_name", ""),
                   argv0_exists=os.path.isfile(argv[0]),
                   same=os.path.realpath(argv[0]) == out["me"])
    except Exception as exc:
        out["error"] = str(exc)
print(json.dumps(out))
"""


def kernel_status_script(env_python: str, kernel_name: str) -> str:
    """Read the kernelspec with the env's own python; then prove its argv[0] imports ipykernel."""
    return script(
        f"""
py={quote(env_python)}
j=$("$py" -c {quote(_KERNEL_PY)} {quote(kernel_name.lower())} 2>&1)
echo "WA-BEGIN kernel"
printf '%s\\n' "$j"
echo "WA-END kernel"
argv0=$("$py" -c 'import json,sys; print(json.loads(sys.argv[1]).get("argv0", ""))' "$j" 2>/dev/null)
if [ -n "$argv0" ]; then
    if "$argv0" -c 'import ipykernel' >/dev/null 2>&1; then echo "WA imports yes"
    else echo "WA imports no"; fi
fi
"""
    )


@dataclass(frozen=True)
class KernelState:
    path: str = ""
    exists: bool = False
    argv0: str = ""
    argv0_exists: bool = False
    same_python: bool = False
    display_name: str = ""
    imports_ipykernel: bool = False
    error: str = ""

    def problem(self, display_name: str) -> str:
        """Why this kernelspec is not the one we want; empty when it is."""
        if not self.exists:
            return f"no kernelspec at {self.path}" if self.path else "the kernelspec could not be read"
        if self.error:
            return f"{self.path} is not a valid kernelspec: {self.error}"
        if not self.argv0_exists:
            return f"the kernel points to {self.argv0}, which no longer exists (a deleted env)"
        if not self.same_python:
            return f"the kernel points to {self.argv0}, not to the env's python"
        if self.display_name != display_name:
            return f"the kernel's display name is {self.display_name!r}, not {display_name!r}"
        if not self.imports_ipykernel:
            return f"{self.argv0} cannot import ipykernel"
        return ""


def parse_kernel_status(out: ScriptOutput) -> KernelState:
    data = _json_block(out, "kernel")
    if data is None:
        return KernelState(error=out.blocks.get("kernel", "").strip()[-300:] or "no answer")
    return KernelState(
        path=str(data.get("path", "")),
        exists=bool(data.get("exists")),
        argv0=str(data.get("argv0", "")),
        argv0_exists=bool(data.get("argv0_exists")),
        same_python=bool(data.get("same")),
        display_name=str(data.get("display_name", "")),
        imports_ipykernel=out.first("imports") == "yes",
        error=str(data.get("error", "")),
    )


def register_kernel_script(env_python: str, kernel_name: str, display_name: str) -> str:
    return script(
        f"{quote(env_python)} -m ipykernel install --user --name {quote(kernel_name)} "
        f"--display-name {quote(display_name)} 2>&1\n"
    )


# ----------------------------------------------------------------------------------------- key install


def install_key_script(public_key: str) -> str:
    """ssh-copy-id's way: look first, append once, ``umask 077``; bash via stdin works for any login shell."""
    key = public_key.strip()
    if "\n" in key or not key:
        raise ValueError("a public key is one line")
    return script(
        f"""
umask 077
key={quote(key)}
mkdir -p "$HOME/.ssh" || exit 4
f="$HOME/.ssh/authorized_keys"
if [ -f "$f" ] && grep -qxF -- "$key" "$f"; then echo "WA key present"; exit 0; fi
if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >>"$f"; fi
printf '%s\\n' "$key" >>"$f" || exit 5
chmod 700 "$HOME/.ssh" && chmod 600 "$f"
echo "WA key added"
"""
    )
