"""The import rules in pyproject.toml's [tool.importlinter], checked by import-linter inside the pytest run
(tests/run.sh also runs ``lint-imports``), and a proof that the no-cycle contract type does catch a cycle.

The runtime side (core loads neither textual nor rich) is test_import_hygiene.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from importlinter.cli import lint_imports

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
CONTRACTS: list[dict[str, Any]] = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]

# Broken on purpose until the redesign's branches are merged: the cycle paths -> tunnel.prestart ->
# tunnel.supervisor -> engines -> hostkeys -> sshfiles -> paths, and setup/doctor importing tunnel's
# submodules. strict: the day one of them passes, this list must shrink.
NOT_YET: dict[str, str] = {}  # contract id -> why it may fail for now (none today)


def _lint(config: Path, *contracts: str) -> int:
    return lint_imports(
        config_filename=str(config), limit_to_contracts=contracts, no_cache=True, no_logo=True
    )


@pytest.mark.parametrize(
    "contract_id",
    [
        pytest.param(c["id"], marks=pytest.mark.xfail(reason=NOT_YET[c["id"]], strict=True))
        if c["id"] in NOT_YET
        else c["id"]
        for c in CONTRACTS
    ],
)
def test_contract_is_kept(contract_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = _lint(PYPROJECT, contract_id)
    assert code == 0, capsys.readouterr().out


def test_the_no_cycle_contract_fails_when_a_cycle_is_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same contract as core's, over a tiny package: kept while its imports point one way, broken
    (naming the import to remove) once one module imports back."""
    (core,) = (dict(c) for c in CONTRACTS if c["id"] == "core-acyclic")
    pkg = tmp_path / "cyclepkg"
    (pkg / "tunnel").mkdir(parents=True)
    for f in ("__init__.py", "paths.py", "tunnel/__init__.py", "tunnel/prestart.py"):
        (pkg / f).write_text("")
    (pkg / "tunnel" / "prestart.py").write_text("from cyclepkg import paths\n")
    core["ancestors"] = ["cyclepkg"]
    config = tmp_path / "pyproject.toml"
    config.write_text(
        tomli_w.dumps({"tool": {"importlinter": {"root_package": "cyclepkg", "contracts": [core]}}})
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    assert _lint(config) == 0, capsys.readouterr().out
    capsys.readouterr()

    (pkg / "paths.py").write_text("def early():\n    from cyclepkg.tunnel import prestart\n")
    assert _lint(config) == 1
    out = capsys.readouterr().out
    assert "No cycles are allowed in cyclepkg" in out
    assert "BROKEN" in out
