#!/usr/bin/env bash
# End-to-end proof that each backend started by up.sh works with its real
# client, leaving nothing behind (slower than check.sh: ~10 s for all).
#
#   tools/backends/smoke.sh [SERVICE ...]     # default: all services
#
#   postgres  psql as stackcore; CREATE/DROP DATABASE (CREATEDB)
#   mariadb   mariadb as stackcore; CREATE/DROP DATABASE
#   rabbitmq  rabbitmqctl status + list_users; an AMQP handshake as stackcore
#   libvirt   virsh define/start/destroy/undefine a 64 MiB diskless domain
#             of type $STACKCORE_TEST_VIRT_TYPE
#   ovs       netdev bridge + vxlan port on the default OVSDB, then removed
#   tgt       target with a file-backed LUN, iscsi-ls lists it, removed
#   lvm       lvcreate/lvextend/lvremove (metadata-only)
#   nfs       qemu-img create/info of a qcow2 over nfs://, nfs-ls
#   ceph      ceph -s, rbd create/info, qemu-img info rbd:..., removed
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "${HERE}/lib.sh"

[[ -f "$SB_ENV" ]] || { echo "no ${SB_ENV}: run tools/backends/up.sh first" >&2; exit 1; }
# shellcheck disable=SC1090
. "$SB_ENV"

services=()
for svc in "$@"; do
  sb_pkgs_for "$svc" >/dev/null || { echo "usage: $0 [${SB_ALL_SERVICES[*]}]" >&2; exit 2; }
  services+=("$svc")
done
((${#services[@]})) || services=("${SB_ALL_SERVICES[@]}")

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
run() { "$@" >>"${tmp}/out" 2>&1; }

smoke_postgres() {
  local db="smoke_$$"
  export PGPASSWORD=stackcore PGCONNECT_TIMEOUT=5
  [[ "$(psql -X -h 127.0.0.1 -U stackcore -d stackcore -Atc 'select current_user')" == stackcore ]]
  run psql -X -q -h 127.0.0.1 -U stackcore -d stackcore -c "CREATE DATABASE ${db}" -c "DROP DATABASE ${db}"
}

smoke_mariadb() {
  local db="smoke_$$" m=(mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P 3306 -u stackcore -N -B)
  export MYSQL_PWD=stackcore
  [[ "$("${m[@]}" -e 'SELECT CURRENT_USER()')" == stackcore@127.0.0.1 ]]
  run "${m[@]}" -e "CREATE DATABASE ${db}; DROP DATABASE ${db}"
}

smoke_rabbitmq() {
  run rabbitmqctl -q status
  rabbitmqctl -q list_users | grep -q '^stackcore[[:space:]]'
  # AMQP 0-9-1: after the protocol header the server must send Connection.Start
  # (frame type 1, class 10, method 10).
  python3 - <<'EOF'
import socket
s = socket.create_connection(("127.0.0.1", 5672), timeout=5)
s.sendall(b"AMQP\x00\x00\x09\x01")
d = s.recv(12)
assert d[0] == 1 and d[7:11] == b"\x00\x0a\x00\x0a", d
EOF
}

smoke_libvirt() {
  local name="sb-smoke-$$" v=(virsh -c "$STACKCORE_TEST_LIBVIRT_URI")
  cat >"${tmp}/dom.xml" <<EOF
<domain type='${STACKCORE_TEST_VIRT_TYPE}'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices/>
</domain>
EOF
  run "${v[@]}" define "${tmp}/dom.xml"
  local rc=0
  { run "${v[@]}" start "$name" && [[ "$("${v[@]}" domstate "$name")" == running* ]]; } || rc=1
  "${v[@]}" destroy "$name" >/dev/null 2>&1 || true
  run "${v[@]}" undefine "$name"
  return "$rc"
}

smoke_ovs() {
  local db=(ovs-vsctl --db="$STACKCORE_TEST_OVSDB" --timeout=10) br="br-smoke$$" rc=0
  run "${db[@]}" add-br "$br" -- set bridge "$br" datapath_type=netdev \
    -- add-port "$br" "vx-smoke$$" -- set interface "vx-smoke$$" type=vxlan \
    options:remote_ip="127.0.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))" options:key=flow || rc=1
  [[ "$("${db[@]}" get interface "vx-smoke$$" ofport)" =~ ^[1-9] ]] || rc=1
  run "${db[@]}" --if-exists del-br "$br"
  return "$rc"
}

smoke_tgt() {
  local iqn="iqn.2010-10.org.openstack:smoke-$$" tid=900 rc=0
  truncate -s 16M "${tmp}/lun.img"
  run tgtadm --lld iscsi --op new --mode target --tid "$tid" -T "$iqn" || return 1
  { run tgtadm --lld iscsi --op new --mode logicalunit --tid "$tid" --lun 1 -b "${tmp}/lun.img" &&
    run tgtadm --lld iscsi --op bind --mode target --tid "$tid" -I ALL &&
    iscsi-ls "iscsi://${STACKCORE_TEST_ISCSI_PORTAL}" | grep -q "$iqn" &&
    run iscsi-readcapacity16 "iscsi://${STACKCORE_TEST_ISCSI_PORTAL}/${iqn}/1"; } || rc=1
  run tgtadm --lld iscsi --op delete --mode target --tid "$tid" --force
  return "$rc"
}

smoke_lvm() {
  local lv="smoke$$" rc=0
  run lvcreate -y -L 8M -n "$lv" "$STACKCORE_TEST_LVM_VG" || return 1
  { run lvextend -L 16M "${STACKCORE_TEST_LVM_VG}/${lv}" &&
    [[ "$(lvs --noheadings --units m -o lv_size "${STACKCORE_TEST_LVM_VG}/${lv}" 2>/dev/null | tr -d ' ')" == 16.00m ]]; } || rc=1
  run lvremove -y "${STACKCORE_TEST_LVM_VG}/${lv}"
  return "$rc"
}

smoke_nfs() {
  local url="nfs://${STACKCORE_TEST_NFS_SERVER}${STACKCORE_TEST_NFS_EXPORT}" rc=0
  run qemu-img create -f qcow2 "${url}/smoke-$$.qcow2" 1M || return 1
  { qemu-img info "${url}/smoke-$$.qcow2" | grep -q 'file format: qcow2' &&
    nfs-ls "$url" | grep -q "smoke-$$.qcow2" &&
    [[ -f "${STACKCORE_TEST_NFS_DIR}/smoke-$$.qcow2" ]]; } || rc=1
  rm -f "${STACKCORE_TEST_NFS_DIR}/smoke-$$.qcow2"
  return "$rc"
}

smoke_ceph() {
  local c=(-c "$STACKCORE_TEST_CEPH_CONF") img="${STACKCORE_TEST_CEPH_POOL}/smoke-$$" rc=0
  timeout 30 ceph "${c[@]}" -s | grep -qE 'HEALTH_(OK|WARN)'
  run timeout 60 rbd "${c[@]}" create --size 16 "$img" || return 1
  { run timeout 30 rbd "${c[@]}" info "$img" &&
    qemu-img info "rbd:${img}:conf=${STACKCORE_TEST_CEPH_CONF}" | grep -q 'virtual size: 16 MiB'; } || rc=1
  run timeout 60 rbd "${c[@]}" rm --no-progress "$img"
  return "$rc"
}

failed=()
for svc in "${services[@]}"; do
  start="$(sb_now)"
  : >"${tmp}/out"
  # run outside an "if": errexit is ignored inside a condition, even in a subshell
  set +e
  (set -euo pipefail; "smoke_${svc}")
  rc=$?
  set -e
  if ((rc == 0)); then
    printf '%-9s OK    (%ss)\n' "$svc" "$(sb_elapsed "$start")"
  else
    printf '%-9s FAIL  (%ss)\n' "$svc" "$(sb_elapsed "$start")"
    sed 's/^/    /' "${tmp}/out" | tail -n 20
    failed+=("$svc")
  fi
done
if ((${#failed[@]})); then
  echo "smoke: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "smoke: all OK (${services[*]})"
