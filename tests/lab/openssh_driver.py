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
from types import SimpleNamespace
from typing import Any

from paramiko_driver import ScriptedPrompter, error

from wa_onboard.core import sshfiles
from wa_onboard.core.engine_openssh import OpenSshEngine, our_ssh_processes
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import PasswordOnce


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    scripted = ScriptedPrompter(setup.get("answers", []), setup.get("trust", True))
    # as the CLI's and the app's prompters answer: the campus password once for both hops
    once = PasswordOnce(scripted.secret)
    prompter = SimpleNamespace(secret=once.secret, confirm=scripted.confirm, asked=scripted.asked)
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
