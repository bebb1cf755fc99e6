"""The campus conda module (lmod) and the conda stand-in it puts on PATH, with faults to inject."""

from __future__ import annotations

import json
import os
import shutil

from lab_common import HERE

CONDA_MODULE_VERSION = "2024.02"

MODULE_FILE = """\
-- wa-lab (TEST LAB): the campus conda module. The conda it puts on PATH is the lab's conda stand-in.
help([[Anaconda {version} (wa-lab test stand-in)]])
whatis("Name: {name}")
whatis("Version: {version}")
prepend_path("PATH", "{root}/conda/bin")
"""


class CondaMixin:
    """Lab methods for the conda module and the stand-in's faults."""

    def _install_conda_standin(self) -> None:
        """Copy tests/lab/conda_standin/conda to <root>/conda/bin/conda when it changed."""
        src = HERE / "conda_standin" / "conda"
        dst = self.root / "conda" / "bin" / "conda"
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755)

    def set_conda_module(self, name: str | None) -> None:
        """Offer conda as module `name` (default "anaconda"), or as no module at all (None). down() restores."""
        modules = self.root / "modules"
        modules.mkdir(mode=0o755, exist_ok=True)
        for p in modules.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if name is None:
            return
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad module name {name!r}")
        d = modules / name
        d.mkdir(mode=0o755)
        (d / f"{CONDA_MODULE_VERSION}.lua").write_text(
            MODULE_FILE.format(name=name, version=CONDA_MODULE_VERSION, root=self.root)
        )

    def set_conda_fault(self, fault: str | None, slow_seconds: float = 3.0) -> None:
        """Make the conda stand-in fail: "http" (CondaHTTPError), "quota" (Errno 122 mid-create), "slow"
        (sleeps slow_seconds between stages), or behave (None)."""
        path = self.root / "conda" / "faults.json"
        if fault is None:
            path.unlink(missing_ok=True)
            return
        if fault not in ("http", "quota", "slow"):
            raise ValueError(f"fault must be http, quota, slow or None, not {fault!r}")
        path.write_text(json.dumps({"fault": fault, "slow_seconds": slow_seconds}))
        os.chmod(path, 0o644)
