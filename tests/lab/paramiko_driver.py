"""Drives the paramiko engine inside the lab's laptop namespace (the engine is in-process Python).

Started by tests/lab/test_tunnel_paramiko.py through ``lab.laptop_popen``. The first stdin line is JSON:
``{"profile": {...}, "answers": [...], "trust": bool, "engine": {...keyword arguments}}``; an answer is a
string, or ``{"totp": SECRET}`` for the current code. Then each stdin line is one command and gets one JSON
line back on stdout:

    {"do": "login", "interactive": true}          -> {"ok": true} | {"error": {...}}
    {"do": "run", "host": "ws"|"jump", "script": S} -> {"exit_code", "stdout", "stderr"}
    {"do": "forward", "local_port": N, "remote_port": N} -> {"port": N} | {"error": ...}
    {"do": "get", "path": "/jupyter/hub/health"} -> {"status": 200} | {"exception": "..."}
    {"do": "alive"}                                -> {"alive": bool}
    {"do": "ping"}                                 -> {"ping": bool} (1 s timeout)
    {"do": "forward_failure"}                      -> {"failure": kind | null}
    {"do": "questions"}                            -> {"questions": [...]}
    {"do": "close"}                                -> {"threads": [names still running], "port_open": bool}
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from lab import totp

from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion
from wa_onboard.core.tunnel.engines.base import ConnectError
from wa_onboard.core.tunnel.engines.paramiko import ParamikoEngine


class ScriptedPrompter:
    """Answers from the test's list, and records every question (never the answers)."""

    def __init__(self, answers: list[Any], trust: bool) -> None:
        self.answers = list(answers)
        self.trust = trust
        self.asked: list[dict[str, Any]] = []

    def secret(self, question: SecretQuestion) -> str | None:
        self.asked.append(
            {
                "type": "secret",
                "prompt": question.prompt,
                "hop": question.hop,
                "kind": question.kind,
                "attempt": question.attempt,
            }
        )
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        return totp(answer["totp"]) if isinstance(answer, dict) else str(answer)

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        if isinstance(question, HostKeyQuestion):
            self.asked.append(
                {
                    "type": "host-key",
                    "host": question.host,
                    "key_type": question.key_type,
                    "fingerprint": question.fingerprint,
                }
            )
        else:
            self.asked.append({"type": "confirm", "title": question.title})
        return self.trust


def error(exc: WaError) -> dict[str, Any]:
    return {
        "error": {
            "failure": getattr(getattr(exc, "failure", None), "value", None),
            "message": exc.message,
            "hint": exc.hint,
            "type": type(exc).__name__,
        }
    }


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    prompter = ScriptedPrompter(setup.get("answers", []), setup.get("trust", True))
    engine = ParamikoEngine(Profile.make(setup["profile"]), **setup.get("engine", {}))
    before = {t.ident for t in threading.enumerate()}
    port = 0
    for raw in sys.stdin:
        cmd = json.loads(raw)
        do = cmd["do"]
        reply: dict[str, Any]
        try:
            if do == "login":
                engine.login(prompter, interactive=cmd.get("interactive", True))
                reply = {"ok": True}
            elif do == "run":
                shell = engine.workstation() if cmd["host"] == "ws" else engine.jump()
                r = shell.run(cmd["script"], timeout=cmd.get("timeout", 60))
                reply = {"exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr}
            elif do == "forward":
                engine.forward(cmd["local_port"], cmd["remote_port"])
                port = engine.local_port or 0
                reply = {"port": port}
            elif do == "get":
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{cmd['path']}", timeout=10) as r:
                        reply = {"status": r.status, "body": r.read().decode(errors="replace")[:200]}
                except urllib.error.HTTPError as exc:
                    reply = {"status": exc.code}
                except OSError as exc:
                    reply = {"exception": f"{type(exc).__name__}: {exc}"}
            elif do == "alive":
                reply = {"alive": engine.is_alive()}
            elif do == "ping":
                reply = {"ping": engine.ping(1.0)}
            elif do == "forward_failure":
                failure = engine.forward_failure
                reply = {
                    "failure": failure.failure.value if failure else None,
                    "message": failure.message if failure else None,
                }
            elif do == "questions":
                reply = {"questions": prompter.asked}
            elif do == "close":
                started = time.monotonic()
                engine.close()
                seconds = time.monotonic() - started
                time.sleep(0.3)
                left = [t.name for t in threading.enumerate() if t.ident not in before]
                with socket.socket() as probe:
                    port_open = probe.connect_ex(("127.0.0.1", port)) == 0 if port else False
                reply = {"threads": left, "port_open": port_open, "seconds": seconds}
            else:
                reply = {"exception": f"unknown command {do}"}
        except ConnectError as exc:
            reply = error(exc)
        except WaError as exc:
            reply = error(exc)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
