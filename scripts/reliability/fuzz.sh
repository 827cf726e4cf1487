#!/usr/bin/env bash
# Reliability, long form: every fuzz target (fuzz/, cargo-fuzz) run for a bounded time, each
# growing its corpus in fuzz/corpus/<target>. A crash stops that target, leaves its input in
# fuzz/artifacts/<target>/ and makes this script exit 1 after the others ran.
#
# Usage: scripts/reliability/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET defaults to 300; the targets default to all of them.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler (libFuzzer is built from
# source). cargo-fuzz wants a nightly compiler; RUSTC_BOOTSTRAP=1 lets stable build it.
# The short form is the test command: every corpus file is replayed on stable by the owning
# crates' `fuzz_corpus` tests.
#
# Afterwards, keep the corpora small before committing them:
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz cmin -s none <target>)
set -uo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1

# No sanitizer: the code under test is safe Rust (a panic is the finding); ASan would cost
# 2-3x in executions for nothing. Debug assertions on: overflow checks find bugs too.
build=(-s none -a)
cargo fuzz build "${build[@]}" || exit 2

failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== $target: ${seconds}s"
  # -rss_limit_mb: an input that makes the code under test hold more than this is a finding;
  # -timeout: so is one input that runs longer than this many seconds (libFuzzer's default,
  # 1200, is longer than a whole run).
  if ! cargo fuzz run "${build[@]}" "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -timeout=30 \
      -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "no crash in: ${targets[*]}"
