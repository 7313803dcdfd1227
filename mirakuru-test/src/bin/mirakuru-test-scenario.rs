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
//!   (two children in their own sessions, each with a grandchild in another session).
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
         plain|daemon|ignore-term|grandchildren"
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
        "plain" => "",
        "daemon" => "--daemonize",
        "ignore-term" => "--ignore TERM --spawn-children 2 --children-ignore-term",
        "grandchildren" => "--spawn-children 2 --children-setsid --grandchildren",
        _ => usage(),
    };
    format!("'{}' {behaviour} --banner {BANNER}", service.replace('\'', r"'\''"))
}

// A short stop timeout: the `ignore-term` service makes every graceful stop wait for it.
#[mirakuru::fixture(output = "mirakuru-scenario-service-ready", timeout = "20s", stop_timeout = "300ms", cmd = command())]
static SHARED: SharedFixture;

#[mirakuru::fixture(output = "mirakuru-scenario-service-ready", timeout = "20s", stop_timeout = "300ms", cmd = command())]
fn per_test(service: &Fixture) {
    body(service);
}

/// The test body: report, wait for the harness, then do the action.
fn body(service: &Fixture) {
    let action = arg(1);
    if !["return", "panic", "exit", "wait"].contains(&action.as_str()) {
        usage();
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {} {}", std::process::id(), service.pid().unwrap_or(0));
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

fn main() {
    match arg(2).as_str() {
        "per-test" => per_test(),
        "shared" => body(&SHARED.get()),
        _ => usage(),
    }
}
