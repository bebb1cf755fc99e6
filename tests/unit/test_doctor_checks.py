"""The doctor's checks against real things on this machine: the facts script in a login bash on the fake
workstation (fake conda, a real venv, a real kernel.json, a tiny HTTP server as the hub), the key's permissions,
our ssh config through ``ssh -G``, and a local port held by another program."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.fake_workstation import Workstation, make_workstation
from wa_onboard.core import paths
from wa_onboard.core.doctor import checks_local, checks_remote, checks_tunnel, facts
from wa_onboard.core.doctor.context import DoctorContext, WorkstationRun
from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.core.results import CheckStatus
from wa_onboard.core.tunnel import procs, sshfiles, state as tunnelstate, supervisor
from wa_onboard.core.tunnel.engines import Engine

WS_CHECKS = {
    "workstation.disk": checks_remote.disk,
    "workstation.conda": checks_remote.conda,
    "workstation.env": checks_remote.env,
    "workstation.ipykernel": checks_remote.ipykernel,
    "workstation.kernelspec": checks_remote.kernelspec,
    "workstation.hub-port": checks_remote.hub_port,
    "workstation.hub-health": checks_remote.hub_health,
}


class Hub(http.server.BaseHTTPRequestHandler):
    """Answers like JupyterHub under /jupyter: health, api version; ``status`` can make health a 503."""

    status = 200

    def do_GET(self) -> None:
        if self.path == "/jupyter/hub/health":
            self._send(Hub.status, b"")
        elif self.path == "/jupyter/hub/api":
            self._send(200, b'{"version": "5.9.9"}')
        else:
            self._send(404, b"not found")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("X-JupyterHub-Version", "5.9.9")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hub.status = 200
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    ws = make_workstation(tmp_path)
    r = ws.shell().run(
        "conda create -y -n wa python=3.11 ipykernel >/dev/null && "
        "~/.conda/envs/wa/bin/python -m ipykernel install --user --name WA --display-name WA"
    )
    assert r.ok, r.stdout + r.stderr
    return ws


def workstation_checks(ws: Workstation, profile: Profile) -> dict[str, tuple[CheckStatus, str, str]]:
    """Run the one facts script on the fake workstation, then every workstation check on its facts."""
    result = ws.shell().run(facts.script(profile))
    assert result.reached_script, result.stderr
    ctx = DoctorContext(load_profile=lambda: profile)
    ctx.set_profile(profile)
    ctx.once(
        "workstation", lambda: WorkstationRun(result, facts.WorkstationFacts(result.stdout, profile), True)
    )
    out = {}
    for check_id, check in WS_CHECKS.items():
        o = check(ctx)
        out[check_id] = (o.status, o.summary, o.hint)
    return out


def statuses(found: dict[str, tuple[CheckStatus, str, str]]) -> dict[str, str]:
    return {k: v[0].value for k, v in found.items()}


def test_a_healthy_workstation_in_one_script(ws: Workstation, hub: int) -> None:
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    assert set(statuses(found).values()) == {"ok"}, found
    assert "via the login shell's PATH" in found["workstation.conda"][1]
    assert "env 'wa' at " in found["workstation.env"][1]
    assert found["workstation.kernelspec"][1].endswith("/.conda/envs/wa/bin/python")
    assert "JupyterHub 5.9.9 is healthy" in found["workstation.hub-health"][1]


def test_env_gone(ws: Workstation, hub: int) -> None:
    prefix = ws.env_prefix("wa")
    prefix.rename(prefix.with_name("gone"))
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    assert found["workstation.env"][0] is CheckStatus.FAIL
    assert "does not exist" in found["workstation.env"][1] and "setup" in found["workstation.env"][2]


def test_kernel_points_at_a_deleted_env(ws: Workstation, hub: int) -> None:
    spec = ws.home / ".local/share/jupyter/kernels/wa/kernel.json"
    data = json.loads(spec.read_text())
    data["argv"][0] = str(ws.home / ".conda/envs/old/bin/python")
    spec.write_text(json.dumps(data))
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    status, summary, hint = found["workstation.kernelspec"]
    assert status is CheckStatus.FAIL and "no longer exists" in summary and "registers it again" in hint
    assert found["workstation.env"][0] is found["workstation.ipykernel"][0] is CheckStatus.OK


def test_kernel_points_into_another_live_env(ws: Workstation, hub: int) -> None:
    assert ws.shell().run("conda create -y -n other python=3.11 ipykernel >/dev/null").ok
    spec = ws.home / ".local/share/jupyter/kernels/wa/kernel.json"
    data = json.loads(spec.read_text())
    data["argv"][0] = str(ws.env_prefix("other") / "bin/python")
    spec.write_text(json.dumps(data))
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    assert found["workstation.kernelspec"][0] is CheckStatus.FAIL
    assert "not into env 'wa'" in found["workstation.kernelspec"][1]


def test_no_conda_anywhere(ws: Workstation, hub: int) -> None:
    ws.write_profile()  # conda no longer on PATH, no module command
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    status, summary, hint = found["workstation.conda"]
    assert status is CheckStatus.FAIL and "conda not found" in summary and "lab admins" in hint


def test_hub_not_listening_then_down_behind_its_proxy(ws: Workstation, hub: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=closed))
    assert found["workstation.hub-port"][0] is CheckStatus.FAIL
    assert "JupyterHub is not running" in found["workstation.hub-port"][1]
    Hub.status = 503
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    assert found["workstation.hub-port"][0] is CheckStatus.OK
    assert (
        found["workstation.hub-health"][0] is CheckStatus.FAIL and "503" in found["workstation.hub-health"][1]
    )


def test_each_check_can_run_its_parts_alone(ws: Workstation, hub: int) -> None:
    """What the benchmark's one-connection-per-check baseline runs."""
    profile = Profile(user="bbadger", remote_port=hub)
    for check_id, parts in facts.NEEDS.items():
        result = ws.shell().run(facts.script(profile, parts))
        assert result.ok, (check_id, result.stderr)
        ctx = DoctorContext()
        ctx.set_profile(profile)
        ctx.once(
            "workstation", lambda r=result: WorkstationRun(r, facts.WorkstationFacts(r.stdout, profile), True)
        )
        assert WS_CHECKS[check_id](ctx).status is CheckStatus.OK, check_id


# ----------------------------------------------------------------------------- local layer


def local_ctx(profile: Profile) -> DoctorContext:
    ctx = DoctorContext(load_profile=lambda: profile)
    ctx.set_profile(profile)
    return ctx


def test_key_permissions() -> None:
    profile = Profile(user="bbadger")
    ctx = local_ctx(profile)
    assert checks_local.key(ctx).status is CheckStatus.FAIL  # no key yet
    sshfiles.ensure_key()
    outcome = checks_local.key(ctx)
    assert outcome.status is CheckStatus.OK and "SHA256:" in outcome.summary
    paths.key_file().chmod(0o644)
    outcome = checks_local.key(ctx)
    assert outcome.status is CheckStatus.FAIL and outcome.hint == f"chmod 600 {paths.key_file()}"


def test_ssh_config_matches_the_profile_until_it_does_not() -> None:
    profile = Profile(user="bbadger")
    ctx = local_ctx(profile)
    assert checks_local.ssh_config(ctx).status is CheckStatus.FAIL  # no file
    sshfiles.write_config(profile)
    assert checks_local.ssh_config(ctx).status is CheckStatus.OK
    ctx.set_profile(
        profile.updated(host="carproject-07.engr.wisc.edu")
    )  # profile changed, config not rewritten
    outcome = checks_local.ssh_config(ctx)
    assert outcome.status is CheckStatus.FAIL
    assert "hostname is 'carproject-06.engr.wisc.edu'" in outcome.summary and "setup" in outcome.hint


class _ForwardOnly(Engine):
    """An engine that only records which local port the supervisor forwards."""

    def __init__(self) -> None:
        self.forwarded: list[int] = []

    def forward(self, local_port: int, remote_port: int) -> None:
        self.forwarded.append(local_port)


@contextlib.contextmanager
def squatting(
    port: int, *, argv0: str | None = None, args: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[str]]:
    """Another program listening on 127.0.0.1:port (its ``argv[0]`` and trailing arguments as given)."""
    squatter = subprocess.Popen(
        [argv0 or sys.executable, "-c", f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); "
         "s.listen(); print('up', flush=True); time.sleep(60)", *args],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert squatter.stdout is not None and squatter.stdout.readline() == "up\n"
        yield squatter
    finally:
        squatter.kill()
        squatter.wait()


def test_local_port_taken_by_another_program_is_what_connect_moves_off() -> None:
    """One policy: where connect moves to a free port on its own, the doctor warns and names that port."""
    port = free_port()
    profile = Profile(user="bbadger", local_port=port)
    ctx = local_ctx(profile)
    assert checks_local.local_port(ctx).status is CheckStatus.OK
    with squatting(port) as squatter:
        outcome = checks_local.local_port(ctx)
        engine = _ForwardOnly()
        supervisor.Supervisor(profile, record_state=False)._forward(engine)  # type: ignore[arg-type]
    assert outcome.status is CheckStatus.WARN, outcome
    assert "another program: python" in outcome.summary and f"pid {squatter.pid}" in outcome.summary
    assert engine.forwarded and engine.forwarded[0] != port
    assert f"wa-onboard connect will use {engine.forwarded[0]} instead" in outcome.summary
    assert f"kill {squatter.pid}" in outcome.hint


def test_a_child_of_the_live_supervisor_holds_the_port_for_it(isolated_home: Path) -> None:
    """The port holder's parent is the live supervisor: its forward (ours). A record whose supervisor is
    gone vouches for nothing: the same holder is another program then (its pid may be anyone's now)."""
    port = free_port()
    profile = Profile(user="bbadger", local_port=port)
    url = f"http://127.0.0.1:{port}/jupyter/"
    tunnelstate.write_record(
        tunnelstate.TunnelRecord("default", os.getpid(), port, url, "openssh", "connected", since=0.0)
    )
    with squatting(port):
        gone = checks_local.local_port(local_ctx(profile))
        with tunnelstate.ProfileLock("default"), pytest.MonkeyPatch.context() as patch:
            patch.setattr(procs, "is_our_supervisor", lambda pid, name: pid == os.getpid())
            live = checks_local.local_port(local_ctx(profile))
    assert live.status is CheckStatus.OK and "held by our tunnel" in live.summary, live
    assert gone.status is CheckStatus.WARN and "another program" in gone.summary, gone


def test_another_profiles_tunnel_on_the_port_is_not_ours(tmp_path: Path) -> None:
    """An ssh of ours for profile 'lab2' holds the default profile's port: not this profile's orphan (the old
    check called it ours and offered its pid to kill); connect moves off it, and the hint names that profile."""
    port = free_port()
    profile = Profile(user="bbadger", local_port=port)
    ProfileStore().save(profile, "lab2")
    ctx = local_ctx(profile)
    config = str(sshfiles.config_path())
    fake_ssh = tmp_path / "ssh"  # a python that looks like an ssh master of profile lab2 in the process table
    fake_ssh.symlink_to(sys.executable)
    with squatting(port, argv0=str(fake_ssh), args=("-F", config, "-N", "wa-lab2-ws")) as ssh:
        argv = procs.process_cmdline(ssh.pid) or []
        assert argv[0] == str(fake_ssh) and argv[-4:] == [
            "-F",
            config,
            "-N",
            "wa-lab2-ws",
        ]  # what _is_ours reads
        outcome = checks_local.local_port(ctx)
        running = checks_tunnel.running(ctx)
    assert outcome.status is CheckStatus.WARN, outcome
    assert "the tunnel of wa-onboard profile 'lab2'" in outcome.summary
    assert "wa-onboard --profile lab2 disconnect" in outcome.hint and "kill" not in outcome.hint
    assert running.status is CheckStatus.FAIL and "no tunnel is running" in running.summary


def test_tunnel_already_up_on_another_port(hub: int) -> None:
    """connect moved off the busy profile port: local.port is fine and the tunnel checks ask the port the live
    tunnel really uses (here the stand-in hub), not the busy one."""
    port = free_port()
    profile = Profile(user="bbadger", local_port=port)
    ctx = local_ctx(profile)
    url = f"http://127.0.0.1:{hub}/jupyter/"
    # the live supervisor: not the squatter's parent (this process), which would make the squatter its ssh
    record = tunnelstate.TunnelRecord("default", os.getppid(), hub, url, "openssh", "connected", since=0.0)
    ctx.once("live-tunnel", lambda: record)
    assert checks_local.local_port(ctx).summary == f"127.0.0.1:{port} is free; your tunnel uses {hub}: {url}"
    with squatting(port):
        outcome = checks_local.local_port(ctx)
        assert outcome.status is CheckStatus.OK, outcome
        assert f"your tunnel uses {hub} instead: {url}" in outcome.summary
        assert checks_tunnel.running(ctx).status is CheckStatus.OK
        for check in (checks_tunnel.forward, checks_tunnel.hub):
            result = check(ctx)
            assert result.status is CheckStatus.OK, result
    assert f"at {url}" in checks_tunnel.hub(ctx).summary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NotAHub(http.server.BaseHTTPRequestHandler):
    """Some other web server on the port: 404 for everything, no JupyterHub stamp."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_404_hint_never_suggests_the_base_url_already_set(ws: Workstation, hub: int) -> None:
    Hub.status = 404  # a JupyterHub that stamps its 404, but has no health at /jupyter/hub/health
    lab = "--base-url /jupyter"
    found = workstation_checks(ws, Profile(user="bbadger", remote_port=hub))
    status, summary, hint = found["workstation.hub-health"]
    assert status is CheckStatus.FAIL and "404" in summary
    assert lab not in hint and "a JupyterHub answers" in hint and "lab admins" in hint
    moved = workstation_checks(ws, Profile(user="bbadger", remote_port=hub, base_url="/jhub"))
    assert f"wa-onboard setup {lab}" in moved["workstation.hub-health"][2]  # only here is it the fix

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotAHub)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        ctx = local_ctx(Profile(user="bbadger", local_port=other.server_address[1]))
        ctx.profile_name = "lab2"
        through = checks_tunnel.hub(ctx)
    finally:
        other.shutdown()
    assert (
        through.status is CheckStatus.FAIL and "404" in through.summary and "base URL" not in through.summary
    )
    assert lab not in through.hint and "not the lab's JupyterHub" in through.hint
    assert "wa-onboard --profile lab2 setup --host" in through.hint and "--remote-port" in through.hint


def test_a_privileged_port_is_named_as_such_not_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below 1024 the system refuses a normal user the port: the doctor says so in connect's words,
    and does not send the member hunting for a program that holds it."""
    profile = Profile(user="bbadger", local_port=80)
    monkeypatch.setattr(procs, "port_state", lambda port: procs.PortState.DENIED)
    outcome = checks_local.local_port(local_ctx(profile))
    assert outcome.status is CheckStatus.FAIL, outcome
    assert "privileged port (below 1024)" in outcome.summary, outcome
    assert "taken" not in outcome.summary and "lsof" not in outcome.hint and "kill" not in outcome.hint
    assert outcome.summary == supervisor.privileged_port(80).message
    assert "--local-port" in outcome.hint


def test_every_missing_ssh_says_the_same_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ssh on PATH: the doctor, the engine and key making give one hint (engine.INSTALL_SSH_HINT)."""
    from wa_onboard.core.errors import WaError
    from wa_onboard.core.tunnel import sshclient
    from wa_onboard.core.tunnel.engines.base import INSTALL_SSH_HINT

    monkeypatch.setattr(sshclient, "client_version", lambda: None)
    outcome = checks_local.ssh_client(local_ctx(Profile(user="bbadger")))
    assert outcome.status is CheckStatus.FAIL and outcome.hint == INSTALL_SSH_HINT
    with pytest.raises(WaError) as caught:
        sshfiles._run_keygen(["/nonexistent/wa-onboard-test/ssh-keygen", "-l"])
    assert caught.value.hint == INSTALL_SSH_HINT


def test_the_env_is_found_where_setup_finds_it_with_hints_that_fit(
    ws: Workstation, hub: int, tmp_path: Path
) -> None:
    """The doctor looks for the env with setup's own bash (conda_scripts.env_status_body): an env
    outside conda's envs folders (listed in environments.txt) gets the fixes setup would give for it
    (setup never deletes it, so no --repair; conda install -p, as -n cannot name it), and a half-made
    folder in any envs dir is seen, not called missing."""
    profile = Profile(user="bbadger", remote_port=hub)
    scratch = tmp_path / "scratch" / "bob" / "wa"
    scratch.parent.mkdir(parents=True)
    ws.env_prefix("wa").rename(scratch)
    (ws.home / ".conda" / "environments.txt").write_text(f"{scratch}\n")
    assert workstation_checks(ws, profile)["workstation.env"][0] is CheckStatus.OK

    for python in (scratch / "bin").glob("python*"):
        python.unlink()
    status, summary, hint = workstation_checks(ws, profile)["workstation.env"]
    assert status is CheckStatus.FAIL and str(scratch) in summary, summary
    assert "--repair" not in hint and f"conda env remove -p {scratch}" in hint, hint

    ipykernel = checks_remote.ipykernel  # an outside env without ipykernel: -p, never -n
    (tmp_path / "again").mkdir()
    fixed = make_workstation(tmp_path / "again")
    assert fixed.shell().run("conda create -y -n wa python=3.11 >/dev/null").ok
    elsewhere = tmp_path / "again" / "scratch" / "wa"
    elsewhere.parent.mkdir()
    fixed.env_prefix("wa").rename(elsewhere)
    for package in elsewhere.glob("lib/python*/site-packages/ipykernel"):
        shutil.rmtree(package)
    (fixed.home / ".conda" / "environments.txt").write_text(f"{elsewhere}\n")
    result = fixed.shell().run(facts.script(profile))
    ctx = DoctorContext(load_profile=lambda: profile)
    ctx.set_profile(profile)
    ctx.once(
        "workstation", lambda: WorkstationRun(result, facts.WorkstationFacts(result.stdout, profile), True)
    )
    outcome = ipykernel(ctx)
    assert outcome.status is CheckStatus.FAIL and f"conda install -p {elsewhere} ipykernel" in outcome.hint

    # a folder conda does not list, in conda's own envs dir (not ~/.conda/envs): half-made, not missing
    (ws.conda_root / "envs" / "wa").mkdir()
    (ws.home / ".conda" / "environments.txt").write_text("")
    status, summary, hint = workstation_checks(ws, profile)["workstation.env"]
    assert status is CheckStatus.FAIL and "does not list it" in summary, summary
    assert "--repair" in hint
