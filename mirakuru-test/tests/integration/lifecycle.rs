//! start / stop / kill / restart / stopped / Drop: what `start()` does when the process exits or
//! is late, how a stop judges the exit, signals, and calls out of order.

use std::time::{Duration, Instant};

use mirakuru::{Error, OutputExecutor, Signal, SimpleExecutor, TcpExecutor};
use mirakuru_test::{free_port, is_alive, wait_gone, Tag};

use crate::{assert_stopped_and_gone, ready, svc, tag_env};

#[test]
fn simple_executor_starts_and_stops() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = SimpleExecutor::new(svc(&[])).env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    assert!(ex.running());
    assert!(is_alive(pid));
    ex.stop().expect("stop");
    assert!(!ex.running());
    assert_eq!(ex.pid(), None);
    assert_stopped_and_gone(pid, &tag);
}

// --- start: early exits and timeouts ---

#[test]
fn a_non_zero_exit_during_start_fails_at_once_with_status_and_output() {
    let port = free_port();
    let mut ex = TcpExecutor::new(
        svc(&["--banner", "config error: bad setting", "--exit", "3"]),
        "127.0.0.1",
        port,
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("exits 3");
    assert!(began.elapsed() < Duration::from_secs(10), "did not wait for the timeout");
    assert!(matches!(err, Error::ProcessExitedWithError { .. }), "{err}");
    assert_eq!(err.exit_status().and_then(|s| s.code()), Some(3));
    let message = err.to_string();
    assert!(message.contains("exit code 3"), "{message}");
    assert!(
        message.contains("config error: bad setting"),
        "the output tail is in the message: {message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "what was waited for: {message}");
    assert!(!ex.running());
}

#[test]
fn exit_zero_is_tolerated_while_a_daemon_it_left_becomes_ready() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex = TcpExecutor::new(
        svc(&["--daemonize", "--delay-ms", "100", "--tcp", &port.to_string()]),
        "127.0.0.1",
        port,
    )
    .env(k, v);
    ex.start().expect("the launcher exits 0 and the daemon listens later");
    assert!(ex.running(), "the daemon runs, though the launcher exited");
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn exit_zero_without_anything_left_fails_at_once() {
    let port = free_port();
    let mut ex =
        TcpExecutor::new(svc(&["--exit", "0"]), "127.0.0.1", port).timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("nothing can listen any more");
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, Error::ProcessExitedWithError { .. }), "{err}");
    assert!(err.to_string().contains("code 0"), "{err}");
}

/// A binary started with SIGCHLD ignored (some CI runners start their jobs so) still learns
/// how its services exited: the kernel would reap them at once and every verdict on a
/// launcher would go wrong. Its services do not inherit ignored signals either: one that
/// ignored SIGTERM would make every stop wait out its grace period.
#[test]
fn a_binary_started_with_signals_ignored_still_judges_and_stops_its_services() {
    if !crate::in_child_ignoring(
        "lifecycle::a_binary_started_with_signals_ignored_still_judges_and_stops_its_services",
        &[libc::SIGCHLD, libc::SIGTERM, libc::SIGHUP],
    ) {
        return;
    }
    let port = free_port();
    let err = TcpExecutor::new(svc(&["--exit", "3"]), "127.0.0.1", port)
        .timeout(Duration::from_secs(60))
        .start()
        .expect_err("nothing listens");
    assert!(err.to_string().contains("code 3"), "its exit status is known: {err}");

    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&[]).env(k, v).stop_timeout(Duration::from_secs(30));
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    if let Some(mask) = status.lines().find_map(|l| l.strip_prefix("SigIgn:")) {
        let mask = u64::from_str_radix(mask.trim(), 16).expect("a hex mask");
        for signal in [libc::SIGCHLD, libc::SIGTERM, libc::SIGHUP] {
            assert_eq!(mask & (1 << (signal - 1)), 0, "signal {signal} is ignored: {status}");
        }
    }
    let began = Instant::now();
    ex.stop().expect("stopped by SIGTERM");
    assert!(began.elapsed() < Duration::from_secs(10), "the stop waited out its grace");
    assert_stopped_and_gone(pid, &tag);

    stop_ends_a_daemon_that_left_its_session_and_environment();
}

/// A binary whose session leader is outside its pid namespace (CI jobs a container's init
/// started) has session 0; sweeps, which skip the binary's own session, must take that for a
/// session number and not for an error.
#[test]
fn a_binary_whose_session_began_outside_its_pid_namespace_starts_and_stops_services() {
    let name =
        "lifecycle::a_binary_whose_session_began_outside_its_pid_namespace_starts_and_stops_services";
    if !crate::in_child_outside_its_session(name) {
        return;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").expect("its stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let session = after_name.split(' ').nth(3).expect("a session field");
    assert_eq!(session, "0", "the binary's session began outside its namespace: {stat}");

    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--spawn-children", "2", "--children-setsid"]).env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);

    stop_ends_a_daemon_that_left_its_session_and_environment();
}

/// A daemon that calls setsid and clears its environment, found through the socket its check
/// reached, is ended by `stop()`.
fn stop_ends_a_daemon_that_left_its_session_and_environment() {
    let dir = mirakuru_test::temp_dir();
    let pid_file = dir.path().join("daemon.pid");
    let (port, pid_arg) = (free_port(), pid_file.display().to_string());
    let port_arg = port.to_string();
    let args = ["--daemonize", "--clear-env", "--pid-file", &pid_arg, "--tcp", &port_arg];
    let mut ex = TcpExecutor::new(svc(&args), "127.0.0.1", port);
    ex.start().expect("a daemon that left the session");
    // It writes its pid file after it listens.
    let daemon = mirakuru_test::pid_from_file(&pid_file, Duration::from_secs(5))
        .expect("the daemon writes its pid file");
    ex.stop().expect("stop");
    let gone = mirakuru_test::gone_or_killed(daemon, Duration::from_secs(2));
    assert!(gone, "stop() ends the daemon");
}

/// A program's own SIGCHLD handler, installed with `SA_NOCLDWAIT` (children then leave no
/// status), is kept: only the flag goes, so that exit statuses can be read.
#[test]
fn a_programs_own_sigchld_handler_is_kept_without_nocldwait() {
    let name = "lifecycle::a_programs_own_sigchld_handler_is_kept_without_nocldwait";
    if !crate::in_child(name, &[]) {
        return;
    }
    extern "C" fn on_child(_: libc::c_int) {}
    let handler = on_child as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: sigaction(2) with a zeroed struct filled with a handler that does nothing, in a
    // child process of its own, before its first start.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_NOCLDWAIT;
        libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut());
    }
    let err = TcpExecutor::new(svc(&["--exit", "3"]), "127.0.0.1", free_port())
        .start()
        .expect_err("nothing listens");
    assert!(err.to_string().contains("code 3"), "its exit status is known: {err}");
    // SAFETY: a query into a zeroed struct.
    let now = unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut now);
        now
    };
    assert_eq!(now.sa_sigaction, handler, "the program's handler is kept");
    assert_eq!(now.sa_flags & libc::SA_NOCLDWAIT, 0, "without SA_NOCLDWAIT");
}

#[test]
fn a_timeout_kills_the_process_and_says_what_was_awaited() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--banner", "still warming up"]), "127.0.0.1", port)
        .timeout(Duration::from_millis(300))
        .env(k, v);
    let err = ex.start().expect_err("never listens");
    let Error::TimeoutExpired { timeout, .. } = &err else { panic!("{err}") };
    assert_eq!(*timeout, Duration::from_millis(300));
    let message = err.to_string();
    assert!(message.contains("300ms"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("refused"), "the last attempt: {message}");
    assert!(message.contains("still warming up"), "the output tail: {message}");
    assert!(message.contains(".timeout("), "what to do: {message}");
    assert!(!ex.running());
    assert_eq!(ex.pid(), None);
    tag.assert_none_left();
}

/// §2.14: TimeoutExpired said only "timed out after N seconds". Here it carries what was
/// awaited, the last attempt and the output.
#[test]
fn timeouts_explain_themselves() {
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--banner", "loading data 42%"]), "127.0.0.1", port)
        .timeout(Duration::from_millis(200));
    let message = ex.start().expect_err("times out").to_string();
    for part in [
        "was not ready after 200ms",
        &format!("127.0.0.1:{port}"),
        "last attempt",
        "loading data 42%",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
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

// --- stop, kill, Drop, restart ---

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

/// §2.16.2: one timeout for start and stop (default 3600 s): a process ignoring SIGTERM blocked
/// `stop()` for an hour. Here the stop has its own deadline.
#[test]
fn stop_has_its_own_timeout_separate_from_the_startup_timeout() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--ignore", "TERM"])
        .timeout(Duration::from_secs(3600))
        .stop_timeout(Duration::from_millis(100))
        .env(k, v);
    ex.start().expect("start");
    let began = Instant::now();
    ex.stop().expect("stop");
    assert!(began.elapsed() < Duration::from_secs(10), "stop used the startup timeout");
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

/// §2.16.8: `kill()` waited without bound, so a catchable kill signal hung it forever.
#[test]
fn kill_is_bounded_even_with_an_ignored_kill_signal() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--ignore", "TERM"]).kill_signal(mirakuru::Signal::SIGTERM).env(k, v);
    ex.start().expect("start");
    let began = Instant::now();
    ex.kill().expect("kill");
    assert!(began.elapsed() < Duration::from_secs(20));
    tag.assert_none_left();
}

// --- how a stop judges the exit; signals ---

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

/// §2.16.9 and #388/#457: programs that exit with a code on SIGTERM can be declared clean.
#[test]
fn a_non_posix_exit_on_stop_can_be_expected() {
    let mut ex = ready(&["--exit-on", "TERM:1"]).expected_returncode(1);
    ex.start().expect("start");
    ex.stop().expect("1 is declared clean");
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
fn signal_reaches_the_service() {
    let mut ex = ready(&["--exit-on", "USR1:7"]);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    ex.signal(Signal::SIGUSR1);
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert_eq!(ex.exit_status().and_then(|s| s.code()), Some(7));
    assert!(ex.stop().is_err(), "exit 7 is not a clean stop");
}

// --- stopped ---

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

// --- threads ---

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

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #18
    #[test]
    fn zero_timeout() {
        let probe = Probe::new();
        refused(
            SimpleExecutor::new(probe.argv()).timeout(Duration::ZERO).into_inner(),
            "the startup timeout is zero",
            "positive duration",
        );
        probe.assert_nothing_spawned();
    }

    // Calls out of order.

    // bad-input catalogue #40
    #[test]
    fn start_twice() {
        let probe = Probe::new();
        let mut ex = SimpleExecutor::new(probe.argv());
        ex.start().expect("start");
        let pid = ex.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.spawned() == 0 {
            assert!(Instant::now() < deadline, "the service never ran");
            std::thread::sleep(Duration::from_millis(2));
        }
        let err = ex.start().expect_err("second start");
        let message = err.to_string();
        assert!(matches!(err, Error::AlreadyRunning { .. }), "{message}");
        assert!(message.contains("this executor has already started it"), "{message}");
        assert!(message.contains("call stop() before starting it again"), "{message}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(probe.spawned(), 1, "a second process was spawned");
        assert_eq!(ex.pid(), pid, "the first process is still the one");
        assert!(ex.running());
        ex.stop().expect("stop");
    }

    // bad-input catalogue #41
    /// Stop before start is no error: Python mirakuru's `stop()` is a no-op then, and stopping is
    /// idempotent (as closing is in std): `Ok(())`, and nothing is spawned.
    #[test]
    fn stop_before_start() {
        let probe = Probe::new();
        let mut ex = SimpleExecutor::new(probe.argv());
        ex.stop().expect("answered with Ok(())");
        assert!(!ex.running() && ex.pid().is_none());
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #42
    /// Kill before start: the same no-op.
    #[test]
    fn kill_before_start() {
        let probe = Probe::new();
        let mut ex = SimpleExecutor::new(probe.argv());
        ex.kill().expect("answered with Ok(())");
        assert!(!ex.running() && ex.pid().is_none());
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #43
    /// Kill twice: the second is a no-op, `Ok(())`; the tree is gone after the first.
    #[test]
    fn kill_twice() {
        let tag = Tag::new();
        let (k, v) = tag_env(&tag);
        let mut ex = SimpleExecutor::new(svc(&["--spawn-children", "1"])).env(k, v);
        ex.start().expect("start");
        ex.kill().expect("kill");
        tag.assert_none_left_within(Duration::from_secs(1));
        ex.kill().expect("the second kill answers Ok(())");
        assert!(!ex.running() && ex.pid().is_none());
    }

    // bad-input catalogue #44
    /// Stop twice: the same, after a graceful stop.
    #[test]
    fn stop_twice() {
        let tag = Tag::new();
        let (k, v) = tag_env(&tag);
        let mut ex = SimpleExecutor::new(svc(&[])).env(k, v);
        ex.start().expect("start");
        ex.stop().expect("stop");
        ex.stop().expect("the second stop answers Ok(())");
        tag.assert_none_left_within(Duration::from_secs(1));
    }
}

/// A kill signal that is ignored is followed by SIGKILL soon: `stop()` overran a 1 s stop
/// timeout by 5 s when the kill signal was ignored.
#[test]
fn a_stop_does_not_overrun_its_timeout_when_the_kill_signal_is_ignored() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--ignore", "TERM", "--ignore", "USR1"])
        .stop_timeout(Duration::from_secs(1))
        .kill_signal(Signal::SIGUSR1)
        .env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    let began = Instant::now();
    let _ = ex.stop();
    let took = began.elapsed();
    assert!(took < Duration::from_millis(1500), "a 1 s stop timeout took {took:?}");
    assert_stopped_and_gone(pid, &tag);
}

/// `Duration::MAX` means no limit: it used to panic ("overflow when adding duration to
/// instant") in `timeout`, `stop_timeout` and `ready::with_timeout`.
#[test]
fn timeouts_without_a_limit_do_not_panic() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = mirakuru::Executor::new(
        svc(&["--banner", "up"]),
        mirakuru::ready::with_timeout(mirakuru::ready::Banner::new("up"), Duration::MAX),
    )
    .timeout(Duration::MAX)
    .stop_timeout(Duration::MAX)
    .env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

/// When the check is ready in the same pass as the process exits with an error, the exit
/// wins: the start used to succeed with a dead service.
#[test]
fn an_exit_in_the_same_pass_as_readiness_fails_the_start() {
    let slow_yes = mirakuru::ready::custom("a slow yes", |_cx| {
        // The process exits while the check is making up its mind.
        std::thread::sleep(Duration::from_millis(300));
        mirakuru::ready::Status::Ready
    });
    let mut ex = mirakuru::Executor::new(["sh", "-c", "exit 3"], slow_yes);
    let err = ex.start().expect_err("the process died");
    assert!(matches!(err, Error::ProcessExitedWithError { .. }), "{err}");
    assert_eq!(err.exit_status().and_then(|s| s.code()), Some(3), "{err}");
}

/// The timeout message says how long the wait really was when a check ran past it: it said
/// "not ready after 2s" after 31 s.
#[test]
fn a_timeout_message_says_how_long_the_wait_really_was() {
    let stubborn = mirakuru::ready::custom("a check that takes its time", |_cx| {
        std::thread::sleep(Duration::from_millis(700));
        mirakuru::ready::Status::NotYet
    });
    let mut ex = mirakuru::Executor::new(svc(&[]), stubborn).timeout(Duration::from_millis(200));
    let err = ex.start().expect_err("never ready");
    let message = err.to_string();
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{message}");
    assert!(message.contains("was not ready after 200ms"), "{message}");
    assert!(message.contains("the wait was given up after"), "{message}");
}
