#!/usr/bin/env bash
# Stop the backends started by up.sh (and every extra ovs-instance.sh one),
# so that a test run can be redone from a clean start.
#
#   tools/backends/down.sh [--wipe] [SERVICE ...]     # default: all services
#
# --wipe also deletes the service's state under /var/lib/stackcore-backends
# (OVS databases incl. extra instances, the LVM image, NFS export contents,
# Ceph, tgt), so the next up.sh starts from nothing.  Postgres and RabbitMQ
# data (Debian's own dirs) are kept: tests create throwaway databases/vhosts.
#
# Stops daemons (running test domains are destroyed first), detaches the
# LVM loop device and drops the service's variables from env.sh.  Keeps
# installed packages and on-disk state (Postgres data, the LVM image, the
# NFS export, OVS databases); Ceph is memstore, so its data goes with it.
# Harmless when nothing runs.  What each service does is in services/<svc>.sh
# (sb_stop_<svc>, sb_wipe_<svc>).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

[[ "$(id -u)" == 0 ]] || { echo "$0: must run as root" >&2; exit 1; }
wipe=0
if [[ "${1:-}" == --wipe ]]; then
  wipe=1
  shift
fi
services=()
for svc in "$@"; do
  sb_pkgs_for "$svc" >/dev/null || { echo "usage: $0 [--wipe] [${SB_ALL_SERVICES[*]}]" >&2; exit 2; }
  services+=("$svc")
done
((${#services[@]})) || services=("${SB_ALL_SERVICES[@]}")

sb_lock
# reverse order of up.sh: consumers (libvirt domains) before what they use
for ((i = ${#services[@]} - 1; i >= 0; i--)); do
  svc="${services[i]}"
  start="$(sb_now)"
  "sb_stop_${svc}"
  if [[ "$svc" == ovs ]]; then
    shopt -s nullglob
    for d in "${SB_STATE}"/ovs-*/; do
      d="${d%/}"
      sb_stop_ovs_dir "$d" "stackcore-ovs-${d##*/ovs-}"
    done
    shopt -u nullglob
  fi
  sb_env_clear "$svc"
  # sb_wipe_<svc>: services/<svc>.sh, for those with state of their own
  if ((wipe)) && declare -F "sb_wipe_${svc}" >/dev/null; then
    "sb_wipe_${svc}"
  fi
  sb_log "${svc}: down ($(sb_elapsed "$start")s)"
done
# the lab bridge (made by up.sh postgres/rabbitmq) goes once neither of them listens
if ! pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT" >/dev/null 2>&1 && ! sb_port_open 5672; then
  sb_lab_remove
fi
