# shellcheck shell=bash
# shellcheck disable=SC2034  # constants below are used by the scripts that source this
# Shared helpers for tools/backends/*.sh, and the loader of the services: one file per
# backend, services/NAME.sh (see the end of this file).  Sourced, never executed directly.
#
# Conventions
#   * every daemon we start keeps its state under $SB_STATE (default
#     /var/lib/stackcore-backends) and its log under $SB_STATE/logs or its own
#     service dir, so a failure message can show the right log;
#   * daemons are started with stdin from /dev/null, stdout/stderr to a log
#     file and fd 9 (our lock) closed: otherwise a daemon keeps CI's output
#     pipe open (the CI run would hang waiting for EOF) or keeps our lock;
#   * sb_check_<svc> returns 0 only if the service answers its own client,
#     sb_stop_<svc> stops what we started and is harmless when nothing runs.

# Daemons and admin tools live in sbin: make sure it is searched even when
# the caller's PATH (a CI job, a venv) lacks it.
case ":${PATH}:" in
  *:/usr/sbin:*) ;;
  *) PATH="/usr/local/sbin:/usr/sbin:/sbin:${PATH}" ;;
esac
export PATH

# lvm warns about every inherited fd (our lock, bash's pipes): noise only
export LVM_SUPPRESS_FD_WARNINGS=1

SB_STATE="${STACKCORE_BACKENDS_STATE:-/var/lib/stackcore-backends}"
SB_LOGS="${SB_STATE}/logs"
SB_ENV_D="${SB_STATE}/env.d"
SB_ENV="${SB_STATE}/env.sh"

# The "lab" address: PostgreSQL and RabbitMQ also listen on SB_LAB_ADDR, held by the bridge
# SB_LAB_BRIDGE (no other member than what tests plug in: veths of their network namespaces),
# so services inside test namespaces reach them.  The subnet exists only on that bridge and
# the test veths; nothing routes it anywhere else (no forwarding, no default route).
SB_LAB_BRIDGE="sc-lab0"
SB_LAB_ADDR="10.218.0.1"
SB_LAB_PREFIX=24
SB_LAB_CIDR="10.218.0.0/24"

# Tools the tests use that are not services: installed by every up.sh (in the same apt-get as
# the services' packages), nothing to start. stress-ng: the CPU hog the unit tier runs
# (tools/tiers/unit.sh) so that contention is exercised on every run.
SB_TOOL_PKGS=(stress-ng)

# --------------------------------------------------------------------------
# output / errors / timing
# --------------------------------------------------------------------------
sb_log() { printf '[backends %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

sb_now() { date +%s.%N; }
sb_elapsed() { awk -v a="$1" -v b="$(sb_now)" 'BEGIN { printf "%.1f", b - a }'; }

# sb_fail SERVICE MESSAGE [LOGFILE ...]: print a loud error with the tail of
# each log and exit non-zero.
sb_fail() {
  local svc="$1" msg="$2" f
  shift 2
  {
    printf '\n!!! backend "%s" FAILED: %s\n' "$svc" "$msg"
    for f in "$@"; do
      if [[ -s "$f" ]]; then
        printf -- '--- last lines of %s ---\n' "$f"
        tail -n 40 "$f"
      else
        printf -- '--- (log %s is missing or empty) ---\n' "$f"
      fi
    done
    printf '!!! backend "%s" FAILED\n' "$svc"
  } >&2
  exit 1
}

# sb_wait TIMEOUT_SECONDS CMD...: run CMD until it succeeds; 1 on timeout.
sb_wait() {
  local timeout="$1" start
  shift
  start="$SECONDS"
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= timeout )); then
      return 1
    fi
    sleep 0.3
  done
}

# sb_wait_pid TIMEOUT PIDFILE CMD...: like sb_wait, but give up at once if
# the daemon whose pid is in PIDFILE has died (no point waiting 60 s for it).
sb_wait_pid() {
  local timeout="$1" pidf="$2" start
  shift 2
  start="$SECONDS"
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= timeout )); then
      return 1
    fi
    if (( SECONDS - start >= 2 )) && ! sb_pid_alive "$pidf"; then
      "$@" >/dev/null 2>&1 && return 0
      sb_log "process of ${pidf} has exited"
      return 1
    fi
    sleep 0.3
  done
}

# sb_spawn LOGFILE CMD...: start a foreground-only daemon in its own session,
# detached from our stdio; prints its pid.
sb_spawn() {
  local logf="$1"
  shift
  setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
  echo "$!"
}

# sb_pid_running PID: PID is a live process.  A zombie counts as dead: pid 1
# here is not an init and does not reap orphans, so daemons that exit stay
# zombies and "kill -0" alone would call them alive.
sb_pid_running() {
  local st
  [[ -n "$1" && -r "/proc/$1/stat" ]] || return 1
  st="$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# sb_pid_alive PIDFILE: the pid in PIDFILE is a live process.
sb_pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(tr -dc '0-9' <"$1")"
  sb_pid_running "$pid"
}

# sb_kill_pidfile PIDFILE [NAME]: TERM, wait up to 10 s, then KILL.
sb_kill_pidfile() {
  local pidf="$1" pid i
  [[ -s "$pidf" ]] || return 0
  pid="$(tr -dc '0-9' <"$pidf")"
  if sb_pid_running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      sb_pid_running "$pid" || break
      sleep 0.1
    done
    if sb_pid_running "$pid"; then
      sb_log "${pidf##*/}: pid ${pid} ignored SIGTERM for 10 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf"
}

# sb_port_open PORT: something listens on 127.0.0.1:PORT.
sb_port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# sb_port_open_on ADDR PORT: something listens on ADDR:PORT.
sb_port_open_on() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# --------------------------------------------------------------------------
# the lab bridge (see SB_LAB_*): created by up.sh postgres/rabbitmq, removed by
# down.sh once neither of them runs
# --------------------------------------------------------------------------
sb_lab_present() {
  ip -4 -o addr show dev "$SB_LAB_BRIDGE" 2>/dev/null | grep -q " ${SB_LAB_ADDR}/${SB_LAB_PREFIX} " &&
    ip -o link show dev "$SB_LAB_BRIDGE" 2>/dev/null | grep -q '[<,]UP[,>]'
}

sb_lab_ensure() {
  if ! ip link show dev "$SB_LAB_BRIDGE" >/dev/null 2>&1; then
    ip link add "$SB_LAB_BRIDGE" type bridge ||
      sb_fail lab "cannot create bridge ${SB_LAB_BRIDGE}"
  fi
  # IPv4 only: no link-local IPv6 chatter on the lab
  if [[ -w "/proc/sys/net/ipv6/conf/${SB_LAB_BRIDGE}/disable_ipv6" ]]; then
    echo 1 >"/proc/sys/net/ipv6/conf/${SB_LAB_BRIDGE}/disable_ipv6" || true
  fi
  if ! ip -4 -o addr show dev "$SB_LAB_BRIDGE" | grep -q " ${SB_LAB_ADDR}/${SB_LAB_PREFIX} "; then
    ip addr add "${SB_LAB_ADDR}/${SB_LAB_PREFIX}" dev "$SB_LAB_BRIDGE" ||
      sb_fail lab "cannot add ${SB_LAB_ADDR}/${SB_LAB_PREFIX} to ${SB_LAB_BRIDGE}"
  fi
  ip link set "$SB_LAB_BRIDGE" up || sb_fail lab "cannot set ${SB_LAB_BRIDGE} up"
}

sb_lab_remove() {
  if ip link show dev "$SB_LAB_BRIDGE" >/dev/null 2>&1; then
    ip link delete "$SB_LAB_BRIDGE" type bridge 2>/dev/null || true
  fi
}

# sb_port_users PORT: the listening sockets on TCP PORT and their processes.
sb_port_users() { ss -Hltnp "sport = :$1" 2>/dev/null; }

# sb_port_free SERVICE PORT: fail at once, naming the squatter, if another
# process already listens on PORT (else the daemon would die or, worse, our
# readiness probe would talk to the wrong server).
sb_port_free() {
  local users
  users="$(sb_port_users "$2")"
  [[ -z "$users" ]] || sb_fail "$1" "TCP port $2 is already in use: ${users}"
}

sb_init_state() {
  mkdir -p "$SB_STATE" "$SB_LOGS" "$SB_ENV_D"
}

# One up/down at a time: a second caller waits for the first.
sb_lock() {
  sb_init_state
  exec 9>"${SB_STATE}/.lock"
  if ! flock -w 900 9; then
    echo "another tools/backends script holds ${SB_STATE}/.lock for >15 min" >&2
    exit 1
  fi
}

# --------------------------------------------------------------------------
# env.sh: one fragment per service that is up, concatenated in a fixed order
# --------------------------------------------------------------------------
# sb_env_set SERVICE VAR=VALUE ...
sb_env_set() {
  local svc="$1" kv
  shift
  mkdir -p "$SB_ENV_D"
  {
    printf '# %s\n' "$svc"
    for kv in "$@"; do
      printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
    done
  } >"${SB_ENV_D}/${svc}.sh.tmp"
  mv -f "${SB_ENV_D}/${svc}.sh.tmp" "${SB_ENV_D}/${svc}.sh"
  sb_env_render
}

sb_env_clear() {
  rm -f "${SB_ENV_D}/$1.sh"
  sb_env_render
}

sb_env_render() {
  local svc tmp="${SB_ENV}.tmp"
  {
    echo "# Written by tools/backends/up.sh: variables of the backends that are up."
    echo "# Usage: . ${SB_ENV}"
    for svc in "${SB_ALL_SERVICES[@]}"; do
      if [[ -f "${SB_ENV_D}/${svc}.sh" ]]; then
        cat "${SB_ENV_D}/${svc}.sh"
      fi
    done
  } >"$tmp"
  mv -f "$tmp" "$SB_ENV"
}

# --------------------------------------------------------------------------
# apt: install only what is missing, in one apt-get call
# --------------------------------------------------------------------------
sb_pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == ii* ]]
}

# sb_apt_ensure PKG...: apt-get install the ones not installed yet.
sb_apt_ensure() {
  local p missing=() start created_policy=0 aptlog="${SB_LOGS}/apt.log"
  for p in "$@"; do
    sb_pkg_installed "$p" || missing+=("$p")
  done
  # de-duplicate
  if ((${#missing[@]} == 0)); then
    sb_log "apt: all packages already installed"
    return 0
  fi
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  start="$(sb_now)"
  sb_log "apt: installing ${#missing[@]} packages (+deps): ${missing[*]}"
  # Package postinsts would try to start their services through init scripts
  # (there is no systemd here: pid 1 is not an init).  They would start with
  # Debian's default config (ovs would even try to load its kernel module), so
  # forbid that for the install; we start everything ourselves.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends \
        -o Dpkg::Use-Pty=0 \
        -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold \
        -o Dpkg::Options::=--force-unsafe-io \
        -o 'Dpkg::Options::=--path-exclude=/usr/share/doc/*' \
        -o 'Dpkg::Options::=--path-exclude=/usr/share/man/*' \
        -o 'Dpkg::Options::=--path-exclude=/usr/share/info/*' \
        "${missing[@]}"
  } </dev/null >>"$aptlog" 2>&1 9>&- || rc=$?
  if ((created_policy)); then rm -f /usr/sbin/policy-rc.d; fi
  if ((rc != 0)); then
    sb_fail apt "apt-get install exited $rc (packages: ${missing[*]})" "$aptlog"
  fi
  sb_log "apt: done in $(sb_elapsed "$start")s"
}

# --------------------------------------------------------------------------
# ovs instance (shared by up.sh's default instance and ovs-instance.sh)
# --------------------------------------------------------------------------
sb_ovs_sock() { echo "$1/run/db.sock"; }

# sb_check_ovs_dir DIR: the ovsdb-server/ovs-vswitchd pair rooted at DIR answers.
sb_check_ovs_dir() {
  local dir="$1" run="$1/run"
  command -v ovs-vsctl >/dev/null || return 1
  [[ -S "${run}/db.sock" ]] || return 1
  sb_pid_alive "${run}/ovsdb-server.pid" && sb_pid_alive "${run}/ovs-vswitchd.pid" || return 1
  ovs-appctl -t "${run}/ovs-vswitchd.ctl" --timeout=5 version >/dev/null 2>&1 || return 1
  ovs-vsctl --db="unix:${run}/db.sock" --timeout=5 show >/dev/null 2>&1
}

sb_ovs_connected() {
  ovs-vsctl --db="unix:$1" --timeout=5 get Open_vSwitch . datapath_types 2>/dev/null | grep -q netdev
}

# sb_stop_ovs_dir DIR [NETNS]
sb_stop_ovs_dir() {
  local dir="$1" netns="${2:-}" run="$1/run"
  sb_kill_pidfile "${run}/ovs-vswitchd.pid"
  sb_kill_pidfile "${run}/ovsdb-server.pid"
  rm -f "${run}/db.sock" "${run}"/*.ctl
  if [[ -n "$netns" ]] && ip netns list 2>/dev/null | grep -qw "$netns"; then
    ip netns delete "$netns" 2>/dev/null || true
  fi
}

# sb_start_ovs_dir NAME DIR [NETNS]: start ovsdb-server + ovs-vswitchd (userspace
# datapath only: this kernel has no openvswitch module) rooted at DIR.  With
# NETNS, ovs-vswitchd runs inside that network namespace (created if needed).
sb_start_ovs_dir() {
  local name="$1" dir="$2" netns="${3:-}"
  local run="$2/run" logd="$2/log" db="$2/conf.db" schema=/usr/share/openvswitch/vswitch.ovsschema
  local sock="$2/run/db.sock"
  local -a nsexec=()
  mkdir -p "$run" "$logd"
  # ovs tools derive default paths (pidfiles, ctl sockets, logs) from these
  export OVS_RUNDIR="$run" OVS_LOGDIR="$logd" OVS_DBDIR="$dir"
  if [[ ! -s "$db" ]]; then
    ovsdb-tool create "$db" "$schema"
  elif [[ "$(ovsdb-tool needs-conversion "$db" "$schema")" == yes ]]; then
    ovsdb-tool convert "$db" "$schema"
  fi
  if ! sb_pid_alive "${run}/ovsdb-server.pid"; then
    rm -f "$sock"
    ovsdb-server "$db" \
      --remote="punix:${sock}" \
      --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
      --unixctl="${run}/ovsdb-server.ctl" \
      --pidfile="${run}/ovsdb-server.pid" \
      --log-file="${logd}/ovsdb-server.log" \
      --no-chdir --detach </dev/null >>"${logd}/ovsdb-server.log" 2>&1 9>&- ||
      sb_fail "ovs:${name}" "ovsdb-server did not start" "${logd}/ovsdb-server.log"
  fi
  sb_wait 30 ovs-vsctl --db="unix:${sock}" --timeout=5 --no-wait show ||
    sb_fail "ovs:${name}" "ovsdb-server not answering on ${sock}" "${logd}/ovsdb-server.log"
  ovs-vsctl --db="unix:${sock}" --no-wait -- init \
    -- set Open_vSwitch . "external_ids:hostname=${name}" "external_ids:system-id=${name}"
  if [[ -n "$netns" ]]; then
    ip netns list | grep -qw "$netns" || ip netns add "$netns"
    ip netns exec "$netns" ip link set lo up
    nsexec=(ip netns exec "$netns")
  fi
  if ! sb_pid_alive "${run}/ovs-vswitchd.pid"; then
    "${nsexec[@]}" ovs-vswitchd "unix:${sock}" \
      --unixctl="${run}/ovs-vswitchd.ctl" \
      --pidfile="${run}/ovs-vswitchd.pid" \
      --log-file="${logd}/ovs-vswitchd.log" \
      --no-chdir --detach </dev/null >>"${logd}/ovs-vswitchd.log" 2>&1 9>&- ||
      sb_fail "ovs:${name}" "ovs-vswitchd did not start" "${logd}/ovs-vswitchd.log"
  fi
  sb_wait 30 ovs-appctl -t "${run}/ovs-vswitchd.ctl" --timeout=5 version ||
    sb_fail "ovs:${name}" "ovs-vswitchd not answering" "${logd}/ovs-vswitchd.log"
  # vswitchd has connected to the db once it has published its datapath types
  sb_wait 30 sb_ovs_connected "$sock" ||
    sb_fail "ovs:${name}" "ovs-vswitchd never connected to ${sock}" "${logd}/ovs-vswitchd.log"
}

# --------------------------------------------------------------------------
# the services: one file each, services/NAME.sh, all sourced here
# --------------------------------------------------------------------------
# A service file defines, NAME being its file name without .sh:
#   sb_pkgs_NAME   echo its Debian packages (up.sh installs all missing ones in one apt-get)
#   sb_check_NAME  0 only if it answers its own client (up.sh then skips it; check.sh)
#   sb_stop_NAME   stop what up_NAME started; harmless when nothing runs (down.sh)
#   up_NAME        configure, start, wait until ready; sb_fail on any failure (up.sh)
#   env_NAME       sb_env_set NAME VAR=VALUE ... (up.sh, also when it was already up)
#   sb_wipe_NAME   optional: delete its state under $SB_STATE (down.sh --wipe)
# plus the constants and helpers only it uses.  Adding a backend is adding such a file
# (and, for smoke.sh, a smoke_NAME there).
SB_SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services"
# Order of up.sh, check.sh, smoke.sh and env.sh (down.sh: the reverse): what the others use
# first.  A services/*.sh not named here comes after these, in alphabetical order.
SB_SERVICE_ORDER=(postgres mariadb rabbitmq libvirt ovs tgt lvm nfs ceph)
SB_ALL_SERVICES=()

# sb_is_service NAME: NAME is one of SB_ALL_SERVICES.
sb_is_service() {
  local s
  for s in "${SB_ALL_SERVICES[@]}"; do
    if [[ "$s" == "$1" ]]; then return 0; fi
  done
  return 1
}

# sb_pkgs_for SERVICE: its packages; 1 if there is no such service (the scripts' argument check).
sb_pkgs_for() {
  sb_is_service "$1" || return 1
  "sb_pkgs_$1"
}

# sb_find_services: fill SB_ALL_SERVICES from the files in services/.
sb_find_services() {
  local f name
  for name in "${SB_SERVICE_ORDER[@]}"; do
    if [[ -f "${SB_SERVICES_DIR}/${name}.sh" ]]; then SB_ALL_SERVICES+=("$name"); fi
  done
  for f in "${SB_SERVICES_DIR}"/*.sh; do
    name="${f##*/}"
    name="${name%.sh}"
    if [[ -f "$f" ]] && ! sb_is_service "$name"; then SB_ALL_SERVICES+=("$name"); fi
  done
}

sb_find_services
# sourced at the top level, not in a function: their assignments are plain globals
for _sb_svc in "${SB_ALL_SERVICES[@]}"; do
  # shellcheck source=/dev/null
  . "${SB_SERVICES_DIR}/${_sb_svc}.sh"
  for _sb_fn in "sb_pkgs_${_sb_svc}" "sb_check_${_sb_svc}" "sb_stop_${_sb_svc}" \
    "up_${_sb_svc}" "env_${_sb_svc}"; do
    if ! declare -F "$_sb_fn" >/dev/null; then
      echo "${SB_SERVICES_DIR}/${_sb_svc}.sh does not define ${_sb_fn}" >&2
      exit 1
    fi
  done
done
unset _sb_svc _sb_fn
