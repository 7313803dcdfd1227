//! Orphan scenarios: a test binary that starts a fixture and then ends the way real test runs
//! end — its body returns or panics, it aborts, calls `exit`, gets SIGINT, SIGTERM or SIGKILL,
//! or is terminated by nextest's slow-timeout — while its service is plain, double-forks into a
//! new session, ignores SIGTERM, or has grandchildren in sessions of their own. For per-test
//! and for shared fixtures, each scenario asserts that no process of it (the services, their
//! descendants, mirakuru's reaper, the binary itself) remains 1 s after the binary is gone.
//!
//! The binary is `mirakuru-test-scenario` (or its `panic = "abort"` build, `scenarios/abort/`,
//! built here on first use); under nextest, the tests of `tests/scenario_nextest.rs`. Every run
//! gets a unique [`Tag`], inherited by everything it starts.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mirakuru_test::{bin_path, describe, is_alive, service, temp_dir, Tag};

/// How the test binary ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The body returns and `main` returns: the baseline.
    Return,
    /// The body panics and unwinds.
    Panic,
    /// The body panics in a binary built with `panic = "abort"`.
    Abort,
    /// The body calls `std::process::exit`.
    Exit,
    /// The binary gets a signal mid-test.
    Signal(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PerTest,
    Shared,
}

/// What the service does (`mirakuru-test-scenario`'s SERVICE argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Plain,
    /// Double-forks into a new session; the launcher exits.
    Daemon,
    /// Ignores SIGTERM, and so do its two children.
    IgnoreTerm,
    /// Two children in sessions of their own, each with a grandchild in yet another.
    Grandchildren,
    /// Double-forks, clears its environment (marker and tag gone) and writes a pid file, by
    /// which the fixture finds and adopts it (as nginx with `daemon on;`).
    PidDaemon,
    /// `redis-server --daemonize yes`, waited for on its TCP port: it escapes its session and
    /// overwrites its environment with its process title.
    RedisDaemon,
}

impl Service {
    fn arg(self) -> &'static str {
        match self {
            Service::Plain => "plain",
            Service::Daemon => "daemon",
            Service::IgnoreTerm => "ignore-term",
            Service::Grandchildren => "grandchildren",
            Service::PidDaemon => "pid-daemon",
            Service::RedisDaemon => "redis-daemon",
        }
    }

    /// Live processes of the service's tree once it is ready that carry the tag; `None` when
    /// it may or may not still show (Redis overwrites its environment at a moment of its own).
    fn processes(self) -> Option<usize> {
        match self {
            Service::Plain | Service::Daemon => Some(1),
            Service::IgnoreTerm => Some(3),
            Service::Grandchildren => Some(5),
            Service::PidDaemon => Some(0),
            Service::RedisDaemon => None,
        }
    }

    /// Whether the scenario can run here: Redis must be installed.
    fn available(self) -> bool {
        self != Service::RedisDaemon || mirakuru_test::require("redis-server")
    }
}

/// Kills the scenario and everything tagged if the test fails half-way.
struct Cleanup<'a> {
    child: Child,
    tags: Vec<&'a Tag>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            for pid in self.tags.iter().flat_map(|tag| tag.pids()) {
                // SAFETY: kill only takes integers; these processes carry this test's tags.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            // Its reaper was killed with the rest: what it would have removed goes here.
            let prefix = format!("mirakuru-run-{}-", self.child.id());
            let places = ["/tmp", "/dev/shm"].into_iter().flat_map(std::fs::read_dir);
            for entry in places.flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// `command` with the signals a test run may have inherited as ignored set back to their
/// default: the scenario binary is a test binary as a terminal or nextest starts it. A shell
/// starts its background jobs with SIGINT and SIGQUIT ignored, and a suite run that way must
/// not turn the SIGINT scenarios into a binary that never ends.
fn with_default_signals(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only signal(2) between fork and exec, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        })
    }
}

fn run(end: End, kind: Kind, service_kind: Service) {
    if !service_kind.available() {
        return;
    }
    let tag = Tag::new();
    let dir = temp_dir();
    let stderr_path = dir.path().join("stderr");
    let program = match end {
        End::Abort => abort_build(),
        _ => bin_path("mirakuru-test-scenario"),
    };
    let action = match end {
        End::Return => "return",
        End::Panic | End::Abort => "panic",
        End::Exit => "exit",
        End::Signal(_) => "wait",
    };
    let kind_arg = match kind {
        Kind::PerTest => "per-test",
        Kind::Shared => "shared",
    };
    let child = with_default_signals(&mut Command::new(&program))
        .args([action, kind_arg, service_kind.arg()])
        .env(Tag::VAR, tag.value())
        .env("MIRAKURU_SCENARIO_SERVICE", service())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut run = Cleanup { child, tags: vec![&tag] };
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let line = read_line_within(&mut run.child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the scenario never reported ready; stderr:\n{}", stderr()));
    let pids: Vec<u32> = line
        .strip_prefix("ready ")
        .map(|rest| rest.split(' ').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let [binary, _service, daemon] = pids[..] else {
        panic!("unexpected report {line:?}; stderr:\n{}", stderr())
    };
    assert_eq!(binary, run.child.id());
    if service_kind.processes() != Some(1) || daemon != 0 {
        assert!(daemon == 0 || is_alive(daemon), "the daemon {daemon} runs");
    }

    // Everything is up before the end comes: the service's processes, the binary itself and
    // mirakuru's reaper (a fork of the binary, so it carries the tag too).
    let expected = service_kind.processes().map(|n| n + 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = tag.pids();
        if expected.is_none_or(|n| pids.len() == n) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected:?} processes, found {}: {}",
            pids.len(),
            pids.iter().map(|&p| describe(p)).collect::<Vec<_>>().join("; ")
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    match end {
        End::Signal(sig) => {
            // SAFETY: kill only takes integers; the pid is our unreaped child.
            assert_eq!(unsafe { libc::kill(run.child.id() as i32, sig) }, 0);
        }
        _ => {
            let stdin = run.child.stdin.as_mut().expect("stdin");
            stdin.write_all(b"go\n").expect("tell the scenario to go on");
        }
    }
    let status = wait_within(&mut run.child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the scenario did not end; stderr:\n{}", stderr()));
    assert_ended_as(end, status, &stderr());
    // The binary is gone now (reaped above).
    tag.assert_none_left_within(Duration::from_secs(1));
    if daemon != 0 {
        assert!(
            mirakuru_test::wait_gone(daemon, Duration::from_secs(1)),
            "{end:?}, {service_kind:?}: the daemon is left: {}",
            describe(daemon)
        );
    }
    assert_run_dir_gone(binary);
}

/// What the binary kept on disk — its run directory, with every fixture's directory and
/// notify socket — is removed when it ends, however it ends (by the reaper if it was killed).
fn assert_run_dir_gone(binary: u32) {
    let prefix = format!("mirakuru-run-{binary}-");
    // A loose bound: the reaper removes it after its last quiet sweep of `/proc`, which takes
    // long on 2 cores while another test runs a thousand processes (seen in CI: over 1 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    // Only this binary's: a pid is a small number in a fresh pid namespace (a container), and
    // an earlier run's binary of the same number may have left its directory, killed.
    let since = std::time::SystemTime::now() - Duration::from_secs(120);
    let recent =
        |e: &std::fs::DirEntry| e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
    loop {
        // The run directory, and its twin in memory where presets keep their data.
        let left: Vec<_> = ["/tmp", "/dev/shm"]
            .into_iter()
            .flat_map(std::fs::read_dir)
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix) && recent(e))
            .map(|e| e.path())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the binary's run directory is left: {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The exit status proves the scenario ended the way it was asked to.
fn assert_ended_as(end: End, status: ExitStatus, stderr: &str) {
    let as_expected = match end {
        End::Return => status.code() == Some(0),
        End::Panic => status.code() == Some(101),
        End::Abort => status.signal() == Some(libc::SIGABRT),
        End::Exit => status.code() == Some(42),
        End::Signal(sig) => status.signal() == Some(sig),
    };
    assert!(as_expected, "{end:?}: the scenario ended with {status}; stderr:\n{stderr}");
}

/// The first line of the child's stdout, or `None` if it closes or `within` passes.
fn read_line_within(child: &mut Child, within: Duration) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.ok().filter(|&n| n > 0).map(|_| line.trim_end().to_string()));
    });
    rx.recv_timeout(within).ok().flatten()
}

fn wait_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The target directory of this build (`target/`, or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    let service = bin_path("mirakuru-test-service");
    // <target>/<profile>/mirakuru-test-service
    service.parent().and_then(Path::parent).expect("the target directory").to_path_buf()
}

fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    with_default_signals(&mut cargo);
    // Variables nextest gives the tests it runs would steer a cargo or nextest run from here.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("NEXTEST_")) {
            cargo.env_remove(key);
        }
    }
    cargo
}

/// The `panic = "abort"` build of the scenario, built once per run of this binary (a no-op
/// when it is up to date).
///
/// Built from a copy of its manifest in the target directory, next to a copy of the
/// workspace's `Cargo.lock`: its dependencies are then exactly the workspace's, already
/// fetched (hence `--offline`), and no lock file is written into the source tree when they
/// change.
fn abort_build() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let package = Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace = package.parent().expect("the workspace root");
        let target = target_dir().join("scenarios");
        let copy = target.join("abort-package");
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        std::fs::create_dir_all(&copy).map_err(|e| io("creating the package copy", e))?;
        let original = package.join("scenarios/abort/Cargo.toml");
        let text = std::fs::read_to_string(&original).map_err(|e| io("reading", e))?;
        // The relative paths, made absolute for the copy (TOML strings escape like Rust's).
        let scenario = package.join("src/bin/mirakuru-test-scenario.rs");
        let manifest = text
            .replace("\"../../..\"", &format!("{:?}", workspace.display().to_string()))
            .replace(
                "\"../../src/bin/mirakuru-test-scenario.rs\"",
                &format!("{:?}", scenario.display().to_string()),
            );
        if !manifest.contains(&scenario.display().to_string()) || manifest.contains("\"../") {
            return Err(format!("{} has other paths than expected", original.display()));
        }
        // Rewritten only when it changed: a new mtime would rebuild the package.
        if std::fs::read_to_string(copy.join("Cargo.toml")).ok().as_ref() != Some(&manifest) {
            std::fs::write(copy.join("Cargo.toml"), &manifest).map_err(|e| io("writing", e))?;
        }
        std::fs::copy(workspace.join("Cargo.lock"), copy.join("Cargo.lock"))
            .map_err(|e| io("copying Cargo.lock", e))?;
        let out = cargo()
            .args(["build", "--offline", "--quiet", "--manifest-path"])
            .arg(copy.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build of {} failed ({}):\n{}",
                original.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target.join("debug").join("mirakuru-test-scenario-abort"))
    });
    built.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// `mod <end> { mod per_test { fn plain() ... } mod shared { ... } }`: one test per scenario.
macro_rules! scenarios {
    ($($module:ident => $end:expr;)*) => {$(
        mod $module {
            use super::*;
            scenarios!(@kind per_test, Kind::PerTest, $end);
            scenarios!(@kind shared, Kind::Shared, $end);
        }
    )*};
    (@kind $module:ident, $kind:expr, $end:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn plain() {
                run($end, $kind, Service::Plain);
            }
            #[test]
            fn daemon() {
                run($end, $kind, Service::Daemon);
            }
            #[test]
            fn ignores_sigterm() {
                run($end, $kind, Service::IgnoreTerm);
            }
            #[test]
            fn grandchildren_in_own_sessions() {
                run($end, $kind, Service::Grandchildren);
            }
            #[test]
            fn pid_file_daemon_without_environment() {
                run($end, $kind, Service::PidDaemon);
            }
            #[test]
            fn redis_daemonize_yes() {
                run($end, $kind, Service::RedisDaemon);
            }
        }
    };
}

scenarios! {
    body_returns => End::Return;
    body_panics => End::Panic;
    panic_abort => End::Abort;
    process_exit => End::Exit;
    sigint => End::Signal(libc::SIGINT);
    sigterm => End::Signal(libc::SIGTERM);
    sigkill => End::Signal(libc::SIGKILL);
}

// --- the test binary killed while a readiness probe runs ---

/// An exec probe and what it forked are killed with the test binary: they carry its owner
/// marker (the reaper finds them), like the service. The binary is killed with SIGKILL while
/// its start waits for `sh -c 'sleep 300; exit 1'`.
fn killed_during_a_probe(kind: Kind) {
    let tag = Tag::new();
    let kind_arg = if kind == Kind::Shared { "shared" } else { "per-test" };
    let program = bin_path("mirakuru-test-scenario");
    let child = with_default_signals(&mut Command::new(&program))
        .args(["wait", kind_arg, "probe-child"])
        .env(Tag::VAR, tag.value())
        .env("MIRAKURU_SCENARIO_SERVICE", service())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let binary = child.id();
    let mut run = Cleanup { child, tags: vec![&tag] };
    // The binary, its reaper, the service, the probe's shell and its sleep.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tag.pids().len() < 5 {
        assert!(Instant::now() < deadline, "the probe never ran: {:?}", tag.pids());
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill only takes integers; the pid is our unreaped child.
    assert_eq!(unsafe { libc::kill(binary as i32, libc::SIGKILL) }, 0);
    let status = wait_within(&mut run.child, Duration::from_secs(10)).expect("killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    tag.assert_none_left_within(Duration::from_secs(1));
    assert_run_dir_gone(binary);
}

#[test]
fn sigkill_during_an_exec_probe_with_a_child_per_test() {
    killed_during_a_probe(Kind::PerTest);
}

#[test]
fn sigkill_during_an_exec_probe_with_a_child_shared() {
    killed_during_a_probe(Kind::Shared);
}

// --- nextest's slow-timeout ---

/// The scenarios of `tests/scenario_nextest.rs`: name, shared, service.
const NEXTEST_SCENARIOS: [(&str, bool, Service); 10] = [
    ("per_test_plain", false, Service::Plain),
    ("per_test_daemon", false, Service::Daemon),
    ("per_test_ignore_term", false, Service::IgnoreTerm),
    ("per_test_grandchildren", false, Service::Grandchildren),
    ("per_test_plain_test_ignores_sigterm", false, Service::Plain),
    ("shared_plain", true, Service::Plain),
    ("shared_daemon", true, Service::Daemon),
    ("shared_ignore_term", true, Service::IgnoreTerm),
    ("shared_grandchildren", true, Service::Grandchildren),
    ("shared_plain_test_ignores_sigterm", true, Service::Plain),
];

/// nextest terminates a test that exceeds its slow-timeout: SIGTERM to the test's process
/// group, and SIGKILL after the grace period if that is not enough (the `_ignores_sigterm`
/// scenarios). The fixture's services are in sessions of their own, out of that group's reach.
/// All scenarios run in one nextest run, in parallel.
#[test]
fn nextest_slow_timeout() {
    if !mirakuru_test::require("cargo-nextest") {
        return;
    }
    let dir = temp_dir();
    let config = dir.path().join("nextest.toml");
    std::fs::write(
        &config,
        "[profile.mirakuru-scenarios]\n\
         slow-timeout = { period = \"1s\", terminate-after = 1, grace-period = \"500ms\" }\n\
         fail-fast = false\n\
         retries = 0\n",
    )
    .expect("nextest config");
    // One tag for the whole run (cargo, nextest, the test processes, their reapers) and one
    // per scenario, which its services carry.
    let run_tag = Tag::new();
    let tags: Vec<Tag> = NEXTEST_SCENARIOS.iter().map(|_| Tag::new()).collect();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut nextest = cargo();
    nextest
        .args(["nextest", "run", "--offline", "--manifest-path"])
        .arg(&manifest)
        .args(["-p", "mirakuru-test", "--test", "scenario_nextest", "--run-ignored", "only"])
        .args(["--profile", "mirakuru-scenarios", "--no-fail-fast", "--test-threads"])
        .arg(NEXTEST_SCENARIOS.len().to_string())
        .arg("--config-file")
        .arg(&config)
        .env(Tag::VAR, run_tag.value())
        .env("MIRAKURU_SCENARIO_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("out")).expect("out"))
        .stderr(std::fs::File::create(dir.path().join("err")).expect("err"));
    for ((name, ..), tag) in NEXTEST_SCENARIOS.iter().zip(&tags) {
        nextest.env(format!("MIRAKURU_SCENARIO_TAG_{}", name.to_uppercase()), tag.value());
    }
    let child = nextest.spawn().expect("run cargo nextest");
    let mut run = Cleanup { child, tags: std::iter::once(&run_tag).chain(&tags).collect() };
    let output = || {
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("out"), read("err"))
    };

    // Each scenario reports `ready <pid> <processes of its service>` once its fixture runs.
    // The deadline leaves room for building the scenario binary if it is not built yet.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut test_pids = vec![None; NEXTEST_SCENARIOS.len()];
    while test_pids.iter().any(Option::is_none) {
        for (i, (name, _, service)) in NEXTEST_SCENARIOS.iter().enumerate() {
            if test_pids[i].is_some() {
                continue;
            }
            let Ok(report) = std::fs::read_to_string(dir.path().join(name)) else { continue };
            let fields: Vec<u32> =
                report.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
            assert_eq!(fields.len(), 2, "{name}: bad report {report:?}");
            assert_eq!(
                fields[1] as usize,
                service.processes().unwrap_or_default(),
                "{name}: the service's processes, counted by the scenario"
            );
            test_pids[i] = Some(fields[0]);
        }
        if let Some(status) = run.child.try_wait().expect("wait") {
            panic!("nextest ended ({status}) before every scenario reported:\n{}", output());
        }
        assert!(Instant::now() < deadline, "not every scenario reported:\n{}", output());
        std::thread::sleep(Duration::from_millis(5));
    }

    // nextest ends each test process; from that moment, 1 s for everything of it to be gone.
    let mut left: Vec<usize> = (0..NEXTEST_SCENARIOS.len()).collect();
    let mut gone_at: Vec<Option<Instant>> = vec![None; left.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !left.is_empty() {
        left.retain(|&i| {
            let test_pid = test_pids[i].expect("reported");
            if gone_at[i].is_none() && !is_alive(test_pid) {
                gone_at[i] = Some(Instant::now());
            }
            let Some(gone) = gone_at[i] else { return true };
            let remaining = tags[i].pids();
            if remaining.is_empty() {
                return false;
            }
            let (name, ..) = NEXTEST_SCENARIOS[i];
            assert!(
                gone.elapsed() < Duration::from_secs(1),
                "{name}: left 1 s after its test process was gone: {}",
                remaining.iter().map(|&p| describe(p)).collect::<Vec<_>>().join("; ")
            );
            true
        });
        assert!(Instant::now() < deadline, "nextest never ended scenarios {left:?}:\n{}", output());
        std::thread::sleep(Duration::from_millis(5));
    }

    let status = wait_within(&mut run.child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("nextest did not end:\n{}", output()));
    let text = output();
    assert!(!status.success(), "every scenario must time out:\n{text}");
    for (name, ..) in NEXTEST_SCENARIOS {
        let timed_out = text.lines().any(|l| l.contains("TIMEOUT") && l.ends_with(name));
        assert!(timed_out, "{name} was not terminated by nextest's slow-timeout:\n{text}");
    }
    run_tag.assert_none_left_within(Duration::from_secs(1));
}
