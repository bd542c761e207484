# shellcheck shell=bash
# ceph: one mon + one memstore OSD, auth none, pool "stackcore" for rbd; no ceph-mgr.
# Sourced by lib.sh (see tools/backends/README.md).

SB_CEPH_DIR="${SB_STATE}/ceph"
SB_CEPH_CONF="${SB_CEPH_DIR}/ceph.conf"
SB_CEPH_POOL="stackcore"
SB_CEPH_MON_PORT=6789           # msgr v1 port: what qemu/libvirt "host:port" means
SB_CEPH_MON="127.0.0.1:${SB_CEPH_MON_PORT}"

sb_pkgs_ceph() { echo ceph-mon ceph-osd ceph-common python3-rados python3-rbd; }

sb_check_ceph() {
  command -v ceph >/dev/null || return 1
  [[ -f "$SB_CEPH_CONF" ]] || return 1
  sb_pid_alive "${SB_CEPH_DIR}/run/mon.a.pid" && sb_pid_alive "${SB_CEPH_DIR}/run/osd.0.pid" || return 1
  timeout 15 ceph -c "$SB_CEPH_CONF" --connect-timeout 10 osd stat 2>/dev/null |
    grep -q '1 osds: 1 up' || return 1
  # a pool whose PGs are active answers a stat of a (missing) object at once
  timeout 15 rados -c "$SB_CEPH_CONF" -p "$SB_CEPH_POOL" ls >/dev/null 2>&1
}

sb_stop_ceph() {
  sb_kill_pidfile "${SB_CEPH_DIR}/run/osd.0.pid"
  sb_kill_pidfile "${SB_CEPH_DIR}/run/mon.a.pid"
}

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

sb_wipe_ceph() { rm -rf "$SB_CEPH_DIR"; }
