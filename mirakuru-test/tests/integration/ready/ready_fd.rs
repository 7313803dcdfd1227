//! Readiness fd (`ready::ready_fd(N)`, s6-style): a newline written to an inherited fd; the line
//! kept; an fd closed without a newline; fds below 3 refused.

use std::time::{Duration, Instant};

use mirakuru::ready;
use mirakuru::{Error, Executor, Fixture};
use mirakuru_test::Tag;

use crate::{svc, tag_env, QUICK, SERVICE};

#[test]
fn ready_fd_from_the_helper() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = Executor::new(svc(&["--delay-ms", "100", "--ready-fd", "3"]), ready::ready_fd(3))
        .env(k, v)
        .timeout(QUICK);
    ex.start().expect("a newline on fd 3");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(100));
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn ready_fd_keeps_the_line_written() {
    let mut ex =
        Executor::new(["sh", "-c", "printf ':99\\n' >&3; exec sleep 30"], ready::ready_fd(3));
    ex.start().expect("ready");
    assert_eq!(ex.captures().and_then(|c| c.get(0).map(str::to_string)).as_deref(), Some(":99"));
    ex.stop().expect("stop");
}

#[test]
fn a_readiness_fd_closed_without_a_newline_fails_at_once() {
    let mut ex = Executor::new(
        ["sh", "-c", "printf half >&3; exec 3>&-; exec sleep 30"],
        ready::ready_fd(3),
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("no newline can come any more");
    assert!(began.elapsed() < QUICK);
    assert!(
        err.to_string().contains("closed its readiness fd 3 without writing a newline"),
        "{err}"
    );
    assert!(err.to_string().contains("half"), "{err}");
}

#[test]
fn a_readiness_fd_below_three_is_refused_before_the_spawn() {
    let mut ex = Executor::new(svc(&[]), ready::ready_fd(1));
    let err = ex.start().expect_err("fd 1 is stdout");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[mirakuru::fixture(ready_fd = 3, args = [SERVICE, "--ready-fd", "3"], timeout = "10s")]
#[test]
fn attribute_ready_fd(svc: &Fixture) {
    assert!(svc.running());
}
