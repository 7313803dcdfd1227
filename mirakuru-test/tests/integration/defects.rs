//! One test per defect of Python mirakuru 3.1.0 that this library fixes (reference
//! mirakuru.md §2.15 and §2.16). Each name says the defect; the body shows it is gone. Other
//! fixes are tested where they belong (named in the comments below).

use std::time::{Duration, Instant};

use mirakuru::{Error, HttpExecutor, SimpleExecutor, TcpExecutor};
use mirakuru_test::{free_port, Tag};

use crate::{ready, svc, tag_env};

// §2.16.1 "stdout PIPE never drained": output::fifty_mib_after_ready_never_block_the_writer.
// §2.15 "substring marker matching": trees::a_process_with_a_similar_marker_is_never_touched
// and trees::the_reaper_spares_processes_of_other_owners.
// §2.15 "no cleanup when Python is killed by a signal": trees::pdeathsig_kills_* and
// trees::the_reaper_kills_daemons_when_their_owner_is_killed.
// §2.16.5 "stale pid file reported as AlreadyRunning": invalid::pid_file_naming_a_dead_pid,
// invalid::pid_file_with_garbage and invalid::empty_pid_file.
// §2.16.4 "https URLs silently checked with plain HTTP on port 80": invalid::https_url.
// §2.15 "`timeout=None` raised a TypeError after spawning, leaking the process":
// invalid::zero_timeout (invalid arguments are refused before spawning).
// §2.16.4 "query string dropped": readiness::http_sends_method_query_params_headers_and_payload.
// §2.16.4 "AF_INET only": readiness::tcp_readiness_works_over_ipv6.
// §2.16.7 "stopped() without restart on exception":
// lifecycle::stopped_scope_restarts_even_when_its_block_panics, and "raises when not
// running": lifecycle::stopped_scope_works_when_the_service_is_not_running.
// §2.16.11 "not thread-safe": lifecycle::executors_are_send_and_sync and
// lifecycle::an_executor_outlives_the_thread_that_started_it.
// §2.14 "OutputExecutor ignores an early exit until the timeout":
// readiness::an_output_executor_whose_process_exits_before_its_banner_fails_at_once.

/// §2.16.1: the default stdin was a pipe held open; here it is /dev/null unless asked.
#[test]
fn stdin_is_not_a_pipe_held_open() {
    let mut ex = SimpleExecutor::new(vec![
        "sh".to_string(),
        "-c".into(),
        "cat; echo eof-seen; exec sleep 300".into(),
    ]);
    ex.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ex.output().stdout_lossy().contains("eof-seen") {
        assert!(Instant::now() < deadline, "stdin never reached end of file");
        std::thread::sleep(Duration::from_millis(5));
    }
    ex.stop().expect("stop");
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

/// §2.16.3 and mirakuru #1175: the HTTP check had no per-request timeout, so a hung endpoint
/// hung `start()` past its own timeout.
#[test]
fn a_hung_http_endpoint_cannot_overrun_the_startup_timeout() {
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--hang"]),
        format!("http://127.0.0.1:{port}/"),
    )
    .timeout(Duration::from_millis(500));
    let began = Instant::now();
    let err = ex.start().expect_err("hangs");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());
}

/// §2.16.4: the status regex was matched as a prefix, so `"20"` accepted 204.
#[test]
fn http_status_pattern_must_match_the_whole_code() {
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--http", "--status", "*=204"]),
        format!("http://127.0.0.1:{port}/"),
    )
    .status("20")
    .timeout(Duration::from_millis(300));
    let err = ex.start().expect_err("204 is not 20");
    assert!(err.to_string().contains("HTTP 204"), "{err}");
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

/// §2.16.9 and #388/#457: programs that exit with a code on SIGTERM can be declared clean.
#[test]
fn a_non_posix_exit_on_stop_can_be_expected() {
    let mut ex = ready(&["--exit-on", "TERM:1"]).expected_returncode(1);
    ex.start().expect("start");
    ex.stop().expect("1 is declared clean");
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

/// §2.16.4: the HTTP check assumed port 80 and IPv4 only; an IPv6 URL works here.
#[test]
fn http_works_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&["--host", "::1", "--tcp", &port.to_string(), "--http"]),
        format!("http://[::1]:{port}/"),
    );
    ex.start().expect("start");
    ex.stop().expect("stop");
}

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
