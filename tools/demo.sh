#!/usr/bin/env bash
# The main job on a fresh machine: `stackcore demo` on the embedded default (one process,
# SQLite, in-process RPC). It uses the real backends this machine has - those started by
# tools/backends/up.sh - and the fakes where one is missing, and says which.
#
# Installs the core and the reference drivers whose Python dependencies install here: the
# pure-Python extras always, libvirt-python only where libvirt's headers are present (it
# compiles against them), Ceph's bindings only where Debian's python3-rados is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/setup-venv.sh
extras="ovs,linuxbridge,lvm,nfs"
if pkg-config --exists libvirt 2>/dev/null; then
  extras="$extras,libvirt"
fi
.venv/bin/python -m pip install -q -e "drivers[$extras]"
if [ -d /usr/lib/python3/dist-packages/rados ] || ls /usr/lib/python3/dist-packages/rados*.so >/dev/null 2>&1; then
  tools/backends/python-bindings.sh "$PWD/.venv/bin/python"
fi
exec .venv/bin/stackcore demo "$@"
