# shellcheck shell=bash
# ovs: the default ovsdb-server + ovs-vswitchd, userspace (netdev) datapath.  The start/stop/
# check of an instance are in lib.sh (shared with ovs-instance.sh, whose extra instances
# live in ${SB_STATE}/ovs-NAME).  Sourced by lib.sh (see tools/backends/README.md).

SB_OVS_DIR="${SB_STATE}/ovs"    # default instance; extra ones: ${SB_STATE}/ovs-NAME

# dnsmasq-base, ethtool: the DHCP agent (dnsmasq driver; checksum offload off on its veth)
# nftables: the Linux bridge agent's security groups (nft; the kernel has nf_tables built in)
sb_pkgs_ovs() { echo openvswitch-switch openvswitch-common iproute2 nftables dnsmasq-base ethtool; }

sb_check_ovs() { sb_check_ovs_dir "$SB_OVS_DIR"; }

sb_stop_ovs() {
  sb_stop_ovs_dir "$SB_OVS_DIR"
  if [[ -L /var/run/openvswitch/db.sock ]]; then rm -f /var/run/openvswitch/db.sock; fi
}

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

# down.sh --wipe: the extra instances too
sb_wipe_ovs() { rm -rf "$SB_OVS_DIR" "${SB_STATE}"/ovs-*; }
