#!/usr/bin/env python3
"""Joins the JSON lines of mirakuru-bench (Rust) and bench/python/bench.py (Python mirakuru)
into one table: medians, the speed-up, and whether the speed-up goal holds.

    compare.py RUST.jsonl PYTHON.jsonl
"""

import json
import sys

# The product goals: how many times faster than Python mirakuru 3.1.0 (medians).
SPEEDUP_GOALS = {
    "tcp-redis": 5,
    "output-redis": 5,
    "stop-redis": 5,
    "tcp-postgres": 3,
    "tcp-memcached": 10,
    "http-nginx": 10,
    "simple-start-stop": 20,
}


def load(path):
    lines = {}
    with open(path) as f:
        for raw in f:
            raw = raw.strip()
            if raw:
                line = json.loads(raw)
                lines[line["scenario"]] = line
    return lines


def fmt(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def main():
    rust, python = load(sys.argv[1]), load(sys.argv[2])
    # memory is about bytes and threads, not speed: reported below the table.
    names = [n for n in list(rust) + [n for n in python if n not in rust] if n != "memory"]
    print(f"{'scenario':<20} {'rust ms':>9} {'python ms':>10} {'speed-up':>9}  {'goal':<6} result")
    for name in names:
        r, p = rust.get(name, {}), python.get(name, {})
        rm, pm = r.get("median_ms"), p.get("median_ms")
        speedup = pm / rm if rm and pm else None
        goal = SPEEDUP_GOALS.get(name)
        if goal is None:
            result = "n/a"
        elif speedup is None:
            result = "n/a"
        else:
            result = "ok" if speedup >= goal else "MISSED"
        goal_text = f">={goal}x" if goal else "-"
        print(f"{name:<20} {fmt(rm):>9} {fmt(pm):>10} {fmt(speedup, '.1f') + 'x' if speedup else '-':>9}"
              f"  {goal_text:<6} {result}")
    for key in ("median_ms", "rss_kib_per_executor", "threads_per_executor"):
        r, p = rust.get("memory", {}).get(key), python.get("memory", {}).get(key)
        if r is not None or p is not None:
            what = "start() with up to 100 running, median ms" if key == "median_ms" else key
            print(f"memory {what}: rust {fmt(r, '.2f')}, python {fmt(p, '.2f')}")


if __name__ == "__main__":
    main()
