"""Remove secrets from text that leaves the laptop (the doctor's support report, pasted logs).

Errs on the side of removing: a support report loses nothing useful when a random 40-hex string
goes, and a leaked password or token costs the member their account. Known secret values (the
password the app holds while it runs) are removed verbatim first, wherever they appear, also
URL-encoded; then patterns catch the rest: private key blocks, ``password=``-style fields,
HTTP auth headers, cookies, tokens, and one-time codes next to the words that ask for them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

MARK = "[REDACTED]"

_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
)
_PUTTY_KEY = re.compile(r"(Private-Lines:\s*\d+\s*\n)(?:[A-Za-z0-9+/=]+\n?)+")
#: key = value / key: value / "key": "value" for words that name a secret
_SECRET_WORDS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|client[_-]?secret|api[_-]?key|access[_-]?key|"  # noqa: S105
    r"(?:api|auth|access|refresh|session|hub|jupyterhub|oauth|bearer|csrf|xsrf)?[_-]?token|_xsrf|"
    r"otp|totp|mfa(?:[_-]?code)?|passcode|verification[_-]?code|cookie_secret|crypt_key"
)
_FIELD = re.compile(
    rf"""(?ix)
    (?P<key>["']?\b(?:{_SECRET_WORDS})\b["']?\s*(?:=|:)\s*)   # password=  "token":  passwd :
    (?P<q>["'])?(?P<value>(?(q)[^"'\n]*|[^\s,;&"'}}\]]+))
    """
)
_AUTH_HEADER = re.compile(r"(?im)^(?P<key>\s*(?:proxy-)?authorization\s*:\s*)(?P<value>.+)$")
_AUTH_INLINE = re.compile(r"(?i)\b(?P<key>(?:token|bearer|basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{12,})")
_COOKIE_HEADER = re.compile(r"(?im)^(?P<key>\s*(?:set-)?cookie\s*:\s*)(?P<value>.+)$")
_COOKIE_PAIR = re.compile(
    r"(?i)\b(?P<key>(?:jupyterhub-[\w-]+|_xsrf|[\w-]*session[\w-]*|[\w-]*token[\w-]*)=)(?P<value>[^\s;,&]+)"
)
#: a one-time code after the words that ask for it (TOTP, Duo, "code 123456")
_OTP = re.compile(
    r"(?i)(?P<key>(?:verification code|passcode(?: or option \(\d-\d\))?|one[- ]time (?:password|code)|"
    r"\botp\b|\btotp\b|\bmfa\b|authenticator code|\bcode)\W{0,4})(?P<value>\d{6,8})\b"
)
#: long hex and base64 blobs: API tokens (JupyterHub's are 32 hex), key material, cookie secrets
_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_B64 = re.compile(r"(?<![A-Za-z0-9+/:])(?!SHA256:)[A-Za-z0-9+/]{60,}={0,2}")
_URL_CREDS = re.compile(r"(?P<key>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)(?=@)")


def _sub_value(pattern: re.Pattern[str], text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group("value").startswith("[REDACTED"):  # an earlier pattern got it already
            return m.group(0)
        return m.group("key") + (m.groupdict().get("q") or "") + MARK

    return pattern.sub(replace, text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and every secret-looking thing replaced by [REDACTED]."""
    for value in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        for form in {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}:
            text = text.replace(form, MARK)
    text = _KEY_BLOCK.sub("[REDACTED PRIVATE KEY]", text)
    text = _PUTTY_KEY.sub(lambda m: m.group(1) + MARK + "\n", text)
    text = _sub_value(_AUTH_HEADER, text)
    text = _sub_value(_COOKIE_HEADER, text)
    text = _sub_value(_AUTH_INLINE, text)
    text = _sub_value(_COOKIE_PAIR, text)
    text = _sub_value(_URL_CREDS, text)
    text = _sub_value(_FIELD, text)
    text = _sub_value(_OTP, text)
    text = _HEX.sub(MARK, text)
    return _B64.sub(MARK, text)
