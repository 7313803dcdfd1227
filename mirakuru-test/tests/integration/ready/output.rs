//! Banner readiness (`ready::Banner`, `OutputExecutor`): a regex searched in the output, its
//! groups returned; a process that exits or closes its output before the banner. How output is
//! read and kept, banners in odd output included, is in `output.rs` and `floods.rs`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use mirakuru::{Error, Fixture, OutputExecutor, Redirect};
use mirakuru_test::Tag;

use crate::{assert_stopped_and_gone, svc, tag_env, QUICK, SERVICE};

#[test]
fn output_executor_waits_for_its_banner() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex =
        OutputExecutor::new(svc(&["--delay-ms", "30", "--banner", "service is ready"]), "is ready")
            .env(k, v);
    ex.start().expect("start");
    assert!(ex.output().stdout_lossy().contains("service is ready"));
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
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
fn a_process_that_closes_stdout_at_once_fails_an_output_wait_at_once() {
    let mut ex = OutputExecutor::new(svc(&["--close-stdout"]), "never")
        .stderr(Redirect::Null)
        .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("nothing can ever be printed");
    assert!(began.elapsed() < Duration::from_secs(10), "{err}");
    assert!(err.to_string().contains("closed"), "{err}");
}

#[test]
fn banner_is_a_regex_searched_anywhere_in_a_line_with_captures() {
    let mut ex = OutputExecutor::new(
        svc(&["--banner", "2026-01-01 INFO listening on port 6379 (tcp)"]),
        r"port (\d+)",
    );
    ex.start().expect("start");
    let captures = ex.captures().expect("captures");
    assert_eq!(captures[1].as_deref(), Some("6379"));
    ex.stop().expect("stop");
}

#[test]
fn banner_groups_are_returned_and_a_group_named_port_is_the_port() {
    let mut ex =
        OutputExecutor::new(svc(&["--tcp", "0"]), r"listening on (?P<what>port) (?P<port>\d+)")
            .timeout(QUICK);
    ex.start().expect("ready");
    let captures = ex.captures().expect("captures");
    assert_eq!(captures.name("what"), Some("port"));
    let port: u16 = captures.get(2).and_then(|p| p.parse().ok()).expect("a port");
    assert_eq!(ex.port(), Some(port));
    TcpStream::connect(("127.0.0.1", port)).expect("the service listens there");
    ex.stop().expect("stop");
}

#[mirakuru::fixture(output = r"listening on port (?P<port>\d+)", args = [SERVICE, "--tcp", "0"])]
#[test]
fn attribute_banner_port_and_captures(svc: &Fixture) {
    let captures = svc.captures().expect("captures");
    assert_eq!(captures.name("port").and_then(|p| p.parse().ok()), Some(svc.port()));
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #21
    #[test]
    fn bad_banner_regex() {
        let probe = Probe::new();
        refused(
            OutputExecutor::new(probe.argv(), "unclosed (group").into_inner(),
            "is not a valid regular expression",
            "escape special characters",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #22
    #[test]
    fn banner_without_captured_output() {
        let probe = Probe::new();
        refused(
            OutputExecutor::new(probe.argv(), "ready")
                .stdout(Redirect::Null)
                .stderr(Redirect::Inherit)
                .into_inner(),
            "a banner can only be seen in captured output",
            "keep one of them Redirect::Capture",
        );
        probe.assert_nothing_spawned();
    }
}

/// A slow but valid banner regex is searched by the thread that waits for its service, never
/// by the supervisor, which serves every service: another service starts and stops on time
/// meanwhile. (It used to be searched on the supervisor: an unrelated start with a 2 s timeout
/// returned after 21-42 s.)
#[test]
fn a_slow_banner_search_delays_no_other_service() {
    // About 1.5 MB/s in a debug build: this output keeps the search busy for seconds.
    let slow_banner = r"(?:[\w\d]{5}\s?){40}Q";
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let slow = std::thread::spawn(move || {
        let mut ex = OutputExecutor::new(svc(&["--noise-mib", "16"]), slow_banner)
            .timeout(Duration::from_secs(4))
            .env(k, v);
        ex.start()
    });
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let mut quick = crate::ready(&[]).timeout(Duration::from_secs(2));
    quick.start().expect("starts while another service's banner is being searched");
    let pid = quick.pid().expect("pid");
    quick.stop().expect("stops");
    let took = began.elapsed();
    assert!(!mirakuru_test::is_alive(pid));
    assert!(took < Duration::from_secs(2), "start and stop took {took:?}");
    let err = slow.join().expect("the slow start returns").expect_err("never ready");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    tag.assert_none_left();
}
