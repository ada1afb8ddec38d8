#!/usr/bin/env bash
# Peak resident memory of `sluice serve` answering oversized request bodies (see BENCHMARKS.md).
# Usage: scripts/body-limits-rss.sh [path/to/sluice]   (default: target/debug/sluice)
# Each case gets a fresh server, so its VmHWM is that case's peak.
set -euo pipefail
BIN=${1:-target/debug/sluice}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A profile batch of tiny profiles ({"_id":"p0"},...), padded with spaces to exactly $1 bytes.
make_batch() {
  python3 - "$1" "$2" <<'PY'
import sys
size, path = int(sys.argv[1]), sys.argv[2]
total = len('{"profiles":[]}')
with open(path, "w") as f:
    f.write('{"profiles":[')
    i = 0
    while True:
        item = ('' if i == 0 else ',') + '{"_id":"p%d"}' % i
        if total + len(item) > size:
            break
        f.write(item)
        total += len(item)
        i += 1
    f.write(']}' + ' ' * (size - total))
PY
}

make_batch 100000000 "$WORK/100mb.json"
make_batch 60000000 "$WORK/60mb.json"

# case name, body file, extra curl flags
run_case() {
  local name=$1 body=$2; shift 2
  local data="$WORK/data-$name"
  SLUICE_DATA_DIR="$data" SLUICE_ADMIN_TOKEN=bench SLUICE_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:0 >"$WORK/out-$name" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q serving "$WORK/out-$name" 2>/dev/null && break; sleep 0.1; done
  local url
  url=$(grep -o 'http://[0-9.:]*' "$WORK/out-$name" | head -1)
  local before
  before=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  local start end code
  start=$(date +%s.%N)
  code=$(curl -s -o "$WORK/answer-$name" -w '%{http_code}' -X POST "$url/v1/profiles" \
    -H 'authorization: Bearer bench' -H 'content-type: application/json' "$@" \
    --data-binary @"$body" || true)
  end=$(date +%s.%N)
  local peak
  peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-34s HTTP %s in %5.2f s  peak RSS %4d MB (idle %d MB)  %s\n' "$name" "$code" \
    "$(echo "$end - $start" | bc)" $((peak / 1024)) $((before / 1024)) \
    "$(head -c 120 "$WORK/answer-$name")"
}

run_case "100 MB, Content-Length" "$WORK/100mb.json"
run_case "100 MB, chunked (no length)" "$WORK/100mb.json" -H 'Transfer-Encoding: chunked'
run_case "60 MB batch, 3.2M profiles" "$WORK/60mb.json"
