#!/usr/bin/env bash
# Schema-based fuzzing of the REST API: starts `sluice serve` on a fresh data directory and runs
# schemathesis against its `/v1/openapi.json` with the admin token for a bounded time. It fails on any
# 5xx and on any answer whose status, content type or body the document does not describe.
#
#   scripts/schemathesis.sh                     (SLUICE_SCHEMATHESIS_SECONDS=120 by default)
#   SLUICE_BIN=path/to/sluice scripts/schemathesis.sh
#   SLUICE_SCHEMATHESIS_CHECKS=all scripts/schemathesis.sh   (stricter checks, to explore; see below)
#
# The default checks are those CI holds to. `all` also reports requests the document allows and Sluice
# refuses (its checks of names, types and filters are stricter than a JSON schema says) and profiles
# refused one by one in a 200 (`rejected`), by design.
#
# schemathesis comes from PyPI into a virtualenv kept between runs (SCHEMATHESIS_VENV). When run as root
# the server runs as `nobody`: generated requests create SQLite destinations wherever their path says,
# and must not be able to write anywhere root can.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${SLUICE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/sluice}
seconds=${SLUICE_SCHEMATHESIS_SECONDS:-120}
venv=${SCHEMATHESIS_VENV:-/var/cache/sluice-schemathesis-venv}
version=4.32.5

if [ ! -x "$bin" ]; then
  echo "schemathesis: no sluice binary at $bin (build it with cargo build -p sluice, or set SLUICE_BIN)" >&2
  exit 1
fi
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

work=$(mktemp -d)
token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
as_user=()
if [ "$(id -u)" = 0 ]; then
  chown nobody "$work"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
"${as_user[@]}" env -i PATH="$PATH" HOME="$work" SLUICE_DATA_DIR="$work/data" SLUICE_ADMIN_TOKEN="$token" \
  SLUICE_LOG=warn "$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

url=
for _ in $(seq 1 100); do
  url=$(grep -o 'http://[0-9.:]*' "$work/serve.out" 2>/dev/null | head -n1 || true)
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis: sluice serve exited:" >&2
    cat "$work/serve.err" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$url" ] || { echo "schemathesis: sluice serve did not start" >&2; exit 1; }

checks=${SLUICE_SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}
# `filter_too_much` is a check of the generator, not of the API: Hypothesis gives up on an operation when
# it throws away too many of its own drafts, as it sometimes does for a path parameter (a profile id) that
# must be a non-empty string safe in a URL path. It failed a CI run with every one of its 12,813 requests
# answered as documented; every check of Sluice's answers stays on.
st=("$venv/bin/st" run "$url/v1/openapi.json" -H "Authorization: Bearer $token" --checks "$checks"
  --workers 2 --no-color --request-timeout 30 --generation-database none
  --suppress-health-check filter_too_much)
status=0
# The coverage phase (boundary values of every parameter and field) is quick, but Hypothesis trips over
# the recursive filter schema there (a SystemError or KeyError from Python's `ast` inside the tool,
# not an answer of Sluice's), so the operations whose body holds a filter are left to the fuzzing and
# stateful phases, which cover them.
with_filter='^(create|replace|patch|validate|preview|previewSaved)Pipeline$'
# From the scratch folder: schemathesis keeps its state (`.schemathesis/`) where it runs.
cd "$work"
coverage=0
"${st[@]}" --phases coverage --exclude-operation-id-regex "$with_filter" >"$work/coverage.log" 2>&1 || coverage=$?
cat "$work/coverage.log"
# The same interpreter bug (CPython 3.11's "AST constructor recursion depth mismatch", raised when
# Hypothesis parses a lambda's source deep in a recursive strategy) strikes other operations whose body
# holds free-form JSON now and then, depending on the drawn case. A run it ends says nothing about
# Sluice: the phase runs once more (another seed), and that result stands; a real failure of the API
# fails both.
if [ "$coverage" -ne 0 ] && grep -q "AST constructor recursion depth mismatch" "$work/coverage.log"; then
  echo "schemathesis: the coverage phase hit Python's AST recursion bug inside the tool; running it again" >&2
  coverage=0
  "${st[@]}" --phases coverage --exclude-operation-id-regex "$with_filter" || coverage=$?
fi
[ "$coverage" -eq 0 ] || status=$coverage
"${st[@]}" --phases examples,fuzzing,stateful --max-time "$seconds" || status=$?
cd - >/dev/null
if ! kill -0 "$server" 2>/dev/null; then
  echo "schemathesis: sluice serve died during the run:" >&2
  tail -n 50 "$work/serve.err" >&2
  status=1
fi
exit "$status"
