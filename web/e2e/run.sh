#!/usr/bin/env bash
# Runs the end-to-end browser test (seed.spec.mjs) against a fresh `sluice serve`:
# starts the server on a free loopback port with a throwaway data directory and token, creates the
# destination table in PostgreSQL, runs the test, then stops the server and drops the table.
#
#   web/e2e/run.sh
#
# PostgreSQL: SLUICE_E2E_PG_HOST/_PORT/_USER/_PASSWORD/_DATABASE, or SLUICE_TEST_POSTGRES_URL
# (postgres://user[:password]@host:port/database, as scripts/services.sh prints it).
# The server binary: SLUICE_BIN (default: target/debug/sluice, built with cargo when missing).
# Screenshots: SLUICE_E2E_ARTIFACTS (default artifacts/e2e at the repository root).
set -euo pipefail
web=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$web/.." && pwd)

if [ -z "${SLUICE_E2E_PG_HOST:-}" ] && [ -n "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  eval "$(node -e '
    const u = new URL(process.argv[1]);
    const q = (s) => "\x27" + s.replace(/\x27/g, "\x27\\\x27\x27") + "\x27";
    console.log(`export SLUICE_E2E_PG_HOST=${q(u.hostname)} SLUICE_E2E_PG_PORT=${q(u.port || "5432")}`);
    console.log(`export SLUICE_E2E_PG_USER=${q(decodeURIComponent(u.username || "postgres"))}`);
    console.log(`export SLUICE_E2E_PG_PASSWORD=${q(decodeURIComponent(u.password))}`);
    console.log(`export SLUICE_E2E_PG_DATABASE=${q(u.pathname.slice(1) || "postgres")}`);
  ' "$SLUICE_TEST_POSTGRES_URL")"
fi
: "${SLUICE_E2E_PG_HOST:?set SLUICE_E2E_PG_HOST (or SLUICE_TEST_POSTGRES_URL)}"
export SLUICE_E2E_PG_PORT=${SLUICE_E2E_PG_PORT:-5432} SLUICE_E2E_PG_USER=${SLUICE_E2E_PG_USER:-postgres}
export SLUICE_E2E_PG_PASSWORD=${SLUICE_E2E_PG_PASSWORD:-} SLUICE_E2E_PG_DATABASE=${SLUICE_E2E_PG_DATABASE:-postgres}
export SLUICE_E2E_ARTIFACTS=${SLUICE_E2E_ARTIFACTS:-$root/artifacts/e2e}
# The second walk (MariaDB, JavaScript transformation) runs when a MySQL/MariaDB server is given.
export SLUICE_E2E_MYSQL_URL=${SLUICE_E2E_MYSQL_URL:-${SLUICE_TEST_MYSQL_URL:-}}

[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
(cd "$web" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })

bin=${SLUICE_BIN:-$root/target/debug/sluice}
[ -x "$bin" ] || (cd "$root" && cargo build -q -p sluice)

work=$(mktemp -d /tmp/sluice-e2e.XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export SLUICE_URL="http://127.0.0.1:$port"
export SLUICE_TOKEN="e2e-$(node -e 'console.log(require("crypto").randomBytes(16).toString("hex"))')"
export SLUICE_E2E_TABLE="e2e_customers_$(node -e 'console.log(require("crypto").randomBytes(4).toString("hex"))')"

psql_() { PGPASSWORD="$SLUICE_E2E_PG_PASSWORD" psql -q -v ON_ERROR_STOP=1 -h "$SLUICE_E2E_PG_HOST" -p "$SLUICE_E2E_PG_PORT" -U "$SLUICE_E2E_PG_USER" -d "$SLUICE_E2E_PG_DATABASE" "$@"; }
if command -v psql >/dev/null; then
  psql_ -c "CREATE TABLE $SLUICE_E2E_TABLE (customer_id text PRIMARY KEY, email text, full_name text, country text)"
fi

server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  command -v psql >/dev/null && psql_ -c "DROP TABLE IF EXISTS $SLUICE_E2E_TABLE" || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --admin-token "$SLUICE_TOKEN" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "$SLUICE_URL/v1/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "sluice serve exited" >&2; exit 1; }
  sleep 0.1
done

if ! curl -fsS "$SLUICE_URL/" | grep -q 'id="app"'; then
  echo "sluice serve does not serve the admin UI at / (was web/dist embedded into the binary?)" >&2
  exit 1
fi

status=0
(cd "$web" && node e2e/seed.spec.mjs) || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- sluice serve log (last 60 lines) ---" >&2
  tail -n 60 "$work/server.log" >&2
fi
exit "$status"
