# shellcheck shell=bash
# nfs: rpcbind + nfs-ganesha (userspace NFSv3/v4 server, VFS FSAL) on 127.0.0.1.
# Sourced by lib.sh (see tools/backends/README.md).

SB_NFS_DIR="${SB_STATE}/nfs"
SB_NFS_EXPORT="${SB_NFS_DIR}/export"

sb_pkgs_nfs() { echo nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils qemu-utils qemu-block-extra; }

sb_check_nfs() {
  command -v nfs-ls >/dev/null || return 1
  sb_pid_alive "${SB_NFS_DIR}/ganesha.pid" || return 1
  timeout 10 rpcinfo -p 127.0.0.1 2>/dev/null | grep -q ' nfs$' || return 1
  timeout 10 nfs-ls "nfs://127.0.0.1${SB_NFS_EXPORT}" >/dev/null 2>&1
}

sb_stop_nfs() {
  sb_kill_pidfile "${SB_NFS_DIR}/ganesha.pid"
  sb_kill_pidfile "${SB_NFS_DIR}/rpcbind.pid"
}

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

sb_wipe_nfs() { rm -rf "$SB_NFS_DIR"; }
