"""The two files setup writes into the member's home on the workstation: the kernelspec (read with
the env's own python, registered with ``ipykernel install``) and the key's line in authorized_keys.

The scripts speak the ``WA`` lines of ``conda_scripts``; every value is quoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from wa_onboard.core.remote import quote
from wa_onboard.core.setup.conda_scripts import ScriptOutput, json_block, script

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
    data = json_block(out, "kernel")
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
