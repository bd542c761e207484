#!/usr/bin/env bash
# Install (apt), configure and start the real backends the test suite uses (and install the
# test tools of SB_TOOL_PKGS in lib.sh, e.g. stress-ng).
#
#   tools/backends/up.sh [SERVICE ...]     # default: all services
#   services: postgres mariadb rabbitmq libvirt ovs tgt lvm nfs ceph
#
# Idempotent: a service that already answers its client is left alone.
# Writes /var/lib/stackcore-backends/env.sh (source it before the tests).
# Exits non-zero naming the service, with the tail of its log, if one fails.
# Written for a Debian 12 machine with no systemd (pid 1 is not an init), run
# as root; see tools/backends/README.md for what this kernel cannot do.
#
# This file is only the argument handling and the loop: each service is one file,
# services/NAME.sh (its packages, check, stop, up_NAME, env_NAME), which lib.sh sources in
# service order.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

usage() {
  echo "usage: $0 [${SB_ALL_SERVICES[*]}]" >&2
  exit 2
}

# --------------------------------------------------------------------------
main() {
  local services=() svc pkgs=() total_start start
  [[ "$(id -u)" == 0 ]] || { echo "$0: must run as root" >&2; exit 1; }
  for svc in "$@"; do
    case "$svc" in
      -h | --help) usage ;;
    esac
    sb_pkgs_for "$svc" >/dev/null || { echo "$0: unknown service '$svc'" >&2; usage; }
    services+=("$svc")
  done
  ((${#services[@]})) || services=("${SB_ALL_SERVICES[@]}")

  sb_lock
  total_start="$(sb_now)"
  for svc in "${services[@]}"; do
    # shellcheck disable=SC2207
    pkgs+=($(sb_pkgs_for "$svc"))
  done
  sb_apt_ensure "${pkgs[@]}" "${SB_TOOL_PKGS[@]}"

  for svc in "${services[@]}"; do
    start="$(sb_now)"
    if "sb_check_${svc}"; then
      "env_${svc}"
      sb_log "${svc}: already up ($(sb_elapsed "$start")s)"
      continue
    fi
    sb_env_clear "$svc"
    "up_${svc}"
    "env_${svc}"
    sb_log "${svc}: up in $(sb_elapsed "$start")s"
  done
  sb_log "all requested backends up (${services[*]}) in $(sb_elapsed "$total_start")s"
  sb_log "env: . ${SB_ENV}"
}

main "$@"
