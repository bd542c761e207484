# shellcheck shell=bash
# lvm: a VG on a loop device over a sparse file, metadata-only (no device-mapper here).
# Sourced by lib.sh (see tools/backends/README.md).

SB_LVM_VG="stackcore-vg"
SB_LVM_DIR="${SB_STATE}/lvm"
SB_LVM_IMG="${SB_LVM_DIR}/pv.img"
SB_LVM_SIZE="8G"   # sparse file; LVs are metadata-only here, so it costs nothing

sb_pkgs_lvm() { echo lvm2; }

sb_lvm_loopdev() { losetup -j "$SB_LVM_IMG" 2>/dev/null | head -n 1 | cut -d: -f1; }

sb_check_lvm() {
  local dev
  command -v vgs >/dev/null || return 1
  [[ -f "$SB_LVM_IMG" ]] || return 1
  # metadata-only mode configured (see sb_lvm_config below)
  [[ "$(lvmconfig global/activation 2>/dev/null)" == "activation=0" ]] || return 1
  dev="$(sb_lvm_loopdev)"
  [[ -n "$dev" ]] || return 1
  vgs --noheadings -o vg_name "$SB_LVM_VG" 2>/dev/null | grep -q "$SB_LVM_VG"
}

sb_stop_lvm() {
  local dev
  [[ -f "$SB_LVM_IMG" ]] || return 0
  while read -r dev; do
    if [[ -n "$dev" ]]; then losetup -d "$dev" 2>/dev/null || true; fi
  done < <(losetup -j "$SB_LVM_IMG" 2>/dev/null | cut -d: -f1)
}

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

sb_wipe_lvm() { rm -rf "$SB_LVM_DIR"; }
