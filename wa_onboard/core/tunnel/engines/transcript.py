"""A master's login as OpenSSH prints it: the dialogue (:func:`converse`: host-key questions, prompts,
retries), what a prompt asks, and which failure the text means (:func:`classify`, with a message and a
hint). The OpenSSH engine leads its masters' logins with this, and the doctor classifies its own quiet
logins with :func:`classify`, so a failure is named the same whichever found it.
"""

from __future__ import annotations

import collections
import re
from typing import Any

from wa_onboard.core.prompts import (
    MAX_TRIES,
    OTP_WORDS,
    HostKeyQuestion,
    Prompter,
    SecretQuestion,
    secret_kind,
)
from wa_onboard.core.tunnel import hostkeys as known_hosts
from wa_onboard.core.tunnel.engines.base import ConnectError, Failure, Hop

HOSTKEY_QUESTION = re.compile(
    r"The authenticity of host '(?P<host>[^']*)' can't be established\.(?P<body>.*?)"
    r"\(yes/no(?:/\[fingerprint\])?\)\? ?\Z",
    re.S,
)
#: ExitOnForwardFailure: the port was free when we looked, and taken before ssh could bind it
_BIND_FAILED = re.compile(
    r"bind \[?[^\]\s]*\]?:(\d+): Address already in use|Could not request local forwarding"
)
_FINGERPRINT = re.compile(r"(?P<type>[A-Z0-9-]+) key fingerprint is (?P<fp>SHA256:[A-Za-z0-9+/=]+)")
#: the changed-key warning names the key the server sent now
_NEW_FINGERPRINT = re.compile(
    r"fingerprint for the (?P<type>[A-Z0-9-]+) key sent by the remote host is\s*"
    r"(?P<fp>SHA256:[A-Za-z0-9+/=]+)"
)
#: a prompt: the last line of what ssh printed, ending in ':' (a question ssh waits on), no newline
PROMPT = re.compile(r"(?P<line>[^\r\n]*:[ \t]?)\Z")
_PASSWORD_PROMPT = re.compile(r"(?P<who>[^\s']+@[^\s']+)'s password: ?\Z")
_KBD_PREFIX = re.compile(r"^\((?P<who>[^\s()]+@[^\s()]+)\) ")
#: lines ssh prints that are not part of a keyboard-interactive instruction
_NOISE = re.compile(
    r"(?i)^(warning:|permission denied|authenticated |the authenticity|this key is not known|"
    r"[a-z0-9-]+ key fingerprint|are you sure|please type|pseudo-terminal|channel \d|stdio forward)"
)


def classify(transcript: str, hop: Hop, jump: Hop, *, interactive: bool = True) -> ConnectError:
    """Turn what ssh printed (and its exit) into the failure kind, a message and a hint.

    ``hop`` is the master being started; ``jump`` is the jump host (a workstation's login can still
    fail at the jump host, and the text says which: ssh names the host in its messages)."""
    text = transcript.replace("\r", "")
    last = _last_meaningful_line(text)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or re.search(r"Host key for .* has changed", text):
        changed = _changed_host(text, hop, jump)
        new = _NEW_FINGERPRINT.search(text)
        now = f" (it now presents the {new.group('type')} key {new.group('fp')})" if new else ""
        return ConnectError(
            Failure.HOST_KEY_CHANGED,
            f"the host key of {changed.host} has CHANGED since it was trusted{now}; refusing to connect",
            "this can mean someone is intercepting the connection, or the host was reinstalled. "
            "Ask the lab admins to confirm the new fingerprint, then remove the old entry with: "
            + known_hosts.removal_command(changed.host, changed.port),
            detail=last,
        )
    if re.search(r"No \S+ host key is known for|Host key verification failed", text):
        return ConnectError(
            Failure.HOST_KEY_REJECTED,
            f"the host key of {hop.host} is not trusted yet",
            "connect once in a terminal to review its fingerprint (or pass --yes to accept a new key)",
            detail=last,
        )
    match = _BIND_FAILED.search(text)
    if match:
        port = f" {match.group(1)}" if match.group(1) else ""
        return ConnectError(
            Failure.PORT_BUSY,
            f"the local port{port} was taken by another program just now",
            "connect again (it picks a free port), or choose one with --local-port",
            detail=last,
        )
    match = re.search(r"Could not resolve hostname (\S+?):", text)
    if match:
        return ConnectError(
            Failure.JUMP_UNKNOWN,
            f"the jump host name {match.group(1)} does not resolve",
            "check the spelling (--jump) and your network / DNS; off campus you may need the VPN",
            detail=last,
        )
    ws_markers = (
        r"channel \d+: open failed|stdio forwarding failed|"
        r"Connection closed by UNKNOWN port 65535|kex_exchange_identification.*UNKNOWN"
    )
    if hop.role == "ws" and re.search(ws_markers, text):
        return ConnectError(
            Failure.WS_UNREACHABLE,
            f"the jump host {jump.host} cannot reach the workstation {hop.host}:{hop.port}",
            "the workstation may be off or its sshd stopped; check the name (--host) or ask the lab admins",
            detail=last,
        )
    match = re.search(
        r"connect to host (\S+) port (\d+): (Connection refused|No route to host|Network is unreachable|"
        r"Connection timed out|Operation timed out)",
        text,
    )
    if match or re.search(r"Connection timed out|timed out during banner exchange", text):
        where = match.group(1) if match else jump.host
        return ConnectError(
            Failure.JUMP_UNREACHABLE,
            f"cannot reach the jump host {where}: {match.group(3) if match else 'timed out'}",
            "check your network connection (Wi-Fi, VPN, firewall); the host may also be down",
            detail=last,
        )
    match = re.search(r"(?:(\S+)@(\S+): )?Permission denied \(([^)]*)\)", text)
    if match:
        host = match.group(2) or hop.host
        on_jump = host == jump.host if match.group(2) else hop.role == "jump"
        if not interactive:
            return ConnectError(
                Failure.PASSWORD_NEEDED,
                f"{host} did not accept the key and wants a password or code",
                "run wa-onboard setup (it installs the key), or connect in a terminal to type it",
                detail=last,
            )
        return ConnectError(
            Failure.JUMP_AUTH if on_jump else Failure.WS_AUTH,
            f"{hop.user}@{host} refused the login ({match.group(3)})",
            "check your CAE username and password; after several failures the account may be locked "
            "for a while, so wait before trying again",
            detail=last,
        )
    if re.search(r"Connection (closed|reset) by", text):
        return ConnectError(
            Failure.JUMP_UNREACHABLE if hop.role == "jump" else Failure.WS_UNREACHABLE,
            f"{hop.host} closed the connection during login",
            "the host may be restarting or limiting connections; try again in a minute",
            detail=last,
        )
    return ConnectError(
        Failure.OTHER,
        f"ssh to {hop.host} failed" + (f": {last}" if last else ""),
        "run wa-onboard doctor to find which layer is broken",
        detail=last,
    )


def _last_meaningful_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("@@@")]
    return lines[-1] if lines else ""


def _changed_host(text: str, hop: Hop, jump: Hop) -> Hop:
    match = re.search(r"Host key for (\S+) has changed", text)
    name = match.group(1) if match else ""
    if name and name in (jump.host, known_hosts.host_id(jump.host, jump.port)):
        return jump
    return hop


def timed_out(hop: Hop, seconds: float, transcript: str) -> ConnectError:
    return ConnectError(
        Failure.TIMEOUT,
        f"{hop.host} did not answer within {int(seconds)} s",
        "check your network; the host may be overloaded",
        detail=_last_meaningful_line(transcript),
    )


def secret_question(after: str, recent: str, hop: Hop) -> SecretQuestion:
    """What the prompt asks, who asks, and the kind of secret, from the text ssh printed."""
    line = after.strip()
    match = _PASSWORD_PROMPT.search(after)
    if match:
        return SecretQuestion(line, match.group("who"), "password")
    prefixed = _KBD_PREFIX.match(line)
    who = prefixed.group("who") if prefixed else hop.who
    prompt = line[prefixed.end() :] if prefixed else line
    instructions = [
        ln.strip()
        for ln in recent.replace("\r", "").splitlines()
        if ln.strip() and not _NOISE.match(ln.strip())
    ]
    text = "\n".join([*instructions[-8:], prompt]) if OTP_WORDS.search(prompt) else prompt
    return SecretQuestion(text, who, secret_kind(prompt))


def scrub(text: str, secrets_sent: list[str]) -> str:
    for value in secrets_sent:
        if value:
            text = text.replace(value, "******")
    return text


def answer_host_key(child: Any, hop: Hop, text: str, prompter: Prompter) -> None:
    """Ask the member about a first-contact host key ssh asks about, and type their answer."""
    match = HOSTKEY_QUESTION.search(text)
    body = match.group("body") if match else text
    host = match.group("host").split(" (")[0] if match else hop.host
    fp = _FINGERPRINT.search(body)
    question = HostKeyQuestion(
        host=host,
        key_type=fp.group("type") if fp else "unknown",
        fingerprint=fp.group("fp") if fp else "",
    )
    child.sendline("yes" if fp and prompter.confirm(question) else "no")


def converse(
    child: Any, marker: str, hop: Hop, jump: Hop, prompter: Prompter, *, interactive: bool, timeout: float
) -> None:
    """Lead a master's login (``child``, a pexpect spawn) until it prints ``marker``: answer host-key
    questions and prompts through ``prompter``, a refused answer at most MAX_TRIES times; raise the
    classified failure when ssh ends first, or stays silent ``timeout`` seconds (waiting on a person
    does not count). Secrets typed are scrubbed from every text kept."""
    import pexpect

    printed: list[str] = []
    sent: list[str] = []  # secrets we typed, scrubbed from anything we keep
    asked: collections.Counter[tuple[str, str]] = collections.Counter()
    chunk_start = 0
    patterns = [re.compile(re.escape(marker)), HOSTKEY_QUESTION, PROMPT, pexpect.EOF, pexpect.TIMEOUT]
    try:
        while True:
            index = child.expect(patterns, timeout=timeout)
            printed.append(scrub(child.before or "", sent))
            if index in (3, 4):
                if index == 4:
                    child.close(force=True)
                    raise timed_out(hop, timeout, "".join(printed))
                child.close()
                raise classify("".join(printed), hop, jump, interactive=interactive)
            after = str(child.after)
            if index == 0:
                break
            if index == 1:
                printed.append(after)
                answer_host_key(child, hop, after, prompter)
                continue
            # a prompt
            recent = "".join(printed)[chunk_start:]
            printed.append(after)
            question = secret_question(after, recent, hop)
            key = (question.hop, question.kind)
            asked[key] += 1
            if asked[key] > MAX_TRIES:
                child.close(force=True)
                what = "password" if question.kind == "password" else "code"
                raise ConnectError(
                    hop.auth_failure,
                    f"{question.hop} refused the {what} {MAX_TRIES} times; stopped before the "
                    "account gets locked",
                    "check your CAE username and password (and the code's clock), then try again later",
                )
            answer = prompter.secret(SecretQuestion(question.prompt, question.hop, question.kind, asked[key]))
            if answer is None:
                child.close(force=True)
                raise ConnectError(
                    Failure.PASSWORD_NEEDED,
                    f"{question.hop} asks for a {question.kind}, and none was given",
                    "run wa-onboard setup in a terminal (it installs the key so that no password "
                    "is needed), or give it with --password-stdin",
                )
            sent.append(answer)
            child.sendline(answer)
            chunk_start = len("".join(printed))
    except BaseException:
        if child.isalive():
            child.close(force=True)
        raise
    finally:
        sent.clear()
