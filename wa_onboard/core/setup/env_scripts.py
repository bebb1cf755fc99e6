"""The member's conda env on the workstation: what is there, creating it once, and cleaning up after
an interrupted create (only what a run of ours was making, only with the member's yes).

The scripts speak the ``WA`` lines of ``conda_scripts``; every value is quoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wa_onboard.core.remote import quote
from wa_onboard.core.setup.conda_scripts import CondaLocation, ScriptOutput, json_block, script

#: below this, creating an env gets a warning (python + ipykernel need a few hundred MB)
LOW_SPACE_KB = 2 * 1024 * 1024
#: remote directory (under $HOME) for our bookkeeping: the unfinished-create markers
STATE_DIR = "$HOME/.local/state/wa-onboard"

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
        for p in (json_block(out, "envs") or {}).get("envs", [])
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
