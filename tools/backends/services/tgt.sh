# shellcheck shell=bash
# tgt: userspace iSCSI target on 127.0.0.1:3260 (+ libiscsi-bin initiator tools).
# Sourced by lib.sh (see tools/backends/README.md).

SB_ISCSI_PORTAL="127.0.0.1:3260"

sb_pkgs_tgt() { echo tgt libiscsi-bin; }

sb_check_tgt() {
  command -v tgtadm >/dev/null || return 1
  sb_pid_alive "${SB_STATE}/tgt/tgtd.pid" || return 1
  # the listener must be tgtd itself (iscsi-ls exits 10 even when it works)
  sb_port_users 3260 | grep -q '"tgtd"' || return 1
  timeout 10 tgtadm --lld iscsi --mode system --op show >/dev/null 2>&1
}

sb_stop_tgt() {
  local pidf="${SB_STATE}/tgt/tgtd.pid"
  if sb_pid_alive "$pidf"; then
    # tgtd ignores SIGTERM.  Its own shutdown ("--op delete --mode system")
    # refuses while targets exist (tests may leave some), and its targets
    # are all in memory anyway: ask once, then SIGKILL.
    timeout 5 tgtadm --op delete --mode system >/dev/null 2>&1 || true
    sleep 0.2
    if sb_pid_alive "$pidf"; then
      kill -KILL "$(tr -dc '0-9' <"$pidf")" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf"
}

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

sb_wipe_tgt() { rm -rf "${SB_STATE}/tgt"; }
