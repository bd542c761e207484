# shellcheck shell=bash
# libvirt: libvirtd + virtlogd with the QEMU driver (KVM, else TCG).
# Sourced by lib.sh (see tools/backends/README.md).

# libvirt-dev + pkg-config: the test env pip-installs libvirt-python,
# which compiles against them.  qemu-block-extra: iscsi/nfs/rbd drivers.
sb_pkgs_libvirt() {
  echo libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
    libvirt-dev pkg-config qemu-system-x86 qemu-utils qemu-block-extra
}

sb_check_libvirt() {
  command -v virsh >/dev/null || return 1
  sb_pid_alive /run/virtlogd.pid || return 1
  timeout 15 virsh -c qemu:///system -q version >/dev/null 2>&1
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
