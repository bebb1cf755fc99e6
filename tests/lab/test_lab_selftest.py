"""Self-tests of the lab: they prove the lab is a real campus (routing, OpenSSH, PAM/TOTP, lmod, the conda
stand-in, JupyterHub) before the product's lab tests rely on it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pexpect
import pytest
from lab import Lab, Member

CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "    print('connected', s.recv(64))\n"
    "except OSError as e:\n"
    "    print('failed', e.errno, e)\n"
    "    sys.exit(1)\n"
)


def connect(lab: Lab, host: str, port: int) -> subprocess.CompletedProcess[str]:
    """TCP connect from the laptop."""
    return lab.laptop_run(["/usr/bin/python3", "-c", CONNECT, host, str(port)], timeout=20)


def ssh_config(tmp: Path, identity: Path | None = None) -> Path:
    """A private ssh_config (passed with -F, it reaches both hops of -J) with its own known_hosts."""
    cfg = tmp / "ssh_config"
    auth = (
        f"  IdentityFile {identity}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
        if identity
        else "  PubkeyAuthentication no\n"
    )
    cfg.write_text(
        "Host *\n"
        f"  UserKnownHostsFile {tmp / 'known_hosts'}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking accept-new\n"
        "  ConnectTimeout 10\n" + auth
    )
    return cfg


def spawn_ssh(
    lab: Lab, tmp: Path, m: Member, remote: str, identity: Path | None = None, extra: tuple[str, ...] = ()
) -> pexpect.spawn:
    cmd = lab.laptop_cmd(
        [
            "ssh",
            "-F",
            str(ssh_config(tmp, identity)),
            *extra,
            "-J",
            f"{m.name}@{lab.jump_host}",
            f"{m.name}@{lab.ws_host}",
            remote,
        ]
    )
    return pexpect.spawn(
        cmd[0],
        cmd[1:],
        encoding="utf-8",
        timeout=30,
        env={"PATH": "/usr/sbin:/usr/bin:/bin", "HOME": str(tmp)},
    )


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus if child.exitstatus is not None else 255)


def test_laptop_reaches_jump_but_not_workstation(lab: Lab) -> None:
    to_jump = connect(lab, lab.jump_host, 22)
    assert to_jump.returncode == 0 and "SSH-2.0-OpenSSH" in to_jump.stdout, to_jump
    # The laptop knows the workstation's name, but there is no route to it.
    to_ws = connect(lab, lab.ws_host, 22)
    assert to_ws.returncode == 1 and "failed 101" in to_ws.stdout, to_ws  # ENETUNREACH
    assert connect(lab, lab.ws_ip, 22).returncode == 1
    # The jump host reaches the workstation, and does not forward packets for the laptop.
    r = lab.jump_run(["/usr/bin/python3", "-c", CONNECT, lab.ws_host, "22"])
    assert r.returncode == 0 and "SSH-2.0-OpenSSH" in r.stdout, r
    assert lab.jump_run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "0"
    # DNS fails fast: only the hosts file names things.
    r = lab.laptop_run(["getent", "hosts", "example.org"], timeout=10)
    assert r.returncode != 0


def test_proxyjump_with_passwords(lab: Lab, member: Member, tmp_path: Path) -> None:
    child = spawn_ssh(lab, tmp_path, member, "echo ok $(hostname)")
    child.expect_exact(
        f"({member.name}@{lab.jump_host}) Password:"
    )  # PAM keyboard-interactive on the jump host
    child.sendline(member.password)
    child.expect_exact(
        f"{member.name}@{lab.ws_host}'s password:"
    )  # classic password prompt on the workstation
    child.sendline(member.password)
    child.expect_exact("ok ws")
    assert finish(child) == 0
    known = (tmp_path / "known_hosts").read_text()
    assert lab.host_public_key("jump").split()[1] in known and lab.host_public_key("ws").split()[1] in known


def test_wrong_passwords_are_refused(lab: Lab, member: Member, tmp_path: Path) -> None:
    # On the workstation (the jump host let us through): the classic password failure.
    child = spawn_ssh(lab, tmp_path, member, "true", extra=("-o", "NumberOfPasswordPrompts=2"))
    child.expect_exact(f"({member.name}@{lab.jump_host}) Password:")
    child.sendline(member.password)
    child.expect_exact(f"{member.name}@{lab.ws_host}'s password:")
    child.sendline("not-" + member.password)
    child.expect_exact("Permission denied, please try again.")
    child.expect_exact(f"{member.name}@{lab.ws_host}'s password:")
    child.sendline("not-" + member.password)
    child.expect_exact(f"{member.name}@{lab.ws_host}: Permission denied (publickey,password).")
    assert finish(child) == 255
    # On the jump host alone.
    cmd = lab.laptop_cmd(
        [
            "ssh",
            "-F",
            str(ssh_config(tmp_path)),
            "-o",
            "NumberOfPasswordPrompts=1",
            f"{member.name}@{lab.jump_host}",
            "true",
        ]
    )
    child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", timeout=30)
    child.expect_exact(f"({member.name}@{lab.jump_host}) Password:")  # keyboard-interactive first,
    child.sendline("not-" + member.password)
    child.expect_exact(f"{member.name}@{lab.jump_host}'s password:")  # then the password method
    child.sendline("not-" + member.password)
    child.expect_exact("Permission denied (publickey,password,keyboard-interactive).")
    assert finish(child) == 255


def test_mfa_member_gets_verification_code_on_jump_only(lab: Lab, mfa_member: Member, tmp_path: Path) -> None:
    m = mfa_member
    code = subprocess.run(
        ["oathtool", "--totp", "-b", m.totp_secret or ""], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert code == m.totp_code() or code == m.totp_code(at=__import__("time").time() - 1)
    child = spawn_ssh(lab, tmp_path, m, "echo ok $(hostname)")
    # A wrong code is refused: PAM starts over.
    child.expect_exact(f"({m.name}@{lab.jump_host}) Password:")
    child.sendline(m.password)
    child.expect_exact(f"({m.name}@{lab.jump_host}) Verification code:")
    child.sendline(f"{(int(code) + 500000) % 1000000:06d}")
    child.expect_exact(f"({m.name}@{lab.jump_host}) Password:")
    child.sendline(m.password)
    child.expect_exact(f"({m.name}@{lab.jump_host}) Verification code:")
    child.sendline(m.totp_code())
    idx = child.expect_exact([f"{m.name}@{lab.ws_host}'s password:", "Verification code:"])
    assert idx == 0, "the workstation must not ask for the MFA code"
    child.sendline(m.password)
    child.expect_exact("ok ws")
    assert finish(child) == 0


def test_key_alone_gets_an_mfa_member_through_both_hosts(
    lab: Lab, mfa_member: Member, tmp_path: Path
) -> None:
    m = mfa_member
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # One home on the shared file system serves both hosts.
    r = lab.ws_run(
        "umask 077 && mkdir -p ~/.ssh && cat >> ~/.ssh/authorized_keys",
        user=m,
        input=Path(f"{key}.pub").read_text(),
    )
    assert r.returncode == 0, r
    r = lab.laptop_run(
        [
            "ssh",
            "-F",
            str(ssh_config(tmp_path, key)),
            "-o",
            "BatchMode=yes",
            "-J",
            f"{m.name}@{lab.jump_host}",
            f"{m.name}@{lab.ws_host}",
            "echo ok $(hostname)",
        ],
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok ws", r


def test_module_load_anaconda_in_login_shell(lab: Lab, member: Member) -> None:
    r = lab.ws_run("module load anaconda && conda --version && command -v conda", user=member)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["conda 24.9.2", f"{lab.root}/conda/bin/conda"]
    # A plain (non-login) shell has no `module`, as with `ssh host cmd`.
    r = lab.ws_run(["/bin/bash", "-c", "type module"], user=member)
    assert r.returncode != 0
    try:
        lab.set_conda_module("miniforge")
        assert lab.ws_run("module load anaconda", user=member).returncode != 0
        r = lab.ws_run("module load miniforge && conda --version", user=member)
        assert r.returncode == 0 and r.stdout.strip() == "conda 24.9.2", r
        lab.set_conda_module(None)
        assert lab.ws_run("module load miniforge", user=member).returncode != 0
    finally:
        lab.set_conda_module("anaconda")


def test_conda_standin_facts(lab: Lab, member: Member) -> None:
    info = json.loads(lab.ws_run("module load anaconda && conda info --json", user=member).stdout)
    assert info["conda_version"] == "24.9.2" and info["root_prefix"] == f"{lab.root}/conda"
    assert info["root_writable"] is False and info["envs_dirs"][0] == f"{member.home}/.conda/envs"
    r = lab.ws_run("module load anaconda && conda create -y -n 'my env' python=3.11", user=member)
    assert r.returncode == 1 and "CondaValueError: Invalid environment name" in r.stderr
    r = lab.ws_run("module load anaconda && conda create -y -n WA python=3.9", user=member)
    assert r.returncode == 1 and "PackagesNotFoundError" in r.stderr
    r = lab.ws_run("module load anaconda && conda run -n nope python -V", user=member)
    assert r.returncode == 1 and (
        f"EnvironmentLocationNotFound: Not a conda environment: {member.home}/.conda/envs/nope" in r.stderr
    )
    lab.set_conda_fault("http")
    try:
        r = lab.ws_run("module load anaconda && conda create -y -n WA python=3.11 ipykernel", user=member)
        assert r.returncode == 1 and "CondaHTTPError: HTTP 000 CONNECTION FAILED" in r.stderr
        lab.set_conda_fault("quota")
        r = lab.ws_run("module load anaconda && conda create -y -n WA python=3.11 ipykernel", user=member)
        assert r.returncode == 1 and "[Errno 122] Disk quota exceeded" in r.stderr
        assert (member.home / ".conda/envs/WA").is_dir()  # half-made, and not an environment
        envs = json.loads(lab.ws_run("module load anaconda && conda env list --json", user=member).stdout)
        assert envs == {"envs": [f"{lab.root}/conda"]}
    finally:
        lab.set_conda_fault(None)


def test_env_kernel_shows_in_hub_launcher(lab: Lab, member: Member) -> None:
    env = f"{member.home}/.conda/envs/WA"
    r = lab.ws_run(
        "module load anaconda && conda create -y -n WA python=3.11 ipykernel", user=member, timeout=180
    )
    assert r.returncode == 0, r
    for stage in ("Solving environment: done", "## Package Plan ##", "Executing transaction: done"):
        assert stage in r.stdout
    envs = json.loads(lab.ws_run("module load anaconda && conda env list --json", user=member).stdout)["envs"]
    assert envs == [f"{lab.root}/conda", env]
    r = lab.ws_run(f"{env}/bin/python -m ipykernel install --user --name wa --display-name WA", user=member)
    assert r.returncode == 0, r
    spec = json.loads((member.home / ".local/share/jupyter/kernels/wa/kernel.json").read_text())
    assert spec["argv"][0] == f"{env}/bin/python" and spec["display_name"] == "WA"

    kernelspecs = lab.hub_login_kernelspecs(member)
    assert kernelspecs["kernelspecs"]["wa"]["spec"]["display_name"] == "WA"

    # With -y, creating over an existing env removes it first (the real, destructive behaviour).
    (Path(env) / "precious.txt").write_text("mine")
    r = lab.ws_run("module load anaconda && conda create -y -n WA python=3.11", user=member, timeout=180)
    assert r.returncode == 0 and not (Path(env) / "precious.txt").exists()


def test_hub_health_on_workstation_only(lab: Lab) -> None:
    r = lab.ws_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{lab.hub_url}/hub/health"])
    assert r.stdout == "200", r
    r = lab.ws_run(["curl", "-s", f"{lab.hub_url}/hub/api"])
    assert json.loads(r.stdout)["version"].split(".")[0] in ("5", "6")
    r = lab.ws_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", lab.hub_url])
    assert r.stdout == f"302 {lab.hub_url}/hub/", r
    # Not from the laptop: no route to the workstation, and nothing on the laptop's own port 8000.
    assert connect(lab, lab.ws_ip, lab.hub_port).returncode == 1
    r = lab.laptop_run(
        [
            "curl",
            "-s",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"http://127.0.0.1:{lab.hub_port}{lab.base_url}/hub/health",
        ]
    )
    assert r.stdout == "000" and r.returncode != 0


def test_link_down_and_sshd_stop(lab: Lab) -> None:
    lab.link_down("laptop-jump")
    try:
        assert connect(lab, lab.jump_host, 22).returncode == 1
    finally:
        lab.link_up("laptop-jump")
    assert connect(lab, lab.jump_host, 22).returncode == 0
    lab.stop_sshd("jump")
    try:
        r = connect(lab, lab.jump_host, 22)
        assert r.returncode == 1 and "failed 111" in r.stdout  # ECONNREFUSED
    finally:
        lab.start_sshd("jump")
    assert connect(lab, lab.jump_host, 22).returncode == 0


def test_changed_host_key_is_noticed(lab: Lab, member: Member, tmp_path: Path) -> None:
    child = spawn_ssh(lab, tmp_path, member, "true")
    child.expect_exact("Password:")
    child.sendline(member.password)
    child.expect_exact("password:")
    child.sendline(member.password)
    assert finish(child) == 0
    old = lab.host_key_fingerprint("ws")
    try:
        new = lab.regenerate_host_key("ws")
        assert new != old and new.startswith("SHA256:")
        child = spawn_ssh(lab, tmp_path, member, "true")
        child.expect_exact("Password:")
        child.sendline(member.password)
        child.expect_exact("REMOTE HOST IDENTIFICATION HAS CHANGED!")
        child.expect_exact("Host key verification failed.")
        assert finish(child) == 255
    finally:
        assert lab.restore_host_key("ws") == old


@pytest.mark.parametrize("shell", ["/bin/bash", "/usr/bin/tcsh"])
def test_other_login_shells_have_module_through_bash_lc(lab: Lab, shell: str, tmp_path: Path) -> None:
    m = lab.new_member(shell=shell)
    try:
        key = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        lab.ws_run(
            ["/bin/sh", "-c", "umask 077 && mkdir -p ~/.ssh && cat > ~/.ssh/authorized_keys"],
            user=m,
            input=Path(f"{key}.pub").read_text(),
        )
        r = lab.laptop_run(
            [
                "ssh",
                "-F",
                str(ssh_config(tmp_path, key)),
                "-o",
                "BatchMode=yes",
                "-J",
                f"{m.name}@{lab.jump_host}",
                f"{m.name}@{lab.ws_host}",
                "bash -lc 'module load anaconda && conda --version'",
            ],
            timeout=30,
        )
        assert r.returncode == 0 and r.stdout.strip() == "conda 24.9.2", r
    finally:
        lab.remove_member(m)


def test_hub_restart_behind_running_proxy(lab: Lab) -> None:
    def status(path: str) -> str:
        url = f"http://127.0.0.1:{lab.hub_port}{path}"
        return lab.ws_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]).stdout

    try:
        lab.stop_hub(keep_proxy=True)
        assert status(f"{lab.base_url}/hub/health") == "503"  # the proxy answers for a hub that is down
    finally:
        lab.start_hub()
    assert status(f"{lab.base_url}/hub/health") == "200"
    assert status("/elsewhere") == "404"  # no route outside the base URL
    lab.stop_hub()
    try:
        assert status(f"{lab.base_url}/hub/health") == "000"  # nothing listens on 8000 at all
    finally:
        lab.start_hub()
    assert status(f"{lab.base_url}/hub/health") == "200"


def test_slow_create_can_be_interrupted(lab: Lab, member: Member) -> None:
    lab.set_conda_fault("slow", slow_seconds=2)
    try:
        argv = [f"{lab.root}/conda/bin/conda", "create", "-y", "-n", "WA", "python=3.11", "ipykernel"]
        cmd = lab.host_cmd("ws", argv, member)
        env = {"HOME": str(member.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Channels:")  # it has started
        proc.send_signal(signal.SIGINT)  # Ctrl-C (the Popen pid is conda itself: every wrapper execs)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1 and "KeyboardInterrupt" in err, (out, err)
        assert "Executing transaction: done" not in out
    finally:
        lab.set_conda_fault(None)
