//! A test binary that dies badly, for the orphan scenarios (`tests/integration/orphans.rs`).
//!
//! `mirakuru-test-scenario ACTION KIND SERVICE` starts one fixture, as a test would, then
//! prints `ready <pid of this program> <pid of the service>` on stdout and waits. On a line
//! `go` on stdin it does ACTION; the harness may instead send it a signal.
//!
//! - ACTION: `return` (the body returns, `main` returns), `panic` (the body panics: it unwinds,
//!   or aborts when this file is built with `panic = "abort"`, see `scenarios/abort/`), `exit`
//!   (`std::process::exit(42)` inside the body), `wait` (waits forever, to be signalled).
//! - KIND: `per-test` (a `#[mirakuru::fixture]` function, as on a `#[test]`) or `shared` (a
//!   `#[mirakuru::fixture] static`, never dropped).
//! - SERVICE: what `mirakuru-test-service` does: `plain`; `daemon` (double-forks into a new
//!   session); `ignore-term` (ignores SIGTERM, and so do its two children); `grandchildren`
//!   (two children in their own sessions, each with a grandchild in another session);
//!   `pid-daemon` (double-forks, clears its environment — owner marker and tag included —
//!   and writes its pid file, by which the fixture waits for it and adopts it);
//!   `redis-daemon` (a real `redis-server --daemonize yes`, waited for on its TCP port: it
//!   escapes its session and overwrites its environment with its title).
//!
//!   `probe-child` (never ready: its readiness probe, `sh -c 'sleep 300; exit 1'`, runs
//!   with a child for as long as the start lasts — the harness kills the binary meanwhile).
//!
//! The ready line also gives the pid of the daemon (`0` if none), read from the pid file it
//! wrote in the fixture's directory: the harness cannot find an environment-clearing daemon
//! by its tag.
//!
//! The helper's path comes from `MIRAKURU_SCENARIO_SERVICE`; the harness's tag comes in the
//! environment and is inherited by everything this program starts. This file depends on
//! `mirakuru` alone, so that the separate `panic = "abort"` build compiles it as it is.

use std::io::{BufRead, Write};
use std::time::Duration;

use mirakuru::{Fixture, SharedFixture};

/// The line the service prints once it has set everything up (children included).
const BANNER: &str = "mirakuru-scenario-service-ready";

/// Exit code of the `exit` action, distinct from a panic's 101.
const EXIT_CODE: i32 = 42;

fn usage() -> ! {
    eprintln!(
        "usage: mirakuru-test-scenario return|panic|exit|wait per-test|shared \
         plain|daemon|ignore-term|grandchildren|pid-daemon|redis-daemon|probe-child"
    );
    std::process::exit(2)
}

fn arg(n: usize) -> String {
    std::env::args().nth(n).unwrap_or_else(|| usage())
}

/// The service's command line, quoted for the splitting a fixture's `cmd` goes through.
fn command() -> String {
    let service = std::env::var("MIRAKURU_SCENARIO_SERVICE").unwrap_or_else(|_| {
        eprintln!("mirakuru-test-scenario: MIRAKURU_SCENARIO_SERVICE is not set");
        std::process::exit(2)
    });
    let behaviour = match arg(3).as_str() {
        "plain" | "pid-daemon" | "redis-daemon" | "probe-child" => "",
        "daemon" => "--daemonize",
        "ignore-term" => "--ignore TERM --spawn-children 2 --children-ignore-term",
        "grandchildren" => "--spawn-children 2 --children-setsid --grandchildren",
        _ => usage(),
    };
    format!("'{}' {behaviour} --banner {BANNER}", service.replace('\'', r"'\''"))
}

/// The helper that daemonizes, clears its environment and writes `{tmpdir}/daemon.pid`.
fn pid_daemon() -> String {
    let service = std::env::var("MIRAKURU_SCENARIO_SERVICE").unwrap_or_default();
    format!(
        "'{}' --daemonize --clear-env --pid-file {{tmpdir}}/daemon.pid",
        service.replace('\'', r"'\''")
    )
}

// A short stop timeout: the `ignore-term` service makes every graceful stop wait for it.
#[mirakuru::fixture(output = "mirakuru-scenario-service-ready", timeout = "20s", stop_timeout = "300ms", cmd = command())]
static SHARED: SharedFixture;

#[mirakuru::fixture(output = "mirakuru-scenario-service-ready", timeout = "20s", stop_timeout = "300ms", cmd = command())]
fn per_test(service: &Fixture) {
    body(service);
}

#[mirakuru::fixture(pid = "{tmpdir}/daemon.pid", timeout = "20s", stop_timeout = "300ms", cmd = pid_daemon())]
static SHARED_PID_DAEMON: SharedFixture;

#[mirakuru::fixture(pid = "{tmpdir}/daemon.pid", timeout = "20s", stop_timeout = "300ms", cmd = pid_daemon())]
fn per_test_pid_daemon(service: &Fixture) {
    body(service);
}

#[mirakuru::fixture(tcp = auto, timeout = "20s",
    cmd = "redis-server --port {port} --bind 127.0.0.1 --daemonize yes --save '' --appendonly no --dir {tmpdir} --pidfile {tmpdir}/daemon.pid")]
static SHARED_REDIS_DAEMON: SharedFixture;

#[mirakuru::fixture(tcp = auto, timeout = "20s",
    cmd = "redis-server --port {port} --bind 127.0.0.1 --daemonize yes --save '' --appendonly no --dir {tmpdir} --pidfile {tmpdir}/daemon.pid")]
fn per_test_redis_daemon(service: &Fixture) {
    body(service);
}

/// The test body: report, wait for the harness, then do the action.
fn body(service: &Fixture) {
    let action = arg(1);
    if !["return", "panic", "exit", "wait"].contains(&action.as_str()) {
        usage();
    }
    let mut out = std::io::stdout().lock();
    // A daemon writes its pid file in its own time (Redis once it listens): wait for it.
    let pid_file = service.tmpdir().join("daemon.pid");
    let mut daemon = 0;
    let writes_one = arg(3).ends_with("-daemon");
    for _ in 0..2000 {
        match std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse().ok()) {
            Some(pid) => {
                daemon = pid;
                break;
            }
            None if writes_one => std::thread::sleep(Duration::from_millis(5)),
            None => break,
        }
    }
    let service_pid = service.pid().unwrap_or(0);
    let _ = writeln!(out, "ready {} {service_pid} {daemon}", std::process::id());
    let _ = out.flush();
    drop(out);
    if action == "wait" {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let mut line = String::new();
    // End of file means the harness is gone: end as the action says all the same.
    let _ = std::io::stdin().lock().read_line(&mut line);
    match action.as_str() {
        "panic" => panic!("the scenario's test body panics"),
        "exit" => std::process::exit(EXIT_CODE),
        _ => {}
    }
}

#[mirakuru::fixture(exec = ["sh", "-c", "sleep 300; exit 1"], exec_timeout = "60s", timeout = "60s", cmd = command())]
static SHARED_PROBE_CHILD: SharedFixture;

#[mirakuru::fixture(exec = ["sh", "-c", "sleep 300; exit 1"], exec_timeout = "60s", timeout = "60s", cmd = command())]
fn per_test_probe_child(service: &Fixture) {
    body(service);
}

fn main() {
    match (arg(2).as_str(), arg(3).as_str()) {
        ("per-test", "probe-child") => per_test_probe_child(),
        ("shared", "probe-child") => body(&SHARED_PROBE_CHILD.get()),
        ("per-test", "pid-daemon") => per_test_pid_daemon(),
        ("shared", "pid-daemon") => body(&SHARED_PID_DAEMON.get()),
        ("per-test", "redis-daemon") => per_test_redis_daemon(),
        ("shared", "redis-daemon") => body(&SHARED_REDIS_DAEMON.get()),
        ("per-test", _) => per_test(),
        ("shared", _) => body(&SHARED.get()),
        _ => usage(),
    }
}
