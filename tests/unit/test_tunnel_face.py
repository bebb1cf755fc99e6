"""The tunnel's public face: every name it lists loads, the type checkers see the same names, and
importing the package (as the CLI's early login does) loads none of them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import wa_onboard.core.tunnel as tunnel

FACE_FILE = Path(tunnel.__file__)


def _type_checking_names() -> dict[str, str]:
    tree = ast.parse(FACE_FILE.read_text())
    block = next(
        node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    names: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: a face re-exports under the same name"
            names[alias.name] = node.module.removeprefix("wa_onboard.core.tunnel.")
    return names


def test_the_type_checkers_see_what_the_face_loads() -> None:
    assert _type_checking_names() == tunnel._FACE


def test_every_name_loads_from_where_it_is_defined() -> None:
    for name, module in tunnel._FACE.items():
        value = getattr(tunnel, name)
        home = sys.modules[f"wa_onboard.core.tunnel.{module}"]
        assert value is getattr(home, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        tunnel.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_importing_the_package_loads_nothing_behind_the_face() -> None:
    probe = "import json, sys; import wa_onboard.core.tunnel; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {m for m in json.loads(out.stdout) if m.startswith("wa_onboard.core.tunnel.")}
    assert loaded == set()
