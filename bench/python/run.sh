#!/bin/sh
# Runs the mirakuru-bench scenarios with Python mirakuru 3.1.0, in a virtual environment of its
# own under target/bench-venv (created on first use; PyPI must be reachable then).
# Arguments go to bench.py: --runs N, --warmup N, --only NAME[,NAME...].
# Prints one JSON object per line on stdout; progress and notes on stderr.
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
venv=${MIRAKURU_BENCH_VENV:-$target/bench-venv}
version=3.1.0

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
# Install (or fix) the pinned version only when needed: later runs work offline.
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mirakuru"))' 2>/dev/null)" != "$version" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mirakuru==$version" >&2
fi

# The helper service the scenarios start: the Rust benchmark's binary, made the service by its
# first argument (`helper-service`), so that both sides start the same program.
cargo build --release --quiet -p mirakuru-bench >&2

exec "$venv/bin/python" "$repo/bench/python/bench.py" \
    --service "$target/release/mirakuru-bench" --service-arg helper-service "$@"
