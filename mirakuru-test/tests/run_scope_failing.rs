//! A run-scoped fixture whose start fails, under `cargo nextest run`: 16 tests, each in a
//! process of its own, all get the one start's error, and the service was spawned once (it
//! counts its own starts in `MIRAKURU_RUN_SCOPE_STARTS`, which `.ci/run` sets and checks
//! afterwards).

use mirakuru::SharedFixture;

const SERVICE: &str = env!("CARGO_BIN_EXE_mirakuru-test-service");

// Exits with status 3 before it ever listens.
#[mirakuru::fixture(
    scope = run,
    tcp = auto,
    args = [SERVICE, "--count-file", mirakuru_test::run_scope_starts_file(), "--banner", "broken on purpose", "--exit", "3"]
)]
static BROKEN: SharedFixture;

fn gets_the_one_error() {
    let err = BROKEN.try_get().expect_err("it cannot start");
    assert!(err.contains("code 3"), "the exit status: {err}");
    assert!(err.contains("broken on purpose"), "the service's last lines: {err}");
    if let Ok(path) = std::env::var("MIRAKURU_RUN_SCOPE_STARTS") {
        let starts = std::fs::read_to_string(path).expect("the service counted its start");
        assert_eq!(starts.lines().count(), 1, "spawned once for the run: {starts}");
    }
}

macro_rules! tests {
    ($($name:ident)*) => { $( #[test] fn $name() { gets_the_one_error(); } )* };
}

tests! { f01 f02 f03 f04 f05 f06 f07 f08 f09 f10 f11 f12 f13 f14 f15 f16 }
