#!/usr/bin/env bash
# Real database servers on loopback for Sluice's tests, without Docker.
#
#   scripts/services.sh start [pg] [mysql] [clickhouse] [snowflake] [chdb]   start the named ones (default: pg)
#   scripts/services.sh stop                                          stop what start started
#   scripts/services.sh env                                           print the connection variables
#
# Each server runs on a non-standard port from a fresh data directory under $SVC_DIR, so servers the
# machine already runs are left alone. Missing packages are installed (Debian). `start` prints `export …`
# lines; `eval "$(scripts/services.sh start pg)"` sets them in the calling shell. `chdb` is no server: it
# makes sure a Python virtualenv with chDB (ClickHouse in-process, a current engine) is there for
# scripts/chdb_run.py, installing it when missing (fails when it cannot).
set -euo pipefail
S=${SVC_DIR:-/tmp/sluice-services}
PG_PORT=${PG_PORT:-55432} MY_PORT=${MY_PORT:-53306}
CH_HTTP=${CH_HTTP:-58123} CH_TCP=${CH_TCP:-59000} CH_TLS=${CH_TLS:-59440} SF_PORT=${SF_PORT:-58085}
S3_PORT=${S3_PORT:-58086}
FSV=${FAKESNOW_VENV:-/var/cache/sluice-fakesnow-venv}
CHV=${CHDB_VENV:-/var/cache/sluice-chdb-venv}
MOTOV=${MOTO_VENV:-/var/cache/sluice-moto-venv}
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "services: $*" >&2; }
wait_for() { for _ in $(seq 1 300); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; log "timed out: $1"; return 1; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  log "installing $*"
  apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

start_pg() {
  [ -n "$(pg_bin)" ] || apt_install postgresql
  local bin; bin=$(pg_bin)
  rm -rf "$S/pg"; mkdir -p "$S/pg"; chown postgres:postgres "$S/pg"   # PostgreSQL refuses to run as root
  runuser -u postgres -- "$bin/initdb" -D "$S/pg/data" -A trust -U postgres -E UTF8 >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$S/pg/data" -l "$S/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $S/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
}

start_mysql() {
  command -v mariadbd >/dev/null || apt_install mariadb-server mariadb-client
  rm -rf "$S/my"; mkdir -p "$S/my"
  mariadb-install-db --no-defaults --user=root --datadir="$S/my/data" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd --no-defaults --user=root --datadir="$S/my/data" --bind-address=127.0.0.1 --port="$MY_PORT" \
    --socket="$S/my/sock" --pid-file="$S/my/pid" --log-error="$S/my/err.log" --skip-name-resolve \
    --innodb-flush-log-at-trx-commit=0 >/dev/null 2>&1 &
  wait_for "mariadb-admin --no-defaults -h127.0.0.1 -P$MY_PORT -uroot ping"
  mariadb --no-defaults -h127.0.0.1 -P"$MY_PORT" -uroot -e \
    "CREATE DATABASE IF NOT EXISTS test; CREATE USER IF NOT EXISTS 'test'@'%' IDENTIFIED BY 'test'; GRANT ALL ON *.* TO 'test'@'%';"
}

start_clickhouse() {
  command -v clickhouse-server >/dev/null || apt_install clickhouse-server clickhouse-client
  command -v openssl >/dev/null || apt_install openssl
  rm -rf "$S/ch"; mkdir -p "$S/ch/log" "$S/ch/tls"
  # A CA and a server certificate it signs (a self-signed certificate is a CA, which verifying clients
  # refuse as a server's): clients verify with ca.crt.
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$S/ch/tls/ca.key" -out "$S/ch/tls/ca.crt" -days 30 \
    -subj "/CN=Sluice test CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$S/ch/tls/server.key" -out "$S/ch/tls/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$S/ch/tls/server.ext"
  openssl x509 -req -in "$S/ch/tls/server.csr" -CA "$S/ch/tls/ca.crt" -CAkey "$S/ch/tls/ca.key" -CAcreateserial \
    -out "$S/ch/tls/server.crt" -days 30 -extfile "$S/ch/tls/server.ext" 2>/dev/null
  cat > "$S/ch/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$S/ch/log/server.log</log><errorlog>$S/ch/log/err.log</errorlog></logger>
  <http_port>$CH_HTTP</http_port><tcp_port>$CH_TCP</tcp_port><tcp_port_secure>$CH_TLS</tcp_port_secure>
  <listen_host>127.0.0.1</listen_host>
  <openSSL><server><certificateFile>$S/ch/tls/server.crt</certificateFile><privateKeyFile>$S/ch/tls/server.key</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile></server></openSSL>
  <path>$S/ch/data/</path><tmp_path>$S/ch/data/tmp/</tmp_path><user_files_path>$S/ch/data/user_files/</user_files_path>
  <format_schema_path>$S/ch/data/format_schemas/</format_schema_path>
  <users_config>$S/ch/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
  cat > "$S/ch/users.xml" <<XML
<yandex><profiles><default/></profiles><quotas><default/></quotas><users>
  <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
  <test><password>test</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></test>
</users></yandex>
XML
  clickhouse-server --config-file="$S/ch/config.xml" >"$S/ch/log/stdout" 2>&1 &
  echo $! >"$S/ch/pid"
  wait_for "curl -sf http://127.0.0.1:$CH_HTTP/ping"
}

start_snowflake() {
  if [ ! -x "$FSV/bin/python" ]; then
    python3 -m venv "$FSV"
    # fakesnow 0.12.1 breaks with snowflake-connector-python 5.x
    "$FSV/bin/pip" install -q 'fakesnow[server]==0.12.1' 'snowflake-connector-python<5'
  fi
  # The S3-protocol server behind the test server's internal stages (its own venv: moto's boto3 must not
  # move the connector's).
  if [ ! -x "$MOTOV/bin/moto_server" ]; then
    python3 -m venv "$MOTOV"
    "$MOTOV/bin/pip" install -q 'moto[server]==5.2.5'
  fi
  mkdir -p "$S"
  "$MOTOV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$S/moto.log" 2>&1 &
  echo $! >"$S/moto.pid"
  wait_for "curl -sf -o /dev/null http://127.0.0.1:$S3_PORT/"
  FAKESNOW_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" \
    "$FSV/bin/python" "$here/fakesnow_json.py" 127.0.0.1 "$SF_PORT" >"$S/fakesnow.log" 2>&1 &
  echo $! >"$S/fakesnow.pid"
  wait_for "curl -s -o /dev/null http://127.0.0.1:$SF_PORT/"
}

start_chdb() {
  if ! "$CHV/bin/python" -c 'import chdb' 2>/dev/null; then
    rm -rf "$CHV"
    python3 -m venv "$CHV"
    # About 900 MB; pinned so that the engine version the tests report is the one documented.
    "$CHV/bin/pip" install -q 'chdb==4.4.0'
  fi
  "$CHV/bin/python" -c 'import chdb; chdb.query("SELECT 1")' >/dev/null
}

print_env() {
  cat <<ENV
export SLUICE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export SLUICE_TEST_MYSQL_URL=mysql://test:test@127.0.0.1:$MY_PORT/test
export SLUICE_TEST_CLICKHOUSE_NATIVE=127.0.0.1:$CH_TCP
export SLUICE_TEST_CLICKHOUSE_NATIVE_TLS=127.0.0.1:$CH_TLS
export SLUICE_TEST_CLICKHOUSE_TLS_CA=$S/ch/tls/ca.crt
export SLUICE_TEST_CLICKHOUSE_HTTP=http://127.0.0.1:$CH_HTTP
export SLUICE_TEST_CLICKHOUSE_USER=test SLUICE_TEST_CLICKHOUSE_PASSWORD=test
export SLUICE_TEST_SNOWFLAKE_URL=http://127.0.0.1:$SF_PORT
export SLUICE_TEST_CHDB_PYTHON=$CHV/bin/python
export SLUICE_TEST_S3_URL=http://127.0.0.1:$S3_PORT
ENV
}

stop() {
  [ -f "$S/fakesnow.pid" ] && kill "$(cat "$S/fakesnow.pid")" 2>/dev/null || true
  [ -f "$S/moto.pid" ] && kill "$(cat "$S/moto.pid")" 2>/dev/null || true
  [ -f "$S/ch/pid" ] && kill "$(cat "$S/ch/pid")" 2>/dev/null || true
  [ -f "$S/my/pid" ] && kill "$(cat "$S/my/pid")" 2>/dev/null || true
  if [ -d "$S/pg/data" ] && [ -n "$(pg_bin)" ]; then
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$S/pg/data" -m fast stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start)
    shift
    [ $# -gt 0 ] || set -- pg
    stop
    for s in "$@"; do
      case "$s" in
        pg|postgres) start_pg ;;
        mysql|mariadb) start_mysql ;;
        clickhouse) start_clickhouse ;;
        snowflake) start_snowflake ;;
        chdb) start_chdb ;;
        *) log "unknown service $s"; exit 2 ;;
      esac
      log "$s started"
    done
    print_env ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start [pg] [mysql] [clickhouse] [snowflake] [chdb] | stop | env" >&2; exit 2 ;;
esac
