//! start / stop / kill / restart / stopped / Drop, and how a stop judges the exit.

use std::time::{Duration, Instant};

use mirakuru::{Error, OutputExecutor, Signal, SimpleExecutor, TcpExecutor};
use mirakuru_test::{free_port, is_alive, wait_gone, Tag};

use crate::{ready, svc, tag_env};

#[test]
fn an_executor_can_be_started_again_after_stop() {
    let mut ex = SimpleExecutor::new(svc(&[]));
    ex.start().expect("start");
    let first = ex.pid().expect("pid");
    ex.stop().expect("stop");
    ex.start().expect("start again");
    let second = ex.pid().expect("pid");
    assert_ne!(first, second);
    ex.restart().expect("restart");
    assert_ne!(ex.pid(), Some(second));
    ex.stop().expect("stop");
}

#[test]
fn drop_stops_the_service() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let pid = {
        let mut ex = SimpleExecutor::new(svc(&[])).env(k, v);
        ex.start().expect("start");
        ex.pid().expect("pid")
    };
    assert!(wait_gone(pid, Duration::from_secs(5)), "drop must stop the service");
    tag.assert_none_left();
}

#[test]
fn stop_escalates_to_the_kill_signal_after_stop_timeout() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--ignore", "TERM"]).stop_timeout(Duration::from_millis(200)).env(k, v);
    ex.start().expect("start");
    let began = Instant::now();
    ex.stop().expect("an escalated stop is still a stop");
    assert!(began.elapsed() >= Duration::from_millis(200), "waited the grace period first");
    assert!(began.elapsed() < Duration::from_secs(10), "and did not hang");
    tag.assert_none_left();
}

#[test]
fn kill_never_hangs_on_a_caught_kill_signal() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--ignore", "TERM"]).kill_signal(Signal::SIGTERM).env(k, v);
    ex.start().expect("start");
    let began = Instant::now();
    ex.kill().expect("kill");
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "kill escalated to SIGKILL instead of hanging"
    );
    tag.assert_none_left();
}

#[test]
fn a_crash_before_stop_is_reported_by_stop() {
    let mut ex = SimpleExecutor::new(svc(&["--exit", "1", "--exit-after-ms", "10"]));
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    assert!(wait_gone(pid, Duration::from_secs(5)));
    let err = ex.stop().expect_err("exit code 1 is not a clean stop");
    assert!(matches!(err, Error::ProcessFinishedWithError { .. }), "{err}");
    assert_eq!(err.exit_status().and_then(|s| s.code()), Some(1));
    ex.stop().expect("a second stop is a no-op");
}

#[test]
fn an_externally_killed_process_is_reported_by_stop() {
    let mut ex = SimpleExecutor::new(svc(&[]));
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    // SAFETY: kill only takes integers; the pid is our unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(wait_gone(pid, Duration::from_secs(5)));
    let err = ex.stop().expect_err("killed by SIGKILL is not a clean stop");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(err.exit_status().and_then(|s| s.signal()), Some(9), "{err}");
}

#[test]
fn exit_zero_on_stop_is_clean() {
    let mut ex = ready(&["--exit-on", "TERM:0"]);
    ex.start().expect("start");
    ex.stop().expect("exit 0 on SIGTERM is clean");
}

#[test]
fn expected_returncode_accepts_programs_that_exit_with_a_code_on_sigterm() {
    // A JVM exits 143 on SIGTERM (mirakuru #388).
    let mut strict = ready(&["--exit-on", "TERM:143"]);
    strict.start().expect("start");
    let err = strict.stop().expect_err("143 is not expected by default");
    assert!(err.to_string().contains("expected_returncode"), "says what to do: {err}");

    let mut java_like = ready(&["--exit-on", "TERM:143"]).expected_returncode(143);
    java_like.start().expect("start");
    java_like.stop().expect("143 is expected");
}

#[test]
fn stop_with_another_signal_expects_that_signal() {
    let mut ex = SimpleExecutor::new(svc(&[]));
    ex.start().expect("start");
    ex.stop_with(Signal::SIGINT, None).expect("death by SIGINT is clean for a SIGINT stop");
}

#[test]
fn stop_signal_is_configurable() {
    let mut ex = ready(&["--ignore", "TERM", "--exit-on", "INT:0"])
        .stop_signal(Signal::SIGINT)
        .stop_timeout(Duration::from_secs(30));
    ex.start().expect("start");
    let began = Instant::now();
    ex.stop().expect("stop");
    assert!(began.elapsed() < Duration::from_secs(10), "SIGINT was sent, not SIGTERM");
}

#[test]
fn stopped_scope_takes_the_service_down_and_back_up() {
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--tcp", &port.to_string()]), "127.0.0.1", port);
    ex.start().expect("start");
    let before = ex.pid().expect("pid");
    mirakuru::stopped!(ex, {
        assert!(!ex.running());
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "down inside the scope"
        );
    });
    assert!(ex.running());
    assert_ne!(ex.pid(), Some(before));
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("ready again after the scope");
    ex.stop().expect("stop");
}

#[test]
fn stopped_scope_restarts_even_when_its_block_panics() {
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--tcp", &port.to_string()]), "127.0.0.1", port);
    ex.start().expect("start");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mirakuru::stopped!(ex, {
            panic!("the block fails");
        })
    }));
    assert!(result.is_err());
    assert!(ex.running(), "restarted although the block panicked");
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("and ready");
    ex.stop().expect("stop");
}

#[test]
fn stopped_scope_restarts_when_the_block_returns_early() {
    fn inner(ex: &mut SimpleExecutor) -> Result<(), String> {
        mirakuru::stopped!(ex, {
            Err("leaving early".to_string())?;
        });
        Ok(())
    }
    let mut ex = SimpleExecutor::new(svc(&[]));
    ex.start().expect("start");
    assert!(inner(&mut ex).is_err());
    assert!(ex.running(), "restarted after `?` left the block");
    ex.stop().expect("stop");
}

#[test]
fn stopped_scope_works_when_the_service_is_not_running() {
    let mut ex = SimpleExecutor::new(svc(&[]));
    let value = mirakuru::stopped!(ex, { 42 });
    assert_eq!(value, 42);
    assert!(!ex.running(), "a service that was not started stays down");
}

#[test]
fn stopped_guard_reports_restart_errors_as_values() {
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--tcp", &port.to_string()]), "127.0.0.1", port);
    ex.start().expect("start");
    let guard = ex.stopped().expect("stopped");
    // Something else takes the port meanwhile: the restart must say so.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let err = guard.restart().expect_err("the port is taken");
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
    drop(squatter);
}

#[test]
fn an_executor_outlives_the_thread_that_started_it() {
    // PR_SET_PDEATHSIG fires when the spawning *thread* exits; services are spawned from a
    // long-lived supervisor thread so this does not kill them.
    let mut ex = std::thread::spawn(|| {
        let mut ex = SimpleExecutor::new(svc(&[]));
        ex.start().expect("start");
        ex
    })
    .join()
    .expect("thread");
    std::thread::sleep(Duration::from_millis(50));
    let pid = ex.pid().expect("pid");
    assert!(is_alive(pid), "the service died with the thread that started it");
    ex.stop().expect("stop");
}

#[test]
fn executors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SimpleExecutor>();
    assert_send_sync::<TcpExecutor>();
    assert_send_sync::<mirakuru::Executor>();
    let mut ex = OutputExecutor::new(svc(&["--banner", "up"]), "up");
    ex.start().expect("start");
    let ex = std::thread::spawn(move || {
        assert!(ex.running());
        ex
    })
    .join()
    .expect("thread");
    drop(ex);
}

#[test]
fn ready_after_records_the_time_to_ready() {
    let mut ex = OutputExecutor::new(svc(&["--delay-ms", "40", "--banner", "up"]), "up");
    assert_eq!(ex.ready_after(), None);
    ex.start().expect("start");
    let took = ex.ready_after().expect("recorded");
    assert!(took >= Duration::from_millis(40), "{took:?}");
    ex.stop().expect("stop");
}

#[test]
fn signal_reaches_the_service() {
    let mut ex = ready(&["--exit-on", "USR1:7"]);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    ex.signal(Signal::SIGUSR1);
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert_eq!(ex.exit_status().and_then(|s| s.code()), Some(7));
    assert!(ex.stop().is_err(), "exit 7 is not a clean stop");
}

#[test]
fn runs_as_another_user_when_root_and_says_why_not_otherwise() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--spawn-children", "1", "--children-setsid"]).user("nobody").env(k, v);
    if !root {
        let err = ex.start().expect_err("only root can switch users");
        assert!(err.to_string().contains("only root"), "{err}");
        return;
    }
    ex.start().expect("start as nobody");
    let pid = ex.pid().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    assert!(uid_line.contains("65534"), "{uid_line}");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).expect("Groups line");
    assert_eq!(groups.trim(), "Groups:", "supplementary groups dropped");
    // Its child left the session, and belongs to another user than the test: still stopped.
    ex.stop().expect("stop");
    tag.assert_none_left();
}
