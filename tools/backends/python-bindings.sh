#!/usr/bin/env bash
# Make Debian's Ceph Python bindings (python3-rados / python3-rbd, built for
# the cpython-311 ABI) importable from another CPython 3.11, e.g. a venv:
#
#   tools/backends/python-bindings.sh PYTHON      # e.g. .venv/bin/python
#
# It does NOT add /usr/lib/python3/dist-packages to that interpreter's path
# (Debian's copies of requests, urllib3, ... would shadow the venv's pip
# packages).  Instead it links just the extension modules into a dedicated
# directory and puts a .pth file naming that directory into the
# interpreter's site-packages:
#   /var/lib/stackcore-backends/python-cpython-311/rados.cpython-311-x86_64-linux-gnu.so -> /usr/lib/python3/dist-packages/...
#   <site-packages>/stackcore-ceph-bindings.pth
# Idempotent.  Installs python3-rados/python3-rbd with apt if missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

(($# == 1)) || { echo "usage: $0 PYTHON" >&2; exit 2; }
py="$1"
command -v "$py" >/dev/null || { echo "$0: no interpreter '$py'" >&2; exit 2; }
[[ "$(id -u)" == 0 ]] || { echo "$0: must run as root" >&2; exit 1; }

sb_lock
sb_apt_ensure python3-rados python3-rbd

# The .so files are built for one ABI: refuse another interpreter clearly
# rather than failing later with an obscure ImportError.
soabi="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI"))')"
dist=/usr/lib/python3/dist-packages
shopt -s nullglob
mods=("${dist}"/rados.*.so "${dist}"/rbd.*.so)
shopt -u nullglob
((${#mods[@]} == 2)) || sb_fail python-bindings "rados/rbd extension modules not found in ${dist}"
for m in "${mods[@]}"; do
  [[ "$m" == *".${soabi}.so" ]] ||
    sb_fail python-bindings "${m##*/} is not built for ${py}'s ABI (${soabi}); use a CPython 3.11 interpreter"
done

linkdir="${SB_STATE}/python-$(cut -d- -f1-2 <<<"$soabi")"   # e.g. python-cpython-311
mkdir -p "$linkdir"
for m in "${mods[@]}"; do
  ln -sfn "$m" "${linkdir}/${m##*/}"
done

# purelib of a venv is its own site-packages (not the base interpreter's)
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$site"
printf '%s\n' "$linkdir" >"${site}/stackcore-ceph-bindings.pth"

"$py" -c 'import rados, rbd; print("rados", rados.__file__); print("rbd", rbd.__file__)' ||
  sb_fail python-bindings "import rados, rbd still fails in ${py}"
sb_log "python-bindings: ${site}/stackcore-ceph-bindings.pth -> ${linkdir}"
