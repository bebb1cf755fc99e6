"""Which lab test drives each key binding of the app against the real backend.

``DRIVEN`` maps (the class that declares the binding, the key) to the test in tests/lab/test_tui_real.py
that presses it in the real program. tests/tui/test_binding_coverage.py fails when the app has a binding
that is not here (a new key nobody drove against the real core), and test_tui_real.py fails when a key
listed here was not pressed by its test. No imports from the lab: the unit test reads this file too.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

#: modules whose screens and app declare BINDINGS
#: every module of the app (found, not listed: a screen in a new module cannot slip past)
MODULES = tuple(
    f"wa_onboard.tui.{info.name}"
    for info in pkgutil.iter_modules([str(Path(__file__).resolve().parents[2] / "wa_onboard" / "tui")])
)

FIRST_RUN = "test_first_run_every_wizard_key_and_modal"
RERUN = "test_setup_again_to_the_dashboard_and_its_keys"
QUIT = "test_quit_paths"
CTRL_C = "test_ctrl_c_exits_130"
DISCONNECT = "test_disconnect_on_the_dashboard"
RESUME = "test_an_unfinished_setup_goes_on_where_it_stopped"
REPAIR = "test_repair_declined_then_quit_from_the_failure"
DIAGNOSTICS = "test_diagnostics_healthy_and_with_the_hub_down"

DRIVEN: dict[tuple[str, str], str] = {
    # the app
    ("WaApp", "question_mark"): FIRST_RUN,
    ("WaApp", "f1"): FIRST_RUN,
    ("WaApp", "ctrl+t"): FIRST_RUN,
    ("WaApp", "ctrl+q"): QUIT,
    ("WaApp", "ctrl+c"): CTRL_C,
    ("HelpScreen", "escape"): FIRST_RUN,
    ("HelpScreen", "q"): FIRST_RUN,
    ("HelpScreen", "question_mark"): FIRST_RUN,
    ("HelpScreen", "f1"): FIRST_RUN,
    # the wizard
    ("WelcomeScreen", "enter"): FIRST_RUN,
    ("WelcomeScreen", "q"): QUIT,
    ("WelcomeScreen", "e"): RESUME,
    ("ProfileScreen", "escape"): FIRST_RUN,
    ("ProfileScreen", "ctrl+s"): FIRST_RUN,
    ("RunScreen", "escape"): FIRST_RUN,
    ("RunScreen", "r"): FIRST_RUN,
    ("RunScreen", "q"): REPAIR,
    ("RunScreen", "d"): DIAGNOSTICS,
    ("DoneScreen", "o"): FIRST_RUN,
    ("DoneScreen", "q"): FIRST_RUN,
    ("DoneScreen", "enter"): RERUN,
    # the questions
    ("ConfirmModal", "n"): FIRST_RUN,
    ("ConfirmModal", "y"): RERUN,
    ("ConfirmModal", "escape"): REPAIR,
    ("HostKeyModal", "escape"): FIRST_RUN,
    ("HostKeyModal", "t"): FIRST_RUN,
    ("SecretModal", "escape"): FIRST_RUN,
    # the dashboard
    ("DashboardScreen", "o"): RERUN,
    ("DashboardScreen", "r"): RERUN,
    ("DashboardScreen", "x"): DISCONNECT,
    ("DashboardScreen", "p"): RERUN,
    ("ProfilePicker", "escape"): RERUN,
    ("DashboardScreen", "q"): RERUN,
    ("QuitModal", "escape"): RERUN,
    ("QuitModal", "k"): RERUN,
    ("QuitModal", "s"): QUIT,
    ("DashboardScreen", "d"): DIAGNOSTICS,
    # diagnostics
    ("DiagnosticsScreen", "r"): DIAGNOSTICS,
    ("DiagnosticsScreen", "s"): DIAGNOSTICS,
    ("SaveReportModal", "escape"): DIAGNOSTICS,
    ("DiagnosticsScreen", "escape"): DIAGNOSTICS,
}


def app_bindings() -> set[tuple[str, str]]:
    """Every (class, key) the app's screens and the app itself declare in their own BINDINGS."""
    found: set[tuple[str, str]] = set()
    for name in MODULES:
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or "BINDINGS" not in vars(cls):
                continue
            for binding in vars(cls)["BINDINGS"]:
                key = binding.key if hasattr(binding, "key") else binding[0]
                for one in key.split(","):
                    found.add((cls_name, one.strip()))
    return found
