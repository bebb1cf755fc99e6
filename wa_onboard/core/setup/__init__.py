"""Setup: the eleven steps that take a new member from nothing to the hub, for both front ends.

``setup()`` (``run.py``) is the one entry: the lock, the plan, the progress record, a ``SetupOutcome``.
``plan.py`` runs steps and holds their shared context (``SetupOptions``, the typed ``SetupRun``); the
steps are in ``steps_ssh`` (profile, key, login, key install), ``steps_conda`` (conda, env, ipykernel,
kernel) and ``steps_finish`` (tunnel, browser); ``shell`` is the run's connection to the workstation;
the bash they run is in ``conda_scripts``, ``env_scripts`` and ``kernel_scripts``; ``progress`` records
whether a profile's setup ever finished.

The names below are loaded on first use, so importing one small module of the package (the doctor
reads ``conda_scripts``, the app ``progress``) does not load the steps and the tunnel behind them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wa_onboard.core.setup.plan import SetupOptions, SetupOutcome, SetupRun
    from wa_onboard.core.setup.run import SetupBusy, build_plan, setup

_WHERE = {
    "SetupOptions": "plan",
    "SetupRun": "plan",
    "SetupBusy": "run",
    "SetupOutcome": "plan",
    "build_plan": "run",
    "setup": "run",
}

__all__ = ["SetupBusy", "SetupOptions", "SetupOutcome", "SetupRun", "build_plan", "setup"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
