//! How `start()` waits: early exits, timeouts, pre-start checks, and the details of each kind.

use std::time::{Duration, Instant};

use mirakuru::{Error, HttpExecutor, OutputExecutor, PidExecutor, TcpExecutor, UnixSocketExecutor};
use mirakuru_test::{free_port, temp_dir, Tag};

use crate::{svc, tag_env};

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

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
fn an_output_executor_whose_process_exits_before_its_banner_fails_at_once() {
    let mut ex =
        OutputExecutor::new(svc(&["--banner", "something else", "--exit", "0"]), "never printed")
            .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("no banner");
    assert!(began.elapsed() < Duration::from_secs(10), "did not wait for the timeout: {err}");
    assert!(
        matches!(err, Error::ProcessExitedWithError { .. } | Error::CheckFailed { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("something else"), "{err}");
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

#[test]
fn tcp_already_running_is_refused_before_spawning() {
    let dir = temp_dir();
    let count = dir.path().join("starts");
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = squatter.local_addr().expect("addr").port();
    let mut ex = TcpExecutor::new(
        svc(&["--count-file", &count.display().to_string(), "--tcp", &port.to_string()]),
        "127.0.0.1",
        port,
    );
    let err = ex.start().expect_err("the port is taken");
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count_lines(&count), 0, "nothing was spawned");
}

#[test]
fn unix_socket_already_running_is_refused() {
    let dir = temp_dir();
    let socket = dir.path().join("taken.sock");
    let _squatter = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let mut ex = UnixSocketExecutor::new(svc(&[]), &socket);
    let err = ex.start().expect_err("taken");
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
}

#[test]
fn http_already_running_is_refused() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = squatter.local_addr().expect("addr").port();
    let mut ex = HttpExecutor::new(svc(&[]), format!("http://127.0.0.1:{port}/"));
    assert!(matches!(ex.start(), Err(Error::AlreadyRunning { .. })));
}

#[test]
fn pid_file_of_a_running_process_means_already_running() {
    let dir = temp_dir();
    let pid_file = dir.path().join("x.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("write");
    let mut ex = PidExecutor::new(svc(&[]), &pid_file);
    let err = ex.start().expect_err("a live process owns the pid file");
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
}

#[test]
fn tcp_readiness_works_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--host", "::1", "--tcp", &port.to_string()]), "::1", port);
    ex.start().expect("start over IPv6");
    ex.stop().expect("stop");
    let mut bracketed =
        TcpExecutor::new(svc(&["--host", "::1", "--tcp", &port.to_string()]), "[::1]", port);
    bracketed.start().expect("bracketed literal");
    bracketed.stop().expect("stop");
}

#[test]
fn tcp_readiness_resolves_host_names() {
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--tcp", &port.to_string()]), "localhost", port);
    ex.start().expect("localhost resolves");
    ex.stop().expect("stop");
}

#[test]
fn a_bound_but_not_listening_port_is_not_ready() {
    let port = free_port();
    let mut ex = TcpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--bind-before-listen-ms", "200"]),
        "127.0.0.1",
        port,
    );
    let began = Instant::now();
    ex.start().expect("start");
    assert!(began.elapsed() >= Duration::from_millis(200), "ready only once listening");
    ex.stop().expect("stop");
}

#[test]
fn unix_socket_bound_before_listening_is_not_ready_until_it_listens() {
    let dir = temp_dir();
    let socket = dir.path().join("late.sock");
    let mut ex = UnixSocketExecutor::new(
        svc(&["--unix", &socket.display().to_string(), "--bind-before-listen-ms", "150"]),
        &socket,
    );
    let began = Instant::now();
    ex.start().expect("start");
    assert!(began.elapsed() >= Duration::from_millis(150));
    ex.stop().expect("stop");
}

#[test]
fn unix_socket_paths_are_relative_to_cwd() {
    let dir = temp_dir();
    let mut ex = UnixSocketExecutor::new(svc(&["--unix", "rel.sock"]), "rel.sock").cwd(dir.path());
    ex.start().expect("the relative socket is found in cwd");
    ex.stop().expect("stop");
}

#[test]
fn http_status_sequence_is_followed_until_a_2xx() {
    let dir = temp_dir();
    let log = dir.path().join("requests");
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&[
            "--tcp",
            &port.to_string(),
            "--http",
            "--status",
            "HEAD=503,503,200",
            "--echo-request-to",
            &log.display().to_string(),
        ]),
        format!("http://127.0.0.1:{port}/"),
    );
    ex.start().expect("ready on the third answer");
    let requests = std::fs::read_to_string(&log).expect("log");
    assert_eq!(requests.matches("HEAD / HTTP/1.1").count(), 3, "{requests}");
    ex.stop().expect("stop");
}

#[test]
fn http_sends_method_query_params_headers_and_payload() {
    let dir = temp_dir();
    let log = dir.path().join("requests");
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&[
            "--tcp",
            &port.to_string(),
            "--http",
            "--expect-target",
            "/_cluster/health;v=1?wait_for_status=yellow&timeout=1s",
            "--expect-header",
            "X-Token:secret",
            "--echo-request-to",
            &log.display().to_string(),
        ]),
        format!(
            "http://127.0.0.1:{port}/_cluster/health;v=1?wait_for_status=yellow&timeout=1s#ignored"
        ),
    )
    .method("POST")
    .header("X-Token", "secret")
    .payload([("name", "a b"), ("x", "1&2")]);
    ex.start().expect("the exact target and header were sent");
    let requests = std::fs::read_to_string(&log).expect("log");
    assert!(
        requests.contains("POST /_cluster/health;v=1?wait_for_status=yellow&timeout=1s HTTP/1.1"),
        "{requests}"
    );
    assert!(requests.contains("name=a+b&x=1%262"), "form payload: {requests}");
    assert!(!requests.contains("ignored"), "fragment dropped: {requests}");
    ex.stop().expect("stop");
}

#[test]
fn http_status_can_be_a_code_or_a_regex() {
    let port = free_port();
    let mut code = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--http", "--status", "*=404"]),
        format!("http://127.0.0.1:{port}/"),
    )
    .status(404);
    code.start().expect("404 expected");
    code.stop().expect("stop");

    let port = free_port();
    let mut regex = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--http", "--status", "GET=500,401"]),
        format!("http://127.0.0.1:{port}/"),
    )
    .method("GET")
    .status("2..|401");
    regex.start().expect("401 matches");
    regex.stop().expect("stop");
}

#[test]
fn http_request_timeout_bounds_each_attempt_against_a_hanging_endpoint() {
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--hang"]),
        format!("http://127.0.0.1:{port}/"),
    )
    .request_timeout(Duration::from_millis(100))
    .timeout(Duration::from_millis(800));
    let began = Instant::now();
    let err = ex.start().expect_err("never answers");
    assert!(began.elapsed() < Duration::from_secs(10), "the hang did not hang us");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    assert!(err.to_string().contains("no complete response"), "{err}");
}

#[test]
fn pid_file_written_by_a_daemon_is_followed_and_the_daemon_stopped() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let pid_file = dir.path().join("daemon.pid");
    let mut ex = PidExecutor::new(
        svc(&["--daemonize", "--delay-ms", "20", "--pid-file", &pid_file.display().to_string()]),
        &pid_file,
    )
    .env(k, v);
    ex.start().expect("start");
    let daemon: u32 =
        std::fs::read_to_string(&pid_file).expect("read").trim().parse().expect("pid");
    assert_ne!(Some(daemon), ex.pid(), "the daemon is not the launcher");
    assert!(ex.running());
    ex.stop().expect("stop");
    assert!(mirakuru_test::wait_gone(daemon, Duration::from_secs(5)), "the daemon was stopped");
    tag.assert_none_left();
}

#[test]
fn pid_file_with_garbage_written_by_the_service_times_out_saying_so() {
    let dir = temp_dir();
    let pid_file = dir.path().join("g.pid");
    let mut ex = PidExecutor::new(
        svc(&["--pid-file", &pid_file.display().to_string(), "--pid-file-garbage"]),
        &pid_file,
    )
    .timeout(Duration::from_millis(300));
    let err = ex.start().expect_err("garbage is no pid");
    assert!(err.to_string().contains("not-a-pid"), "{err}");
}
