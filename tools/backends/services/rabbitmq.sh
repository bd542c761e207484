# shellcheck shell=bash
# rabbitmq: Debian's rabbitmq-server (runs as user rabbitmq); AMQP on 127.0.0.1 and the lab
# address, Erlang distribution on loopback.  Sourced by lib.sh (see tools/backends/README.md).

# Fixed test credentials/addresses (not secrets: loopback/lab-only test service).
SB_RABBIT_URL="rabbit://stackcore:stackcore@127.0.0.1:5672/"
SB_RABBIT_LAB_URL="rabbit://stackcore:stackcore@${SB_LAB_ADDR}:5672/"

sb_pkgs_rabbitmq() { echo rabbitmq-server; }

sb_check_rabbitmq() {
  command -v rabbitmqctl >/dev/null || return 1
  sb_port_open 5672 || return 1
  sb_lab_present && sb_port_open_on "$SB_LAB_ADDR" 5672 || return 1
  timeout 30 rabbitmqctl -q list_users 2>/dev/null | grep -q '^stackcore[[:space:]]'
}

sb_stop_rabbitmq() {
  command -v rabbitmqctl >/dev/null || return 0
  if [[ -s "${SB_STATE}/rabbitmq/rabbitmq.pid" ]] && sb_pid_alive "${SB_STATE}/rabbitmq/rabbitmq.pid"; then
    timeout 60 rabbitmqctl -q shutdown </dev/null >/dev/null 2>&1 9>&- || true
  fi
  sb_kill_pidfile "${SB_STATE}/rabbitmq/rabbitmq.pid"
  sb_kill_pidfile "${SB_STATE}/rabbitmq/launcher.pid"   # the su wrapper
  # epmd (the Erlang port mapper) is left by the node; stop it too
  if command -v epmd >/dev/null && pgrep -x epmd >/dev/null; then
    epmd -kill >/dev/null 2>&1 || true
  fi
}

up_rabbitmq() {
  local dir="${SB_STATE}/rabbitmq" logf="${SB_LOGS}/rabbitmq.log"
  mkdir -p "$dir"
  chown rabbitmq: "$dir"
  # rabbitmq-env.conf is sourced by both the server and rabbitmqctl, so they
  # agree on the node name.  rabbit@localhost does not depend on the
  # machine's hostname resolving.  Erlang distribution and epmd bind to
  # loopback; AMQP to loopback and the lab address (listeners in rabbitmq.conf:
  # NODE_IP_ADDRESS allows a single address).
  sb_lab_ensure
  cat >/etc/rabbitmq/rabbitmq-env.conf <<EOF
# written by tools/backends/up.sh
NODENAME=rabbit@localhost
PID_FILE=${dir}/rabbitmq.pid
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
  cat >/etc/rabbitmq/rabbitmq.conf <<EOF
# written by tools/backends/up.sh
listeners.tcp.loopback = 127.0.0.1:5672
listeners.tcp.lab = ${SB_LAB_ADDR}:5672
EOF
  if ! sb_port_users 5672 | grep -q '"beam.smp"' || ! sb_port_open_on "$SB_LAB_ADDR" 5672; then
    sb_stop_rabbitmq
    sb_port_free rabbitmq 5672
    sb_spawn "$logf" rabbitmq-server >"${dir}/launcher.pid"
    sb_wait_pid 120 "${dir}/launcher.pid" sb_port_open 5672 ||
      sb_fail rabbitmq "port 5672 not open after 120 s" "$logf" /var/log/rabbitmq/rabbit@localhost.log
    sb_wait_pid 30 "${dir}/launcher.pid" sb_port_open_on "$SB_LAB_ADDR" 5672 ||
      sb_fail rabbitmq "port ${SB_LAB_ADDR}:5672 not open" "$logf" /var/log/rabbitmq/rabbit@localhost.log
  fi
  timeout 120 rabbitmqctl -q await_startup </dev/null >>"$logf" 2>&1 9>&- ||
    sb_fail rabbitmq "rabbitmqctl await_startup failed" "$logf" /var/log/rabbitmq/rabbit@localhost.log
  if ! rabbitmqctl -q list_users 2>/dev/null 9>&- | grep -q '^stackcore[[:space:]]'; then
    rabbitmqctl -q add_user stackcore stackcore </dev/null >>"$logf" 2>&1 9>&- ||
      sb_fail rabbitmq "add_user stackcore failed" "$logf"
  fi
  rabbitmqctl -q set_permissions -p / stackcore '.*' '.*' '.*' </dev/null >>"$logf" 2>&1 9>&- ||
    sb_fail rabbitmq "set_permissions failed" "$logf"
}
env_rabbitmq() {
  sb_env_set rabbitmq "STACKCORE_TEST_RABBIT_URL=${SB_RABBIT_URL}" \
    "STACKCORE_TEST_RABBIT_LAB_URL=${SB_RABBIT_LAB_URL}" "STACKCORE_TEST_LAB_ADDR=${SB_LAB_ADDR}" \
    "STACKCORE_TEST_LAB_BRIDGE=${SB_LAB_BRIDGE}" "STACKCORE_TEST_LAB_CIDR=${SB_LAB_CIDR}"
}
