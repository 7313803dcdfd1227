//! One service for a whole test run: 32 tests, each in a process of its own under
//! `cargo nextest run`, use one run-scoped fixture. The service counts its own starts: in
//! `MIRAKURU_RUN_SCOPE_STARTS` when set (`.ci/run` sets it for the whole run and checks it
//! afterwards), else in the fixture's private directory. Every test checks that exactly one
//! start was counted, by the process it talks to. It is also the suite `mirakuru-bench suite`
//! times under both runners: a service that takes a second to start, and 25 ms of work with
//! it in each test.

use std::net::TcpStream;
use std::path::PathBuf;

use mirakuru::SharedFixture;

const SERVICE: &str = env!("CARGO_BIN_EXE_mirakuru-test-service");

// A start that takes a second, as a database server's does: what the run scope saves each
// test process.
#[mirakuru::fixture(
    scope = run,
    tcp = auto,
    args = [SERVICE, "--count-file", mirakuru_test::run_scope_starts_file(), "--delay-ms", "1000", "--tcp", "{port}"]
)]
static ONE: SharedFixture;

fn uses_the_one_service() {
    let service = ONE.get();
    let pid = service.pid().expect("the service runs");
    let starts = match std::env::var_os("MIRAKURU_RUN_SCOPE_STARTS") {
        Some(path) => PathBuf::from(path),
        None => service.tmpdir().join("starts"),
    };
    let starts = std::fs::read_to_string(&starts).expect("the service counts its starts");
    assert_eq!(starts.lines().collect::<Vec<_>>(), [pid.to_string()], "started once, in the run");
    let connection = TcpStream::connect(("127.0.0.1", service.port())).expect("it answers");
    // The test's own work with the service, as a suite's queries take: 25 ms.
    std::thread::sleep(std::time::Duration::from_millis(25));
    drop(connection);
}

macro_rules! tests {
    ($($name:ident)*) => { $( #[test] fn $name() { uses_the_one_service(); } )* };
}

tests! {
    t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12 t13 t14 t15 t16
    t17 t18 t19 t20 t21 t22 t23 t24 t25 t26 t27 t28 t29 t30 t31 t32
}
