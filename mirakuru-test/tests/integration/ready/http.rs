//! HTTP readiness (`ready::Http`, `HttpExecutor`): the request sent (method, target, headers,
//! payload), the statuses accepted, a timeout for every request, IPv6; endpoints that hang or
//! misbehave.

use std::time::{Duration, Instant};

use mirakuru::{Error, HttpExecutor};
use mirakuru_test::{free_port, temp_dir, Tag};

use crate::{assert_stopped_and_gone, svc, tag_env};

#[test]
fn http_executor_waits_for_a_2xx() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/health");
    let mut ex =
        HttpExecutor::new(svc(&["--delay-ms", "30", "--tcp", &port.to_string(), "--http"]), &url)
            .env(k, v);
    assert_eq!(ex.port(), port);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn http_already_running_is_refused() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = squatter.local_addr().expect("addr").port();
    let mut ex = HttpExecutor::new(svc(&[]), format!("http://127.0.0.1:{port}/"));
    assert!(matches!(ex.start(), Err(Error::AlreadyRunning { .. })));
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

/// Every attempt is bounded as a whole by its request timeout and by the start deadline, not
/// each `read()`: a server that trickles a byte every 0.4 s used to hold `start()` for hours.
#[test]
fn a_server_that_trickles_its_answer_cannot_hold_the_start_past_its_deadline() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--trickle-ms", "400"]),
        format!("http://127.0.0.1:{port}/"),
    )
    .request_timeout(Duration::from_secs(1))
    .timeout(Duration::from_secs(2))
    .env(k, v);
    let began = Instant::now();
    let err = ex.start().expect_err("never a complete answer");
    let took = began.elapsed();
    let message = err.to_string();
    assert!(took < Duration::from_secs(4), "the start took {took:?}: {message}");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{message}");
    assert!(message.contains("no complete response within"), "{message}");
    tag.assert_none_left_within(Duration::from_secs(1));
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #23
    #[test]
    fn bad_url() {
        let probe = Probe::new();
        refused(
            HttpExecutor::new(probe.argv(), "not a url").into_inner(),
            "\"not a url\" is not a URL",
            "write it as http://host:port/path",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #24
    #[test]
    fn https_url() {
        let probe = Probe::new();
        refused(
            HttpExecutor::new(probe.argv(), "https://127.0.0.1:8443/").into_inner(),
            "is an https URL, and the HTTP check speaks plain HTTP only",
            "use an http:// URL, or wait for the port with a TCP check",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #25
    #[test]
    fn url_without_host() {
        let probe = Probe::new();
        refused(
            HttpExecutor::new(probe.argv(), "http:///status").into_inner(),
            "has no host",
            "write it as http://host:port/path",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #26
    #[test]
    fn url_with_port_0() {
        let probe = Probe::new();
        refused(
            HttpExecutor::new(probe.argv(), "http://127.0.0.1:0/").into_inner(),
            "has the port \"0\"",
            "give a port between 1 and 65535",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #31
    #[test]
    fn bad_status_regex() {
        let probe = Probe::new();
        refused(
            HttpExecutor::new(probe.argv(), "http://127.0.0.1:1/").status("5(").into_inner(),
            "the status pattern \"5(\" is not a valid regular expression",
            "fix the readiness check's arguments",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #32
    #[test]
    fn bad_http_method() {
        let probe = Probe::new();
        refused(
            HttpExecutor::new(probe.argv(), "http://127.0.0.1:1/").method("GE T").into_inner(),
            "\"GE T\" is not an HTTP method",
            "use one such as HEAD, GET or POST",
        );
        probe.assert_nothing_spawned();
    }

    // HTTP endpoints that misbehave: spawned, timed out with the reason, nothing left.

    fn misbehaving_http(mode: &str, reason: &str) {
        let tag = Tag::new();
        let (k, v) = tag_env(&tag);
        let port = free_port();
        let mut ex = HttpExecutor::new(
            svc(&["--tcp", &port.to_string(), mode]),
            format!("http://127.0.0.1:{port}/"),
        )
        .request_timeout(Duration::from_millis(100))
        .timeout(Duration::from_millis(500))
        .env(k, v);
        let began = Instant::now();
        let err = ex.start().expect_err(mode);
        let message = err.to_string();
        assert!(began.elapsed() < Duration::from_secs(10), "{mode} hung start(): {message}");
        assert!(matches!(err, Error::TimeoutExpired { .. }), "{message}");
        assert!(message.contains("was not ready after 500ms"), "{message}");
        assert!(message.contains(reason), "the last attempt's outcome {reason:?}: {message}");
        assert!(message.contains("raise the startup timeout"), "{message}");
        tag.assert_none_left_within(Duration::from_secs(1));
    }

    // bad-input catalogue #45
    #[test]
    fn http_server_that_resets_connections() {
        misbehaving_http("--reset", "reset");
    }

    // bad-input catalogue #46
    #[test]
    fn http_server_that_answers_garbage() {
        misbehaving_http("--garbage", "the answer is not HTTP");
    }

    // bad-input catalogue #47
    #[test]
    fn http_server_that_never_finishes_its_headers() {
        misbehaving_http("--partial-headers", "no complete response within");
    }
}
