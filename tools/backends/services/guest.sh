# shellcheck shell=bash
# guest: what the full-kernel test guest needs (tests/guest/vm.py boots it, once per test
# session; nothing runs here between sessions): Debian's own kernel with its modules, virtme-ng
# (PyPI, in its own virtualenv), and the host packages whose binaries the guest runs (it sees
# the host's root filesystem): busybox-static (virtme-ng's init), open-iscsi (iscsiadm, iscsid),
# thin-provisioning-tools (LVM thin pools), nfs-common (mount.nfs), udev, lvm2, openvswitch,
# qemu. Sourced by lib.sh (see tools/backends/README.md, "The full-kernel guest").

SB_GUEST_DIR="${SB_STATE}/guest"
SB_GUEST_VENV="${SB_GUEST_DIR}/venv"
SB_GUEST_VNG_VERSION="1.42"   # virtme-ng, from PyPI

sb_pkgs_guest() {
  echo linux-image-amd64 busybox-static open-iscsi thin-provisioning-tools nfs-common udev \
    lvm2 openvswitch-switch qemu-system-x86 qemu-utils python3-venv strace file
}

# the newest kernel image installed by linux-image-amd64 (the running kernel is untouched)
sb_guest_kernel() {
  local k
  k="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$k" && -d "/lib/modules/${k#/boot/vmlinuz-}" ]] && echo "$k"
}

sb_check_guest() {
  [[ -x "${SB_GUEST_VENV}/bin/vng" ]] || return 1
  "${SB_GUEST_VENV}/bin/vng" --version 2>/dev/null | grep -q "$SB_GUEST_VNG_VERSION" || return 1
  [[ -n "$(sb_guest_kernel)" ]] || return 1
  # virtme-ng's init needs a static busybox
  file -L /bin/busybox 2>/dev/null | grep -q "statically linked" ||
    ldd /bin/busybox 2>&1 | grep -q "not a dynamic executable"
}

# Nothing runs between test sessions; a guest left by a killed session is powered off.
sb_stop_guest() {
  local pid
  while read -r pid; do
    if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done < <(pgrep -f "qemu-system.*${SB_GUEST_DIR}/runs/" 2>/dev/null)
}

up_guest() {
  local logf="${SB_LOGS}/guest.log"
  [[ -n "$(sb_guest_kernel)" ]] ||
    sb_fail guest "no /boot/vmlinuz-* with its /lib/modules (linux-image-amd64)" "${SB_LOGS}/apt.log"
  mkdir -p "$SB_GUEST_DIR"
  if [[ ! -x "${SB_GUEST_VENV}/bin/python" ]]; then
    python3 -m venv "$SB_GUEST_VENV" >>"$logf" 2>&1 || sb_fail guest "python3 -m venv failed" "$logf"
  fi
  "${SB_GUEST_VENV}/bin/python" -m pip install -q "virtme-ng==${SB_GUEST_VNG_VERSION}" \
    </dev/null >>"$logf" 2>&1 9>&- || sb_fail guest "pip install virtme-ng failed" "$logf"
  sb_check_guest || sb_fail guest "virtme-ng, the kernel or a static busybox is missing" "$logf"
}

env_guest() {
  sb_env_set guest "STACKCORE_GUEST_VNG=${SB_GUEST_VENV}/bin/vng" \
    "STACKCORE_GUEST_KERNEL=$(sb_guest_kernel)"
}

sb_wipe_guest() { rm -rf "$SB_GUEST_DIR"; }
