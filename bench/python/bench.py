#!/usr/bin/env python3
"""The scenarios of `mirakuru-bench`, run with Python mirakuru (3.1.0, pinned by run.sh).

Prints one JSON object per line, with the keys of the Rust benchmark:
    {"scenario": "...", "runs": N, "median_ms": x, "oracle_median_ms": null,
     "min_ms": a, "max_ms": b}
(no oracle here: the Rust benchmark measures it). Progress and notes go to stderr.

Every executor keeps Python mirakuru's defaults (`sleep=0.1` above all): that is what a user
of it gets, and what the comparison is about. The command lines are those of
bench/src/services.rs; keep the two in sync. The helper service is the Rust benchmark's own
binary, made the service by its first argument, so that both sides start the same program:

    bench.py --service PATH [--service-arg ARG]... [--runs N] [--warmup N] [--only NAME[,NAME...]]
"""

import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from mirakuru import (
    HTTPExecutor,
    OutputExecutor,
    PidExecutor,
    SimpleExecutor,
    TCPExecutor,
    UnixSocketExecutor,
)

HELPER_DELAY_MS = "20"
HELPER_BANNER = "mirakuru-bench-ready"
REDIS_BANNER = "Ready to accept connections"
MEMORY_EXECUTORS = 100
TAG_VAR = "MIRAKURU_TEST_TAG"
TAG = f"py-bench-{os.getpid()}-{uuid.uuid4()}"

# Tagged, so that the end-of-run check finds whatever an executor left behind.
ENVVARS = {TAG_VAR: TAG}
# stderr is not read by these executors: keep the services' logs off the report. (Not for
# OutputExecutor: it insists on reading every stream it is given.)
QUIET = {"envvars": ENVVARS, "stderr": subprocess.DEVNULL}
LOUD = {"envvars": ENVVARS}


def is_root():
    return os.geteuid() == 0


# ---------------------------------------------------------------------------------------------
# Ports, scratch directories, programs
# ---------------------------------------------------------------------------------------------

_given_ports = set()


def free_port():
    """A port that was free a moment ago and that no earlier round of this run got."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


class Run:
    """What the scenarios share: the helper, the scratch root, the installed programs."""

    def __init__(self, helper):
        self.helper = helper  # the helper's command line without its flags
        self.root = tempfile.mkdtemp(prefix="mk-py-", dir="/tmp")
        self.redis = find_program("redis-server")
        self.memcached = find_program("memcached")
        self.nginx = find_program("nginx")
        self.postgres = find_postgres()
        self.cluster = None  # made by the first tcp-postgres round
        self.leaks = []  # daemons that survived stop()

    def scratch(self):
        return tempfile.mkdtemp(prefix="r", dir=self.root)


def find_program(name):
    dirs = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return path
    return None


def find_postgres():
    best = None
    for bin_dir in glob.glob("/usr/lib/postgresql/*/bin"):
        version = os.path.basename(os.path.dirname(bin_dir))
        ok = all(os.path.isfile(os.path.join(bin_dir, p)) for p in ("initdb", "postgres"))
        if ok and version.isdigit() and (best is None or int(version) > best[0]):
            best = (int(version), bin_dir)
    return best and best[1]


# ---------------------------------------------------------------------------------------------
# Command lines (mirrors of services.rs)
# ---------------------------------------------------------------------------------------------


def helper_cmd(run, *flags):
    return [*run.helper, "--delay-ms", HELPER_DELAY_MS, *flags]


def redis_cmd(run, port, unix_socket=None):
    cmd = [run.redis, "--port", str(port), "--save", "", "--appendonly", "no"]
    if unix_socket:
        cmd += ["--unixsocket", unix_socket]
    return cmd


def memcached_cmd(run, port):
    cmd = [run.memcached, "-p", str(port), "-l", "127.0.0.1", "-U", "0"]
    if is_root():
        cmd += ["-u", "root"]
    return cmd


def nginx_setup(run, daemon):
    """A scratch directory with nginx.conf; returns (command, port, pid file, directory)."""
    root = run.scratch()
    port = free_port()
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"daemon {'on' if daemon else 'off'};\n"
            "master_process on;\n"
            "worker_processes 1;\n"
            f"pid {root}/nginx.pid;\n"
            f"error_log {root}/error.log;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {root}/access.log;\n"
            f"    client_body_temp_path {root}/client_body;\n"
            f"    proxy_temp_path {root}/proxy;\n"
            f"    fastcgi_temp_path {root}/fastcgi;\n"
            f"    uwsgi_temp_path {root}/uwsgi;\n"
            f"    scgi_temp_path {root}/scgi;\n"
            "    server {\n"
            f"        listen 127.0.0.1:{port};\n"
            '        location / { return 200 "ok\\n"; }\n'
            "    }\n"
            "}\n"
        )
    cmd = [run.nginx, "-p", f"{root}/", "-c", conf, "-e", os.path.join(root, "error.log")]
    return cmd, port, os.path.join(root, "nginx.pid"), root


class Cluster:
    """initdb once per run (untimed); every round starts and stops the same cluster."""

    def __init__(self, run):
        self.dir = run.scratch()
        self.data = os.path.join(self.dir, "data")
        self.postgres = os.path.join(run.postgres, "postgres")
        self.popen = {}
        if is_root():
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            os.chmod(run.root, 0o711)
            # Python mirakuru has no `user` option: Popen's own, through popen_kwargs.
            self.popen = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        subprocess.run(
            [os.path.join(run.postgres, "initdb"), "-D", self.data, "-A", "trust", "-U",
             "postgres", "--no-sync", "--no-locale", "-E", "UTF8"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, check=True, **self.popen,
        )

    def cmd(self, port):
        return [self.postgres, "-D", self.data, "-p", str(port), "-k", self.dir,
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]


# ---------------------------------------------------------------------------------------------
# Measurement shapes
# ---------------------------------------------------------------------------------------------


def start_to_ready(make):
    """`make()` returns (executor, cleanup); times start(), then stops untimed."""
    executor, cleanup = make()
    try:
        started = time.perf_counter()
        executor.start()
        took = time.perf_counter() - started
        executor.stop()
        return took
    finally:
        if executor.running():
            executor.kill()
        cleanup()


def wait_banner(executor):
    """Untimed: read the helper's stdout until its banner (the signals are set up then)."""
    while True:
        line = executor.process.stdout.readline()
        if not line:
            raise RuntimeError("the helper closed stdout before its banner")
        if HELPER_BANNER in line:
            return


def timed_stop(executor):
    try:
        started = time.perf_counter()
        executor.stop()
        return time.perf_counter() - started
    finally:
        if executor.running():
            executor.kill()


def nothing():
    pass


def remove(path):
    return lambda: shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Scenarios: each returns one duration in seconds
# ---------------------------------------------------------------------------------------------


def simple_start_stop(run):
    executor = SimpleExecutor([*run.helper], **QUIET)
    try:
        started = time.perf_counter()
        executor.start()
        executor.stop()
        return time.perf_counter() - started
    finally:
        if executor.running():
            executor.kill()


def tcp_helper(run):
    port = free_port()
    return start_to_ready(
        lambda: (TCPExecutor(helper_cmd(run, "--tcp", str(port)), "127.0.0.1", port, **QUIET),
                 nothing))


def http_helper(run):
    port = free_port()
    return start_to_ready(lambda: (
        HTTPExecutor(helper_cmd(run, "--tcp", str(port), "--http"),
                     f"http://127.0.0.1:{port}/", **QUIET),
        nothing))


def unix_helper(run):
    d = run.scratch()
    path = os.path.join(d, "helper.sock")
    return start_to_ready(
        lambda: (UnixSocketExecutor(helper_cmd(run, "--unix", path), path, **QUIET), remove(d)))


def pid_helper(run):
    d = run.scratch()
    path = os.path.join(d, "helper.pid")
    return start_to_ready(
        lambda: (PidExecutor(helper_cmd(run, "--pid-file", path), path, **QUIET), remove(d)))


def output_helper(run):
    return start_to_ready(lambda: (
        OutputExecutor(helper_cmd(run, "--banner", HELPER_BANNER), HELPER_BANNER, **LOUD),
        nothing))


def stop_prompt(run):
    executor = SimpleExecutor(
        [*run.helper, "--exit-on", "TERM:0", "--banner", HELPER_BANNER], **QUIET)
    executor.start()
    wait_banner(executor)
    return timed_stop(executor)


def stop_term_ignoring(run):
    # Python mirakuru has one timeout for start and stop; SimpleExecutor's start does not wait,
    # so timeout=0.1 is the 100 ms stop timeout of the Rust scenario.
    executor = SimpleExecutor(
        [*run.helper, "--ignore", "TERM", "--banner", HELPER_BANNER], timeout=0.1, **QUIET)
    executor.start()
    wait_banner(executor)
    return timed_stop(executor)


def tcp_redis(run):
    port = free_port()
    return start_to_ready(
        lambda: (TCPExecutor(redis_cmd(run, port), "127.0.0.1", port, **QUIET), nothing))


def output_redis(run):
    port = free_port()
    return start_to_ready(
        lambda: (OutputExecutor(redis_cmd(run, port), REDIS_BANNER, **LOUD), nothing))


def unix_redis(run):
    d = run.scratch()
    path = os.path.join(d, "redis.sock")
    port = free_port()
    return start_to_ready(
        lambda: (UnixSocketExecutor(redis_cmd(run, port, path), path, **QUIET), remove(d)))


def tcp_postgres(run):
    if run.cluster is None:
        run.cluster = Cluster(run)
    cluster = run.cluster
    port = free_port()
    return start_to_ready(lambda: (
        TCPExecutor(cluster.cmd(port), "127.0.0.1", port, cwd=cluster.dir,
                    popen_kwargs=cluster.popen, **QUIET),
        nothing))


def http_nginx(run):
    cmd, port, _, d = nginx_setup(run, daemon=False)
    return start_to_ready(
        lambda: (HTTPExecutor(cmd, f"http://127.0.0.1:{port}/", **QUIET), remove(d)))


def pid_nginx(run):
    cmd, _, pid_file, d = nginx_setup(run, daemon=True)

    def cleanup():
        # Python mirakuru finds a daemon by its environment, which nginx overwrites with its
        # process title: it may well survive stop(). Count that, and take it down.
        pid = read_pid(pid_file)
        if pid and alive(pid):
            run.leaks.append(f"pid-nginx: nginx daemon {pid} survived stop()")
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)
        shutil.rmtree(d, ignore_errors=True)

    return start_to_ready(lambda: (PidExecutor(cmd, pid_file, **QUIET), cleanup))


def tcp_memcached(run):
    port = free_port()
    return start_to_ready(
        lambda: (TCPExecutor(memcached_cmd(run, port), "127.0.0.1", port, **QUIET), nothing))


def stop_redis(run):
    port = free_port()
    executor = TCPExecutor(redis_cmd(run, port), "127.0.0.1", port, **QUIET)
    executor.start()
    return timed_stop(executor)


def memory(run):
    """VmRSS and Threads of this interpreter with 100 executors running, per executor."""
    warm = SimpleExecutor([*run.helper], **QUIET)
    warm.start()
    warm.stop()
    running = []
    base = proc_status()
    starts = []
    try:
        for _ in range(MEMORY_EXECUTORS):
            executor = SimpleExecutor([*run.helper], **QUIET)
            started = time.perf_counter()
            executor.start()
            starts.append(time.perf_counter() - started)
            running.append(executor)
        loaded = proc_status()
    finally:
        for executor in running:
            executor.stop()
    extra = {
        "rss_kib_per_executor": (loaded[0] - base[0]) / MEMORY_EXECUTORS,
        "threads_per_executor": (loaded[1] - base[1]) / MEMORY_EXECUTORS,
    }
    return starts, extra


def proc_status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


# name, function, program it needs (attribute of Run), or None
SCENARIOS = [
    ("simple-start-stop", simple_start_stop, None),
    ("tcp-helper", tcp_helper, None),
    ("http-helper", http_helper, None),
    ("unix-helper", unix_helper, None),
    ("pid-helper", pid_helper, None),
    ("output-helper", output_helper, None),
    ("stop-prompt", stop_prompt, None),
    ("stop-term-ignoring", stop_term_ignoring, None),
    ("tcp-redis", tcp_redis, "redis"),
    ("output-redis", output_redis, "redis"),
    ("unix-redis", unix_redis, "redis"),
    ("tcp-postgres", tcp_postgres, "postgres"),
    ("http-nginx", http_nginx, "nginx"),
    ("pid-nginx", pid_nginx, "nginx"),
    ("tcp-memcached", tcp_memcached, "memcached"),
    ("stop-redis", stop_redis, "redis"),
    ("memory", memory, None),
]


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def leftovers(root):
    """Processes carrying our tag or naming our scratch root; they are killed."""
    needle = f"{TAG_VAR}={TAG}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or not alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                tagged = needle in f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if tagged or root in cmdline:
            found.append(f"{entry} {cmdline}")
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    return found


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def ms(seconds):
    return round(seconds * 1000.0, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--service", required=True, help="the program that is the helper service")
    parser.add_argument("--service-arg", action="append", default=[],
                        help="an argument it needs first to be the service (repeatable)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    only = {n for arg in args.only for n in arg.split(",")}

    run = Run([os.path.abspath(args.service), *args.service_arg])
    failed = False
    try:
        for name, scenario, needs in SCENARIOS:
            if only and name not in only:
                continue
            if needs and getattr(run, needs) is None:
                print(f"note: {name} skipped: {needs} is not installed", file=sys.stderr)
                continue
            print(f"{name} ... ", end="", file=sys.stderr, flush=True)
            extra = {}
            try:
                if name == "memory":
                    samples, extra = scenario(run)
                else:
                    samples = []
                    for i in range(args.warmup + args.runs):
                        took = scenario(run)
                        if i >= args.warmup:
                            samples.append(took)
            except Exception as err:  # report, and go on with the other scenarios
                print(f"FAILED: {err!r}", file=sys.stderr)
                print(json.dumps({"scenario": name, "error": repr(err)}), flush=True)
                failed = True
                continue
            line = {
                "scenario": name,
                "runs": len(samples),
                "median_ms": ms(statistics.median(samples)),
                "oracle_median_ms": None,
                "min_ms": ms(min(samples)),
                "max_ms": ms(max(samples)),
            }
            line.update({k: round(v, 3) for k, v in extra.items()})
            print(f"median {line['median_ms']} ms", file=sys.stderr)
            print(json.dumps(line), flush=True)
    finally:
        if run.cluster is not None:
            # The last round stopped it; make sure before the directory goes.
            pid = read_pid(os.path.join(run.cluster.data, "postmaster.pid"))
            if pid and alive(pid):
                os.kill(pid, signal.SIGINT)
                wait_gone(pid)
        left = leftovers(run.root)
        shutil.rmtree(run.root, ignore_errors=True)
    for leak in run.leaks:
        print(f"note: {leak}", file=sys.stderr)
    if run.leaks:
        print(f"note: {len(run.leaks)} daemon(s) survived Python mirakuru's stop()",
              file=sys.stderr)
    if left:
        print("processes left behind (now killed):", *left, sep="\n  ", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
