"""Every workstation fact the doctor needs, gathered by ONE bash script in ONE ssh round trip.

The conda and kernel parts are the setup steps' own scripts and parsers (core.setup's conda_scripts,
env_scripts and kernel_scripts), so the doctor and setup agree on what "found", "healthy" and
"stale" mean. Their output format (``WA key value`` lines, ``WA-BEGIN``/``WA-END`` blocks) is used
for the doctor's own parts too, and one parser reads it all. Values discovered on the workstation
(conda's path, the env's python) are handed between the parts in bash variables, never through a
second round trip. Each part can also run alone: the benchmark runs one check's parts per fresh ssh
connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from wa_onboard.core.profile import Profile
from wa_onboard.core.remote import quote
from wa_onboard.core.setup import conda_scripts as cs, env_scripts as es, kernel_scripts as ks
from wa_onboard.core.tunnel import HttpAnswer

#: stands for the env's python in kernel_scripts.kernel_status_script; replaced by a bash variable
_PY_SLOT = "__WA_DOCTOR_PYTHON__"


def _prelude(profile: Profile) -> str:
    return f"""
wa_env={quote(profile.env)}; wa_port={quote(str(profile.remote_port))}; wa_base={quote(profile.base_url)}
wa_block() {{ printf 'WA-BEGIN %s\\n' "$1"; cat; printf '\\nWA-END %s\\n' "$1"; }}
wa_http() {{  # wa_http ADDR PATH: one HTTP/1.0 GET over bash's /dev/tcp, at most 5 s
    ( exec 3<>"/dev/tcp/$1/$wa_port" || exit 1
      printf 'GET %s HTTP/1.0\\r\\nHost: localhost:%s\\r\\nConnection: close\\r\\n\\r\\n' "$2" "$wa_port" >&3
      timeout 5 head -c 8192 <&3 ) 2>/dev/null
}}
"""


def _parts(profile: Profile) -> dict[str, str]:
    """section name -> bash; a later part may use the variables an earlier one set."""
    kernel = ks.kernel_status_script(_PY_SLOT, profile.kernel_name)
    if f"py={_PY_SLOT}" not in kernel:  # kernel_scripts changed shape: fail loudly, not silently
        raise RuntimeError("kernel_scripts.kernel_status_script no longer sets py=<python>")
    kernel = kernel.replace(f"py={_PY_SLOT}", 'py="$wa_kpy"')
    return {
        "identity": """
{ id -un; printf '%s\\n' "$HOME"; uname -srm; ( . /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" ); } \\
    | wa_block identity
""",
        "disk": """
df -Pk "$HOME" 2>&1 | tail -n 1 | wa_block df
if command -v quota >/dev/null 2>&1; then quota -w 2>&1 | head -n 20 | wa_block quota; fi
""",
        "conda": f"""
wa_find=$( {cs.find_conda_script(profile.conda_module)}
)
printf '%s\\n' "$wa_find"
wa_exe=$(printf '%s\\n' "$wa_find" | sed -n 's/^WA exe //p' | head -n 1)
wa_mod=$(printf '%s\\n' "$wa_find" | sed -n 's/^WA module //p' | head -n 1)
if [ -n "$wa_mod" ]; then module load "$wa_mod" >/dev/null 2>&1; fi
""",
        # setup's own env lookup (env_scripts.env_status_body), with conda's envs dirs read in bash
        # from the `conda info --json` the conda part printed: the doctor finds the env where setup does
        "env": f"""
wa_prefix=
if [ -n "$wa_exe" ]; then
conda=$wa_exe
wa_dirs=$(printf '%s\\n' "$wa_find" | sed -n '/^WA-BEGIN info$/,/^WA-END info$/p' | tr '\\n' ' ' \\
    | grep -o '"envs_dirs": *\\[[^]]*\\]' | grep -o '"/[^"]*"' | tr -d '"')
wa_cands=()
while IFS= read -r wa_d; do [ -n "$wa_d" ] && wa_cands+=("${{wa_d%/}}/$wa_env"); done <<<"$wa_dirs"
{es.env_status_body(profile.env, '"${wa_cands[@]}"')}
# the env for the kernelspec part, in setup's parser's order (es.parse_env_status): a listed one in
# an envs dir, then any listed one, then a folder in an envs dir
wa_listed=()
while IFS= read -r wa_p; do
    [ "${{wa_p##*/}}" = "$wa_env" ] && wa_listed+=("$wa_p")
done < <(printf '%s\\n' "$wa_list" | grep -o '"/[^"]*"' | tr -d '"')
for wa_p in "${{wa_listed[@]}}"; do
    case " ${{wa_cands[*]}} " in *" $wa_p "*) wa_prefix=$wa_p; break ;; esac
done
[ -z "$wa_prefix" ] && [ ${{#wa_listed[@]}} -gt 0 ] && wa_prefix=${{wa_listed[0]}}
if [ -z "$wa_prefix" ]; then
    for wa_p in "${{wa_cands[@]}}"; do if [ -e "$wa_p" ]; then wa_prefix=$wa_p; break; fi; done
fi
fi
""",
        "kernelspec": f"""
wa_kpy=
if [ -n "$wa_prefix" ] && [ -x "$wa_prefix/bin/python" ]; then wa_kpy=$wa_prefix/bin/python
else wa_kpy=$(command -v python3 2>/dev/null); fi
if [ -n "$wa_kpy" ]; then
{kernel}
fi
""",
        "hub_port": """
wa_addr=
for wa_a in 127.0.0.1 ::1; do
    if ( exec 3<>"/dev/tcp/$wa_a/$wa_port" ) 2>/dev/null; then wa_addr=$wa_a; break; fi
done
echo "WA hub-address ${wa_addr:-none}"
""",
        "hub_health": """
if [ -n "$wa_addr" ]; then
    wa_http "$wa_addr" "$wa_base/hub/health" | wa_block hub-health
    wa_http "$wa_addr" "$wa_base/hub/api" | wa_block hub-api
fi
""",
    }


#: the parts each workstation check needs, in order (for the one-connection-per-check benchmark)
NEEDS: dict[str, tuple[str, ...]] = {
    "workstation.disk": ("disk",),
    "workstation.conda": ("conda",),
    "workstation.env": ("conda", "env"),
    "workstation.ipykernel": ("conda", "env"),
    "workstation.kernelspec": ("conda", "env", "kernelspec"),
    "workstation.hub-port": ("hub_port",),
    "workstation.hub-health": ("hub_port", "hub_health"),
}


def script(profile: Profile, parts: Iterable[str] | None = None) -> str:
    """The bash for the given parts (all of them by default), with the profile's values quoted."""
    every = _parts(profile)
    wanted = set(parts) if parts is not None else set(every)
    return _prelude(profile) + "".join(body for name, body in every.items() if name in wanted)


@dataclass(frozen=True)
class Quota:
    used_kb: int
    limit_kb: int
    """The hard limit, or the soft one when there is no hard limit."""


class WorkstationFacts:
    """Typed views over the script's output."""

    def __init__(self, stdout: str, profile: Profile) -> None:
        self.out = cs.parse(stdout)
        self.profile = profile

    def block(self, name: str) -> str:
        return self.out.blocks.get(name, "").strip("\n")

    # identity
    def _identity(self, i: int) -> str:
        lines = self.block("identity").splitlines()
        return lines[i] if len(lines) > i else ""

    @property
    def user(self) -> str:
        return self._identity(0)

    @property
    def home(self) -> str:
        return self._identity(1) or "~"

    @property
    def os(self) -> str:
        return " / ".join(x for x in (self._identity(3), self._identity(2)) if x) or "unknown"

    # disk
    @property
    def free_kb(self) -> tuple[int, int] | None:
        """(available, size) of the filesystem that holds home, in KiB."""
        fields = self.block("df").split()
        try:
            return int(fields[3]), int(fields[1])
        except (IndexError, ValueError):
            return None

    @property
    def quota(self) -> Quota | None:
        """The home quota when ``quota`` reports one with a limit."""
        for line in self.block("quota").splitlines():
            fields = line.split()
            if len(fields) < 4 or not fields[1].rstrip("*").isdigit():
                continue
            used, soft, hard = fields[1].rstrip("*"), fields[2], fields[3]
            limit = hard if hard.isdigit() and hard != "0" else soft
            if limit.isdigit() and limit != "0":
                return Quota(int(used), int(limit))
        return None

    # conda, env, kernel: the setup steps' parsers
    @property
    def conda(self) -> cs.CondaLocation | None:
        return cs.parse_find_conda(self.out, self.profile.conda_module)

    @property
    def conda_report(self) -> str:
        return cs.find_conda_report(self.out)

    @property
    def env_list(self) -> list[str] | None:
        """conda's own list of env prefixes, or None when ``conda env list`` failed."""
        text = self.block("envs")
        try:
            data = json.loads(text[text.find("{") :]) if "{" in text else None
        except ValueError:
            data = None
        envs = data.get("envs") if isinstance(data, dict) else None
        return [str(p) for p in envs] if isinstance(envs, list) else None

    @property
    def env(self) -> es.EnvState | None:
        loc = self.conda
        return es.parse_env_status(self.out, loc, self.profile.env) if loc else None

    def ipykernel_error(self, prefix: str) -> str:
        for value in self.out.all("ipykernel-error"):
            p, _, err = value.partition(" ")
            if p == prefix:
                return err
        return ""

    @property
    def kernel(self) -> ks.KernelState | None:
        return ks.parse_kernel_status(self.out) if "kernel" in self.out.blocks else None

    # hub
    @property
    def hub_address(self) -> str | None:
        addr = self.out.first("hub-address")
        return None if addr in ("", "none") else addr

    @property
    def hub_health(self) -> HttpAnswer | None:
        return HttpAnswer.parse(self.block("hub-health")) if "hub-health" in self.out.blocks else None

    @property
    def hub_version(self) -> str:
        answer = HttpAnswer.parse(self.block("hub-api")) if "hub-api" in self.out.blocks else None
        data = answer.json() if answer else None
        return str(data.get("version", "")) if isinstance(data, dict) else ""
