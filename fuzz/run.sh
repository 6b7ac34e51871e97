#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on the committed
# seed corpus, on the stable toolchain: cargo-fuzz needs nightly flags,
# which RUSTC_BOOTSTRAP allows, and no sanitizer (none is built for
# stable). Needs `cargo install cargo-fuzz`. Findings land in
# fuzz/artifacts/<target>/; new corpus entries in a scratch copy.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
targets="${2:-promql expfmt rule_file config analysis_template api discovery}"
export RUSTC_BOOTSTRAP=1
for t in $targets; do
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$t/." "$work/"
  echo "== $t for ${secs}s"
  # A finding ends that target's run; the others still run.
  cargo fuzz run --sanitizer none "$t" "$work" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 -max_len=65536 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|Done|ERROR|panicked|SUMMARY|crash-|timeout-|oom-" | tail -5 || true
  rm -rf "$work"
done
