#!/usr/bin/env bash
# Runs INSIDE the test guest, once after boot (tests/guest/vm.py calls it through the agent):
# loads the kernel modules the guest tests need, configures LVM with activation on and builds
# the volume groups on the guest's scratch disk, starts the guest's own tgtd, iscsid and OVS
# (the project's tools/backends scripts, with their state in the guest's /run), and writes the
# guest's environment for the tests as JSON into the writable share.
#
#   bash tools/guest/setup.sh SHARE_DIR
#
# Nothing here reaches the host: /etc, /var, /run and /tmp are the guest's own (overlays or
# tmpfs over the host's read-only root); only SHARE_DIR is the host's.
set -euo pipefail
SHARE=$1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
export LVM_SUPPRESS_FD_WARNINGS=1
# The guest's backends state: fresh, in the guest's memory (the host's copy under /var is
# visible through the overlay and must not be mistaken for the guest's).
export STACKCORE_BACKENDS_STATE=/run/stackcore-backends
VG=stackcore-vg
CONFORMANCE_VG=stackcore-conformance-vg
LOG="${SHARE}/setup.log"
exec 3>&2 2>>"$LOG"   # details to the share; the caller sees the failing step below

step() { printf '[guest setup %(%H:%M:%S)T] %s\n' -1 "$*" >>"$LOG"; }
fail() { echo "guest setup failed: $*; log: ${LOG}" >&3; tail -n 30 "$LOG" >&3; exit 1; }

step "kernel $(uname -r): modules"
# device-mapper (thick, snapshots, thin pools), the iSCSI initiator and SCSI disks, the NFS
# client, 802.1q, bridges/veth/vxlan for the Linux bridge agent, the OVS kernel datapath.
for module in dm_mod dm_snapshot dm_thin_pool loop sd_mod iscsi_tcp nfs nfsv3 nfsv4 \
  8021q bridge veth vxlan openvswitch; do
  modprobe "$module" || fail "modprobe ${module}"
done
mkdir -p /run/lock /run/lock/iscsi /var/lock

step "udevd"
# os-brick finds an attached iSCSI disk by its /dev/disk/by-path link, which udev makes.
# virtme-ng's init starts udevd and replays the boot's events (coldplug) before the agent
# runs; a second udevd would fight the first over every event. Only if none runs (an init
# without udev) is one started and the boot's events replayed. LVM makes its own /dev nodes.
if ! pgrep -x systemd-udevd >/dev/null; then
  /lib/systemd/systemd-udevd --daemon || fail "systemd-udevd"
  udevadm trigger --action=add >/dev/null 2>&1 || true
fi
udevadm settle --timeout=120 || fail "udevadm settle (events of the modules above)"

step "LVM: activation on, no udev"
# The host's /etc/lvm/lvmlocal.conf turns activation off (no device-mapper there); the
# guest's /etc is its own overlay, so it gets its own file.
cat >/etc/lvm/lvmlocal.conf <<'EOF'
# tools/guest/setup.sh: device-mapper is here; LVM makes its own /dev nodes and nothing
# activates volumes behind the tests' back
global {
	event_activation = 0
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
devices {
	obtain_device_list_from_udev = 0
}
EOF
disk=""
for dev in /sys/block/vd*; do
  [[ -e "$dev" ]] && disk="/dev/${dev##*/}" && break
done
[[ -n "$disk" ]] || fail "no scratch disk (virtio-blk) in the guest"
# Two halves, two volume groups: the tests' ($VG) and the lvm conformance suite's
# ($CONFORMANCE_VG), which runs at the same time as the other guest tests (tests/guest/
# plugin.py, concurrent=True) and measures its volume group's free space.
parted -s "$disk" mklabel gpt mkpart tests 1MiB 50% mkpart conformance 50% 100% >>"$LOG" \
  || fail "parted ${disk}"
udevadm settle --timeout=60 || true
for half in "${disk}1:${VG}" "${disk}2:${CONFORMANCE_VG}"; do
  part=${half%%:*} vg=${half#*:}
  [[ -b "$part" ]] || fail "no partition ${part} after parted"
  pvcreate -y -ff "$part" >>"$LOG" || fail "pvcreate ${part}"
  vgcreate "$vg" "$part" >>"$LOG" || fail "vgcreate ${vg}"
done

step "tgtd, ovs (tools/backends/up.sh in the guest)"
bash "${REPO}/tools/backends/up.sh" tgt ovs >>"$LOG" 2>&1 || fail "tools/backends/up.sh tgt ovs"

step "iscsid"
# One initial login attempt per node instead of open-iscsi's 8 x 15 s: a login to a target that
# is gone (tests/guest/test_host_attach.py deletes one mid-attach) fails in ~15 s instead of
# ~2 minutes, and os-brick tries three times. Sessions, CHAP and recovery are as packaged.
sed -i 's/^node.session.initial_login_retry_max = .*/node.session.initial_login_retry_max = 1/' \
  /etc/iscsi/iscsid.conf || fail "iscsid.conf"
iscsid || fail "iscsid"

step "environment"
# shellcheck disable=SC1091
. "${STACKCORE_BACKENDS_STATE}/env.sh"
export STACKCORE_TEST_LVM_VG="$VG" STACKCORE_TEST_LVM_PV="${disk}1"
export STACKCORE_TEST_LVM_CONFORMANCE_VG="$CONFORMANCE_VG"
export STACKCORE_TEST_IN_GUEST=1
# the host's backends, as the guest reaches them (QEMU's user network: the host's 127.0.0.1)
export STACKCORE_TEST_HOST_ADDR=10.0.2.2
export STACKCORE_TEST_HOST_ISCSI_PORTAL=10.0.2.2:3260
export STACKCORE_TEST_HOST_NFS_SERVER=10.0.2.2
export STACKCORE_TEST_HOST_NFS_EXPORT=/var/lib/stackcore-backends/nfs/export
export STACKCORE_TEST_GUEST_SHARE="$SHARE"
export PATH="${REPO}/.venv/bin:${PATH}"
"${REPO}/.venv/bin/python" - "${SHARE}/guest-env.json" <<'EOF'
import json, os, sys
keep = {k: v for k, v in os.environ.items()
        if k.startswith("STACKCORE_") or k in ("PATH", "LVM_SUPPRESS_FD_WARNINGS")}
with open(sys.argv[1], "w") as handle:
    json.dump(keep, handle, indent=1, sort_keys=True)
EOF
step "done"
