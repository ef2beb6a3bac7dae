#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) from its committed seed corpus.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); works on the stable toolchain through
# RUSTC_BOOTSTRAP=1. New inputs go to a scratch corpus so the committed seeds stay small;
# a crash leaves its input in fuzz/artifacts/<target>/ and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
targets=(frame_decode handshake_request handshake_response connection_server connection_client inflate)
export RUSTC_BOOTSTRAP=1
cargo fuzz build --release
for target in "${targets[@]}"; do
  scratch="$(mktemp -d)"
  log="$(mktemp)"
  mkdir -p "corpus/$target"
  echo "== fuzz $target for ${seconds}s"
  status=0
  cargo fuzz run --release "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|DONE|ERROR|SUMMARY|panicked" "$log" | tail -n 8 || true
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed (exit $status); see fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  rm -f "$log"
done
