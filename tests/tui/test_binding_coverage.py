"""Every key binding of the app is driven at least once against the real backend in the lab.

The registry is tests/lab/tui_keys.py (which lab test presses which key); this fast test fails when
a screen gains a binding the lab never drives, or the registry names one the app no longer has.
"""

from __future__ import annotations

import sys
from pathlib import Path

LAB = Path(__file__).resolve().parents[1] / "lab"
sys.path.insert(0, str(LAB))

import tui_keys  # noqa: E402


def test_every_binding_is_driven_in_the_lab() -> None:
    undriven = sorted(tui_keys.app_bindings() - set(tui_keys.DRIVEN))
    assert not undriven, (
        "bindings no lab test presses against the real backend (drive them in "
        f"tests/lab/test_tui_real.py and list them in tests/lab/tui_keys.py): {undriven}"
    )


def test_the_registry_names_only_real_bindings() -> None:
    stale = sorted(set(tui_keys.DRIVEN) - tui_keys.app_bindings())
    assert not stale, f"tests/lab/tui_keys.py lists bindings the app does not have: {stale}"


def test_the_registry_names_only_lab_tests_that_exist() -> None:
    source = (LAB / "test_tui_real.py").read_text()
    missing = sorted({t for t in tui_keys.DRIVEN.values() if f"def {t}(" not in source})
    assert not missing, f"tests/lab/tui_keys.py names lab tests that do not exist: {missing}"
