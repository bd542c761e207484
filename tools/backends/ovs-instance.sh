#!/usr/bin/env bash
# Start (or stop) an ADDITIONAL, independent ovsdb-server + ovs-vswitchd pair,
# e.g. to simulate a second compute host with its own OVSDB.
#
#   tools/backends/ovs-instance.sh NAME          # start; prints the db socket path
#   tools/backends/ovs-instance.sh --stop NAME   # stop and delete its netns
#   tools/backends/ovs-instance.sh --kill NAME   # SIGKILL both daemons, as a crash would (the
#                                                # database file and the netns stay: NAME
#                                                # again restarts them with what they had)
#   tools/backends/ovs-instance.sh --list        # NAME<TAB>socket of each one running
#
# State: /var/lib/stackcore-backends/ovs-NAME/{conf.db,run/,log/}
# Socket: /var/lib/stackcore-backends/ovs-NAME/run/db.sock  (use unix:PATH)
#
# ovs-vswitchd runs inside its own network namespace "stackcore-ovs-NAME":
# with the userspace (netdev) datapath every vswitchd creates a tap device
# "ovs-netdev" plus one tap per bridge/internal port named after it, so two
# vswitchds in ONE namespace fight over "ovs-netdev" (and over br-int if both
# hosts have one).  One namespace per instance is also what a separate host
# would be.  Set STACKCORE_OVS_NO_NETNS=1 to run in the current namespace
# (works only while bridge/port names do not collide with another instance).
# The OVSDB socket is a file, so clients reach it from any namespace.
# Idempotent: starting a running instance just prints its socket.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

usage() {
  echo "usage: $0 NAME | --stop NAME | --kill NAME | --list" >&2
  exit 2
}

valid_name() {
  # becomes part of a directory, a netns name and external_ids:system-id
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$ && "$1" != default ]] ||
    { echo "$0: invalid instance name '$1'" >&2; exit 2; }
}

netns_for() {
  if [[ "${STACKCORE_OVS_NO_NETNS:-0}" == 1 ]]; then
    echo ""
  else
    echo "stackcore-ovs-$1"
  fi
}

[[ "$(id -u)" == 0 ]] || { echo "$0: must run as root" >&2; exit 1; }
(($# >= 1)) || usage

case "$1" in
  --list)
    shopt -s nullglob
    for d in "${SB_STATE}"/ovs-*/; do
      d="${d%/}"
      if sb_check_ovs_dir "$d"; then
        printf '%s\t%s\n' "${d##*/ovs-}" "$(sb_ovs_sock "$d")"
      fi
    done
    ;;
  --stop)
    (($# == 2)) || usage
    valid_name "$2"
    sb_lock
    sb_stop_ovs_dir "${SB_STATE}/ovs-$2" "stackcore-ovs-$2"
    sb_log "ovs instance $2 stopped"
    ;;
  --kill)
    (($# == 2)) || usage
    valid_name "$2"
    for daemon in ovs-vswitchd ovsdb-server; do
      pidf="${SB_STATE}/ovs-$2/run/${daemon}.pid"
      if sb_pid_alive "$pidf"; then
        kill -KILL "$(tr -dc '0-9' <"$pidf")" 2>/dev/null || true
      fi
    done
    for _ in $(seq 100); do
      sb_pid_alive "${SB_STATE}/ovs-$2/run/ovs-vswitchd.pid" ||
        sb_pid_alive "${SB_STATE}/ovs-$2/run/ovsdb-server.pid" || break
      sleep 0.05
    done
    sb_log "ovs instance $2 killed"
    ;;
  -*) usage ;;
  *)
    (($# == 1)) || usage
    valid_name "$1"
    dir="${SB_STATE}/ovs-$1"
    sb_lock
    start="$(sb_now)"
    if ! sb_check_ovs_dir "$dir"; then
      if ! command -v ovs-vswitchd >/dev/null; then
        read -r -a pkgs <<<"$(sb_pkgs_for ovs)"
        sb_apt_ensure "${pkgs[@]}"
      fi
      sb_stop_ovs_dir "$dir"   # what still runs of it; its netns (if any) stays
      sb_start_ovs_dir "$1" "$dir" "$(netns_for "$1")"
      sb_log "ovs instance $1 up in $(sb_elapsed "$start")s (netns: $(netns_for "$1"))"
    fi
    sb_ovs_sock "$dir"
    ;;
esac
