"""The text report a member sends to the lab admins: profile, versions, every check, the recent log.

Everything passes through core.redact on the way out, the log above all (it holds ssh's own words,
and whatever a login script chose to print).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from wa_onboard.core import tunnel
from wa_onboard.core.doctor.registry import LAYERS
from wa_onboard.core.profile import Profile
from wa_onboard.core.redact import redact
from wa_onboard.core.results import CheckResult, CheckStatus

LOG_LINES = 200


def recent_log(profile_name: str, lines: int = LOG_LINES) -> tuple[Path, list[str]]:
    """The last ``lines`` lines of the tunnel's log (reaching into the rotated file if needed)."""
    path = tunnel.log_file(profile_name)
    collected: list[str] = []
    for candidate in (path, path.with_name(path.name + ".1")):
        try:
            text = candidate.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        collected = text.splitlines() + collected if candidate != path else text.splitlines()
        if len(collected) >= lines:
            break
    return path, collected[-lines:]


def build_report(
    profile_name: str,
    profile: Profile | None,
    results: Sequence[CheckResult],
    versions: Mapping[str, str],
    *,
    secrets: Sequence[str] = (),
) -> str:
    out: list[str] = [
        "wa-onboard doctor report",
        f"written {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        "(passwords, one-time codes, tokens, cookies and key material are removed)",
        "",
        f"== profile {profile_name}",
    ]
    if profile is None:
        out.append("  (no valid profile)")
    else:
        out += [f"  {k} = {v}" for k, v in profile.to_dict().items()]
    out += ["", "== versions"]
    width = max((len(k) for k in versions), default=0)
    out += [f"  {k.ljust(width)}  {v}" for k, v in versions.items()]
    failed = sum(r.status is CheckStatus.FAIL for r in results)
    warned = sum(r.status is CheckStatus.WARN for r in results)
    out += ["", f"== checks ({len(results)}: {failed} failed, {warned} warnings)"]
    order = {layer: i for i, layer in enumerate(LAYERS)}
    for r in sorted(results, key=lambda r: order.get(r.layer, len(LAYERS))):
        out.append(f"  [{r.status.value:4}] {r.id:24} {r.summary} ({r.duration_ms} ms)")
        if r.hint:
            out.append(f"         fix: {r.hint}")
        for line in r.detail.splitlines():
            out.append(f"         | {line}")
    path, log = recent_log(profile_name)
    out += ["", f"== recent log ({path}, last {len(log)} lines)"]
    out += [f"  {line}" for line in log] or ["  (no log yet)"]
    return redact("\n".join(out) + "\n", secrets)
