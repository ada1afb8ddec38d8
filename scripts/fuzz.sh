#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the parsers that read user input (fuzz/): the filter parser, the
# mapping expression parser and evaluator, and profile JSON (input validation and the lazy scan of
# stored documents). Each target runs SLUICE_FUZZ_SECONDS (60) from the corpus kept in fuzz/corpus/;
# a crash, a failed assertion, a leak or a timeout fails the script and leaves the input in
# fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                    every target
#   scripts/fuzz.sh filter mapping     some of them
#   SLUICE_FUZZ_MERGE=1 scripts/fuzz.sh   also add the inputs that found new coverage to fuzz/corpus/
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${SLUICE_FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(filter mapping profile)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export CARGO_TARGET_DIR=${SLUICE_FUZZ_TARGET_DIR:-$PWD/target}

cargo +nightly fuzz build -O
status=0
for t in "${targets[@]}"; do
  found=$(mktemp -d)
  echo "==> fuzz $t for ${seconds}s"
  # New inputs go to a scratch folder first; the kept corpus is read, not rewritten, unless asked.
  if ! cargo +nightly fuzz run -O "$t" "$found" "corpus/$t" -- \
      -max_total_time="$seconds" -dict="dicts/$t.dict" -max_len=4096 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 2>"$found.log"; then
    status=1
    tail -n 40 "$found.log" >&2
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
  else
    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$found.log" || true
    if [ "${SLUICE_FUZZ_MERGE:-}" = 1 ]; then
      cargo +nightly fuzz run -O "$t" "corpus/$t" "$found" -- -merge=1 2>/dev/null
    fi
  fi
  rm -rf "$found" "$found.log"
done
exit "$status"
