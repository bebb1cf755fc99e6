"""The core never loads the UI toolkits, and --help stays light. Checked in fresh interpreters."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import wa_onboard.core

HEAVY_FOR_HELP = {"textual", "rich", "paramiko", "cryptography", "sshtunnel", "pexpect"}


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_core_modules_import_neither_textual_nor_rich() -> None:
    names = [m.name for m in pkgutil.walk_packages(wa_onboard.core.__path__, "wa_onboard.core.")]
    assert "wa_onboard.core.profile" in names
    imports = "\n".join(f"import {n}" for n in names)
    loaded = loaded_after(imports)
    assert not loaded & {"textual", "rich"}, loaded & {"textual", "rich"}


def test_help_path_loads_nothing_heavy() -> None:
    code = (
        "import sys\nfrom wa_onboard import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
    )
    loaded = loaded_after(code)
    assert not loaded & HEAVY_FOR_HELP, loaded & HEAVY_FOR_HELP
