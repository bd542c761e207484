# shellcheck shell=bash
# mariadb: Debian's mariadb-server, our own instance (data dir, socket, config under
# $SB_STATE/mariadb; not Debian's /etc/mysql one), on 127.0.0.1:3306 only, plus user/database
# stackcore (which may create and drop the tests' throwaway databases).  Sourced by lib.sh
# (see tools/backends/README.md).

# Fixed test credentials/addresses (not secrets: loopback-only test service).
SB_MARIADB_PORT=3306
SB_MARIADB_DIR="${SB_STATE}/mariadb"
SB_MARIADB_SOCK="${SB_MARIADB_DIR}/run/mysqld.sock"
SB_MARIADB_URL="mysql+pymysql://stackcore:stackcore@127.0.0.1:${SB_MARIADB_PORT}/stackcore?charset=utf8mb4"

sb_pkgs_mariadb() { echo mariadb-server; }

# root over our socket (unix_socket authentication: we run as root), no option files read
sb_mariadb_root() { mariadb --no-defaults --socket="$SB_MARIADB_SOCK" -u root "$@"; }

sb_check_mariadb() {
  command -v mariadb >/dev/null || return 1
  [[ "$(MYSQL_PWD=stackcore timeout 10 mariadb --no-defaults --protocol=tcp -h 127.0.0.1 \
    -P "$SB_MARIADB_PORT" -u stackcore -D stackcore -N -B -e 'SELECT 1' 2>/dev/null)" == 1 ]]
}

sb_stop_mariadb() {
  # SIGTERM is mariadbd's clean shutdown
  sb_kill_pidfile "${SB_MARIADB_DIR}/run/mariadbd.pid"
  sb_kill_pidfile "${SB_MARIADB_DIR}/run/launcher.pid"
}

sb_wipe_mariadb() { rm -rf "$SB_MARIADB_DIR"; }

up_mariadb() {
  local dir="$SB_MARIADB_DIR" logf="${SB_LOGS}/mariadb.log"
  mkdir -p "${dir}/run"
  # Durability off (a throwaway test database; tests create and drop many), small buffers
  # (start-up cost, and the machine is shared). utf8mb4 throughout. No binary log.
  cat >"${dir}/my.cnf" <<EOF
# written by tools/backends/up.sh
[mariadbd]
datadir = ${dir}/data
socket = ${SB_MARIADB_SOCK}
pid-file = ${dir}/run/mariadbd.pid
bind-address = 127.0.0.1
port = ${SB_MARIADB_PORT}
skip-name-resolve
skip-log-bin
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 300
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 0
innodb_flush_method = nosync
innodb_doublewrite = 0
sync_frm = 0
performance_schema = OFF
EOF
  chown -R mysql: "$dir"
  if [[ ! -d "${dir}/data/mysql" ]]; then
    rm -rf "${dir}/data"
    mariadb-install-db --defaults-file="${dir}/my.cnf" --user=mysql --skip-test-db \
      --auth-root-authentication-method=socket </dev/null >>"${SB_LOGS}/mariadb-setup.log" 2>&1 9>&- ||
      sb_fail mariadb "mariadb-install-db failed" "${SB_LOGS}/mariadb-setup.log"
  fi
  if ! sb_mariadb_root -N -B -e 'SELECT 1' >/dev/null 2>&1; then
    sb_stop_mariadb
    sb_port_free mariadb "$SB_MARIADB_PORT"
    rm -f "$SB_MARIADB_SOCK"
    sb_spawn "$logf" mariadbd --defaults-file="${dir}/my.cnf" --user=mysql >"${dir}/run/launcher.pid"
    sb_wait_pid 60 "${dir}/run/launcher.pid" sb_mariadb_root -N -B -e 'SELECT 1' ||
      sb_fail mariadb "not answering on ${SB_MARIADB_SOCK} after 60 s" "$logf"
  fi
  # Rights on every database: the tests create and drop databases of their own.
  sb_mariadb_root -e "
    CREATE USER IF NOT EXISTS 'stackcore'@'127.0.0.1' IDENTIFIED BY 'stackcore';
    ALTER USER 'stackcore'@'127.0.0.1' IDENTIFIED BY 'stackcore';
    GRANT ALL PRIVILEGES ON *.* TO 'stackcore'@'127.0.0.1';
    CREATE DATABASE IF NOT EXISTS stackcore;" \
    </dev/null >>"${SB_LOGS}/mariadb-setup.log" 2>&1 9>&- ||
    sb_fail mariadb "creating user/database stackcore failed" "${SB_LOGS}/mariadb-setup.log"
  sb_check_mariadb || sb_fail mariadb "mariadb as stackcore on 127.0.0.1:${SB_MARIADB_PORT} failed" "$logf"
}
env_mariadb() {
  sb_env_set mariadb "STACKCORE_TEST_MYSQL_URL=${SB_MARIADB_URL}"
}
