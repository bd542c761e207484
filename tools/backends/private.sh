#!/usr/bin/env bash
# PRIVATE instances of backends, for tests that must stop, kill and restart a backend (the
# backend-fault tests, tests/functional/reliability/). The shared backends of up.sh are used
# by other tests and people at the same time and are never touched by this script: each
# private instance has its own state directory, ports, sockets and (nfs) namespaces.
#
#   tools/backends/private.sh KIND start NAME   start, or restart a killed one keeping its
#                                               data; prints its variables (KEY=VALUE lines)
#   tools/backends/private.sh KIND kill NAME    kill it as a crash would (SIGKILL; postgres:
#                                               immediate shutdown); its data stays
#   tools/backends/private.sh KIND stop NAME    stop it and delete its state
#   tools/backends/private.sh nfs freeze NAME   make it stop answering without closing a
#                                               connection (SIGSTOP: a hung server)
#   tools/backends/private.sh nfs thaw NAME     let a frozen one answer again (SIGCONT)
#   tools/backends/private.sh KIND env NAME     its variables (KEY=VALUE lines)
#   tools/backends/private.sh rabbitmq queues NAME
#                                               its queues: name, consumers, messages (what a
#                                               failed restart test prints: a queue left
#                                               without its consumer is a lost subscription)
#   tools/backends/private.sh --list            KIND NAME of every instance with state
#
# KIND is one of:
#   postgres  a second cluster (initdb), trust auth on 127.0.0.1:PORT       URL PORT
#   rabbitmq  a second node sc-NAME@localhost, guest on 127.0.0.1:PORT      URL PORT NODE
#   tgt       a second tgtd: iSCSI portal 127.0.0.1:PORT, its own management socket
#             (tgtadm and tgt-admin reach it with TGT_IPC_SOCKET set)  PORTAL TGT_IPC_SOCKET
#   nfs       rpcbind + nfs-ganesha in a network namespace plugged into the lab bridge
#             (lib.sh SB_LAB_*, up with postgres/rabbitmq) and a mount namespace of their
#             own (rpcbind's socket lives in /run: the shared rpcbind is never seen)
#                                                                   SERVER EXPORT DIR NETNS
#   ceph      one mon + one bluestore OSD (on a sparse file: data survives an OSD restart),
#             auth none, pool "stackcore"; "kill"/"start" act on the OSD only once the
#             cluster exists                                           CONF POOL MON OSD_PID
#   (ovs: tools/backends/ovs-instance.sh NAME / --kill NAME / --stop NAME)
#
# Ports are chosen free at the first start and kept in the state directory, so a restarted
# instance answers where its clients left it. State: ${SB_STATE}/private/KIND-NAME/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

PRIV_ROOT="${SB_STATE}/private"
PRIV_KINDS=(postgres rabbitmq tgt nfs ceph)

usage() {
  echo "usage: $0 {$(IFS=\|; echo "${PRIV_KINDS[*]}")} {start|kill|stop|env} NAME | rabbitmq queues NAME | --list" >&2
  exit 2
}

[[ "$(id -u)" == 0 ]] || { echo "$0: must run as root" >&2; exit 1; }

# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------
priv_log() { sb_log "private $*"; }

# priv_lock: one private.sh at a time chooses ports and starts daemons (fd 8; fd 9 is
# lib.sh's lock of up.sh/down.sh, which we never take: the shared backends are not ours).
priv_lock() {
  mkdir -p "$PRIV_ROOT"
  exec 8>"${PRIV_ROOT}/.lock"
  flock -w 300 8 || { echo "$0: ${PRIV_ROOT}/.lock held for 5 minutes" >&2; exit 1; }
}

# priv_free_port FIRST: the first TCP port from FIRST on that nobody listens on and no
# private instance has recorded.
priv_free_port() {
  local port="$1"
  while sb_port_users "$port" | grep -q . ||
    grep -qsx "[A-Z_]*PORT=${port}" "${PRIV_ROOT}"/*/ports; do
    port=$((port + 1))
  done
  echo "$port"
}

# priv_port DIR KEY FIRST: the port recorded as KEY in DIR/ports, chosen (and recorded) once.
priv_port() {
  local dir="$1" key="$2" first="$3" port
  port="$(sed -n "s/^${key}=//p" "${dir}/ports" 2>/dev/null || true)"
  if [[ -z "$port" ]]; then
    port="$(priv_free_port "$first")"
    echo "${key}=${port}" >>"${dir}/ports"
  fi
  echo "$port"
}

# priv_spawn LOG PIDFILE CMD...: start CMD detached (own session, no stdio, no lock fds).
priv_spawn() {
  local logf="$1" pidf="$2"
  shift 2
  setsid "$@" </dev/null >>"$logf" 2>&1 8>&- 9>&- &
  echo "$!" >"$pidf"
}

priv_kill_pid() {
  local pidf="$1" pid
  [[ -s "$pidf" ]] || return 0
  pid="$(tr -dc '0-9' <"$pidf")"
  if sb_pid_running "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 100); do sb_pid_running "$pid" || break; sleep 0.05; done
  fi
}

priv_signal_pid() {
  local pidf="$1" signal="$2" pid
  [[ -s "$pidf" ]] || { echo "$0: no process (${pidf})" >&2; exit 1; }
  pid="$(tr -dc '0-9' <"$pidf")"
  kill "-${signal}" "$pid"
}

priv_need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null ||
      sb_fail private "$cmd is missing: run tools/backends/up.sh (it installs the backends)"
  done
}

# --------------------------------------------------------------------------
# postgres: a second cluster of the installed server
# --------------------------------------------------------------------------
pg_bin() { echo "/usr/lib/postgresql/$(sb_pg_version)/bin/$1"; }

pg_as() { runuser -u postgres -- "$@" </dev/null 8>&- 9>&-; }

start_postgres() {
  local dir="$1" data="$1/data" port
  sb_pg_version >/dev/null || sb_fail private "no PostgreSQL server installed"
  mkdir -p "$dir/run"
  port="$(priv_port "$dir" PORT 15432)"
  chown postgres: "$dir" "$dir/run"
  if [[ ! -s "$data/PG_VERSION" ]]; then
    pg_as "$(pg_bin initdb)" -D "$data" -U postgres -A trust -E UTF8 --no-sync \
      >>"$dir/setup.log" 2>&1 || sb_fail private "initdb failed" "$dir/setup.log"
    # A private socket directory. Crash tests need every acknowledged commit to survive an
    # immediate shutdown: synchronous_commit on (off would lose the last commits still in
    # the server's WAL buffers). fsync stays off: the machine itself does not crash, and
    # what the server wrote is in the kernel's page cache.
    cat >>"$data/postgresql.conf" <<EOF
# written by tools/backends/private.sh
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${dir}/run'
fsync = off
synchronous_commit = on
full_page_writes = off
max_connections = 200
EOF
  fi
  if ! pg_as "$(pg_bin pg_ctl)" -D "$data" status >/dev/null 2>&1; then
    pg_as "$(pg_bin pg_ctl)" -D "$data" -l "$dir/postgres.log" -w -t 120 start \
      >>"$dir/setup.log" 2>&1 || sb_fail private "postgres did not start" "$dir/postgres.log"
  fi
  sb_wait 60 pg_isready -q -h 127.0.0.1 -p "$port" ||
    sb_fail private "postgres not accepting connections on ${port}" "$dir/postgres.log"
  if [[ "$(pg_as psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'stackcore'")" != 1 ]]; then
    pg_as psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      -c "CREATE DATABASE stackcore" >>"$dir/setup.log" 2>&1 ||
      sb_fail private "creating database stackcore failed" "$dir/setup.log"
  fi
}

env_postgres() {
  local port
  port="$(sed -n 's/^PORT=//p' "$1/ports")"
  echo "PORT=${port}"
  echo "URL=postgresql+psycopg2://postgres@127.0.0.1:${port}/stackcore"
}

# immediate shutdown: every server process quits at once, no checkpoint (recovery at start)
kill_postgres() {
  [[ -s "$1/data/postmaster.pid" ]] || return 0
  pg_as "$(pg_bin pg_ctl)" -D "$1/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
}

stop_postgres() { kill_postgres "$1"; }

# --------------------------------------------------------------------------
# rabbitmq: a second node of the installed server
# --------------------------------------------------------------------------
rabbit_node() { echo "sc-${1##*/rabbitmq-}@localhost"; }

rabbit_env_file() {
  local dir="$1" port="$2" dist="$3"
  cat >"$dir/rabbitmq-env.conf" <<EOF
# written by tools/backends/private.sh
NODENAME=$(rabbit_node "$dir")
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=${port}
DIST_PORT=${dist}
MNESIA_BASE=${dir}/mnesia
LOG_BASE=${dir}/log
PID_FILE=${dir}/rabbitmq.pid
CONFIG_FILE=${dir}/rabbitmq
ADVANCED_CONFIG_FILE=${dir}/advanced.config
ENABLED_PLUGINS_FILE=${dir}/enabled_plugins
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
  echo "listeners.tcp.default = 127.0.0.1:${port}" >"$dir/rabbitmq.conf"
  echo "[]." >"$dir/enabled_plugins"
  echo "[]." >"$dir/advanced.config"
}

rabbit_ctl() {
  local dir="$1"
  shift
  # as the rabbitmq user, whose home holds the Erlang cookie every node of this host shares
  (cd /var/lib/rabbitmq && RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" HOME=/var/lib/rabbitmq \
    runuser -u rabbitmq -- /usr/lib/rabbitmq/bin/rabbitmqctl -n "$(rabbit_node "$dir")" "$@" \
    </dev/null 8>&- 9>&-)
}

start_rabbitmq() {
  local dir="$1" port dist
  priv_need /usr/lib/rabbitmq/bin/rabbitmq-server
  mkdir -p "$dir/mnesia" "$dir/log"
  port="$(priv_port "$dir" PORT 5700)"
  dist="$(priv_port "$dir" DIST_PORT 25700)"
  rabbit_env_file "$dir" "$port" "$dist"
  chown -R rabbitmq: "$dir"
  if ! sb_port_open "$port"; then
    (cd /var/lib/rabbitmq &&
      RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" HOME=/var/lib/rabbitmq \
        priv_spawn "$dir/log/server.out" "$dir/launcher.pid" \
        runuser -u rabbitmq -- /usr/lib/rabbitmq/bin/rabbitmq-server)
    sb_wait_pid 120 "$dir/launcher.pid" sb_port_open "$port" ||
      sb_fail private "rabbitmq node $(rabbit_node "$dir") not listening on ${port}" \
        "$dir/log/server.out"
  fi
  rabbit_ctl "$dir" -q await_startup --timeout 120 >>"$dir/log/server.out" 2>&1 ||
    sb_fail private "rabbitmqctl await_startup failed" "$dir/log/server.out"
}

env_rabbitmq() {
  local port
  port="$(sed -n 's/^PORT=//p' "$1/ports")"
  echo "PORT=${port}"
  echo "NODE=$(rabbit_node "$1")"
  echo "URL=rabbit://guest:guest@127.0.0.1:${port}/"
}

# the Erlang VM (beam.smp) and its port helper die at once, as on a crash
kill_rabbitmq() {
  local pid
  if [[ -s "$1/rabbitmq.pid" ]]; then
    pid="$(tr -dc '0-9' <"$1/rabbitmq.pid")"
    if sb_pid_running "$pid"; then
      pkill -KILL -P "$pid" 2>/dev/null || true  # erl_child_setup
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  priv_kill_pid "$1/launcher.pid"
  for _ in $(seq 100); do
    sb_port_open "$(sed -n 's/^PORT=//p' "$1/ports")" || break
    sleep 0.1
  done
}

stop_rabbitmq() { kill_rabbitmq "$1"; }

# --------------------------------------------------------------------------
# tgt: a second tgtd with its own management socket and portal
# --------------------------------------------------------------------------
# tgtd and tgtadm (hence tgt-admin) both take the management socket's path prefix from
# TGT_IPC_SOCKET (the socket is "<prefix>.<control port>", control port 0): a private prefix
# keeps the two daemons apart without any tgtadm option.
tgt_socket() { echo "$1/mgmt/socket"; }

start_tgt() {
  local dir="$1" port
  priv_need tgtd tgtadm
  mkdir -p "$dir/mgmt"
  port="$(priv_port "$dir" PORT 3270)"
  if ! sb_pid_alive "$dir/tgtd.pid"; then
    rm -f "$dir/mgmt/"*
    TGT_IPC_SOCKET="$(tgt_socket "$dir")" \
      priv_spawn "$dir/tgtd.log" "$dir/tgtd.pid" tgtd -f --iscsi "portal=127.0.0.1:${port}"
  fi
  sb_wait_pid 30 "$dir/tgtd.pid" env TGT_IPC_SOCKET="$(tgt_socket "$dir")" \
    timeout 5 tgtadm --mode system --op show ||
    sb_fail private "tgtd not answering on $(tgt_socket "$dir").0" "$dir/tgtd.log"
  sb_wait 30 sb_port_open "$port" || sb_fail private "tgtd not listening on ${port}" "$dir/tgtd.log"
}

env_tgt() {
  echo "PORTAL=127.0.0.1:$(sed -n 's/^PORT=//p' "$1/ports")"
  echo "TGT_IPC_SOCKET=$(tgt_socket "$1")"
}

kill_tgt() { priv_kill_pid "$1/tgtd.pid"; }

stop_tgt() { kill_tgt "$1"; }

# --------------------------------------------------------------------------
# nfs: rpcbind + nfs-ganesha in their own network and mount namespaces
# --------------------------------------------------------------------------
# The network namespace is plugged into the lab bridge by a veth pair and holds one lab
# address (10.218.0.150-199); rpcbind (the namespace's anchor: the mount namespace with a
# private /run is its) and ganesha run inside, ganesha with nsenter so that it can be killed
# and started again on its own.
nfs_id() { sed -n 's/^ID=//p' "$1/ports"; }
nfs_netns() { echo "sc-nfs-$(nfs_id "$1")"; }
nfs_addr() { echo "${SB_LAB_ADDR%.*}.$(sed -n 's/^HOST=//p' "$1/ports")"; }

nfs_conf() {
  local dir="$1" addr="$2"
  cat >"$dir/ganesha.conf" <<EOF
# written by tools/backends/private.sh
NFS_CORE_PARAM {
    Bind_addr = ${addr};
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}
NFSV4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = "${dir}/recovery";
    Allow_Numeric_Owners = true;
    Only_Numeric_Owners = true;
}
EXPORT {
    Export_Id = 1;
    Path = "${dir}/export";
    Pseudo = "${dir}/export";
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }
EOF
}

# The namespace's anchor: a constant script, its directory passed as an argument.
# shellcheck disable=SC2016
NFS_ANCHOR='mount -t tmpfs -o mode=0755 stackcore-private-run /run && mkdir -p /run/rpcbind && exec rpcbind -f -w'

start_nfs() {
  local dir="$1" id host addr ns veth
  priv_need rpcbind ganesha.nfsd nfs-ls nsenter
  sb_lab_present || sb_fail private "the lab bridge ${SB_LAB_BRIDGE} is down: tools/backends/up.sh postgres"
  mkdir -p "$dir/export" "$dir/recovery"
  chmod 1777 "$dir/export"
  id="$(sed -n 's/^ID=//p' "$dir/ports" 2>/dev/null || true)"
  if [[ -z "$id" ]]; then
    id=1
    while grep -qsx "ID=${id}" "${PRIV_ROOT}"/*/ports; do id=$((id + 1)); done
    host=$((149 + id))
    ((host < 200)) || sb_fail private "no free lab address for another nfs instance"
    printf 'ID=%s\nHOST=%s\n' "$id" "$host" >>"$dir/ports"
  fi
  ns="$(nfs_netns "$dir")" addr="$(nfs_addr "$dir")" veth="scnfs${id}"
  nfs_conf "$dir" "$addr"
  if ! ip netns list | grep -qw "$ns"; then
    ip netns add "$ns"
  fi
  if ! ip link show "${veth}h" >/dev/null 2>&1; then
    ip link add "${veth}h" type veth peer name "${veth}n"
    ip link set "${veth}n" netns "$ns"
    ip link set "${veth}h" master "$SB_LAB_BRIDGE" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "${addr}/${SB_LAB_PREFIX}" dev "${veth}n"
    ip netns exec "$ns" ip link set "${veth}n" up
  fi
  if ! sb_pid_alive "$dir/rpcbind.pid"; then
    priv_spawn "$dir/rpcbind.log" "$dir/rpcbind.pid" \
      ip netns exec "$ns" unshare --mount --propagation private sh -c "$NFS_ANCHOR"
    sb_wait_pid 20 "$dir/rpcbind.pid" timeout 5 rpcinfo -p "$addr" ||
      sb_fail private "rpcbind not answering on ${addr}" "$dir/rpcbind.log"
  fi
  if ! sb_pid_alive "$dir/ganesha.pid"; then
    priv_spawn "$dir/ganesha.out" "$dir/ganesha.pid" \
      nsenter --target "$(tr -dc '0-9' <"$dir/rpcbind.pid")" --mount --net -- \
      ganesha.nfsd -F -f "$dir/ganesha.conf" -L "$dir/ganesha.log" -p "$dir/ganesha.pid.daemon" \
      -N NIV_EVENT
  fi
  sb_wait_pid 60 "$dir/ganesha.pid" timeout 10 nfs-ls "nfs://${addr}${dir}/export" ||
    sb_fail private "nfs://${addr}${dir}/export not readable" "$dir/ganesha.log" "$dir/ganesha.out"
}

env_nfs() {
  echo "SERVER=$(nfs_addr "$1")"
  echo "EXPORT=$1/export"
  echo "DIR=$1/export"
  echo "NETNS=$(nfs_netns "$1")"
}

kill_nfs() { priv_kill_pid "$1/ganesha.pid"; }
freeze_nfs() { priv_signal_pid "$1/ganesha.pid" STOP; }
thaw_nfs() { priv_signal_pid "$1/ganesha.pid" CONT; }

stop_nfs() {
  local id
  kill_nfs "$1"
  priv_kill_pid "$1/rpcbind.pid"
  id="$(nfs_id "$1" 2>/dev/null || true)"
  if [[ -n "$id" ]]; then
    ip link delete "scnfs${id}h" 2>/dev/null || true
    ip netns delete "sc-nfs-${id}" 2>/dev/null || true
  fi
}

# --------------------------------------------------------------------------
# ceph: a cluster of its own (services/ceph.sh builds it, bluestore)
# --------------------------------------------------------------------------
start_ceph() {
  local dir="$1" v1 v2
  priv_need ceph-mon ceph-osd
  mkdir -p "$dir"
  v1="$(priv_port "$dir" MON_PORT 6790)"
  v2="$(priv_port "$dir" MON_V2_PORT 3310)"
  if [[ -s "$dir/ceph.conf" ]] && sb_pid_alive "$dir/run/mon.a.pid"; then
    sb_ceph_start_osd private "$dir" stackcore   # a killed OSD comes back with its data
  else
    sb_ceph_stop "$dir"
    find "$dir" -mindepth 1 -maxdepth 1 ! -name ports -exec rm -rf {} +
    sb_ceph_create private "$dir" "$v1" "$v2" stackcore
  fi
}

env_ceph() {
  echo "CONF=$1/ceph.conf"
  echo "POOL=stackcore"
  echo "MON=127.0.0.1:$(sed -n 's/^MON_PORT=//p' "$1/ports")"
  echo "OSD_PID=$(tr -dc '0-9' <"$1/run/osd.0.pid" 2>/dev/null || true)"
}

kill_ceph() { priv_kill_pid "$1/run/osd.0.pid"; }

stop_ceph() { sb_ceph_stop "$1"; }

# --------------------------------------------------------------------------
if [[ "${1:-}" == --list ]]; then
  shopt -s nullglob
  for d in "${PRIV_ROOT}"/*-*/; do
    d="${d%/}" d="${d##*/}"
    echo "${d%%-*} ${d#*-}"
  done
  exit 0
fi
(($# == 3)) || usage
kind="$1" action="$2" name="$3"
[[ " ${PRIV_KINDS[*]} " == *" ${kind} "* ]] || usage
[[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$ ]] || { echo "$0: invalid name '$name'" >&2; exit 2; }
dir="${PRIV_ROOT}/${kind}-${name}"
case "$action" in
  start)
    priv_lock
    started="$(sb_now)"
    "start_${kind}" "$dir"
    priv_log "${kind} ${name} up in $(sb_elapsed "$started")s"
    "env_${kind}" "$dir"
    ;;
  env)
    [[ -d "$dir" ]] || { echo "$0: no ${kind} instance ${name}" >&2; exit 1; }
    "env_${kind}" "$dir"
    ;;
  kill)
    [[ -d "$dir" ]] || exit 0
    "kill_${kind}" "$dir"
    ;;
  freeze|thaw)
    [[ "$kind" == nfs && -d "$dir" ]] || usage
    "${action}_${kind}" "$dir"
    ;;
  queues)
    [[ "$kind" == rabbitmq && -d "$dir" ]] || usage
    rabbit_ctl "$dir" -q list_queues name consumers messages
    ;;
  stop)
    [[ -d "$dir" ]] || exit 0
    priv_lock
    "stop_${kind}" "$dir"
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
