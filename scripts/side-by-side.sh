#!/usr/bin/env bash
# The side-by-side table of BENCHMARKS.md ("Side by side"): Sluice against `psql \copy`, COPY into a
# temporary table + INSERT … ON CONFLICT, and Sling 1.4.11 with and without an updated_at cursor, at
# 100,000 and 1,000,000 profiles, every phase checked by row count and an md5 over all columns.
#
#   SLUICE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/side-by-side.sh
#
# Needs a PostgreSQL superuser (the phases run CHECKPOINT), `psql` and Python 3 (for Sling's wheel).
# SLUICE_SBS_PROFILES=100000 measures one size; SLUICE_BIN=<binary> measures another build of Sluice.
# The tables it creates are dropped at the end; it needs about 3 GB of disk in the database at 1,000,000.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${SLUICE_BENCH_POSTGRES_URL:?set SLUICE_BENCH_POSTGRES_URL to a PostgreSQL server (a superuser)}"
command -v psql >/dev/null || { echo "psql is needed (apt-get install postgresql-client)" >&2; exit 1; }

# Sling from its platform wheel, which carries the binary (the plain `sling` package downloads one at
# first use), in a virtual environment of its own.
venv="${SLUICE_SLING_VENV:-/var/cache/sluice-sling-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import sling_linux_amd64' 2>/dev/null; then
    "$venv/bin/pip" install --quiet 'sling-linux-amd64==1.4.11'
fi
sling="$("$venv/bin/python" -c 'import os, sling_linux_amd64 as s; print(os.path.join(os.path.dirname(s.__file__), "bin", "sling-linux-amd64"))')"
chmod +x "$sling"
"$sling" --version | grep -q 1.4.11 || { echo "expected Sling 1.4.11 at $sling" >&2; exit 1; }
export SLUICE_SLING="$sling"

if [ -z "${SLUICE_BIN:-}" ]; then
    cargo build --release -p sluice --bin sluice
fi
exec cargo bench --profile release -p sluice --bench side_by_side
