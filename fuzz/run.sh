#!/usr/bin/env bash
# Runs the libFuzzer targets on stable Rust (no cargo-fuzz/nightly needed):
#   fuzz/run.sh [seconds-per-target] [target...]
# Seeds come from the conformance queries and the golden LogQL tests; crashes are
# written to fuzz/artifacts/<target>/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(logql_parse logql_pipeline)

export RUSTFLAGS="${RUSTFLAGS:-} --cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares"
# An explicit --target keeps the coverage flags off build scripts and proc macros.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path "$here/Cargo.toml" --bins --target "$triple"

python3 "$here/seeds.py" "$here/corpus"
for t in "${targets[@]}"; do
  mkdir -p "$here/artifacts/$t" "$here/corpus/$t"
  echo "== $t for ${secs}s"
  "$here/target/$triple/release/$t" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -artifact_prefix="$here/artifacts/$t/" -print_final_stats=1 \
    "$here/corpus/$t" "$here/corpus/seed-$t"
done
