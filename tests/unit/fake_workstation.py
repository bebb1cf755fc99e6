"""A workstation on this machine for the setup steps' unit tests: a login bash with its own HOME, a tiny
fake conda, an optional fake ``module`` function, and a fake engine whose shells run there.

The fake conda makes envs with ``python3 -m venv --without-pip`` and a fake ``ipykernel`` package
(``python -m ipykernel install`` writes a kernel.json, as the real one does); every call is logged
so that tests can prove ``conda create`` never ran on an existing env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wa_onboard.core.prompts import Prompter, SecretQuestion
from wa_onboard.core.remote import SubprocessShell
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure

FAKE_CONDA = r"""#!/usr/bin/env python3
import json, os, shutil, subprocess, sys, time
root = os.environ["FAKE_CONDA_ROOT"]
home = os.environ["HOME"]
envs_dirs = [os.path.join(home, ".conda", "envs"), os.path.join(root, "envs")]
with open(os.path.join(root, "calls.log"), "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
fault = ""
if os.path.exists(os.path.join(root, "fault")):
    fault = open(os.path.join(root, "fault")).read().strip()
args = sys.argv[1:]

def envs():
    found = [root]
    for d in envs_dirs:
        if os.path.isdir(d):
            found += [os.path.join(d, n) for n in sorted(os.listdir(d)) if os.path.isdir(os.path.join(d, n, "conda-meta"))]
    registry = os.path.join(home, ".conda", "environments.txt")  # conda lists these too, wherever they are
    if os.path.exists(registry):
        found += [p for p in open(registry).read().split() if p not in found and os.path.isdir(os.path.join(p, "conda-meta"))]
    return found

def name_arg():
    return args[args.index("-n") + 1]

KERNEL_PKG = {
    "__init__.py": "__version__ = '6.29.5'\n",
    "__main__.py": (
        "import json, os, sys\n"
        "a = sys.argv[1:]\n"
        "assert a[0] == 'install' and '--user' in a\n"
        "name = a[a.index('--name') + 1].lower(); disp = a[a.index('--display-name') + 1]\n"
        "data = os.environ.get('JUPYTER_DATA_DIR') or os.path.expanduser('~/.local/share/jupyter')\n"
        "d = os.path.join(data, 'kernels', name); os.makedirs(d, exist_ok=True)\n"
        "json.dump({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],"
        " 'display_name': disp, 'language': 'python'}, open(os.path.join(d, 'kernel.json'), 'w'))\n"
        "print('Installed kernelspec %s in %s' % (name, d))\n"
    ),
}

def add_ipykernel(prefix):
    site = subprocess.check_output([prefix + "/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    os.makedirs(os.path.join(site, "ipykernel"), exist_ok=True)
    for fname, text in KERNEL_PKG.items():
        open(os.path.join(site, "ipykernel", fname), "w").write(text)

if args[:1] == ["--version"]:
    print("conda 24.9.2")
elif args[:2] == ["info", "--json"]:
    print(json.dumps({"conda_version": "24.9.2", "root_prefix": root, "root_writable": False,
                      "envs_dirs": envs_dirs, "envs": envs(), "platform": "linux-64"}, indent=2))
elif args[:3] == ["env", "list", "--json"]:
    print(json.dumps({"envs": envs()}, indent=2))
elif args[:1] == ["create"]:
    name = name_arg()
    prefix = os.path.join(envs_dirs[0], name)
    print("Channels:\n - defaults\nPlatform: linux-64\nCollecting package metadata (repodata.json): done")
    sys.stdout.flush()
    if fault == "packages":
        print("PackagesNotFoundError: The following packages are not available from current channels:", file=sys.stderr)
        print("\n  - python=3.99\n", file=sys.stderr)
        sys.exit(1)
    if fault == "http":
        print("CondaHTTPError: HTTP 000 CONNECTION FAILED for url <https://repo.anaconda.com/pkgs/main/linux-64/current_repodata.json>", file=sys.stderr)
        sys.exit(1)
    if os.path.exists(prefix):
        shutil.rmtree(prefix)  # what the real conda does with -y
    os.makedirs(os.path.join(prefix, "conda-meta"))
    print("Preparing transaction: done\nVerifying transaction: done\nExecuting transaction: ...")
    sys.stdout.flush()
    if fault == "quota":
        print("OSError: [Errno 122] Disk quota exceeded: '%s/lib/libpython3.11.so'" % prefix, file=sys.stderr)
        sys.exit(1)
    if fault.startswith("slow"):  # "slow" or "slow:N" (N half-second stages)
        for i in range(int(fault.partition(":")[2] or 60)):
            print("extracting %d" % i); sys.stdout.flush(); time.sleep(0.5)
    subprocess.check_call([sys.executable, "-m", "venv", "--without-pip", prefix])
    add_ipykernel(prefix)
    open(os.path.join(prefix, "conda-meta", "history"), "a").write("==> create <==\n")
    print("done")
elif args[:1] == ["install"]:
    add_ipykernel(args[args.index("-p") + 1] if "-p" in args else os.path.join(envs_dirs[0], name_arg()))
    print("Executing transaction: done")
else:
    print("CondaValueError: unsupported by the fake: %s" % " ".join(args), file=sys.stderr)
    sys.exit(1)
"""


@dataclass
class Workstation:
    """The fake workstation's HOME and conda; ``profile_lines`` go into its ~/.bash_profile."""

    home: Path
    conda_root: Path
    profile_lines: list[str] = field(default_factory=list)

    @property
    def conda_bin(self) -> Path:
        return self.conda_root / "bin"

    def set_fault(self, fault: str) -> None:
        path = self.conda_root / "fault"
        if fault:
            path.write_text(fault)
        else:
            path.unlink(missing_ok=True)

    def calls(self) -> list[str]:
        log = self.conda_root / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def write_profile(self, *lines: str) -> None:
        self.profile_lines = list(lines)
        (self.home / ".bash_profile").write_text("\n".join(["unset -f module 2>/dev/null", *lines]) + "\n")

    def on_path(self) -> None:
        self.write_profile(f'export PATH="{self.conda_bin}:$PATH"')

    def shell(self) -> SubprocessShell:
        env = {
            "HOME": str(self.home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "FAKE_CONDA_ROOT": str(self.conda_root),
            "LANG": "C.UTF-8",
            "USER_IS_ROOT": "1",  # keeps this machine's lmod (/etc/profile.d/lmod.sh) out of the way
        }
        return SubprocessShell(["sh", "-c", 'cd "$HOME" && eval "$1"', "ssh"], env=env)

    def env_prefix(self, name: str) -> Path:
        return self.home / ".conda" / "envs" / name


def make_workstation(base: Path) -> Workstation:
    home = base / "ws-home"
    home.mkdir(mode=0o700)
    root = base / "conda"
    (root / "bin").mkdir(parents=True)
    (root / "envs").mkdir()
    conda = root / "bin" / "conda"
    conda.write_text(FAKE_CONDA)
    conda.chmod(0o755)
    ws = Workstation(home, root)
    ws.on_path()
    return ws


def module_function(available: dict[str, Path], listed: list[str] | None = None) -> str:
    """A stand-in for lmod's ``module``: ``load NAME`` puts that module's bin on PATH; ``-t avail``
    lists the names on stderr (as lmod does)."""
    cases = "".join(f'        {name}) export PATH="{path}:$PATH" ;;\n' for name, path in available.items())
    names = "\\n".join(listed if listed is not None else list(available))
    return (
        "module() {\n"
        f'    if [ "$1" = "-t" ] && [ "$2" = avail ]; then printf \'/opt/modules:\\n{names}\\n\' >&2; return 0; fi\n'
        '    [ "$1" = load ] || return 1\n'
        '    case "$2" in\n'
        f"{cases}"
        '        *) echo "Lmod has detected the following error: unknown module \\"$2\\"" >&2; return 1 ;;\n'
        "    esac\n"
        "}\n"
    )


class FakeEngine(Engine):
    """Logs in when the laptop's key is in the fake workstation's authorized_keys, or with 'pw'."""

    name = "fake"
    logins: list[bool] = []

    def __init__(self, ws: Workstation, password: str = "pw", *, tunnel_running: bool = False) -> None:
        self.ws = ws
        self.password = password
        self.alive = False
        self.tunnel_running = tunnel_running
        """A running tunnel's connection logs in whatever the key (as an OpenSSH master does)."""

    def _key_installed(self) -> bool:
        from wa_onboard.core import paths

        pub = paths.key_file().with_name(paths.key_file().name + ".pub")
        auth = self.ws.home / ".ssh" / "authorized_keys"
        return pub.exists() and auth.exists() and pub.read_text().strip() in auth.read_text().splitlines()

    def login(self, prompter: Prompter, *, interactive: bool, forward: tuple[int, int] | None = None) -> None:
        if forward is not None:
            raise NotImplementedError("the fake workstation has no hub to forward to")
        FakeEngine.logins.append(interactive)
        if self._key_installed() or self.tunnel_running:
            self.alive = True
            return
        if not interactive:
            raise ConnectError(Failure.PASSWORD_NEEDED, "jump host did not accept the key")
        for hop in ("u@jump", "u@ws"):
            answer = prompter.secret(SecretQuestion("u's password:", hop))
            if answer != self.password:
                raise ConnectError(Failure.JUMP_AUTH, f"{hop} refused the password", "check your password")
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def key_logs_in(self) -> bool:
        return self._key_installed()

    def workstation(self) -> SubprocessShell:
        return self.ws.shell()

    def jump(self) -> SubprocessShell:
        return self.ws.shell()  # a shared home, as on campus

    def forward(self, local_port: int, remote_port: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.alive = False
