//! The `#[mirakuru::fixture]` attribute with real processes: setup before the body, teardown
//! after it however it ends, stacking, automatic and fixed ports, shared fixtures, `stopped!`,
//! async tests, and failures that show the service's output.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use mirakuru::{Fixture, SharedFixture};
use mirakuru_test::{is_alive, wait_gone};

use crate::SERVICE;

/// A shell service that says which fixture it is when it starts and when it is stopped.
macro_rules! logging_service {
    ($log:expr, $name:expr) => {
        concat!(
            "trap 'echo stop-",
            $name,
            " >> ",
            $log,
            "; exit 0' TERM; echo start-",
            $name,
            " >> ",
            $log,
            "; echo ready; while :; do sleep 0.01; done"
        )
    };
}

static SEEN_PID: AtomicU32 = AtomicU32::new(0);

#[mirakuru::fixture(output = "ready", args = ["sh", "-c", "echo ready; exec sleep 300"])]
fn passes(svc: &Fixture) {
    let pid = svc.pid().expect("started before the body");
    assert!(is_alive(pid));
    SEEN_PID.store(pid, Ordering::SeqCst);
}

#[mirakuru::fixture(output = "ready", args = ["sh", "-c", "echo ready; exec sleep 300"])]
fn panics(svc: &Fixture) {
    SEEN_PID.store(svc.pid().expect("pid"), Ordering::SeqCst);
    panic!("the body fails");
}

#[mirakuru::fixture(output = "ready", args = ["sh", "-c", "echo ready; exec sleep 300"])]
fn returns_err(svc: &Fixture) -> Result<(), String> {
    SEEN_PID.store(svc.pid().expect("pid"), Ordering::SeqCst);
    Err("the body returns an error".into())
}

/// Runs the three bodies above one after another (they share SEEN_PID).
#[test]
fn fixtures_start_before_the_body_and_stop_after_it_however_it_ends() {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());

    passes();
    let pid = SEEN_PID.load(Ordering::SeqCst);
    assert!(wait_gone(pid, Duration::from_secs(5)), "stopped after a passing body");

    assert!(std::panic::catch_unwind(panics).is_err());
    let pid = SEEN_PID.load(Ordering::SeqCst);
    assert!(wait_gone(pid, Duration::from_secs(5)), "stopped after a panicking body");

    assert!(returns_err().is_err());
    let pid = SEEN_PID.load(Ordering::SeqCst);
    assert!(wait_gone(pid, Duration::from_secs(5)), "stopped after a body returning Err");
}

const STACK_LOG: &str = "/tmp/mirakuru-stack-test.log";

#[mirakuru::fixture(name = first, output = "ready", shell = true, cmd = logging_service!("/tmp/mirakuru-stack-test.log", "first"))]
#[mirakuru::fixture(name = second, output = "ready", shell = true, cmd = logging_service!("/tmp/mirakuru-stack-test.log", "second"))]
fn stacked(first: &Fixture, second: &Fixture) {
    assert_eq!((first.name(), second.name()), ("first", "second"));
    assert!(first.running() && second.running());
}

#[test]
fn stacked_fixtures_start_in_order_and_stop_in_reverse() {
    let _ = std::fs::remove_file(STACK_LOG);
    stacked();
    let log = std::fs::read_to_string(STACK_LOG).expect("log");
    std::fs::remove_file(STACK_LOG).expect("cleanup");
    assert_eq!(log, "start-first\nstart-second\nstop-second\nstop-first\n");
}

/// Ports of the automatic-port tests running right now.
static ACTIVE_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

macro_rules! parallel_auto_port_tests {
    ($($name:ident),*) => {$(
        #[mirakuru::fixture(tcp = auto, args = [SERVICE, "--tcp", "{port}"])]
        #[test]
        fn $name(svc: &Fixture) {
            let port = svc.port();
            {
                let mut active = ACTIVE_PORTS.lock().unwrap_or_else(|p| p.into_inner());
                assert!(!active.contains(&port), "port {port} is used by two running tests");
                active.push(port);
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).expect("our service listens");
            std::thread::sleep(Duration::from_millis(100));
            ACTIVE_PORTS.lock().unwrap_or_else(|p| p.into_inner()).retain(|&p| p != port);
        }
    )*};
}

parallel_auto_port_tests!(
    auto_port_01,
    auto_port_02,
    auto_port_03,
    auto_port_04,
    auto_port_05,
    auto_port_06,
    auto_port_07,
    auto_port_08,
    auto_port_09,
    auto_port_10,
    auto_port_11,
    auto_port_12,
    auto_port_13,
    auto_port_14,
    auto_port_15,
    auto_port_16
);

const FIXED_PORT: u16 = 47613;
static ON_FIXED_PORT: AtomicUsize = AtomicUsize::new(0);

macro_rules! fixed_port_tests {
    ($($name:ident),*) => {$(
        #[mirakuru::fixture(tcp = 47613, args = [SERVICE, "--tcp", "47613"])]
        #[test]
        fn $name(svc: &Fixture) {
            assert_eq!(svc.port(), FIXED_PORT);
            let others = ON_FIXED_PORT.fetch_add(1, Ordering::SeqCst);
            assert_eq!(others, 0, "two tests use port {FIXED_PORT} at once");
            std::thread::sleep(Duration::from_millis(50));
            ON_FIXED_PORT.fetch_sub(1, Ordering::SeqCst);
        }
    )*};
}

fixed_port_tests!(fixed_port_a, fixed_port_b, fixed_port_c, fixed_port_d);

#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--tcp", "{port}"])]
#[test]
fn stopped_takes_a_per_test_fixture_down_and_up(svc: &Fixture) {
    let port = svc.port();
    let before = svc.pid();
    mirakuru::stopped!(svc, {
        assert!(!svc.running());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    });
    assert!(svc.running());
    assert_ne!(svc.pid(), before);
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("same port, ready again");
}

#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--spawn-children", "2", "--tcp", "{port}"])]
#[test]
fn stop_ends_a_per_test_fixture_for_good_and_the_test_still_passes(svc: &Fixture) {
    let pid = svc.pid().expect("running");
    svc.stop().expect("a clean stop");
    assert!(!svc.running());
    assert_eq!(svc.pid(), None);
    assert!(!mirakuru_test::is_alive(pid), "the service is gone at once");
    assert!(std::net::TcpStream::connect(("127.0.0.1", svc.port())).is_err());
    svc.check_alive().expect("stopped by the test, not dead");
    svc.stop().expect("a second stop has nothing to do");
}

#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--tcp", "{port}"])]
#[test]
fn stopped_restarts_a_per_test_fixture_after_a_panicking_block(svc: &Fixture) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mirakuru::stopped!(svc, {
            panic!("inside the stopped block");
        })
    }));
    assert!(result.is_err());
    assert!(svc.running());
    std::net::TcpStream::connect(("127.0.0.1", svc.port())).expect("ready again");
}

#[mirakuru::fixture(name = svc, unix = auto, args = [SERVICE, "--unix", "{socket}"])]
#[mirakuru::fixture(name = pidfile, pid = "{tmpdir}/service.pid", args = [SERVICE, "--pid-file", "{tmpdir}/service.pid"])]
#[test]
fn tmpdir_socket_and_pid_placeholders(svc: &Fixture, pidfile: &Fixture) {
    std::os::unix::net::UnixStream::connect(svc.socket())
        .expect("the socket in the fixture's tmpdir");
    assert!(svc.socket().starts_with(svc.tmpdir()));
    assert!(pidfile.pid_file().starts_with(pidfile.tmpdir()));
    assert_ne!(svc.tmpdir(), pidfile.tmpdir(), "one directory per fixture");
    let mode = std::fs::metadata(svc.tmpdir()).expect("tmpdir").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700, "private");
}

static LAST_TMPDIR: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);

#[mirakuru::fixture(output = "ready", args = ["sh", "-c", "echo ready; exec sleep 300"])]
fn records_its_tmpdir(svc: &Fixture) {
    std::fs::write(svc.tmpdir().join("data"), "x").expect("writable");
    *LAST_TMPDIR.lock().unwrap_or_else(|p| p.into_inner()) = Some(svc.tmpdir().to_path_buf());
}

#[test]
fn tmpdirs_are_removed_at_teardown() {
    records_its_tmpdir();
    let dir = LAST_TMPDIR.lock().unwrap_or_else(|p| p.into_inner()).clone().expect("recorded");
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[mirakuru::fixture(env = ["GREETING=hello {port}"], tcp = auto, args = ["sh", "-c", "echo $GREETING; exec \"$0\" --tcp {port}", SERVICE])]
#[test]
fn env_values_and_args_get_placeholders(svc: &Fixture) {
    let expected = format!("hello {}", svc.port());
    assert!(svc.output().stdout_lossy().contains(&expected), "{:?}", svc.output());
}

#[mirakuru::fixture(output = "never printed", timeout = "300ms", args = ["sh", "-c", "echo warming up the cache; exec sleep 300"])]
fn never_ready(_svc: &Fixture) {}

#[test]
fn a_fixture_that_fails_to_start_fails_its_test_with_the_error_and_output() {
    let err = std::panic::catch_unwind(never_ready).expect_err("the fixture cannot start");
    let message = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("not ready after 300ms"), "{message}");
    assert!(message.contains("warming up the cache"), "the output tail: {message}");
}

// --- shared fixtures ---

// The service counts its own starts in the fixture's private directory.
#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--count-file", "{tmpdir}/starts", "--tcp", "{port}"])]
static SHARED: SharedFixture;

macro_rules! shared_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            let svc = SHARED.get();
            std::net::TcpStream::connect(("127.0.0.1", svc.port())).expect("shared service listens");
            // Under cargo nextest every test is a process of its own, with its own start.
            let starts = std::fs::read_to_string(svc.tmpdir().join("starts")).unwrap_or_default();
            assert_eq!(starts.lines().count(), 1, "started exactly once");
        }
    )*};
}

shared_tests!(
    shared_01, shared_02, shared_03, shared_04, shared_05, shared_06, shared_07, shared_08,
    shared_09, shared_10, shared_11, shared_12, shared_13, shared_14, shared_15, shared_16,
    shared_17, shared_18, shared_19, shared_20, shared_21, shared_22, shared_23, shared_24,
    shared_25, shared_26, shared_27, shared_28, shared_29, shared_30, shared_31, shared_32
);

#[test]
fn stopped_on_a_shared_fixture_waits_for_its_users_and_restarts_it() {
    let svc = SHARED.get();
    let port = svc.port();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mirakuru::stopped!(svc, {
            assert!(!svc.running());
            assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
            panic!("even when the block panics");
        })
    }));
    assert!(result.is_err());
    assert!(svc.running());
    std::net::TcpStream::connect(("127.0.0.1", port))
        .expect("the shared service is back, on its port");
}

/// Runs `mirakuru-test-shared` and returns its lines.
fn run_shared_program(threads: usize, count_file: &std::path::Path, fail: bool) -> Vec<String> {
    let mut cmd = std::process::Command::new(mirakuru_test::bin_path("mirakuru-test-shared"));
    cmd.arg(threads.to_string()).arg(count_file);
    if fail {
        cmd.arg("fail");
    }
    let out = cmd.output().expect("run mirakuru-test-shared");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn a_shared_fixture_starts_once_for_32_threads_and_stops_when_the_binary_exits() {
    let dir = mirakuru_test::temp_dir();
    let count = dir.path().join("starts");
    let lines = run_shared_program(32, &count, false);
    assert_eq!(lines.len(), 32, "{lines:?}");
    let distinct: HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), 1, "every thread got the same service: {lines:?}");
    let starts = std::fs::read_to_string(&count).expect("count file");
    assert_eq!(starts.lines().count(), 1, "counted by the service itself");
    // The program has exited: its exit hook must have stopped the service.
    let pid: u32 = lines[0].rsplit(' ').next().and_then(|p| p.parse().ok()).expect("pid");
    assert!(wait_gone(pid, Duration::from_secs(1)), "the shared service outlived its program");
}

#[test]
fn a_failed_shared_start_is_reported_to_every_user_with_the_original_error() {
    let dir = mirakuru_test::temp_dir();
    let count = dir.path().join("starts");
    let lines = run_shared_program(8, &count, true);
    assert_eq!(lines.len(), 8, "{lines:?}");
    for line in &lines {
        assert!(line.starts_with("error "), "{line}");
        assert!(line.contains("exit code 7"), "the original error: {line}");
        assert!(!line.to_lowercase().contains("poison"), "{line}");
    }
    let starts = std::fs::read_to_string(&count).expect("count file");
    assert_eq!(starts.lines().count(), 1, "the failed start is not retried by every user");
}

#[mirakuru::fixture(name = talker, output = "ready", args = ["sh", "-c", "echo the fixture says its last words; echo ready; exec sleep 300"])]
#[test]
fn deliberately_failing_test_for_the_log_check(talker: &Fixture) {
    // Only fails when the test below runs it in a child process.
    if std::env::var_os("MIRAKURU_DELIBERATE_FAILURE").is_some() {
        assert!(talker.running());
        panic!("deliberate failure");
    }
}

#[test]
fn a_failing_test_shows_its_fixtures_output_labelled() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "fixtures::deliberately_failing_test_for_the_log_check",
            "--exact",
            "--test-threads",
            "1",
        ])
        .env("MIRAKURU_DELIBERATE_FAILURE", "1")
        .output()
        .expect("run the failing test");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("deliberate failure"), "{text}");
    assert!(text.contains("--- mirakuru fixture `talker`"), "labelled: {text}");
    assert!(text.contains("the fixture says its last words"), "the output tail: {text}");
}

#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--tcp", "{port}"])]
#[tokio::test]
async fn async_tests_get_their_fixtures(svc: &Fixture) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", svc.port())).await.expect("connect");
    drop(stream);
    tokio::task::yield_now().await;
    assert!(svc.running());
}

#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--tcp", "{port}"])]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tests_on_a_multi_thread_runtime(svc: &Fixture) -> Result<(), std::io::Error> {
    let port = svc.port();
    let handle =
        tokio::spawn(
            async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map(drop) },
        );
    handle.await.expect("task")?;
    Ok(())
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use mirakuru::fixture::{Fixtures, Port, Spec};
    use mirakuru::Error;

    use crate::Probe;

    // bad-input catalogue #28
    #[test]
    fn fixture_with_fixed_port_0() {
        // `tcp = 0` is a compile error in the attribute; written by hand, start() refuses it.
        let probe = Probe::new();
        let spec = Spec::args("zero", probe.argv()).tcp(Port::Fixed(0));
        let failed = Fixtures::try_start(vec![spec]).expect_err("port 0");
        let (name, err) = *failed;
        assert_eq!(name, "zero");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains("port 0 cannot be waited for"), "{err}");
        probe.assert_nothing_spawned();
    }
}

/// A port chosen automatically that a foreign process takes before the service binds it is
/// replaced: only a listener of the service's own counts, so the start is tried again on
/// another port. (The plain `tcp = auto` check took the stranger for the service and kept
/// the lost port and a dead service.)
#[test]
fn an_automatic_port_a_stranger_takes_first_is_replaced() {
    let dir = mirakuru_test::temp_dir();
    let note = dir.path().join("port");
    // The service writes its port down, then binds it a moment later; the stranger (this
    // test) binds the first port it reads.
    let script = format!(
        "echo {{port}} > '{}'; sleep 0.4; exec '{}' --tcp {{port}}",
        note.display(),
        mirakuru_test::service()
    );
    let stranger = std::thread::spawn(move || {
        for _ in 0..2000 {
            if let Some(port) =
                std::fs::read_to_string(&note).ok().and_then(|t| t.trim().parse::<u16>().ok())
            {
                return (port, std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the fixture never wrote its port");
    });
    let spec = mirakuru::fixture::Spec::new("svc", script)
        .shell(true)
        .tcp(mirakuru::fixture::Port::Auto)
        .timeout(Duration::from_secs(20));
    let fixture = spec.start().expect("started on another port");
    let (taken, _listener) = stranger.join().expect("the stranger took a port");
    assert_ne!(fixture.port(), taken, "the fixture kept the port the stranger took");
    assert!(fixture.running(), "its service runs");
    std::net::TcpStream::connect(("127.0.0.1", fixture.port())).expect("its service listens");
}

/// `free_port()` forgets the ports it handed out long ago: after ~13,000 automatic ports one
/// process could get no more.
#[test]
fn free_ports_never_run_out() {
    for i in 0..20_000 {
        mirakuru::free_port().unwrap_or_else(|e| panic!("port {i}: {e}"));
    }
}

/// `{tmpdir}` is filled in byte for byte, and quoted in a shell line: a space, `$` or `;` in
/// the temporary directory's path used to break the command, or inject one.
#[test]
fn a_temporary_directory_with_odd_characters_is_passed_whole() {
    let name = "fixtures::a_temporary_directory_with_odd_characters_is_passed_whole";
    if std::env::var_os("MIRAKURU_TEST_CHILD").is_none() {
        let base = mirakuru_test::temp_dir();
        let odd = base.path().join("a b$HOME;c");
        std::fs::create_dir(&odd).expect("odd TMPDIR");
        crate::in_child(name, &[("TMPDIR", &odd.display().to_string())]);
        return;
    }
    let odd = std::env::temp_dir();
    let spec = mirakuru::fixture::Spec::new(
        "sh",
        "test -d {tmpdir} && touch {tmpdir}/ok && exec sleep 30",
    )
    .shell(true)
    .file("{tmpdir}/ok");
    let fixture = spec.start().expect("the shell line gets the path whole");
    assert!(fixture.tmpdir().starts_with(&odd), "{}", fixture.tmpdir().display());
    let args = mirakuru::fixture::Spec::args(
        "args",
        ["sh", "-c", "touch \"$1\"/ok; exec sleep 30", "sh", "{tmpdir}"],
    )
    .file("{tmpdir}/ok");
    args.start().expect("arguments get the path whole");
}

/// A start that fails for want of file descriptors (EMFILE) does not make every later start
/// of the binary fail: the failure to start mirakuru's thread used to be remembered.
#[test]
fn a_passing_lack_of_file_descriptors_is_not_remembered() {
    let name = "fixtures::a_passing_lack_of_file_descriptors_is_not_remembered";
    if !crate::in_child(name, &[]) {
        return;
    }
    // A first start raises the binary's soft limit to its hard one (as Go's runtime does);
    // the limit set below, after it, is the one the next start meets.
    let mut first = mirakuru::SimpleExecutor::new("sleep 30");
    first.start().expect("the first start");
    first.stop().expect("stop");
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write a valid rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // The limit caps fd numbers, not their count: a binary started with a high fd open (a
    // runner's shell keeps 255) has holes below it. They are filled, so that exactly one
    // number is left free under the limit.
    let highest = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(16);
    let mut holes = Vec::new();
    loop {
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        if std::os::fd::AsRawFd::as_raw_fd(&null) as u64 > highest {
            break;
        }
        holes.push(null);
    }
    let tight = libc::rlimit { rlim_cur: highest + 2, rlim_max: limit.rlim_max };
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &tight) };
    let err = mirakuru::SimpleExecutor::new("sleep 30").start().expect_err("no descriptors");
    assert!(err.to_string().contains("open files"), "{err}");
    assert!(err.to_string().contains("ulimit -n"), "says what to do: {err}");
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    drop(holes);
    let mut ex = mirakuru::SimpleExecutor::new("sleep 30");
    ex.start().expect("starts once descriptors are back");
    ex.stop().expect("stop");
}

#[mirakuru::fixture(tcp = auto, args = [SERVICE, "--tcp", "{port}"])]
static REENTRANT: SharedFixture;

/// A test that holds a shared fixture and takes it again (a helper calls `get()`) while
/// another test waits to stop it with `stopped!` goes on: uses are counted per thread. Both
/// used to wait for each other forever.
#[test]
fn stopped_on_a_shared_fixture_does_not_deadlock_with_a_test_that_takes_it_twice() {
    let (done_tx, done) = std::sync::mpsc::channel();
    let user = {
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            let first = REENTRANT.get();
            // The other test is waiting to stop it by now.
            std::thread::sleep(Duration::from_millis(300));
            let again = REENTRANT.get();
            assert!(again.running(), "still up: the stopper waits for this test");
            drop((first, again));
            let _ = done_tx.send("user");
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let stopper = std::thread::spawn(move || {
        mirakuru::stopped!(REENTRANT, {
            assert!(!REENTRANT.get().running(), "down inside the block, seen by its own test");
        });
        let _ = done_tx.send("stopper");
    });
    for _ in 0..2 {
        done.recv_timeout(Duration::from_secs(30)).expect("no deadlock");
    }
    user.join().expect("user");
    stopper.join().expect("stopper");
    assert!(REENTRANT.get().running(), "back up after the block");
}

/// `stopped!` takes the static itself, and a guard may move to another thread.
#[test]
fn stopped_works_on_the_static_and_guards_are_send() {
    fn send<T: Send>(_: &T) {}
    let guard = REENTRANT.get();
    send(&guard);
    let port = guard.port();
    drop(guard);
    mirakuru::stopped!(REENTRANT, {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    });
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("back on its port");
}

/// A shared fixture on a fixed port in two test processes at once (as under nextest): the
/// second waits for the first to end, then runs its own service there. Without a claim, the
/// second's service died (the port was taken) and its check reached the first's service: the
/// test passed on another process's service.
#[test]
fn a_shared_fixture_on_a_fixed_port_is_one_processs_at_a_time() {
    let dir = mirakuru_test::temp_dir();
    let count = dir.path().join("starts");
    let port = mirakuru_test::free_port().to_string();
    let run = || {
        std::process::Command::new(mirakuru_test::bin_path("mirakuru-test-shared"))
            .args(["fixed", &port, &count.display().to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run mirakuru-test-shared")
    };
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join().expect("first"), b.join().expect("second"))
    });
    for out in [&first, &second] {
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(line.contains("running true"), "its own service ran: {line}");
    }
    let starts = std::fs::read_to_string(&count).expect("count file");
    assert_eq!(starts.lines().count(), 2, "each process started its own service, in turn");
}

#[mirakuru::fixture(name = shared_talker, output = "ready", args = ["sh", "-c", "echo the shared fixture says its last words; echo ready; exec sleep 300"])]
static SHARED_TALKER: SharedFixture;

#[test]
fn deliberately_failing_test_with_a_shared_fixture_for_the_log_check() {
    // Only fails when the test below runs it in a child process.
    if std::env::var_os("MIRAKURU_DELIBERATE_FAILURE").is_some() {
        // The guard is dropped at the end of this statement, long before the failure.
        let pid = SHARED_TALKER.get().pid();
        assert!(pid.is_none(), "deliberate failure");
    }
}

/// A failing test that used a shared fixture shows the service's last lines, also when it did
/// not hold its guard any more (`SHARED.get().pid()` drops it at once): it showed nothing.
#[test]
fn a_failing_test_shows_the_output_of_the_shared_fixtures_it_used() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "fixtures::deliberately_failing_test_with_a_shared_fixture_for_the_log_check",
            "--exact",
            "--test-threads",
            "1",
        ])
        .env("MIRAKURU_DELIBERATE_FAILURE", "1")
        .output()
        .expect("run the failing test");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("deliberate failure"), "{text}");
    assert!(text.contains("--- mirakuru fixture `shared_talker`"), "labelled: {text}");
    assert!(text.contains("the shared fixture says its last words"), "the output tail: {text}");
}

/// A path the service makes outside its directory is removed once the fixture stopped
/// (issue 13: "paths the service creates can be removed after stop").
#[test]
fn paths_made_outside_the_fixture_are_removed_after_stop() {
    let dir = mirakuru_test::temp_dir();
    let outside = dir.path().join("made-by-the-service");
    let script =
        format!("mkdir -p {0}/sub && touch {0}/sub/file && exec sleep 30", outside.display());
    let spec = mirakuru::fixture::Spec::args("maker", ["sh", "-c", &script])
        .file(format!("{}/sub/file", outside.display()))
        .remove_after_stop(outside.display().to_string());
    let fixtures = mirakuru::fixture::Fixtures::start(vec![spec]);
    assert!(outside.join("sub/file").exists(), "made while it runs");
    fixtures.finish(false);
    assert!(!outside.exists(), "{} was removed after the stop", outside.display());
}
