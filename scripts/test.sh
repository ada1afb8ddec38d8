#!/usr/bin/env bash
# Sluice's whole test suite against real servers: starts the database servers the tests need on loopback
# (installing missing packages), runs the Rust tests (the hostile-input corpus among them), a schema-based
# fuzz of a live server's API, a bounded coverage-guided fuzz of the input parsers, the web UI's unit tests
# and the end-to-end browser test, and stops the servers. A test that cannot reach its server, and a step
# whose tool is missing and cannot be installed, fails; nothing is skipped.
#
#   scripts/test.sh            everything
#   SLUICE_TEST_SERVICES="pg mysql"  which servers to start (default: all the suite needs)
#   SLUICE_SCHEMATHESIS_SECONDS=120  the API fuzz's time budget (plus its quick coverage phase)
#   SLUICE_FUZZ_SECONDS=60           each parser fuzz target's time
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# One build of everything, not kept for editing: incremental caches only take disk (several GB).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

services=${SLUICE_TEST_SERVICES:-pg mysql clickhouse snowflake chdb}
# shellcheck disable=SC2086
eval "$(scripts/services.sh start $services)"
trap 'scripts/services.sh stop' EXIT

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
log=$(mktemp)
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
rm -f "$log"

step "schemathesis against a live server's /v1/openapi.json"
SLUICE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sluice" scripts/schemathesis.sh

step "fuzz the filter, mapping and profile parsers (fuzz/, nightly)"
scripts/fuzz.sh

if [ -f web/package.json ]; then
  step "web UI unit tests"
  (cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm test --silent)
  step "end-to-end browser test (screenshots in artifacts/e2e)"
  SLUICE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sluice" web/e2e/run.sh
fi
step "all tests passed"
echo "rust: $passed passed, $failed failed"
