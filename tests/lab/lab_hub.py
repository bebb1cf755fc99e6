"""The lab's JupyterHub on the workstation (PAM login, base URL /jupyter) and logging in to it as a member."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from lab_accounts import Member
from lab_common import (
    ADMIN_GROUP,
    NAMESPACES,
    SYS_PYTHON,
    LabError,
    _cmdline,
    _kill_pids,
    _ns_pids,
    _Proc,
    _reap,
)

HUB_CONFIG = """\
# wa-lab JupyterHub on the workstation (written by tests/lab/lab.py)
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.base_url = "{base_url}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = 8081
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True
c.PAMAuthenticator.admin_groups = {{"{admin_group}"}}
c.JupyterHub.db_url = "sqlite:///{hub_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub_dir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{hub_dir}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
c.ConfigurableHTTPProxy.pid_file = "{hub_dir}/proxy.pid"
c.Spawner.cmd = ["{root}/hub/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
"""


# Logs in to the hub as a member and prints the member's server's /api/kernelspecs (run with /usr/bin/python3
# inside walab-ws, or on the laptop through the tunnel; stdlib only). argv: name base_url port timeout [stop];
# the password comes on stdin. With "stop" it stops the member's server instead and prints {}.
HUB_LOGIN_SCRIPT = r"""
import http.cookiejar, json, re, sys, time, urllib.error, urllib.parse, urllib.request

name, base_url, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
password = sys.stdin.read().rstrip("\n")
base = f"http://127.0.0.1:{port}{base_url}"
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def xsrf(path_prefix):
    for c in jar:
        if c.name == "_xsrf" and c.path.rstrip("/").startswith(path_prefix.rstrip("/")):
            return c.value
    raise SystemExit(f"no _xsrf cookie for {path_prefix}: {[(c.name, c.path) for c in jar]}")


def call(url, data=None, method=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.geturl(), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, url, e.read().decode(errors="replace")


status, _, html = call(f"{base}/hub/login")
m = re.search(r'name="_xsrf"\s+value="([^"]+)"', html)
if status != 200 or not m:
    raise SystemExit(f"GET /hub/login: {status} without an _xsrf field")
form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": m.group(1)}).encode()
status, landed, html = call(f"{base}/hub/login?next={urllib.parse.quote(base_url + '/hub/home')}", data=form)
if status != 200 or "/hub/login" in urllib.parse.urlparse(landed).path:
    raise SystemExit(f"login as {name} failed: {status} at {landed}")

hub_api = {"X-XSRFToken": xsrf(f"{base_url}/hub/"), "Accept": "application/json"}
if sys.argv[5:] == ["stop"]:
    status, _, body = call(f"{base}/hub/api/users/{name}/server", method="DELETE", headers=hub_api)
    if status not in (202, 204, 400):
        raise SystemExit(f"stopping the server of {name}: {status} {body[:300]}")
    deadline = time.monotonic() + timeout
    while json.loads(call(f"{base}/hub/api/users/{name}", headers=hub_api)[2]).get("servers", {}).get(""):
        if time.monotonic() > deadline:
            raise SystemExit(f"the server of {name} did not stop in {timeout}s")
        time.sleep(0.5)
    print("{}")
    raise SystemExit(0)
status, _, body = call(f"{base}/hub/api/users/{name}", headers=hub_api)
if status != 200:
    raise SystemExit(f"GET /hub/api/users/{name}: {status} {body[:300]}")
if not json.loads(body).get("servers", {}).get(""):
    status, _, body = call(f"{base}/hub/api/users/{name}/server", data=b"{}", method="POST",
                           headers={**hub_api, "Content-Type": "application/json"})
    if status not in (201, 202, 400):
        raise SystemExit(f"starting the server of {name}: {status} {body[:300]}")
deadline = time.monotonic() + timeout
while True:
    status, _, body = call(f"{base}/hub/api/users/{name}", headers=hub_api)
    server = json.loads(body).get("servers", {}).get("", {}) if status == 200 else {}
    if server.get("ready"):
        break
    if time.monotonic() > deadline:
        raise SystemExit(f"the server of {name} did not get ready in {timeout}s: {status} {body[:300]}")
    time.sleep(0.5)

# Opening the server's page does the OAuth dance with the hub and sets the server's cookies (and its _xsrf).
user_base = f"{base_url}/user/{name}/"
status, landed, _ = call(f"{base}/user/{name}/lab")
if status != 200:
    raise SystemExit(f"GET {user_base}lab: {status} at {landed}")
status, _, body = call(f"{base}/user/{name}/api/kernelspecs",
                       headers={"X-XSRFToken": xsrf(user_base), "Accept": "application/json"})
if status != 200:
    raise SystemExit(f"GET {user_base}api/kernelspecs: {status} {body[:300]}")
print(body)
"""

HEALTH_SCRIPT = r"""
import sys, time, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
last = None
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
            last = r.status
    except Exception as e:  # noqa: BLE001 - any failure means "not yet"
        last = e
    time.sleep(0.2)
print(f"{url}: {last}", file=sys.stderr)
sys.exit(1)
"""


class HubMixin:
    """Lab methods for the hub."""

    @property
    def hub_url(self) -> str:
        """The hub's URL as seen on the workstation itself."""
        return f"http://127.0.0.1:{self.hub_port}{self.base_url}"

    def start_hub(self, timeout: float = 60) -> None:
        """Start JupyterHub on the workstation (no-op when it runs); wait until /hub/health answers 200."""
        if self._hub is not None and self._hub.popen.poll() is None:
            return
        hub_dir = self.run_dir / "hub"
        hub_dir.mkdir(mode=0o700, exist_ok=True)
        config = hub_dir / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                port=self.hub_port,
                base_url=self.base_url,
                admin_group=ADMIN_GROUP,
                hub_dir=hub_dir,
                root=self.root,
            )
        )
        env = {
            "PATH": f"{self.root}/hub/bin:{self.root}/node/node_modules/.bin:"
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            "USER": "root",
            # Fixed for the run, so a restarted hub takes over a proxy that outlived it (stop_hub(keep_proxy=True)).
            "CONFIGPROXY_AUTH_TOKEN": self._proxy_token,
        }
        log = open(hub_dir / "jupyterhub.log", "ab")  # noqa: SIM115 - closed in _reap
        popen = subprocess.Popen(
            self.host_cmd("ws", [str(self.root / "hub/bin/jupyterhub"), "-f", str(config)]),
            cwd=hub_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        self._hub = _Proc(popen, log)
        script = self.run_dir / "health.py"
        script.write_text(HEALTH_SCRIPT)
        r = subprocess.run(
            self.host_cmd("ws", [SYS_PYTHON, str(script), f"{self.hub_url}/hub/health", str(timeout)]),
            capture_output=True,
            text=True,
            timeout=timeout + 10,
        )
        if r.returncode != 0 or popen.poll() is not None:
            raise LabError(
                f"JupyterHub did not come up: {r.stderr.strip()}\n--- {hub_dir}/jupyterhub.log (end):\n"
                + self.hub_log()[-3000:]
            )

    def stop_hub(self, keep_proxy: bool = False) -> None:
        """Stop JupyterHub with its proxy and the members' servers. With keep_proxy the hub process alone dies
        (SIGKILL, no cleanup): the proxy keeps port 8000 and answers 503 for the hub, the members' servers live
        on, and start_hub() takes the proxy over again, like a hub restart on a real server."""
        if keep_proxy:
            if self._hub is not None:
                self._hub.popen.kill()
                self._hub.popen.wait()
                self._hub.log.close()
                self._hub = None
            return
        if self._hub is not None:
            _reap(self._hub, grace=15)
            self._hub = None
        leftovers = [
            p
            for p in _ns_pids(NAMESPACES["ws"])
            if any(w in _cmdline(p) for w in ("configurable-http-proxy", "jupyterhub-singleuser"))
        ]
        _kill_pids(leftovers)

    def hub_log(self) -> str:
        """What JupyterHub logged so far."""
        try:
            return (self.run_dir / "hub" / "jupyterhub.log").read_text(errors="replace")
        except OSError:
            return ""

    def hub_login_kernelspecs(
        self, member: Member, timeout: float = 90, *, via_port: int | None = None, stop: bool = False
    ) -> dict[str, Any]:
        """Log in to the hub as member (PAM password, _xsrf form), start the member's server, and return its
        /api/kernelspecs JSON ({"default": ..., "kernelspecs": {name: {"spec": {"display_name": ...}}}}).
        via_port: from the laptop through the tunnel's local port, as the member's browser does (default: on the
        workstation). stop: stop the member's server instead (returns {})."""
        script = self.run_dir / "hub_login.py"
        script.write_text(HUB_LOGIN_SCRIPT)
        port = self.hub_port if via_port is None else via_port
        argv = [
            SYS_PYTHON,
            str(script),
            member.name,
            self.base_url,
            str(port),
            str(timeout),
            *(["stop"] * stop),
        ]
        r = subprocess.run(
            self.host_cmd("ws" if via_port is None else "laptop", argv),
            input=member.password + "\n",
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
        if r.returncode != 0:
            raise LabError(
                f"hub login as {member.name} failed: {r.stderr.strip()}\n--- hub log (end):\n"
                + self.hub_log()[-3000:]
            )
        result: dict[str, Any] = json.loads(r.stdout)
        return result
