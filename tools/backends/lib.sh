# shellcheck shell=bash
# shellcheck disable=SC2034  # constants below are used by the scripts that source this
# Shared helpers for tools/backends/*.sh.  Sourced, never executed directly.
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
SB_ALL_SERVICES=(postgres rabbitmq libvirt ovs tgt lvm nfs ceph)

# Fixed test credentials/addresses (not secrets: loopback-only test services).
SB_PG_PORT=5432
SB_PG_URL="postgresql+psycopg2://stackcore:stackcore@127.0.0.1:${SB_PG_PORT}/stackcore"
SB_RABBIT_URL="rabbit://stackcore:stackcore@127.0.0.1:5672/"
SB_ISCSI_PORTAL="127.0.0.1:3260"
SB_LVM_VG="stackcore-vg"
SB_LVM_DIR="${SB_STATE}/lvm"
SB_LVM_IMG="${SB_LVM_DIR}/pv.img"
SB_LVM_SIZE="8G"   # sparse file; LVs are metadata-only here, so it costs nothing
SB_NFS_DIR="${SB_STATE}/nfs"
SB_NFS_EXPORT="${SB_NFS_DIR}/export"
SB_CEPH_DIR="${SB_STATE}/ceph"
SB_CEPH_CONF="${SB_CEPH_DIR}/ceph.conf"
SB_CEPH_POOL="stackcore"
SB_CEPH_MON_PORT=6789           # msgr v1 port: what qemu/libvirt "host:port" means
SB_CEPH_MON="127.0.0.1:${SB_CEPH_MON_PORT}"
SB_OVS_DIR="${SB_STATE}/ovs"    # default instance; extra ones: ${SB_STATE}/ovs-NAME

# The "lab" address: PostgreSQL and RabbitMQ also listen on SB_LAB_ADDR, held by the bridge
# SB_LAB_BRIDGE (no other member than what tests plug in: veths of their network namespaces),
# so services inside test namespaces reach them.  The subnet exists only on that bridge and
# the test veths; nothing routes it anywhere else (no forwarding, no default route).
SB_LAB_BRIDGE="sc-lab0"
SB_LAB_ADDR="10.218.0.1"
SB_LAB_PREFIX=24
SB_LAB_CIDR="10.218.0.0/24"
SB_PG_LAB_URL="postgresql+psycopg2://stackcore:stackcore@${SB_LAB_ADDR}:${SB_PG_PORT}/stackcore"
SB_RABBIT_LAB_URL="rabbit://stackcore:stackcore@${SB_LAB_ADDR}:5672/"

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
sb_pkgs_for() {
  case "$1" in
    postgres) echo postgresql ;;
    rabbitmq) echo rabbitmq-server ;;
    # libvirt-dev + pkg-config: the test env pip-installs libvirt-python,
    # which compiles against them.  qemu-block-extra: iscsi/nfs/rbd drivers.
    libvirt) echo libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
      libvirt-dev pkg-config qemu-system-x86 qemu-utils qemu-block-extra ;;
    ovs) echo openvswitch-switch openvswitch-common iproute2 ;;
    tgt) echo tgt libiscsi-bin ;;
    lvm) echo lvm2 ;;
    nfs) echo nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils qemu-utils qemu-block-extra ;;
    ceph) echo ceph-mon ceph-osd ceph-common python3-rados python3-rbd ;;
    *) return 1 ;;
  esac
}

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
# health checks (used by up.sh to skip what runs, and by check.sh)
# --------------------------------------------------------------------------
sb_pg_version() {
  local v
  v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$v" ]] || return 1
  echo "$v"
}

sb_check_postgres() {
  command -v pg_isready >/dev/null || return 1
  pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT" || return 1
  [[ "$(PGPASSWORD=stackcore PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$SB_PG_PORT" \
    -U stackcore -d stackcore -XAtc 'select 1' 2>/dev/null)" == 1 ]] || return 1
  sb_check_postgres_lab
}

# ... and on the lab address, as the stackcore role (pg_hba allows the lab subnet)
sb_check_postgres_lab() {
  sb_lab_present || return 1
  [[ "$(PGPASSWORD=stackcore PGCONNECT_TIMEOUT=5 psql -h "$SB_LAB_ADDR" -p "$SB_PG_PORT" \
    -U stackcore -d stackcore -XAtc 'select 1' 2>/dev/null)" == 1 ]]
}

sb_check_rabbitmq() {
  command -v rabbitmqctl >/dev/null || return 1
  sb_port_open 5672 || return 1
  sb_lab_present && sb_port_open_on "$SB_LAB_ADDR" 5672 || return 1
  timeout 30 rabbitmqctl -q list_users 2>/dev/null | grep -q '^stackcore[[:space:]]'
}

sb_check_libvirt() {
  command -v virsh >/dev/null || return 1
  sb_pid_alive /run/virtlogd.pid || return 1
  timeout 15 virsh -c qemu:///system -q version >/dev/null 2>&1
}

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

sb_check_ovs() { sb_check_ovs_dir "$SB_OVS_DIR"; }

sb_check_tgt() {
  command -v tgtadm >/dev/null || return 1
  sb_pid_alive "${SB_STATE}/tgt/tgtd.pid" || return 1
  # the listener must be tgtd itself (iscsi-ls exits 10 even when it works)
  sb_port_users 3260 | grep -q '"tgtd"' || return 1
  timeout 10 tgtadm --lld iscsi --mode system --op show >/dev/null 2>&1
}

sb_lvm_loopdev() { losetup -j "$SB_LVM_IMG" 2>/dev/null | head -n 1 | cut -d: -f1; }

sb_check_lvm() {
  local dev
  command -v vgs >/dev/null || return 1
  [[ -f "$SB_LVM_IMG" ]] || return 1
  # metadata-only mode configured (see sb_lvm_config in up.sh)
  [[ "$(lvmconfig global/activation 2>/dev/null)" == "activation=0" ]] || return 1
  dev="$(sb_lvm_loopdev)"
  [[ -n "$dev" ]] || return 1
  vgs --noheadings -o vg_name "$SB_LVM_VG" 2>/dev/null | grep -q "$SB_LVM_VG"
}

sb_check_nfs() {
  command -v nfs-ls >/dev/null || return 1
  sb_pid_alive "${SB_NFS_DIR}/ganesha.pid" || return 1
  timeout 10 rpcinfo -p 127.0.0.1 2>/dev/null | grep -q ' nfs$' || return 1
  timeout 10 nfs-ls "nfs://127.0.0.1${SB_NFS_EXPORT}" >/dev/null 2>&1
}

sb_check_ceph() {
  command -v ceph >/dev/null || return 1
  [[ -f "$SB_CEPH_CONF" ]] || return 1
  sb_pid_alive "${SB_CEPH_DIR}/run/mon.a.pid" && sb_pid_alive "${SB_CEPH_DIR}/run/osd.0.pid" || return 1
  timeout 15 ceph -c "$SB_CEPH_CONF" --connect-timeout 10 osd stat 2>/dev/null |
    grep -q '1 osds: 1 up' || return 1
  # a pool whose PGs are active answers a stat of a (missing) object at once
  timeout 15 rados -c "$SB_CEPH_CONF" -p "$SB_CEPH_POOL" ls >/dev/null 2>&1
}

# --------------------------------------------------------------------------
# stop functions (down.sh, and up.sh when a service is half up)
# --------------------------------------------------------------------------
sb_stop_postgres() {
  local v
  v="$(sb_pg_version)" || return 0
  if pg_lsclusters -h 2>/dev/null | awk -v v="$v" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$v" main stop -m fast </dev/null >/dev/null 2>&1 9>&- || true
  fi
}

sb_stop_rabbitmq() {
  command -v rabbitmqctl >/dev/null || return 0
  if [[ -s "${SB_STATE}/rabbitmq/rabbitmq.pid" ]] && sb_pid_alive "${SB_STATE}/rabbitmq/rabbitmq.pid"; then
    timeout 60 rabbitmqctl -q shutdown </dev/null >/dev/null 2>&1 9>&- || true
  fi
  sb_kill_pidfile "${SB_STATE}/rabbitmq/rabbitmq.pid"
  sb_kill_pidfile "${SB_STATE}/rabbitmq/launcher.pid"   # the su wrapper
  # epmd (the Erlang port mapper) is left by the node; stop it too
  if command -v epmd >/dev/null && pgrep -x epmd >/dev/null; then
    epmd -kill >/dev/null 2>&1 || true
  fi
}

sb_stop_libvirt() {
  local dom
  if sb_pid_alive /run/libvirtd.pid; then
    # destroy leftover test domains so their qemu processes do not outlive us
    while read -r dom; do
      if [[ -n "$dom" ]]; then
        timeout 30 virsh -c qemu:///system destroy "$dom" >/dev/null 2>&1 || true
      fi
    done < <(timeout 15 virsh -c qemu:///system list --name 2>/dev/null || true)
  fi
  sb_kill_pidfile /run/libvirtd.pid
  sb_kill_pidfile /run/virtlogd.pid
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

sb_stop_ovs() {
  sb_stop_ovs_dir "$SB_OVS_DIR"
  if [[ -L /var/run/openvswitch/db.sock ]]; then rm -f /var/run/openvswitch/db.sock; fi
}

sb_stop_tgt() {
  local pidf="${SB_STATE}/tgt/tgtd.pid"
  if sb_pid_alive "$pidf"; then
    # tgtd ignores SIGTERM.  Its own shutdown ("--op delete --mode system")
    # refuses while targets exist (tests may leave some), and its targets
    # are all in memory anyway: ask once, then SIGKILL.
    timeout 5 tgtadm --op delete --mode system >/dev/null 2>&1 || true
    sleep 0.2
    if sb_pid_alive "$pidf"; then
      kill -KILL "$(tr -dc '0-9' <"$pidf")" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf"
}

sb_stop_lvm() {
  local dev
  [[ -f "$SB_LVM_IMG" ]] || return 0
  while read -r dev; do
    if [[ -n "$dev" ]]; then losetup -d "$dev" 2>/dev/null || true; fi
  done < <(losetup -j "$SB_LVM_IMG" 2>/dev/null | cut -d: -f1)
}

sb_stop_nfs() {
  sb_kill_pidfile "${SB_NFS_DIR}/ganesha.pid"
  sb_kill_pidfile "${SB_NFS_DIR}/rpcbind.pid"
}

sb_stop_ceph() {
  sb_kill_pidfile "${SB_CEPH_DIR}/run/osd.0.pid"
  sb_kill_pidfile "${SB_CEPH_DIR}/run/mon.a.pid"
}

# --------------------------------------------------------------------------
# ovs instance (shared by up.sh's default instance and ovs-instance.sh)
# --------------------------------------------------------------------------
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
