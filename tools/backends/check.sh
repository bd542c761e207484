#!/usr/bin/env bash
# Quick health check of the backends started by up.sh: each one must answer
# its own client (psql, rabbitmqctl, virsh, ovs-vsctl, tgtadm, vgs, nfs-ls,
# ceph/rados).
#
#   tools/backends/check.sh [SERVICE ...]     # default: all services
#
# Prints one line per service; exits 1 naming the services that are down.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

services=()
for svc in "$@"; do
  sb_pkgs_for "$svc" >/dev/null || { echo "usage: $0 [${SB_ALL_SERVICES[*]}]" >&2; exit 2; }
  services+=("$svc")
done
((${#services[@]})) || services=("${SB_ALL_SERVICES[@]}")

down=()
for svc in "${services[@]}"; do
  start="$(sb_now)"
  if "sb_check_${svc}"; then
    printf '%-9s up    (%ss)\n' "$svc" "$(sb_elapsed "$start")"
  else
    printf '%-9s DOWN  (%ss)\n' "$svc" "$(sb_elapsed "$start")"
    down+=("$svc")
  fi
done
if ((${#down[@]})); then
  echo "backends down: ${down[*]} (start them with tools/backends/up.sh ${down[*]})" >&2
  exit 1
fi
