# shellcheck shell=bash
# ceph: one mon + one bluestore OSD (on a sparse file), auth none, pool "stackcore" for rbd;
# no ceph-mgr. Sourced by lib.sh (see tools/backends/README.md).
#
# The OSD keeps its objects on disk (bluestore on a sparse file in its data directory), so a
# restarted OSD - or a restarted cluster - has all its data: up.sh restarts the daemons that
# are down and rebuilds the cluster from nothing only when it cannot come back. The cluster
# building blocks below (sb_ceph_*) also make the private clusters of tools/backends/private.sh.

SB_CEPH_DIR="${SB_STATE}/ceph"
SB_CEPH_CONF="${SB_CEPH_DIR}/ceph.conf"
SB_CEPH_POOL="stackcore"
# A second pool, for the rbd image store's conformance suite alone: the conformance tier runs
# suites in parallel, and the volume suite of the rbd driver makes image-store-shaped images
# (image-<id>, its clone sources) in its pool, which the image store suite's check "nothing of
# the store's is left" then saw as its own leftovers (two CI runs failed so).
SB_CEPH_IMAGE_POOL="stackcore-images"
SB_CEPH_MON_PORT=6789           # msgr v1 port: what qemu/libvirt "host:port" means
SB_CEPH_MON_V2_PORT=3300
SB_CEPH_MON="127.0.0.1:${SB_CEPH_MON_PORT}"
SB_CEPH_OSD_BYTES=$((8 * 1024 * 1024 * 1024))   # the OSD's block file (sparse)

sb_pkgs_ceph() { echo ceph-mon ceph-osd ceph-common python3-rados python3-rbd; }

# sb_ceph_ready DIR POOL: mon and osd.0 of the cluster in DIR run, the OSD is up and the
# pool's PGs are active.
sb_ceph_ready() {
  local dir="$1" pool="$2"
  command -v ceph >/dev/null || return 1
  [[ -f "${dir}/ceph.conf" ]] || return 1
  sb_pid_alive "${dir}/run/mon.a.pid" && sb_pid_alive "${dir}/run/osd.0.pid" || return 1
  timeout 15 ceph -c "${dir}/ceph.conf" --connect-timeout 10 osd stat 2>/dev/null |
    grep -q '1 osds: 1 up' || return 1
  # a pool whose PGs are active answers a listing at once
  timeout 15 rados -c "${dir}/ceph.conf" -p "$pool" ls >/dev/null 2>&1
}

sb_check_ceph() {
  sb_ceph_ready "$SB_CEPH_DIR" "$SB_CEPH_POOL" &&
    timeout 15 rados -c "$SB_CEPH_CONF" -p "$SB_CEPH_IMAGE_POOL" ls >/dev/null 2>&1
}

# sb_ceph_pool NAME DIR POOL: the replicated pool POOL (size 1, 8 PGs) initialised for rbd in
# the running cluster in DIR, created when missing.
sb_ceph_pool() {
  local name="$1" dir="$2" pool="$3" logd="$2/log"
  timeout 15 rados -c "${dir}/ceph.conf" -p "$pool" ls >/dev/null 2>&1 && return 0
  sb_ceph_cmd "$dir" osd pool create "$pool" 8 8 replicated >>"${logd}/setup.log" 2>&1 ||
    sb_fail "$name" "pool create ${pool} failed" "${logd}/setup.log"
  sb_ceph_cmd "$dir" osd pool set "$pool" size 1 --yes-i-really-mean-it >>"${logd}/setup.log" 2>&1 ||
    sb_fail "$name" "pool set size 1 of ${pool} failed" "${logd}/setup.log"
  # rbd pool init writes to the pool, so it also proves its PGs active
  timeout 120 rbd -c "${dir}/ceph.conf" pool init "$pool" </dev/null >>"${logd}/setup.log" 2>&1 8>&- 9>&- ||
    sb_fail "$name" "rbd pool init ${pool} timed out (PGs not active?)" "${logd}/setup.log"
}

# sb_ceph_stop DIR: stop the OSD, then the mon (harmless when nothing runs).
sb_ceph_stop() {
  sb_kill_pidfile "$1/run/osd.0.pid"
  sb_kill_pidfile "$1/run/mon.a.pid"
}

sb_stop_ceph() { sb_ceph_stop "$SB_CEPH_DIR"; }

sb_ceph_cmd() {
  local dir="$1"
  shift
  timeout 60 ceph -c "${dir}/ceph.conf" --connect-timeout 30 "$@" </dev/null 8>&- 9>&-
}

# sb_ceph_conf DIR V1_PORT V2_PORT: ceph.conf of a one-mon, one-OSD cluster rooted at DIR.
sb_ceph_conf() {
  local dir="$1" v1="$2" v2="$3" fsid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  cat >"${dir}/ceph.conf" <<EOF
# written by tools/backends (services/ceph.sh)
[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${v2},v1:127.0.0.1:${v1}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = ${dir}/run
pid file = ${dir}/run/\$type.\$id.pid
admin socket = ${dir}/run/\$cluster-\$name.asok
log file = ${dir}/log/\$cluster-\$name.log
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
mon data = ${dir}/mon/\$cluster-\$id

[osd]
osd data = ${dir}/osd/\$cluster-\$id
# Objects on disk: bluestore on a sparse file in the OSD's data directory (an OSD restart
# keeps the data), with a small cache: this is a test cluster on a shared 2-core machine.
osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${SB_CEPH_OSD_BYTES}
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
osd max object name len = 256
osd max object namespace len = 64
EOF
}

# sb_ceph_start_osd NAME DIR POOL: (re)start osd.0 of the cluster in DIR with the data it
# has, and wait until it is up and the PGs of POOL are active again.
sb_ceph_start_osd() {
  local name="$1" dir="$2" pool="$3" logd="$2/log"
  if ! sb_pid_alive "${dir}/run/osd.0.pid"; then
    ceph-osd -c "${dir}/ceph.conf" -i 0 </dev/null >>"${logd}/setup.log" 2>&1 8>&- 9>&- ||
      sb_fail "$name" "ceph-osd did not start" "${logd}/setup.log" "${logd}/ceph-osd.0.log"
  fi
  sb_wait_pid 120 "${dir}/run/osd.0.pid" bash -c \
    "timeout 20 ceph -c '${dir}/ceph.conf' osd stat 2>/dev/null | grep -q '1 osds: 1 up'" ||
    sb_fail "$name" "osd.0 never came up" "${logd}/ceph-osd.0.log" "${logd}/ceph-mon.a.log"
  # PGs peer after the OSD is marked up (no ceph-mgr here, so no "pg stat"): a listing of
  # the pool answers once its PGs are active
  sb_wait 120 timeout 15 rados -c "${dir}/ceph.conf" -p "$pool" ls ||
    sb_fail "$name" "the PGs of pool ${pool} not active after the OSD started" \
      "${logd}/ceph-osd.0.log"
}

# sb_ceph_create NAME DIR V1_PORT V2_PORT POOL: a new cluster in the empty DIR: mon a,
# bluestore osd.0, replicated pool POOL (size 1, 8 PGs) initialised for rbd.
sb_ceph_create() {
  local name="$1" dir="$2" v1="$3" v2="$4" pool="$5" logd="$2/log" uuid osd_id fsid
  mkdir -p "${dir}/run" "$logd" "${dir}/mon/ceph-a" "${dir}/osd/ceph-0"
  sb_ceph_conf "$dir" "$v1" "$v2"
  fsid="$(sed -n 's/^fsid = //p' "${dir}/ceph.conf")"
  sb_port_free "$name" "$v1"
  sb_port_free "$name" "$v2"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:${v2},v1:127.0.0.1:${v1}]" \
    "${dir}/monmap" >>"${logd}/setup.log" 2>&1 ||
    sb_fail "$name" "monmaptool failed" "${logd}/setup.log"
  ceph-mon -c "${dir}/ceph.conf" -i a --mkfs --monmap "${dir}/monmap" \
    </dev/null >>"${logd}/setup.log" 2>&1 8>&- 9>&- ||
    sb_fail "$name" "ceph-mon --mkfs failed" "${logd}/setup.log" "${logd}/ceph-mon.a.log"
  ceph-mon -c "${dir}/ceph.conf" -i a </dev/null >>"${logd}/setup.log" 2>&1 8>&- 9>&- ||
    sb_fail "$name" "ceph-mon did not start" "${logd}/setup.log" "${logd}/ceph-mon.a.log"
  sb_wait_pid 60 "${dir}/run/mon.a.pid" sb_ceph_cmd "$dir" mon stat ||
    sb_fail "$name" "mon not answering on 127.0.0.1:${v1}" "${logd}/ceph-mon.a.log"
  uuid="$(cat /proc/sys/kernel/random/uuid)"
  osd_id="$(sb_ceph_cmd "$dir" osd new "$uuid" 2>>"${logd}/setup.log")" ||
    sb_fail "$name" "ceph osd new failed" "${logd}/setup.log"
  [[ "$osd_id" == 0 ]] || sb_fail "$name" "expected osd id 0, got '${osd_id}'" "${logd}/setup.log"
  ceph-osd -c "${dir}/ceph.conf" -i 0 --mkfs --osd-uuid "$uuid" \
    </dev/null >>"${logd}/setup.log" 2>&1 8>&- 9>&- ||
    sb_fail "$name" "ceph-osd --mkfs failed" "${logd}/setup.log" "${logd}/ceph-osd.0.log"
  sb_ceph_cmd "$dir" osd pool create "$pool" 8 8 replicated >>"${logd}/setup.log" 2>&1 ||
    sb_fail "$name" "pool create failed" "${logd}/setup.log"
  sb_ceph_cmd "$dir" osd pool set "$pool" size 1 --yes-i-really-mean-it >>"${logd}/setup.log" 2>&1 ||
    sb_fail "$name" "pool set size 1 failed" "${logd}/setup.log"
  sb_ceph_start_osd "$name" "$dir" "$pool"
  # rbd pool init writes to the pool, so it also proves its PGs active
  timeout 120 rbd -c "${dir}/ceph.conf" pool init "$pool" </dev/null >>"${logd}/setup.log" 2>&1 8>&- 9>&- ||
    sb_fail "$name" "rbd pool init timed out (PGs not active?)" "${logd}/setup.log" "${logd}/ceph-osd.0.log"
  sb_ceph_ready "$dir" "$pool" ||
    sb_fail "$name" "cluster not healthy after setup" "${logd}/ceph-mon.a.log" "${logd}/ceph-osd.0.log"
}

up_ceph() {
  local dir="$SB_CEPH_DIR"
  # A bluestore cluster that is only partly up (a daemon died, the machine restarted) comes
  # back with its data: start what is down. One that cannot (a memstore cluster of an older
  # up.sh, lost state) is rebuilt from nothing.
  if [[ -s "$SB_CEPH_CONF" ]] && grep -q '^osd objectstore = bluestore' "$SB_CEPH_CONF" &&
    [[ -s "${dir}/osd/ceph-0/block" ]]; then
    if ! sb_pid_alive "${dir}/run/mon.a.pid"; then
      ceph-mon -c "$SB_CEPH_CONF" -i a </dev/null >>"${dir}/log/setup.log" 2>&1 9>&- || true
      sb_wait_pid 60 "${dir}/run/mon.a.pid" sb_ceph_cmd "$dir" mon stat || true
    fi
    if sb_pid_alive "${dir}/run/mon.a.pid"; then
      sb_ceph_start_osd ceph "$dir" "$SB_CEPH_POOL"
      sb_ceph_pool ceph "$dir" "$SB_CEPH_IMAGE_POOL"
      if sb_check_ceph; then
        sb_ceph_default_conf
        return 0
      fi
    fi
    sb_log "ceph: the cluster in ${dir} does not come back; building a new one"
  fi
  sb_stop_ceph
  rm -rf "$dir"
  sb_ceph_create ceph "$dir" "$SB_CEPH_MON_PORT" "$SB_CEPH_MON_V2_PORT" "$SB_CEPH_POOL"
  sb_ceph_pool ceph "$dir" "$SB_CEPH_IMAGE_POOL"
  sb_check_ceph || sb_fail ceph "pool ${SB_CEPH_IMAGE_POOL} not ready" "${dir}/log/setup.log"
  sb_ceph_default_conf
}

# Default-path conveniences (ceph/rbd CLIs and qemu without conf=): only when nobody else
# owns /etc/ceph/ceph.conf.
sb_ceph_default_conf() {
  mkdir -p /etc/ceph
  if [[ ! -e /etc/ceph/ceph.conf || -L /etc/ceph/ceph.conf ]]; then
    ln -sfn "$SB_CEPH_CONF" /etc/ceph/ceph.conf
  fi
}

env_ceph() {
  sb_env_set ceph "STACKCORE_TEST_CEPH_CONF=${SB_CEPH_CONF}" \
    "STACKCORE_TEST_CEPH_POOL=${SB_CEPH_POOL}" "STACKCORE_TEST_CEPH_MON=${SB_CEPH_MON}" \
    "STACKCORE_TEST_CEPH_IMAGE_POOL=${SB_CEPH_IMAGE_POOL}"
}

sb_wipe_ceph() { rm -rf "$SB_CEPH_DIR"; }
