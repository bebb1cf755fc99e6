"""Running scripts on the workstation, whatever the member's login shell and whatever it prints.

A script goes to ``bash -l -s`` on stdin: the login shell gives us ``module`` (defined by
``/etc/profile.d``), stdin avoids every quoting difference between bash, zsh, tcsh and fish (the
remote command line is the same five words for all of them), and our own marker lines separate the
script's output from whatever ``.bashrc`` or ``/etc/motd`` scripts print.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: the remote command: short, and parsed the same by every login shell
REMOTE_COMMAND = "exec bash -l -s"

LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class RemoteResult:
    exit_code: int
    """The script's exit code; 255 when ssh itself failed; -1 on timeout."""
    stdout: str
    """Only what the script printed, between our markers."""
    stderr: str
    noise: str = ""
    """Text outside the markers (login banners, a chatty .bashrc), kept for diagnostics."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def reached_script(self) -> bool:
        """True when the shell got as far as our script (so a failure is the script's, not ssh's)."""
        return self.exit_code not in (255, -1)


class RemoteShell(Protocol):
    """Runs a bash script on the workstation through an authenticated connection."""

    def run(
        self, script: str, *, timeout: float = 60.0, on_line: LineCallback | None = None
    ) -> RemoteResult: ...


def quote(value: str) -> str:
    """Quote one (already validated) value for a bash script."""
    return shlex.quote(value)


@dataclass(frozen=True)
class Wrapped:
    script: str
    begin: str
    end: str


def wrap(script: str) -> Wrapped:
    """Put the script between two marker lines; the end marker carries the exit code."""
    token = secrets.token_hex(8)
    begin, end = f"__WA_ONBOARD_BEGIN_{token}__", f"__WA_ONBOARD_END_{token}__"
    body = (
        f"printf '\\n%s\\n' {begin}\n"
        f"__wa_main() {{\n{script}\n}}\n"
        "__wa_main </dev/null\n"
        f"printf '\\n%s %s\\n' {end} \"$?\"\n"
    )
    return Wrapped(body, begin, end)


class MarkerParser:
    """Feeds on stdout lines; keeps the script's own lines and the exit code from the end marker."""

    def __init__(self, wrapped: Wrapped, on_line: LineCallback | None = None) -> None:
        self.wrapped = wrapped
        self.on_line = on_line
        self.inside = False
        self.lines: list[str] = []
        self.noise: list[str] = []
        self.exit_code: int | None = None
        self._pending_blank = False

    def feed(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if not self.inside:
            if line == self.wrapped.begin:
                self.inside = True
            elif line or self.exit_code is None:
                self.noise.append(line)
            return
        if line.startswith(self.wrapped.end + " "):
            self.inside = False
            self._pending_blank = False  # the blank line before the marker is ours
            code = line.split()[-1]
            self.exit_code = int(code) if code.isdigit() else 1
            return
        if self._pending_blank:
            self._emit("")
        self._pending_blank = line == ""
        if line:
            self._emit(line)

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")

    def result(self, code: int, *, expired: bool, stderr: str, started: float) -> RemoteResult:
        """The run's result: the script's own exit code when its end marker came; -1 on timeout;
        otherwise the connection failed (255), whichever way it ended (``code``: the process or
        channel exit status, -1 when there was none)."""
        if expired and self.exit_code is None:
            exit_code = -1
        elif self.exit_code is not None:
            exit_code = self.exit_code
        else:
            exit_code = 255 if code in (0, 255, -1) else code
        return RemoteResult(
            exit_code=exit_code,
            stdout=self.stdout,
            stderr=stderr,
            noise="\n".join(self.noise).strip(),
            seconds=time.monotonic() - started,
        )


class SubprocessShell:
    """A RemoteShell over a local command that reaches the workstation (``ssh -F cfg host``)."""

    def __init__(self, argv_prefix: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = [*argv_prefix, REMOTE_COMMAND]
        self.env = env

    def run(self, script: str, *, timeout: float = 60.0, on_line: LineCallback | None = None) -> RemoteResult:
        wrapped = wrap(script)
        parser = MarkerParser(wrapped, on_line)
        started = time.monotonic()
        proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self.env,
            start_new_session=os.name == "posix",  # so a timeout can end the whole group
        )
        assert proc.stdin and proc.stdout and proc.stderr
        err_chunks: list[str] = []
        stderr = proc.stderr
        err_reader = threading.Thread(target=lambda: err_chunks.append(stderr.read()), daemon=True)
        err_reader.start()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill_group(proc)

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            try:
                proc.stdin.write(wrapped.script)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            for line in proc.stdout:
                parser.feed(line)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err_reader.join(timeout=5)
        return parser.result(code, expired=expired.is_set(), stderr="".join(err_chunks), started=started)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    if sys.platform != "win32":  # the form mypy narrows: killpg and SIGKILL exist only here
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            pass
    proc.kill()
