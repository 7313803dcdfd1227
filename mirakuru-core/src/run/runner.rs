//! Which run this test process belongs to, and the process whose exit ends it.
//!
//! Under `cargo nextest run`, every test process of one invocation gets the same
//! `NEXTEST_RUN_ID`, and its parent is the runner itself (cargo `exec`s `cargo-nextest`, whose
//! double spawn `exec`s the test binary). Under `cargo test`, every test binary is a child of
//! the one `cargo` process. Anything else — a binary run by hand, a target runner or wrapper
//! between the runner and the test — is no run: a run-scoped fixture then lives as long as
//! its process, never longer (a service that outlived a binary run by hand would be a leak).

/// A test run, as this process sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Names the run among the user's runs: a directory name.
    pub(crate) key: String,
    /// The runner process, whose exit ends the run.
    pub(crate) runner: Runner,
}

/// A process, named so that a recycled pid cannot pass for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Runner {
    pub(crate) pid: u32,
    /// Its start time, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    pub(crate) start: u64,
}

impl Runner {
    /// Whether the process still runs (and is the same one): not a zombie, whose exit its
    /// parent has not collected yet.
    pub(crate) fn alive(&self) -> bool {
        let stat = std::fs::read(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        !exited(&stat) && crate::process::start_time(self.pid) == Some(self.start)
    }

    /// `pid start`, as the keeper gets it.
    pub(crate) fn to_arg(self) -> String {
        format!("{} {}", self.pid, self.start)
    }

    pub(crate) fn from_arg(arg: &str) -> Option<Runner> {
        let (pid, start) = arg.split_once(' ')?;
        Some(Runner { pid: pid.parse().ok()?, start: start.parse().ok()? })
    }
}

/// Whether a `/proc/<pid>/stat` line is an exited process's (a zombie, or one being reaped).
fn exited(stat: &[u8]) -> bool {
    let state = stat.iter().rposition(|&b| b == b')').and_then(|end| stat.get(end + 2));
    matches!(state, Some(b'Z' | b'X'))
}

/// The run of this process, if it is in one.
pub(crate) fn current() -> Option<Run> {
    let parent = rustix::process::getppid()?.as_raw_pid();
    let parent = u32::try_from(parent).ok()?;
    let start = crate::process::start_time(parent)?;
    let name = std::fs::read_to_string(format!("/proc/{parent}/comm")).ok()?;
    let runner = Runner { pid: parent, start };
    let nextest_id = std::env::var("NEXTEST_RUN_ID").ok();
    of(name.trim_end(), nextest_id.as_deref(), runner)
}

/// The run, from the name of the parent process and nextest's run id.
fn of(parent_name: &str, nextest_id: Option<&str>, runner: Runner) -> Option<Run> {
    let key = match (parent_name, nextest_id) {
        ("cargo-nextest", Some(id)) => {
            let id: String =
                id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            if id.is_empty() || id.len() > 64 {
                return None;
            }
            format!("nextest-{id}")
        }
        ("cargo", _) => format!("cargo-{}-{}", runner.pid, runner.start),
        _ => return None,
    };
    Some(Run { key, runner })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNER: Runner = Runner { pid: 4242, start: 99 };

    #[test]
    fn nextest_and_cargo_are_runs_anything_else_is_not() {
        let id = "0f6b3a2e-5c4d-4e7f-8a9b-0c1d2e3f4a5b";
        let nextest = of("cargo-nextest", Some(id), RUNNER).expect("a nextest run");
        assert_eq!(nextest.key, format!("nextest-{id}"));
        assert_eq!(nextest.runner, RUNNER);
        let cargo = of("cargo", None, RUNNER).expect("a cargo test run");
        assert_eq!(cargo.key, "cargo-4242-99");
        // A wrapper between nextest and the test, or a binary run from a shell.
        assert_eq!(of("valgrind", Some(id), RUNNER), None);
        assert_eq!(of("bash", None, RUNNER), None);
        // nextest's id is a directory name: nothing but what a UUID holds is kept.
        assert_eq!(
            of("cargo-nextest", Some("../../etc"), RUNNER).map(|r| r.key).as_deref(),
            Some("nextest-etc")
        );
        assert_eq!(of("cargo-nextest", Some("/../"), RUNNER), None);
    }

    #[test]
    fn a_runner_is_passed_on_as_text() {
        assert_eq!(Runner::from_arg(&RUNNER.to_arg()), Some(RUNNER));
        assert_eq!(Runner::from_arg("4242"), None);
    }

    #[test]
    fn a_runner_that_exited_is_not_alive_before_it_is_reaped() {
        assert!(exited(b"4242 (cargo-nextest) Z 1 4242 4242 0 -1 4194316 0"));
        assert!(exited(b"4242 (a) Z (b) X 1 4242"), "the state after the last parenthesis");
        assert!(!exited(b"4242 (a) Z (b) S 1 4242"), "a name may hold `) Z`");
        assert!(!exited(b"4242 (cargo) S 1 4242 4242 0 -1 4194560 0"));
    }

    #[test]
    fn this_process_is_alive_and_a_recycled_pid_is_not_it() {
        let pid = std::process::id();
        let start = crate::process::start_time(pid).expect("its start time");
        assert!(Runner { pid, start }.alive());
        assert!(!Runner { pid, start: start + 1 }.alive());
    }
}
