"""Starts the background supervisor the way Windows does, inside the lab's laptop namespace.

Windows cannot fork and has no readiness pipe: ``launch_detached`` spawns ``python -m
wa_onboard.core.tunnel.daemon`` and ``wait_detached`` polls the state file. This driver makes exactly that
launch on Linux (``spawn_detached`` without ``ready_fd``, wrapped as ``Launched(pid, None, proc)``), so
the polling branch runs against the real lab. First stdin line: ``{"profile": {...}}``; then one JSON
command per line, one JSON line back:

    {"do": "launch"}  -> {"pid": N}
    {"do": "wait"}    -> {"record": {...TunnelRecord} | null}
    {"do": "status"}  -> {"state", "connected", "pid", "local_port", "hub_version"}
    {"do": "stop"}    -> {"stopped": pid | null, "exit_code": N | null}
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.tunnel import daemon as sup


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    profile = Profile.make(setup["profile"])
    launched: sup.Launched | None = None
    for raw in sys.stdin:
        do = json.loads(raw)["do"]
        reply: dict[str, Any]
        if do == "launch":
            proc = sup.spawn_detached(profile, DEFAULT_PROFILE, explicit_port=False)
            launched = sup.Launched(proc.pid, None, proc)  # what launch_detached builds on Windows
            reply = {"pid": proc.pid}
        elif do == "wait" and launched is not None:
            record = sup.wait_detached(launched, DEFAULT_PROFILE, timeout=60)
            reply = {"record": dataclasses.asdict(record) if record else None}
        elif do == "status":
            status = sup.verify_status(DEFAULT_PROFILE, profile)
            reply = {
                "state": status.state.value,
                "connected": status.connected,
                "pid": status.pid,
                "local_port": status.local_port,
                "hub_version": status.hub_version,
            }
        elif do == "stop" and launched is not None and launched.proc is not None:
            stopped = sup.stop_supervisor(DEFAULT_PROFILE)
            reply = {"stopped": stopped, "exit_code": launched.proc.wait(30)}
        else:
            reply = {"exception": f"cannot {do} now"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
