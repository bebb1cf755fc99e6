#!/bin/bash
# Provision this machine for the wa-onboard test lab (tests/lab/lab.py).
#
# Root only. Idempotent and cached: every step leaves a marker file in /opt/wa-lab/.markers and is skipped
# on a rerun while its marker matches. Needs only the package registries (Debian, PyPI, npm).
#
# What it installs:
#   - Debian packages: openssh-server (its system service is NOT started; the lab runs its own sshd
#     processes inside network namespaces), lmod, libpam-google-authenticator, oathtool, lsof, psmisc,
#     iproute2, python3-venv, sudo, curl, zsh and tcsh (members' other login shells), tmux (the
#     real-terminal test of the app), nodejs/npm when
#     node is missing.
#   - /opt/wa-lab/hub    a venv of /usr/bin/python3 with jupyterhub (>=5,<7) and jupyterlab
#   - /opt/wa-lab/node   configurable-http-proxy (npm install --prefix)
#   - /opt/wa-lab/wheels ipykernel and its dependencies for /usr/bin/python3, for the conda stand-in
#   - /opt/wa-lab/conda  the conda TEST STAND-IN (tests/lab/conda_standin/conda), base prefix not writable
#                        by members
#   - /opt/wa-lab/hostkeys/{jump,ws}  ed25519 host keys, made once
#   - /etc/lmod/modulespath gets the line /opt/wa-lab/modules (harmless while that folder is missing)
#
# Usage: sudo bash tests/lab/provision.sh [--force]     (--force redoes every step)
set -euo pipefail
umask 022

if [ "$(id -u)" != 0 ]; then
    echo "provision.sh: must run as root" >&2
    exit 1
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT=/opt/wa-lab
MARKERS="$ROOT/.markers"
PY=/usr/bin/python3
# Bump a step's version to make every machine redo that step.
HUB_SPEC='jupyterhub>=5,<7 jupyterlab'
WHEEL_SPEC='ipykernel six'

if [ "${1:-}" = "--force" ]; then
    rm -rf "$MARKERS"
fi
mkdir -p "$MARKERS"

done_step() { [ -f "$MARKERS/$1" ] && [ "$(cat "$MARKERS/$1")" = "$2" ]; }
mark_step() { printf '%s' "$2" >"$MARKERS/$1"; }
log() { echo "provision: $*"; }

# ---------------------------------------------------------------- Debian packages
APT_PKGS=(openssh-server openssh-client lmod libpam-google-authenticator oathtool lsof psmisc iproute2
          python3 python3-venv sudo curl util-linux passwd ca-certificates zsh tcsh tmux
          autossh)  # autossh: only the recovery benchmark's baseline (tests/bench/bench_recovery.py)
command -v node >/dev/null 2>&1 || APT_PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || APT_PKGS+=(npm)

missing=()
for p in "${APT_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    fresh_sshd=no
    dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q '^install ok installed$' || fresh_sshd=yes
    # Keep package scripts from starting system services (the host's own sshd in particular).
    own_policy=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=yes
    fi
    trap '[ "$own_policy" = yes ] && rm -f /usr/sbin/policy-rc.d' EXIT
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    if [ "$own_policy" = yes ]; then rm -f /usr/sbin/policy-rc.d; fi
    trap - EXIT
    # We installed openssh-server only for the lab: keep the host's ssh service off.
    if [ "$fresh_sshd" = yes ] && [ -d /run/systemd/system ]; then
        systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
fi

# ---------------------------------------------------------------- JupyterHub venv
if ! done_step hub "$HUB_SPEC" || [ ! -x "$ROOT/hub/bin/jupyterhub" ]; then
    log "JupyterHub venv in $ROOT/hub"
    rm -rf "$ROOT/hub"
    "$PY" -m venv "$ROOT/hub"
    # shellcheck disable=SC2086
    "$ROOT/hub/bin/pip" install --disable-pip-version-check -q $HUB_SPEC
    mark_step hub "$HUB_SPEC"
fi

# ---------------------------------------------------------------- configurable-http-proxy
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -ge 20 ]; then CHP='configurable-http-proxy@^5'; else CHP='configurable-http-proxy@5.1.0'; fi
if ! done_step chp "$CHP" || [ ! -x "$ROOT/node/node_modules/.bin/configurable-http-proxy" ]; then
    log "npm install $CHP into $ROOT/node"
    rm -rf "$ROOT/node"
    mkdir -p "$ROOT/node"
    npm install --prefix "$ROOT/node" --no-audit --no-fund --loglevel=error "$CHP"
    mark_step chp "$CHP"
fi

# ---------------------------------------------------------------- wheels for the conda stand-in
py_ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if ! done_step wheels "$WHEEL_SPEC py$py_ver" || ! ls "$ROOT/wheels"/ipykernel-*.whl >/dev/null 2>&1; then
    log "pip download $WHEEL_SPEC (+ pip, setuptools) for python $py_ver into $ROOT/wheels"
    rm -rf "$ROOT/wheels"
    mkdir -p "$ROOT/wheels"
    # The hub venv's pip runs on /usr/bin/python3 itself, so the wheels match that interpreter.
    # shellcheck disable=SC2086
    "$ROOT/hub/bin/pip" download --disable-pip-version-check -q --only-binary=:all: \
        -d "$ROOT/wheels" $WHEEL_SPEC pip setuptools
    mark_step wheels "$WHEEL_SPEC py$py_ver"
fi

# ---------------------------------------------------------------- host keys (made once)
for h in jump ws; do
    k="$ROOT/hostkeys/$h/ssh_host_ed25519_key"
    if [ ! -f "$k" ]; then
        log "host key for $h"
        mkdir -p "$ROOT/hostkeys/$h"
        chmod 700 "$ROOT/hostkeys"
        ssh-keygen -q -t ed25519 -N '' -C "root@$h.wa-lab.test" -f "$k"
    fi
done

# ---------------------------------------------------------------- conda stand-in, lmod path
mkdir -p "$ROOT/conda/bin" "$ROOT/conda/envs" "$ROOT/conda/pkgs" "$ROOT/conda/conda-meta" "$ROOT/modules" "$ROOT/bin"
install -m 755 "$HERE/conda_standin/conda" "$ROOT/conda/bin/conda"
touch "$ROOT/conda/conda-meta/history"
chmod 755 "$ROOT" "$ROOT/conda" "$ROOT/conda/bin" "$ROOT/modules" "$ROOT/bin"
if ! grep -qx "$ROOT/modules" /etc/lmod/modulespath 2>/dev/null; then
    log "adding $ROOT/modules to /etc/lmod/modulespath"
    echo "$ROOT/modules" >>/etc/lmod/modulespath
fi

log "ready ($ROOT)"
