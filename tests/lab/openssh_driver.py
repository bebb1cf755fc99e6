"""Drives the OpenSSH engine inside the lab's laptop namespace.

The engine's control masters are this process's children (they end with it), so the test talks to one
long-lived driver, one JSON line per command, like tests/lab/paramiko_driver.py (whose scripted prompter and
error format it reuses). First stdin line: ``{"profile": {...}, "answers": [...], "trust": bool}``.

    {"do": "login", "interactive": bool} -> {"ok": true} | {"error": {...}}
    {"do": "run", "script": S}           -> {"exit_code", "stdout"}
    {"do": "forward", "local_port", "remote_port"} -> {"ok": true}
    {"do": "questions"}                  -> {"questions": [...]}
    {"do": "close"}                      -> {"left": [pids of our ssh processes still running]}
"""

from __future__ import annotations

import json
import sys
from typing import Any

from paramiko_driver import ScriptedPrompter, error

from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import PasswordOnce
from wa_onboard.core.tunnel import sshfiles
from wa_onboard.core.tunnel.engines.openssh import OpenSshEngine, our_ssh_processes


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    prompter = ScriptedPrompter(setup.get("answers", []), setup.get("trust", True))
    # as every real front end does: one password for both hops (the engine no longer offers it itself)
    prompter.secret = PasswordOnce(prompter.secret).secret  # type: ignore[method-assign]
    engine = OpenSshEngine(Profile.make(setup["profile"]))
    for raw in sys.stdin:
        cmd = json.loads(raw)
        reply: dict[str, Any]
        try:
            if cmd["do"] == "login":
                engine.login(prompter, interactive=cmd.get("interactive", True))
                reply = {"ok": True}
            elif cmd["do"] == "run":
                r = engine.workstation().run(cmd["script"], timeout=60)
                reply = {"exit_code": r.exit_code, "stdout": r.stdout}
            elif cmd["do"] == "forward":
                engine.forward(cmd["local_port"], cmd["remote_port"])
                reply = {"ok": True}
            elif cmd["do"] == "questions":
                reply = {"questions": prompter.asked}
            elif cmd["do"] == "close":
                engine.close()
                names = sshfiles.aliases()
                reply = {"left": our_ssh_processes(engine.config, (names.jump, names.ws))}
            else:
                reply = {"exception": f"unknown command {cmd['do']}"}
        except WaError as exc:
            reply = error(exc)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
