#!/usr/bin/env bash
# Install (apt), configure and start the real backends the test suite uses.
#
#   tools/backends/up.sh [SERVICE ...]     # default: all services
#   services: postgres rabbitmq libvirt ovs tgt lvm nfs ceph
#
# Idempotent: a service that already answers its client is left alone.
# Writes /var/lib/stackcore-backends/env.sh (source it before the tests).
# Exits non-zero naming the service, with the tail of its log, if one fails.
# Written for a Debian 12 machine with no systemd (pid 1 is not an init), run
# as root; see tools/backends/README.md for what this kernel cannot do.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

usage() {
  echo "usage: $0 [${SB_ALL_SERVICES[*]}]" >&2
  exit 2
}

# --------------------------------------------------------------------------
# postgres: Debian's cluster (pg_ctlcluster), plus role/db stackcore
# --------------------------------------------------------------------------
up_postgres() {
  local v conf_d hba
  v="$(sb_pg_version)" || sb_fail postgres "no PostgreSQL server installed under /usr/lib/postgresql"
  if ! pg_lsclusters -h | awk -v v="$v" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$v" main --port "$SB_PG_PORT" </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_createcluster failed" "${SB_LOGS}/postgres-setup.log"
  fi
  conf_d="/etc/postgresql/${v}/main/conf.d"
  mkdir -p "$conf_d"
  # The lab bridge must hold its address before the server binds to it.
  sb_lab_ensure
  # Loopback + the lab address only, fixed port; durability off: a throwaway
  # test database does not need fsync, and tests create/drop many databases.
  cat >"${conf_d}/stackcore.conf" <<EOF
# written by tools/backends/up.sh
listen_addresses = '127.0.0.1,${SB_LAB_ADDR}'
port = ${SB_PG_PORT}
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  # The stackcore role may also connect from the lab subnet (test namespaces).
  hba="/etc/postgresql/${v}/main/pg_hba.conf"
  sed -i '/^# BEGIN stackcore-backends/,/^# END stackcore-backends/d' "$hba"
  cat >>"$hba" <<EOF
# BEGIN stackcore-backends (tools/backends/up.sh): the lab subnet on ${SB_LAB_BRIDGE}
host    all             stackcore       ${SB_LAB_CIDR}          scram-sha-256
# END stackcore-backends
EOF
  if ! pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT"; then
    # pg_ctlcluster falls back to pg_ctl when systemd is not running
    pg_ctlcluster "$v" main start </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_ctlcluster start failed" "${SB_LOGS}/postgres-setup.log" \
        "/var/log/postgresql/postgresql-${v}-main.log"
  elif ! pg_isready -q -h "$SB_LAB_ADDR" -p "$SB_PG_PORT"; then
    # up on loopback only (an older config, or the lab bridge was removed under
    # it): listen_addresses needs a restart
    sb_log "postgres: restarting to listen on ${SB_LAB_ADDR} too"
    pg_ctlcluster "$v" main restart -m fast </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_ctlcluster restart failed" "${SB_LOGS}/postgres-setup.log" \
        "/var/log/postgresql/postgresql-${v}-main.log"
  else
    # pg_hba.conf changes need a reload only
    pg_ctlcluster "$v" main reload </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_ctlcluster reload failed" "${SB_LOGS}/postgres-setup.log"
  fi
  sb_wait 60 pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT" ||
    sb_fail postgres "not accepting connections on 127.0.0.1:${SB_PG_PORT}" \
      "/var/log/postgresql/postgresql-${v}-main.log"
  sb_wait 30 pg_isready -q -h "$SB_LAB_ADDR" -p "$SB_PG_PORT" ||
    sb_fail postgres "not accepting connections on ${SB_LAB_ADDR}:${SB_PG_PORT}" \
      "/var/log/postgresql/postgresql-${v}-main.log"
  # CREATEDB: tests create throwaway databases. pg_signal_backend: dropping one WITH (FORCE)
  # must also end an autovacuum worker busy in it (such workers belong to no role).
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$SB_PG_PORT" -d postgres \
    </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stackcore') THEN
        CREATE ROLE stackcore LOGIN CREATEDB PASSWORD 'stackcore';
      ELSE
        ALTER ROLE stackcore LOGIN CREATEDB PASSWORD 'stackcore';
      END IF;
    END \$\$;
    GRANT pg_signal_backend TO stackcore;" ||
    sb_fail postgres "creating role stackcore failed" "${SB_LOGS}/postgres-setup.log"
  if [[ "$(runuser -u postgres -- psql -X -p "$SB_PG_PORT" -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'stackcore'" </dev/null 9>&-)" != 1 ]]; then
    runuser -u postgres -- createdb -p "$SB_PG_PORT" -O stackcore stackcore \
      </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "createdb stackcore failed" "${SB_LOGS}/postgres-setup.log"
  fi
  sb_check_postgres || sb_fail postgres "psql as stackcore failed" \
    "/var/log/postgresql/postgresql-${v}-main.log"
}
env_postgres() {
  sb_env_set postgres "STACKCORE_TEST_PG_URL=${SB_PG_URL}" \
    "STACKCORE_TEST_PG_LAB_URL=${SB_PG_LAB_URL}" "STACKCORE_TEST_LAB_ADDR=${SB_LAB_ADDR}" \
    "STACKCORE_TEST_LAB_BRIDGE=${SB_LAB_BRIDGE}" "STACKCORE_TEST_LAB_CIDR=${SB_LAB_CIDR}"
}

# --------------------------------------------------------------------------
# rabbitmq: Debian's rabbitmq-server (runs as user rabbitmq), loopback only
# --------------------------------------------------------------------------
up_rabbitmq() {
  local dir="${SB_STATE}/rabbitmq" logf="${SB_LOGS}/rabbitmq.log"
  mkdir -p "$dir"
  chown rabbitmq: "$dir"
  # rabbitmq-env.conf is sourced by both the server and rabbitmqctl, so they
  # agree on the node name.  rabbit@localhost does not depend on the
  # machine's hostname resolving.  Erlang distribution and epmd bind to
  # loopback; AMQP to loopback and the lab address (listeners in rabbitmq.conf:
  # NODE_IP_ADDRESS allows a single address).
  sb_lab_ensure
  cat >/etc/rabbitmq/rabbitmq-env.conf <<EOF
# written by tools/backends/up.sh
NODENAME=rabbit@localhost
PID_FILE=${dir}/rabbitmq.pid
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
  cat >/etc/rabbitmq/rabbitmq.conf <<EOF
# written by tools/backends/up.sh
listeners.tcp.loopback = 127.0.0.1:5672
listeners.tcp.lab = ${SB_LAB_ADDR}:5672
EOF
  if ! sb_port_users 5672 | grep -q '"beam.smp"' || ! sb_port_open_on "$SB_LAB_ADDR" 5672; then
    sb_stop_rabbitmq
    sb_port_free rabbitmq 5672
    sb_spawn "$logf" rabbitmq-server >"${dir}/launcher.pid"
    sb_wait_pid 120 "${dir}/launcher.pid" sb_port_open 5672 ||
      sb_fail rabbitmq "port 5672 not open after 120 s" "$logf" /var/log/rabbitmq/rabbit@localhost.log
    sb_wait_pid 30 "${dir}/launcher.pid" sb_port_open_on "$SB_LAB_ADDR" 5672 ||
      sb_fail rabbitmq "port ${SB_LAB_ADDR}:5672 not open" "$logf" /var/log/rabbitmq/rabbit@localhost.log
  fi
  timeout 120 rabbitmqctl -q await_startup </dev/null >>"$logf" 2>&1 9>&- ||
    sb_fail rabbitmq "rabbitmqctl await_startup failed" "$logf" /var/log/rabbitmq/rabbit@localhost.log
  if ! rabbitmqctl -q list_users 2>/dev/null 9>&- | grep -q '^stackcore[[:space:]]'; then
    rabbitmqctl -q add_user stackcore stackcore </dev/null >>"$logf" 2>&1 9>&- ||
      sb_fail rabbitmq "add_user stackcore failed" "$logf"
  fi
  rabbitmqctl -q set_permissions -p / stackcore '.*' '.*' '.*' </dev/null >>"$logf" 2>&1 9>&- ||
    sb_fail rabbitmq "set_permissions failed" "$logf"
}
env_rabbitmq() {
  sb_env_set rabbitmq "STACKCORE_TEST_RABBIT_URL=${SB_RABBIT_URL}" \
    "STACKCORE_TEST_RABBIT_LAB_URL=${SB_RABBIT_LAB_URL}" "STACKCORE_TEST_LAB_ADDR=${SB_LAB_ADDR}" \
    "STACKCORE_TEST_LAB_BRIDGE=${SB_LAB_BRIDGE}" "STACKCORE_TEST_LAB_CIDR=${SB_LAB_CIDR}"
}

# --------------------------------------------------------------------------
# libvirt: libvirtd + virtlogd with the QEMU driver
# --------------------------------------------------------------------------
up_libvirt() {
  local qconf=/etc/libvirt/qemu.conf logf=/var/log/libvirt/libvirtd.log
  # The QEMU driver resolves its compiled-in default user AND group
  # (libvirt-qemu) at start even though qemu.conf overrides them;
  # libvirt-daemon-system, which would create them, brings systemd units and
  # configs we do not use, so create them ourselves.
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/lib/libvirt/images \
    /var/cache/libvirt/qemu /run/libvirt
  # Why each setting:
  #  user/group root      qemu runs as root so it can open /dev/kvm, tap
  #                       devices and files tests create as root;
  #  dynamic_ownership=0  do not chown disk images to the qemu user (network
  #                       disks and test files stay as they are);
  #  remember_owner=0     needs xattrs (trusted.libvirt.*) we cannot rely on;
  #  cgroup_controllers=[] no systemd/cgroup delegation here: libvirt would
  #                       fail to create the machine's cgroup.
  # (Debian ships qemu.conf only in libvirt-daemon-system, which we do not
  # install: start from an empty file then.)
  touch "$qconf"
  sed -i -E '/^[[:space:]]*(user|group|dynamic_ownership|remember_owner|cgroup_controllers)[[:space:]]*=/d; /^# stackcore-backends/d' "$qconf"
  cat >>"$qconf" <<'EOF'
# stackcore-backends: settings below written by tools/backends/up.sh
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
EOF
  if ! sb_pid_alive /run/virtlogd.pid; then
    virtlogd -d </dev/null >>"${SB_LOGS}/virtlogd.log" 2>&1 9>&- ||
      sb_fail libvirt "virtlogd -d failed" "${SB_LOGS}/virtlogd.log"
  fi
  if ! sb_pid_alive /run/libvirtd.pid; then
    # libvirtd logs to stderr by default, which -d sends to /dev/null
    LIBVIRT_LOG_OUTPUTS="3:file:${logf}" libvirtd -d </dev/null >>"${SB_LOGS}/libvirtd.out" 2>&1 9>&- ||
      sb_fail libvirt "libvirtd -d failed" "${SB_LOGS}/libvirtd.out" "$logf"
  fi
  sb_wait_pid 60 /run/libvirtd.pid sb_check_libvirt ||
    sb_fail libvirt "virsh -c qemu:///system does not answer" "$logf" "${SB_LOGS}/libvirtd.out"
}

SB_VIRT_TYPE=""
env_libvirt() {
  local why=""
  if [[ ! -e /dev/kvm ]]; then
    why="/dev/kvm does not exist"
  elif ! (exec 3<>/dev/kvm) 2>/dev/null; then
    why="/dev/kvm cannot be opened read-write"
  elif ! timeout 30 virsh -c qemu:///system domcapabilities --virttype kvm >/dev/null 2>&1; then
    why="libvirt reports no kvm domain capabilities"
  fi
  if [[ -z "$why" ]]; then
    SB_VIRT_TYPE=kvm
  else
    SB_VIRT_TYPE=qemu
    sb_log "libvirt: falling back to TCG (virt type qemu): ${why}"
  fi
  sb_env_set libvirt "STACKCORE_TEST_LIBVIRT_URI=qemu:///system" \
    "STACKCORE_TEST_VIRT_TYPE=${SB_VIRT_TYPE}"
}

# --------------------------------------------------------------------------
# ovs: ovsdb-server + ovs-vswitchd, userspace (netdev) datapath
# --------------------------------------------------------------------------
up_ovs() {
  sb_start_ovs_dir default "$SB_OVS_DIR"
  # libvirt's <virtualport type='openvswitch'> runs plain ovs-vsctl, which
  # talks to the default socket: point it at our instance.
  mkdir -p /var/run/openvswitch
  if [[ -S /var/run/openvswitch/db.sock && ! -L /var/run/openvswitch/db.sock ]]; then
    sb_log "ovs: WARNING /var/run/openvswitch/db.sock is a real socket (another ovsdb-server?); left alone"
  else
    ln -sfn "$(sb_ovs_sock "$SB_OVS_DIR")" /var/run/openvswitch/db.sock
  fi
}
env_ovs() {
  sb_env_set ovs "STACKCORE_TEST_OVSDB=unix:$(sb_ovs_sock "$SB_OVS_DIR")" \
    "STACKCORE_TEST_OVS_RUNDIR=${SB_OVS_DIR}/run"
}

# --------------------------------------------------------------------------
# tgt: userspace iSCSI target on 127.0.0.1:3260 (+ libiscsi-bin initiator)
# --------------------------------------------------------------------------
up_tgt() {
  local dir="${SB_STATE}/tgt" logf="${SB_LOGS}/tgtd.log"
  mkdir -p "$dir"
  sb_stop_tgt   # a tgtd that is alive but failed the check is restarted
  sb_port_free tgt 3260
  # -f: stay in the foreground (we background it) and log to stderr rather
  # than to syslog, which does not run here.
  sb_spawn "$logf" tgtd -f --iscsi "portal=${SB_ISCSI_PORTAL}" >"${dir}/tgtd.pid"
  sb_wait_pid 30 "${dir}/tgtd.pid" sb_check_tgt || sb_fail tgt "tgtd not answering on ${SB_ISCSI_PORTAL}" "$logf"
}
env_tgt() { sb_env_set tgt "STACKCORE_TEST_ISCSI_PORTAL=${SB_ISCSI_PORTAL}"; }

# --------------------------------------------------------------------------
# lvm: a VG on a loop device over a sparse file
# --------------------------------------------------------------------------
up_lvm() {
  local dev
  mkdir -p "$SB_LVM_DIR"
  sb_lvm_config
  [[ -f "$SB_LVM_IMG" ]] || truncate -s "$SB_LVM_SIZE" "$SB_LVM_IMG"
  dev="$(sb_lvm_loopdev)"
  if [[ -z "$dev" ]]; then
    dev="$(losetup --find --show "$SB_LVM_IMG" 2>"${SB_LOGS}/lvm.log")" ||
      sb_fail lvm "losetup could not attach ${SB_LVM_IMG}" "${SB_LOGS}/lvm.log"
  fi
  if ! pvs "$dev" >/dev/null 2>&1; then
    pvcreate -y "$dev" >>"${SB_LOGS}/lvm.log" 2>&1 || sb_fail lvm "pvcreate ${dev} failed" "${SB_LOGS}/lvm.log"
  fi
  if ! vgs "$SB_LVM_VG" >/dev/null 2>&1; then
    vgcreate "$SB_LVM_VG" "$dev" >>"${SB_LOGS}/lvm.log" 2>&1 ||
      sb_fail lvm "vgcreate ${SB_LVM_VG} failed" "${SB_LOGS}/lvm.log"
  fi
  sb_check_lvm || sb_fail lvm "VG ${SB_LVM_VG} not visible" "${SB_LOGS}/lvm.log"
}
# This kernel has no device-mapper, so LVs cannot be activated (no /dev
# nodes, no snapshots/thin pools).  "activation = 0" makes every lvm command
# metadata-only, like "--driverloaded n" on each command, so plain lvcreate/
# lvextend/lvremove (as a Cinder-style driver runs them) work.  No udev runs
# here either.  lvmlocal.conf is read after lvm.conf and overrides it.
sb_lvm_config() {
  local f=/etc/lvm/lvmlocal.conf
  touch "$f"
  sed -i '/^# BEGIN stackcore-backends/,/^# END stackcore-backends/d' "$f"
  cat >>"$f" <<'EOF'
# BEGIN stackcore-backends (tools/backends/up.sh): no device-mapper here
global {
	activation = 0
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
devices {
	obtain_device_list_from_udev = 0
}
# END stackcore-backends
EOF
}

env_lvm() {
  sb_env_set lvm "STACKCORE_TEST_LVM_VG=${SB_LVM_VG}" "STACKCORE_TEST_LVM_PV=$(sb_lvm_loopdev)"
}

# --------------------------------------------------------------------------
# nfs: rpcbind + nfs-ganesha (userspace NFSv3/v4 server, VFS FSAL)
# --------------------------------------------------------------------------
up_nfs() {
  local conf="${SB_NFS_DIR}/ganesha.conf" logf="${SB_NFS_DIR}/ganesha.log"
  mkdir -p "$SB_NFS_EXPORT" "${SB_NFS_DIR}/recovery"
  chmod 1777 "$SB_NFS_EXPORT"
  cat >"$conf" <<EOF
# written by tools/backends/up.sh
NFS_CORE_PARAM {
    Bind_addr = 127.0.0.1;
    Protocols = 3, 4;
    NFS_Port = 2049;
    MNT_Port = 20048;
    # qemu/libnfs need neither locking nor quotas; NLM would need rpc.statd.
    Enable_NLM = false;
    Enable_RQUOTA = false;
}
NFSV4 {
    # No 90 s grace period after every start: this is a throwaway server.
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = "${SB_NFS_DIR}/recovery";
    # no idmapd here: show NFSv4 owners as numeric uids, like NFSv3 does
    Allow_Numeric_Owners = true;
    Only_Numeric_Owners = true;
}
EXPORT {
    Export_Id = 1;
    Path = "${SB_NFS_EXPORT}";
    # Same path for v3 (Path) and v4 (Pseudo) clients.
    Pseudo = "${SB_NFS_EXPORT}";
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
# no Kerberos here (sec=sys only): do not look for /etc/krb5.keytab
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }
# (ganesha still logs "DBUS :CRIT" lines: no system bus here; harmless)
EOF
  if ! timeout 5 rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    mkdir -p /run/rpcbind
    # (no "-h 127.0.0.1": Debian 12's rpcbind 1.2.6 aborts with a double
    # free when given -h; it listens on all addresses for UDP then.)
    sb_spawn "${SB_LOGS}/rpcbind.log" rpcbind -f -w >"${SB_NFS_DIR}/rpcbind.pid"
    sb_wait_pid 20 "${SB_NFS_DIR}/rpcbind.pid" rpcinfo -p 127.0.0.1 || sb_fail nfs "rpcbind not answering" "${SB_LOGS}/rpcbind.log"
  fi
  # (re)start ganesha: it is not answering, or up.sh would not be here
  sb_kill_pidfile "${SB_NFS_DIR}/ganesha.pid"
  sb_port_free nfs 2049
  # -F: foreground (we background it), so its pid is ours to record.
  sb_spawn "${SB_LOGS}/ganesha.out" ganesha.nfsd -F -f "$conf" -L "$logf" \
    -p "${SB_NFS_DIR}/ganesha.pid.daemon" -N NIV_EVENT >"${SB_NFS_DIR}/ganesha.pid"
  sb_wait_pid 60 "${SB_NFS_DIR}/ganesha.pid" sb_check_nfs ||
    sb_fail nfs "nfs://127.0.0.1${SB_NFS_EXPORT} not readable" "$logf" "${SB_LOGS}/ganesha.out"
}
env_nfs() {
  sb_env_set nfs "STACKCORE_TEST_NFS_SERVER=127.0.0.1" \
    "STACKCORE_TEST_NFS_EXPORT=${SB_NFS_EXPORT}" "STACKCORE_TEST_NFS_DIR=${SB_NFS_EXPORT}"
}

# --------------------------------------------------------------------------
# ceph: one mon + one memstore OSD, auth none, pool "stackcore" for rbd
# --------------------------------------------------------------------------
ceph_cmd() { timeout 60 ceph -c "$SB_CEPH_CONF" --connect-timeout 30 "$@" </dev/null 9>&-; }

up_ceph() {
  local run="${SB_CEPH_DIR}/run" logd="${SB_CEPH_DIR}/log" fsid uuid osd_id
  # memstore keeps all objects in the OSD's memory: a restarted OSD has lost
  # its data, so a cluster that is not fully up is rebuilt from nothing.
  sb_stop_ceph
  rm -rf "$SB_CEPH_DIR"
  mkdir -p "$run" "$logd" "${SB_CEPH_DIR}/mon/ceph-a" "${SB_CEPH_DIR}/osd/ceph-0"
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  cat >"$SB_CEPH_CONF" <<EOF
# written by tools/backends/up.sh
[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:${SB_CEPH_MON_PORT}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = ${run}
pid file = ${run}/\$type.\$id.pid
admin socket = ${run}/\$cluster-\$name.asok
log file = ${logd}/\$cluster-\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
ms bind ipv6 = false

[mon]
mon data = ${SB_CEPH_DIR}/mon/\$cluster-\$id

[osd]
osd data = ${SB_CEPH_DIR}/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 256
osd max object namespace len = 64
EOF
  sb_port_free ceph "$SB_CEPH_MON_PORT"
  sb_port_free ceph 3300
  monmaptool --create --fsid "$fsid" \
    --addv a "[v2:127.0.0.1:3300,v1:127.0.0.1:${SB_CEPH_MON_PORT}]" \
    "${SB_CEPH_DIR}/monmap" >>"${logd}/setup.log" 2>&1 ||
    sb_fail ceph "monmaptool failed" "${logd}/setup.log"
  ceph-mon -c "$SB_CEPH_CONF" -i a --mkfs --monmap "${SB_CEPH_DIR}/monmap" \
    </dev/null >>"${logd}/setup.log" 2>&1 9>&- ||
    sb_fail ceph "ceph-mon --mkfs failed" "${logd}/setup.log" "${logd}/ceph-mon.a.log"
  ceph-mon -c "$SB_CEPH_CONF" -i a </dev/null >>"${logd}/setup.log" 2>&1 9>&- ||
    sb_fail ceph "ceph-mon did not start" "${logd}/setup.log" "${logd}/ceph-mon.a.log"
  sb_wait_pid 60 "${run}/mon.a.pid" ceph_cmd mon stat ||
    sb_fail ceph "mon not answering on ${SB_CEPH_MON}" "${logd}/ceph-mon.a.log"
  uuid="$(cat /proc/sys/kernel/random/uuid)"
  osd_id="$(ceph_cmd osd new "$uuid" 2>>"${logd}/setup.log")" ||
    sb_fail ceph "ceph osd new failed" "${logd}/setup.log"
  [[ "$osd_id" == 0 ]] || sb_fail ceph "expected osd id 0, got '${osd_id}'" "${logd}/setup.log"
  ceph-osd -c "$SB_CEPH_CONF" -i 0 --mkfs --osd-uuid "$uuid" \
    </dev/null >>"${logd}/setup.log" 2>&1 9>&- ||
    sb_fail ceph "ceph-osd --mkfs failed" "${logd}/setup.log" "${logd}/ceph-osd.0.log"
  ceph-osd -c "$SB_CEPH_CONF" -i 0 </dev/null >>"${logd}/setup.log" 2>&1 9>&- ||
    sb_fail ceph "ceph-osd did not start" "${logd}/setup.log" "${logd}/ceph-osd.0.log"
  sb_wait_pid 90 "${run}/osd.0.pid" bash -c "timeout 20 ceph -c '$SB_CEPH_CONF' osd stat 2>/dev/null | grep -q '1 osds: 1 up'" ||
    sb_fail ceph "osd.0 never came up" "${logd}/ceph-osd.0.log" "${logd}/ceph-mon.a.log"
  ceph_cmd osd pool create "$SB_CEPH_POOL" 8 8 replicated >>"${logd}/setup.log" 2>&1 ||
    sb_fail ceph "pool create failed" "${logd}/setup.log"
  ceph_cmd osd pool set "$SB_CEPH_POOL" size 1 --yes-i-really-mean-it >>"${logd}/setup.log" 2>&1 ||
    sb_fail ceph "pool set size 1 failed" "${logd}/setup.log"
  # rbd pool init writes to the pool, so it also waits for its PGs to be active
  timeout 120 rbd -c "$SB_CEPH_CONF" pool init "$SB_CEPH_POOL" </dev/null >>"${logd}/setup.log" 2>&1 9>&- ||
    sb_fail ceph "rbd pool init timed out (PGs not active?)" "${logd}/setup.log" "${logd}/ceph-osd.0.log"
  sb_check_ceph || sb_fail ceph "cluster not healthy after setup" "${logd}/ceph-mon.a.log" "${logd}/ceph-osd.0.log"
  # Default-path conveniences (ceph/rbd CLIs and qemu without conf=): only
  # when nobody else owns /etc/ceph/ceph.conf.
  mkdir -p /etc/ceph
  if [[ ! -e /etc/ceph/ceph.conf || -L /etc/ceph/ceph.conf ]]; then
    ln -sfn "$SB_CEPH_CONF" /etc/ceph/ceph.conf
  fi
}
env_ceph() {
  sb_env_set ceph "STACKCORE_TEST_CEPH_CONF=${SB_CEPH_CONF}" \
    "STACKCORE_TEST_CEPH_POOL=${SB_CEPH_POOL}" "STACKCORE_TEST_CEPH_MON=${SB_CEPH_MON}"
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
  sb_apt_ensure "${pkgs[@]}"

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
