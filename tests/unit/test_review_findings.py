"""What a fresh reviewer found by trying: a state file that is not a record, the daemon's own entry
given bad values, known_hosts left 0644 by ssh, a tunnel that moved port without saying why."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import wa_onboard.core.tunnel as tunnel
from wa_onboard import cli
from wa_onboard.core.profile import Profile
from wa_onboard.core.tunnel import sshfiles, state

GOOD = {
    "profile": "default",
    "pid": 4242,
    "local_port": 8000,
    "url": "u",
    "engine": "openssh",
    "state": "connected",
}


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "null",
        '"x"',
        json.dumps({**GOOD, "pid": "abc"}),
        json.dumps({**GOOD, "pid": 1.5}),
        json.dumps({**GOOD, "pid": True}),
        json.dumps({**GOOD, "state": "bogus"}),
        json.dumps({**GOOD, "since": "yesterday"}),
    ],
)
def test_a_state_file_that_is_not_a_record_is_no_tunnel(
    isolated_home: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = state.state_file("default")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert state.read_record("default") is None
    assert cli.main(["status"]) == 1
    assert cli.main(["status", "--json"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "not connected" in out.out


def test_a_good_record_still_reads() -> None:
    record = state.TunnelRecord.from_json(json.dumps({**GOOD, "since": 12, "reconnect_since": None}))
    assert (record.pid, record.since) == (4242, 12)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--profile", "../../../tmp/evil", "--profile-json", "{}"], "profile"),
        (["--profile-json", "{"], "Expecting"),
        (["--profile-json", "[]"], "JSON object"),
        (["--profile-json", '{"user": "a b"}'], "user"),
        (["--profile-json", '{"user": "bbadger"}', "--ready-fd", "987"], "Bad file descriptor"),
    ],
)
def test_the_daemons_entry_refuses_bad_values_in_one_line(
    isolated_home: Path, args: list[str], says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wa_onboard.core.tunnel.daemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (isolated_home / ".local" / "state" / "tmp").exists()


def test_known_hosts_is_private_before_ssh_ever_writes_it(isolated_home: Path) -> None:
    sshfiles.write_config(Profile(user="bbadger"))
    known = sshfiles.known_hosts_path()
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    known.chmod(0o644)  # as ssh (or an older version of ours) left it
    sshfiles.write_config(Profile(user="bbadger"))
    assert stat.S_IMODE(known.stat().st_mode) == 0o600


def test_the_tunnels_face_lists_its_names() -> None:
    names = dir(tunnel)
    assert {"verify_status", "ConnectError", "make_engine"} <= set(names)
    assert "TYPE_CHECKING" not in names
