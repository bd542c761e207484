#!/usr/bin/env bash
# Create (or update) the project's virtualenv at .venv with the core, the reference drivers
# and the test tools. Usage: tools/setup-venv.sh [--drivers]   (--drivers: also stackcore-drivers
# with every backend extra; needs the system packages tools/backends/up.sh installs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,postgresql,mysql]' ruff mypy sphinx reno tox import-linter
if [ "${1:-}" = "--drivers" ]; then
  .venv/bin/python -m pip install -q -e 'drivers[libvirt,ovs,linuxbridge,lvm,nfs,ceph]'
  if [ -x tools/backends/python-bindings.sh ]; then
    tools/backends/python-bindings.sh "$PWD/.venv/bin/python"
  fi
fi
