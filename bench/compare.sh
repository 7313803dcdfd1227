#!/bin/sh
# Runs the Rust benchmark and the same scenarios with Python mirakuru 3.1.0, then prints the
# speed-up per scenario against the goals. Arguments go to both: --runs N (default 20),
# --warmup N, --only NAME[,NAME...]. The raw JSON lines are kept in target/bench-rust.jsonl and
# target/bench-python.jsonl.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}

# One binary is the benchmark and, started as `mirakuru-bench helper-service ...`, the helper
# service both sides start.
cargo build --release --quiet -p mirakuru-bench
echo "== Rust (mirakuru-bench) ==" >&2
status=0
"$target/release/mirakuru-bench" --json "$@" > "$target/bench-rust.jsonl" || status=$?
echo "== Python mirakuru 3.1.0 ==" >&2
"$repo/bench/python/run.sh" "$@" > "$target/bench-python.jsonl" || status=$?
python3 "$repo/bench/compare.py" "$target/bench-rust.jsonl" "$target/bench-python.jsonl"
exit "$status"
