//! Run scope across test processes: a fake runner — a shell named `cargo-nextest`, with a
//! `NEXTEST_RUN_ID` of its own — runs this binary's ignored member tests as nextest runs
//! tests, each in a process of its own, and the test checks from outside what the run's
//! services and keepers do. (The 32-process suite under the real nextest is the `run_scope`
//! test target.)

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirakuru::SharedFixture;
use mirakuru_test::{gone_or_killed, is_alive, temp_dir};

use crate::SERVICE;

/// The directory of the current scenario, where members write what they saw.
const DIR: &str = "MIRAKURU_RUN_TEST_DIR";

fn starts_file() -> String {
    match std::env::var(DIR) {
        Ok(dir) => format!("{dir}/starts"),
        Err(_) => "{tmpdir}/starts".into(),
    }
}

#[mirakuru::fixture(scope = run, tcp = auto, args = [SERVICE, "--count-file", starts_file(), "--tcp", "{port}"])]
static KEPT: SharedFixture;

#[mirakuru::fixture(scope = run, tcp = auto, args = [SERVICE, "--count-file", starts_file(), "--exit", "3"])]
static FAILING: SharedFixture;

// Slow to start, as a database server is: the moments between stop and ready are long.
#[mirakuru::fixture(scope = run, tcp = auto, args = [SERVICE, "--count-file", starts_file(), "--delay-ms", "700", "--tcp", "{port}"])]
static SLOW: SharedFixture;

// Never ready within a test's patience: a run that ends while it starts.
#[mirakuru::fixture(scope = run, tcp = auto, args = [SERVICE, "--count-file", starts_file(), "--delay-ms", "30000", "--tcp", "{port}"])]
static ENDLESS: SharedFixture;

// --- the members: tests of the fake runs, run only by them ---

fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os(DIR).expect("run by a scenario"))
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
}

fn write(name: &str, text: impl ToString) {
    let path = dir().join(name);
    let temp = dir().join(format!(".{name}"));
    std::fs::write(&temp, text.to_string()).expect("written");
    std::fs::rename(temp, path).expect("renamed");
}

fn wait_for(name: &str) -> String {
    let path = dir().join(name);
    let began = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "{name} never came");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Uses the service, says where it is, and holds it until the test kills this process.
#[test]
#[ignore = "a process of a run-scope scenario"]
fn member_holds_until_killed() {
    let kept = KEPT.get();
    let line = format!("{} {} {}", std::process::id(), kept.pid().expect("pid"), kept.port());
    write("holder", line);
    std::thread::sleep(Duration::from_secs(600));
}

/// Uses the service: says which one, and that it answers.
#[test]
#[ignore = "a process of a run-scope scenario"]
fn member_uses() {
    let kept = KEPT.get();
    std::net::TcpStream::connect(("127.0.0.1", kept.port())).expect("it answers");
    write(
        &format!("user-{}", std::process::id()),
        format!("{} {}", kept.pid().expect("pid"), kept.port()),
    );
}

/// Asks for the failing fixture and writes the error it got.
#[test]
#[ignore = "a process of a run-scope scenario"]
fn member_fails() {
    let err = FAILING.try_get().expect_err("it cannot start");
    write(&format!("error-{}", std::process::id()), err);
}

/// Holds the service for a moment once the stopper waits, then lets go.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_holds_a_moment() {
    let kept = KEPT.get();
    let pid = kept.pid().expect("pid");
    write("held", format!("{pid} {}", kept.port()));
    wait_for("stopper-waits");
    std::thread::sleep(Duration::from_millis(300));
    write("released", now_micros());
    drop(kept);
    // Attached before the restart: sees the new process after it.
    let restarted = wait_for("restarted");
    assert_eq!(KEPT.get().pid().expect("pid").to_string(), restarted, "the pid after a restart");
    write("refreshed", restarted);
}

/// Stops the service while another process holds it, once that one lets go.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_stops() {
    wait_for("held");
    // Nothing says when `stopped!` starts waiting; a moment after this, it does.
    write("stopper-waits", now_micros());
    let port = KEPT.get().port();
    mirakuru::stopped!(KEPT, {
        write("stopped", now_micros());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "it is stopped");
    });
    let kept = KEPT.get();
    assert_eq!(kept.port(), port, "back on the same port");
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("back, and ready");
    write("restarted", format!("{}", kept.pid().expect("pid")));
}

/// Panics inside `stopped!`: the failure report asks the keeper for the service's last lines
/// while the service is still stopped by this very process.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_panics_while_stopped() {
    write("panicking", KEPT.get().pid().expect("pid"));
    mirakuru::stopped!(KEPT, {
        panic!("the test fails while the service is stopped");
    });
}

/// Takes the fixture again inside its own `stopped!`, as a helper function of the test may.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_gets_inside_its_stop() {
    let port = KEPT.get().port();
    mirakuru::stopped!(KEPT, {
        let again = KEPT.try_get().expect("its own stop does not keep it out");
        assert_eq!(again.port(), port);
    });
    let stop = KEPT.get().stop();
    assert!(matches!(stop, Err(mirakuru::Error::InvalidArgument { .. })), "the run's: {stop:?}");
    write("got-inside", port);
}

/// Stops the slow service and never lets go: the test kills this process in the block.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_stops_slow_and_dies() {
    let pid = SLOW.get().pid().expect("pid");
    mirakuru::stopped!(SLOW, {
        write("stopping", format!("{} {pid}", std::process::id()));
        std::thread::sleep(Duration::from_secs(600));
    });
}

/// Uses the slow service: it must be up whenever `get` returns.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_uses_slow() {
    let slow = SLOW.get();
    std::net::TcpStream::connect(("127.0.0.1", slow.port())).expect("up when get returns");
    write("used-slow", slow.pid().expect("pid"));
}

/// Waits for a service that is never ready in time.
#[test]
#[ignore = "a process of a run-scoped scenario"]
fn member_waits_endlessly() {
    let _ = ENDLESS.try_get();
}

// --- the scenarios ---

/// A fake run: `script` run by a shell named `cargo-nextest`, with `$EXE` and `member NAME`
/// (runs a member test in a process of its own, as nextest does; `member NAME &` in the
/// background).
struct FakeRun {
    runner: Child,
    dir: tempfile::TempDir,
    _bin: tempfile::TempDir,
}

impl FakeRun {
    fn start(script: &str) -> FakeRun {
        let dir = temp_dir();
        let bin = temp_dir();
        let runner_path = bin.path().join("cargo-nextest");
        std::os::unix::fs::symlink("/bin/sh", &runner_path).expect("a runner named cargo-nextest");
        let exe = std::env::current_exe().expect("this test binary");
        // Written out where it is used, not a shell function: a function run in the
        // background is a subshell, whose child the member would be — and the subshell, which
        // ends with it, would be taken for the runner. Under nextest the runner is the parent.
        let member = ">>\"$DIR/log\" 2>&1 \"$EXE\" --exact --ignored --nocapture \
                      --test-threads=1 run_scope::";
        let script = script.replace("member ", member);
        let id = format!("{:x}-{:x}", std::process::id(), now_micros());
        let runner = Command::new(&runner_path)
            .arg("-c")
            .arg(script)
            .env("EXE", exe)
            .env("DIR", dir.path())
            .env(DIR, dir.path())
            .env("NEXTEST_RUN_ID", id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own, which the end of the test kills with what is left in it
            // (a `sleep` of the script), as nextest would not.
            .process_group(0)
            .spawn()
            .expect("the fake runner starts");
        FakeRun { runner, dir, _bin: bin }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        let path = self.path(name);
        let began = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return text;
            }
            let log = std::fs::read_to_string(self.path("log")).unwrap_or_default();
            assert!(began.elapsed() < Duration::from_secs(30), "{name} never came; log:\n{log}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the runner to end; its exit status.
    fn finish(&mut self) -> std::process::ExitStatus {
        let began = Instant::now();
        loop {
            if let Some(status) = self.runner.try_wait().expect("wait") {
                return status;
            }
            assert!(began.elapsed() < Duration::from_secs(60), "the fake run hangs");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the members wrote in files named `prefix` and their pid (`user-`, `error-`).
    fn written(&self, prefix: &str) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .expect("the scenario's directory")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| std::fs::read_to_string(e.path()).expect("read"))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }
}

impl Drop for FakeRun {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group this test made for its runner.
        unsafe { libc::kill(-(self.runner.id() as i32), libc::SIGKILL) };
        let _ = self.runner.wait();
    }
}

fn numbers(text: &str) -> Vec<u32> {
    text.split_whitespace().map(|n| n.parse().expect("a number")).collect()
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("its stat");
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    after.split(' ').nth(1).and_then(|p| p.parse().ok()).expect("its parent")
}

/// The service and its keeper are gone within 2 s of the runner's SIGKILL, and so are the
/// run's files.
#[test]
fn killing_the_runner_stops_the_service_and_its_keeper() {
    let mut run = FakeRun::start("member member_uses\nsleep 600");
    let began = Instant::now();
    let seen = loop {
        assert!(began.elapsed() < Duration::from_secs(30), "no test used it: {}", run.log());
        if let Some(found) = run.written("user-").pop() {
            break found;
        }
        assert!(run.runner.try_wait().expect("wait").is_none(), "log:\n{}", run.log());
        std::thread::sleep(Duration::from_millis(5));
    };
    let service = numbers(&seen)[0];
    let keeper = parent_of(service);
    assert!(is_alive(service) && is_alive(keeper), "they outlive the test process");
    run.runner.kill().expect("SIGKILL the runner");
    let _ = run.runner.wait();
    assert!(gone_or_killed(service, Duration::from_secs(2)), "the service is gone within 2 s");
    assert!(gone_or_killed(keeper, Duration::from_secs(2)), "the keeper is gone within 2 s");
    let starts = std::fs::read_to_string(run.path("starts")).expect("starts");
    assert_eq!(starts.lines().count(), 1);
}

/// A test process killed while it uses the service does not stop it for the others; the
/// service ends with the run.
#[test]
fn a_test_process_killed_mid_test_leaves_the_service_to_the_others() {
    let script = "member member_holds_until_killed &\n\
                  while [ ! -e \"$DIR/go\" ]; do sleep 0.01; done\n\
                  member member_uses || exit 1\n";
    let mut run = FakeRun::start(script);
    let holder = numbers(&run.read("holder"));
    let (test_process, service, port) = (holder[0], holder[1], holder[2]);
    // SAFETY: kill(2) on the member this test started.
    unsafe { libc::kill(test_process as i32, libc::SIGKILL) };
    assert!(gone_or_killed(test_process, Duration::from_secs(5)));
    std::fs::write(run.path("go"), "").expect("go");
    let status = run.finish();
    assert!(status.success(), "the other test passed: log:\n{}", run.log());
    let users = run.written("user-");
    assert_eq!(users.len(), 1);
    let seen = numbers(&users[0]);
    assert_eq!(seen, [service, port], "the same service, on the same port");
    assert!(gone_or_killed(service, Duration::from_secs(2)), "it ends with the run");
    let starts = std::fs::read_to_string(run.path("starts")).expect("starts");
    assert_eq!(starts.lines().count(), 1, "started once");
}

/// A start that fails is tried once; every test process of the run gets its error.
#[test]
fn a_failing_start_is_shared_by_every_test_process() {
    let script = "for i in 1 2 3 4; do member member_fails & done\nwait";
    let mut run = FakeRun::start(script);
    assert!(run.finish().success(), "log:\n{}", run.log());
    let errors = run.written("error-");
    assert_eq!(errors.len(), 4, "log:\n{}", run.log());
    assert!(errors[0].contains("code 3"), "the original error: {}", errors[0]);
    assert!(errors.iter().all(|e| *e == errors[0]), "the same error everywhere: {errors:#?}");
    let starts = std::fs::read_to_string(run.path("starts")).expect("starts");
    assert_eq!(starts.lines().count(), 1, "spawned once: {starts}");
}

/// `stopped!` waits for a test of another process to let go, stops the service, and has it
/// back, ready, on the same port.
#[test]
fn stopped_waits_for_the_tests_of_other_processes() {
    let script = "member member_holds_a_moment & member member_stops & wait\nmember member_uses";
    let mut run = FakeRun::start(script);
    assert!(run.finish().success(), "log:\n{}", run.log());
    let released: u128 = run.read("released").parse().expect("a time");
    let stopped: u128 = run.read("stopped").parse().expect("a time");
    assert!(stopped >= released, "stopped at {stopped}, while the other used it until {released}");
    let before = numbers(&run.read("held"));
    let after = numbers(&run.read("restarted"));
    assert_ne!(before[0], after[0], "a new process");
    assert_eq!(numbers(&run.read("refreshed")), after, "seen by the other process too");
    let starts = std::fs::read_to_string(run.path("starts")).expect("starts");
    assert_eq!(starts.lines().count(), 2, "started, then started again: {starts}");
    assert!(gone_or_killed(after[0], Duration::from_secs(2)), "it ends with the run");
}

/// A test that panics inside `stopped!` gets its failure report, the service comes back for
/// the next test, and nothing hangs.
#[test]
fn a_test_that_panics_while_it_holds_the_service_stopped_gets_it_restarted() {
    let script = "member member_panics_while_stopped\nmember member_uses || exit 1";
    let mut run = FakeRun::start(script);
    assert!(run.finish().success(), "the next test used it: log:\n{}", run.log());
    let log = run.log();
    assert!(log.contains("the test fails while the service is stopped"), "{log}");
    assert!(log.contains("--- mirakuru fixture `kept`"), "the report came: {log}");
    let before: u32 = run.read("panicking").parse().expect("a pid");
    let users = run.written("user-");
    assert_eq!(users.len(), 1, "{log}");
    let after = numbers(&users[0]);
    assert_ne!(after[0], before, "restarted after the panic");
    assert!(gone_or_killed(after[0], Duration::from_secs(2)), "it ends with the run");
}

/// A test may take the fixture again inside its own `stopped!` (a helper does): it is not
/// kept out by its own stop.
#[test]
fn a_test_takes_the_fixture_again_inside_its_own_stop() {
    let mut run = FakeRun::start("member member_gets_inside_its_stop || exit 1");
    assert!(run.finish().success(), "log:\n{}", run.log());
    run.read("got-inside");
}

/// The process that stopped the service dies in the block: the others wait until the keeper
/// has it back, ready, and never find it down.
#[test]
fn tests_wait_for_the_restart_when_the_stopper_dies_in_its_block() {
    let script = "member member_stops_slow_and_dies &\n\
                  while [ ! -e \"$DIR/go\" ]; do sleep 0.01; done\n\
                  member member_uses_slow || exit 1\n";
    let mut run = FakeRun::start(script);
    let stopping = numbers(&run.read("stopping"));
    let (stopper, stopped) = (stopping[0], stopping[1]);
    // SAFETY: kill(2) of the member this scenario started.
    unsafe { libc::kill(stopper as i32, libc::SIGKILL) };
    assert!(gone_or_killed(stopper, Duration::from_secs(5)));
    std::fs::write(run.path("go"), "").expect("go");
    assert!(run.finish().success(), "the service was up for the next test: log:\n{}", run.log());
    let used: u32 = run.read("used-slow").parse().expect("a pid");
    assert_ne!(used, stopped, "restarted by the keeper");
}

/// The runner ends while the keeper still waits for its service to be ready: both are gone
/// within 2 s, not when the start would have timed out.
#[test]
fn ending_the_run_during_a_start_ends_the_keeper_and_its_service() {
    let mut run = FakeRun::start("member member_waits_endlessly &\nsleep 600");
    let began = Instant::now();
    let service = loop {
        assert!(began.elapsed() < Duration::from_secs(30), "never spawned: {}", run.log());
        if let Ok(text) = std::fs::read_to_string(run.path("starts")) {
            if let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) {
                break pid;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let keeper = parent_of(service);
    run.runner.kill().expect("SIGKILL the runner");
    let _ = run.runner.wait();
    assert!(gone_or_killed(service, Duration::from_secs(2)), "the service is gone within 2 s");
    assert!(gone_or_killed(keeper, Duration::from_secs(2)), "the keeper is gone within 2 s");
}
