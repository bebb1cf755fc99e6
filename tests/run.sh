#!/usr/bin/env bash
# The one test command: installs everything the tests need, then runs the whole suite.
#   As root on Debian/Ubuntu: system packages, the three-host lab (sshd, JupyterHub, lmod), everything.
#   As anyone else: unit and TUI tests; the lab tests skip and say why.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k tunnel`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    bash tests/lab/provision.sh
else
    echo "tests/run.sh: not root: the lab tests (real sshd, JupyterHub, lmod in network namespaces) will skip" >&2
fi

venv=${WA_TEST_VENV:-.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[test]'

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/mypy" --platform win32 wa_onboard/core wa_onboard/commands  # the Windows branches, typed
"$venv/bin/lint-imports"  # the import rules: [tool.importlinter] in pyproject.toml
exec "$venv/bin/python" -m pytest "$@"
