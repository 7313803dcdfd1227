#!/usr/bin/env bash
# Runs the pytest-postgresql / pytest-redis suite of this directory (conftest.py,
# test_suite.py, schema.sql) once:
#
#     python3 -m pytest -q -p no:cacheprovider bench/python
#
# and prints its wall time on the last line as `pytest_ms=<n>`; exits with pytest's status.
# Extra arguments go to pytest, before the path (e.g. `--durations=0 -vv`).
#
# PostgreSQL refuses to run as root and pytest-postgresql starts it as the user running
# pytest, so as root the whole pytest runs as an unprivileged user (BENCH_PYTEST_USER, default
# `postgres`) on a copy of the three files it owns. That user cannot run a Python under /root
# (pyenv's, mode 0700), so as root the interpreter is Debian's /usr/bin/python3 in a virtual
# environment of its own, BENCH_PYTEST_VENV (default target/bench-pytest-venv), made from
# requirements.txt on first use or when requirements.txt changes (PyPI needed then only).
# As any other user: `python3` (or $PYTHON) with requirements.txt installed, on the files in
# place.
#
# Everything of the run (pytest's base temp, the servers' data, logs and sockets) lives in one
# temporary directory (TMPDIR for pytest), removed at the end, after killing any process still
# working in it (there is none unless pytest itself was killed). It is made under $TMPDIR
# (default /tmp), and the filesystem matters: each test's CREATE DATABASE ... TEMPLATE cost
# about 10 ms on tmpfs and 40-150 ms on this machine's ext4 /tmp, fsync=off notwithstanding.
# Compare with the Rust side on the same one (e.g. TMPDIR=/dev/shm for both).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

run=$(mktemp -d "${TMPDIR:-/tmp}/bench-pytest.XXXXXX")

cleanup() {
    cd /
    # Safety net: a server whose pytest died before its finalizers ran still works in $run
    # (PostgreSQL's processes in their data directory, redis-server in its --dir).
    local pid cwd left=""
    for pid in /proc/[0-9]*; do
        pid=${pid#/proc/}
        [ "$pid" = "$$" ] && continue
        cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
        case "$cwd" in
            "$run" | "$run"/*) left="$left $pid" ;;
        esac
    done
    if [ -n "$left" ]; then
        echo "run_suite.sh: killing processes left in $run:$left" >&2
        # A killed PostgreSQL leaves its dynamic shared memory segments behind: note them first.
        local segments
        segments=$(for pid in $left; do
            grep -o '/dev/shm/PostgreSQL\.[0-9]*' "/proc/$pid/maps" 2>/dev/null
        done | sort -u) || true
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
        sleep 0.2
        # shellcheck disable=SC2086
        [ -z "$segments" ] || rm -f $segments
    fi
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" -eq 0 ]; then
    user=${BENCH_PYTEST_USER:-postgres}
    venv=${BENCH_PYTEST_VENV:-$target/bench-pytest-venv}
    if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
        echo "run_suite.sh: installing requirements.txt into $venv" >&2
        [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$here/requirements.txt" >&2
        cp "$here/requirements.txt" "$venv/requirements.txt"
    fi
    python=$venv/bin/python
    # The same layout as the repository, so that the pytest command line is the same.
    mkdir -p "$run/bench/python"
    cp "$here/conftest.py" "$here/test_suite.py" "$here/schema.sql" "$run/bench/python/"
    chown -R "$user:" "$run"
    as_user=(setpriv "--reuid=$user" "--regid=$user" --init-groups env "HOME=$run")
    workdir=$run
else
    python=${PYTHON:-python3}
    as_user=()
    workdir=$repo
fi

cd "$workdir"
status=0
start=$(date +%s%N)
TMPDIR=$run PYTHONDONTWRITEBYTECODE=1 "${as_user[@]}" \
    "$python" -m pytest -q -p no:cacheprovider "$@" bench/python || status=$?
end=$(date +%s%N)
echo "pytest_ms=$(((end - start) / 1000000))"
exit "$status"
