# shellcheck shell=bash
# postgres: Debian's cluster (pg_ctlcluster), plus role/db stackcore, on 127.0.0.1 and on
# the lab address (lib.sh: SB_LAB_*).  Sourced by lib.sh (see tools/backends/README.md).

# Fixed test credentials/addresses (not secrets: loopback/lab-only test service).
SB_PG_PORT=5432
SB_PG_URL="postgresql+psycopg2://stackcore:stackcore@127.0.0.1:${SB_PG_PORT}/stackcore"
SB_PG_LAB_URL="postgresql+psycopg2://stackcore:stackcore@${SB_LAB_ADDR}:${SB_PG_PORT}/stackcore"

sb_pkgs_postgres() { echo postgresql; }

sb_pg_version() {
  local v
  v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$v" ]] || return 1
  echo "$v"
}

sb_check_postgres() {
  command -v pg_isready >/dev/null || return 1
  pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT" || return 1
  [[ "$(PGPASSWORD=stackcore PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$SB_PG_PORT" \
    -U stackcore -d stackcore -XAtc 'select 1' 2>/dev/null)" == 1 ]] || return 1
  sb_check_postgres_lab
}

# ... and on the lab address, as the stackcore role (pg_hba allows the lab subnet)
sb_check_postgres_lab() {
  sb_lab_present || return 1
  [[ "$(PGPASSWORD=stackcore PGCONNECT_TIMEOUT=5 psql -h "$SB_LAB_ADDR" -p "$SB_PG_PORT" \
    -U stackcore -d stackcore -XAtc 'select 1' 2>/dev/null)" == 1 ]]
}

sb_stop_postgres() {
  local v
  v="$(sb_pg_version)" || return 0
  if pg_lsclusters -h 2>/dev/null | awk -v v="$v" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$v" main stop -m fast </dev/null >/dev/null 2>&1 9>&- || true
  fi
}

up_postgres() {
  local v conf_d hba
  v="$(sb_pg_version)" || sb_fail postgres "no PostgreSQL server installed under /usr/lib/postgresql"
  if ! pg_lsclusters -h | awk -v v="$v" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$v" main --port "$SB_PG_PORT" </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_createcluster failed" "${SB_LOGS}/postgres-setup.log"
  fi
  conf_d="/etc/postgresql/${v}/main/conf.d"
  mkdir -p "$conf_d"
  # The lab bridge must hold its address before the server binds to it.
  sb_lab_ensure
  # Loopback + the lab address only, fixed port; durability off: a throwaway
  # test database does not need fsync, and tests create/drop many databases.
  cat >"${conf_d}/stackcore.conf" <<EOF
# written by tools/backends/up.sh
listen_addresses = '127.0.0.1,${SB_LAB_ADDR}'
port = ${SB_PG_PORT}
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  # The stackcore role may also connect from the lab subnet (test namespaces).
  hba="/etc/postgresql/${v}/main/pg_hba.conf"
  sed -i '/^# BEGIN stackcore-backends/,/^# END stackcore-backends/d' "$hba"
  cat >>"$hba" <<EOF
# BEGIN stackcore-backends (tools/backends/up.sh): the lab subnet on ${SB_LAB_BRIDGE}
host    all             stackcore       ${SB_LAB_CIDR}          scram-sha-256
# END stackcore-backends
EOF
  if ! pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT"; then
    # pg_ctlcluster falls back to pg_ctl when systemd is not running
    pg_ctlcluster "$v" main start </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_ctlcluster start failed" "${SB_LOGS}/postgres-setup.log" \
        "/var/log/postgresql/postgresql-${v}-main.log"
  elif ! pg_isready -q -h "$SB_LAB_ADDR" -p "$SB_PG_PORT"; then
    # up on loopback only (an older config, or the lab bridge was removed under
    # it): listen_addresses needs a restart
    sb_log "postgres: restarting to listen on ${SB_LAB_ADDR} too"
    pg_ctlcluster "$v" main restart -m fast </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_ctlcluster restart failed" "${SB_LOGS}/postgres-setup.log" \
        "/var/log/postgresql/postgresql-${v}-main.log"
  else
    # pg_hba.conf changes need a reload only
    pg_ctlcluster "$v" main reload </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "pg_ctlcluster reload failed" "${SB_LOGS}/postgres-setup.log"
  fi
  sb_wait 60 pg_isready -q -h 127.0.0.1 -p "$SB_PG_PORT" ||
    sb_fail postgres "not accepting connections on 127.0.0.1:${SB_PG_PORT}" \
      "/var/log/postgresql/postgresql-${v}-main.log"
  sb_wait 30 pg_isready -q -h "$SB_LAB_ADDR" -p "$SB_PG_PORT" ||
    sb_fail postgres "not accepting connections on ${SB_LAB_ADDR}:${SB_PG_PORT}" \
      "/var/log/postgresql/postgresql-${v}-main.log"
  # CREATEDB: tests create throwaway databases. pg_signal_backend: dropping one WITH (FORCE)
  # must also end an autovacuum worker busy in it (such workers belong to no role).
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$SB_PG_PORT" -d postgres \
    </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stackcore') THEN
        CREATE ROLE stackcore LOGIN CREATEDB PASSWORD 'stackcore';
      ELSE
        ALTER ROLE stackcore LOGIN CREATEDB PASSWORD 'stackcore';
      END IF;
    END \$\$;
    GRANT pg_signal_backend TO stackcore;" ||
    sb_fail postgres "creating role stackcore failed" "${SB_LOGS}/postgres-setup.log"
  if [[ "$(runuser -u postgres -- psql -X -p "$SB_PG_PORT" -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'stackcore'" </dev/null 9>&-)" != 1 ]]; then
    runuser -u postgres -- createdb -p "$SB_PG_PORT" -O stackcore stackcore \
      </dev/null >>"${SB_LOGS}/postgres-setup.log" 2>&1 9>&- ||
      sb_fail postgres "createdb stackcore failed" "${SB_LOGS}/postgres-setup.log"
  fi
  sb_check_postgres || sb_fail postgres "psql as stackcore failed" \
    "/var/log/postgresql/postgresql-${v}-main.log"
}
env_postgres() {
  sb_env_set postgres "STACKCORE_TEST_PG_URL=${SB_PG_URL}" \
    "STACKCORE_TEST_PG_LAB_URL=${SB_PG_LAB_URL}" "STACKCORE_TEST_LAB_ADDR=${SB_LAB_ADDR}" \
    "STACKCORE_TEST_LAB_BRIDGE=${SB_LAB_BRIDGE}" "STACKCORE_TEST_LAB_CIDR=${SB_LAB_CIDR}"
}
