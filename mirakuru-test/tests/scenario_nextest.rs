//! Scenario programs, not tests of their own: `tests/integration/orphans.rs` runs them under
//! `cargo nextest` with a 1 s slow-timeout, so that nextest terminates each one while its
//! fixture runs (SIGTERM to the test's process group, SIGKILL after the grace period), and then
//! checks that nothing of the fixture is left. Each starts a fixture, reports, and sleeps.
//! Ignored, and without `MIRAKURU_SCENARIO_DIR` they return at once.
//!
//! The harness passes, per scenario, a tag in `MIRAKURU_SCENARIO_TAG_<NAME>`: it becomes this
//! process's `MIRAKURU_TEST_TAG` before the fixture starts, so the services carry it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mirakuru::{Fixture, SharedFixture};

const SERVICE: &str = env!("CARGO_BIN_EXE_mirakuru-test-service");

/// The service behaviour of the running scenario (one per process under nextest).
static BEHAVIOUR: OnceLock<&'static str> = OnceLock::new();

/// The helper's command line for [`BEHAVIOUR`], and how many processes its tree has once ready.
fn service() -> (String, usize) {
    let (flags, processes) = match BEHAVIOUR.get().copied().unwrap_or("plain") {
        "daemon" => ("--daemonize", 1),
        "ignore-term" => ("--ignore TERM --spawn-children 2 --children-ignore-term", 3),
        "grandchildren" => ("--spawn-children 2 --children-setsid --grandchildren", 5),
        _ => ("", 1),
    };
    (format!("'{SERVICE}' {flags} --banner nextest-scenario-ready"), processes)
}

fn command() -> String {
    service().0
}

#[mirakuru::fixture(output = "nextest-scenario-ready", stop_timeout = "300ms", cmd = command())]
static SHARED: SharedFixture;

#[mirakuru::fixture(output = "nextest-scenario-ready", stop_timeout = "300ms", cmd = command())]
fn per_test(svc: &Fixture) {
    hold(svc);
}

/// Live processes whose environment holds `MIRAKURU_TEST_TAG=<tag>`.
fn tagged(tag: &str) -> usize {
    let needle = format!("MIRAKURU_TEST_TAG={tag}");
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rsplit_once(')').is_none_or(|(_, r)| r.trim_start().starts_with('Z'));
            !zombie
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == needle.as_bytes()))
        })
        .count()
}

/// Reports `ready <pid> <processes of the service>` in the scenario's file, then sleeps until
/// nextest ends the test.
fn hold(svc: &Fixture) {
    let dir = std::env::var("MIRAKURU_SCENARIO_DIR").expect("set by the harness");
    let name = std::env::var("MIRAKURU_SCENARIO_NAME").expect("set by scenario()");
    let tag = std::env::var("MIRAKURU_TEST_TAG").expect("set by scenario()");
    assert!(svc.running());
    // A daemon's launcher exits just after the daemon is ready: let the count settle.
    let expected = service().1;
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut count = tagged(&tag);
    while count != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        count = tagged(&tag);
    }
    let report = std::path::Path::new(&dir).join(&name);
    let partial = report.with_extension("partial");
    std::fs::write(&partial, format!("ready {} {count}\n", std::process::id())).expect("report");
    std::fs::rename(&partial, &report).expect("report");
    if std::env::var_os("MIRAKURU_SCENARIO_IGNORE_TERM").is_some() {
        // Set only now: the services must not inherit an ignored SIGTERM.
        // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    }
    std::thread::sleep(Duration::from_secs(120));
}

fn scenario(name: &str, shared: bool, behaviour: &'static str, ignore_term: bool) {
    if std::env::var_os("MIRAKURU_SCENARIO_DIR").is_none() {
        println!("a scenario program of orphans.rs, run by it under cargo nextest");
        return;
    }
    let tag = std::env::var(format!("MIRAKURU_SCENARIO_TAG_{}", name.to_uppercase()))
        .expect("a tag for this scenario");
    // One scenario per process under nextest: nothing else reads the environment meanwhile.
    std::env::set_var("MIRAKURU_TEST_TAG", tag);
    std::env::set_var("MIRAKURU_SCENARIO_NAME", name);
    if ignore_term {
        std::env::set_var("MIRAKURU_SCENARIO_IGNORE_TERM", "1");
    }
    BEHAVIOUR.set(behaviour).expect("one scenario per process");
    if shared {
        hold(&SHARED.get());
    } else {
        per_test();
    }
}

macro_rules! scenarios {
    ($($name:ident: $shared:expr, $behaviour:expr, $ignore_term:expr;)*) => {$(
        #[test]
        #[ignore = "a scenario program: run by orphans.rs under cargo nextest"]
        fn $name() {
            scenario(stringify!($name), $shared, $behaviour, $ignore_term);
        }
    )*};
}

scenarios! {
    per_test_plain: false, "plain", false;
    per_test_daemon: false, "daemon", false;
    per_test_ignore_term: false, "ignore-term", false;
    per_test_grandchildren: false, "grandchildren", false;
    per_test_plain_test_ignores_sigterm: false, "plain", true;
    shared_plain: true, "plain", false;
    shared_daemon: true, "daemon", false;
    shared_ignore_term: true, "ignore-term", false;
    shared_grandchildren: true, "grandchildren", false;
    shared_plain_test_ignores_sigterm: true, "plain", true;
}
