//! After ready: `running()` follows the service's tree, `check_alive()` reports a death with its
//! status and output (`Error::ServiceDied`), a fixture that died fails its test, and a clean
//! exit or a launcher handing over is no death.

use std::time::{Duration, Instant};

use mirakuru::fixture::{Fixtures, Spec};
use mirakuru::{Error, Fixture, TcpExecutor};
use mirakuru_test::{free_port, service, wait_gone, Tag};

use crate::{ready as ready_helper, status_code, svc, tag_env, QUICK};

/// §2.3: `running()` looked at the launcher only; a daemonized service counted as stopped.
#[test]
fn running_follows_the_daemon_of_a_launcher() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex =
        TcpExecutor::new(svc(&["--daemonize", "--tcp", &port.to_string()]), "127.0.0.1", port)
            .env(k, v);
    ex.start().expect("start");
    assert!(ex.running());
    ex.stop().expect("stop");
    assert!(!ex.running());
    tag.assert_none_left();
}

/// A daemon that leaves its launcher's session and clears its environment, ready while the
/// launcher still runs: once the launcher has exited, `running()` still follows the daemon and
/// `stop()` ends it. (Seen with `redis-server --daemonize yes` under load: the check passed
/// before the launcher exited, and the daemon was found by nothing afterwards.)
#[test]
fn a_daemon_ready_before_its_launcher_exits_is_still_followed() {
    let dir = mirakuru_test::temp_dir();
    let pid_file = dir.path().join("daemon.pid");
    let port = free_port();
    let (port_arg, pid_arg) = (port.to_string(), pid_file.display().to_string());
    let args = ["--daemonize", "--daemonize-linger-ms", "300", "--clear-env"];
    let args: Vec<&str> =
        args.into_iter().chain(["--pid-file", &pid_arg, "--tcp", &port_arg]).collect();
    let mut ex = TcpExecutor::new(svc(&args), "127.0.0.1", port);
    ex.start().expect("start");
    let launcher = ex.pid().expect("the launcher's pid");
    let daemon: u32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .expect("the daemon's pid");
    let launcher_exited = wait_gone(launcher, QUICK);
    let running = ex.running();
    ex.stop().expect("stop");
    let daemon_gone = mirakuru_test::gone_or_killed(daemon, Duration::from_secs(2));
    assert!(launcher_exited, "the launcher exits after 300 ms");
    assert!(running, "running() follows the daemon after its launcher exited");
    assert!(daemon_gone, "stop() ends the daemon");
}

fn wait_dead(check_alive: impl Fn() -> Result<(), Error>) -> Error {
    let deadline = Instant::now() + QUICK;
    loop {
        if let Err(err) = check_alive() {
            return err;
        }
        assert!(Instant::now() < deadline, "the service never died");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_crash_after_ready_is_reported_with_its_status_and_output() {
    let mut ex = ready_helper(&["--exit", "7", "--exit-after-ms", "100"]).timeout(QUICK);
    ex.start().expect("ready");
    ex.check_alive().expect("alive at first");
    let err = wait_dead(|| ex.check_alive());
    assert!(matches!(err, Error::ServiceDied { .. }), "{err}");
    assert_eq!(status_code(&err), Some(7));
    let message = err.to_string();
    assert!(message.contains("died during the test (exit code 7)"), "{message}");
    assert!(message.contains(crate::READY), "the output tail: {message}");
    let _ = ex.stop();
}

#[test]
fn a_kill_after_ready_is_reported_with_the_signal() {
    let mut ex = ready_helper(&[]).timeout(QUICK);
    ex.start().expect("ready");
    let pid = ex.pid().expect("pid");
    // SAFETY: kill only takes integers; the pid is our unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let err = wait_dead(|| ex.check_alive());
    assert!(err.to_string().contains("killed by signal 9"), "{err}");
    let _ = ex.stop();
}

#[test]
fn a_daemonized_service_is_watched_through_its_tree() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex =
        TcpExecutor::new(svc(&["--daemonize", "--tcp", &port.to_string()]), "127.0.0.1", port)
            .env(k, v)
            .timeout(QUICK);
    ex.start().expect("ready");
    ex.check_alive().expect("the daemon runs although the launcher exited");
    for pid in tag.pids() {
        // SAFETY: kill only takes integers; these processes carry our tag.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let err = wait_dead(|| ex.check_alive());
    assert!(matches!(err, Error::ServiceDied { .. }), "{err}");
    let _ = ex.stop();
    tag.assert_none_left();
}

#[test]
fn an_exit_with_code_zero_after_ready_is_not_a_death() {
    let mut ex = ready_helper(&["--exit", "0", "--exit-after-ms", "50"]).timeout(QUICK);
    ex.start().expect("ready");
    let pid = ex.pid().expect("pid");
    assert!(wait_gone(pid, QUICK));
    ex.check_alive().expect("a clean exit: the service finished");
    ex.stop().expect("a clean stop too");
}

#[test]
fn a_launcher_exiting_zero_after_ready_hands_over_to_what_it_started() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    // The launcher waits a little after its daemon is ready, then exits 0 (as `pg_ctl start`).
    let script = format!("\"$0\" --daemonize --tcp {port}; sleep 0.3");
    let mut ex =
        TcpExecutor::new(vec!["sh".to_string(), "-c".into(), script, service()], "127.0.0.1", port)
            .env(k, v)
            .timeout(QUICK);
    ex.start().expect("ready");
    let launcher = ex.pid().expect("pid");
    assert!(wait_gone(launcher, QUICK));
    ex.check_alive().expect("the daemon runs on");
    for pid in tag.pids() {
        // SAFETY: kill only takes integers; these processes carry our tag.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let err = wait_dead(|| ex.check_alive());
    assert!(matches!(err, Error::ServiceDied { status: None, .. }), "{err}");
    let _ = ex.stop();
    tag.assert_none_left();
}

#[test]
fn a_fixture_that_died_fails_the_test_that_passed() {
    let fixtures = Fixtures::try_start(vec![Spec::args(
        "crasher",
        svc(&["--banner", "up", "--exit", "5", "--exit-after-ms", "50"]),
    )
    .output("up")])
    .unwrap_or_else(|e| panic!("start: {}", e.1));
    let fixture: &Fixture = fixtures.get(0);
    let deadline = Instant::now() + QUICK;
    while fixture.check_alive().is_ok() {
        assert!(Instant::now() < deadline, "never died");
        std::thread::sleep(Duration::from_millis(5));
    }
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fixtures.finish(false)))
        .expect_err("the test fails");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("mirakuru fixture `crasher`"), "{message}");
    assert!(message.contains("died during the test (exit code 5)"), "{message}");
    assert!(message.contains("up"), "the output tail: {message}");
}
