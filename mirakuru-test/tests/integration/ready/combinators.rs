//! Checks made of checks (`ready::all()`, `ready::any()`, `with_timeout`): every part or the
//! first one, parts with timeouts of their own, what a failure or a timeout names, the time to
//! ready of each part; the same through the attribute's `ready = all | any`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use mirakuru::ready::{self, Status};
use mirakuru::{Error, Executor, Fixture};
use mirakuru_test::free_port;

use crate::{svc, QUICK, SERVICE};

#[test]
fn all_waits_for_every_part_and_records_each_time() {
    let mut ex = Executor::new(
        svc(&["--notify", "--delay-ms", "50", "--banner", "serving"]),
        ready::all().with(ready::Banner::new("serving")).with(ready::notify()),
    )
    .timeout(QUICK);
    ex.start().expect("both");
    let times = ex.readiness_times();
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(times[0].0.starts_with("all of"), "{times:?}");
    assert!(times[1].0.contains("serving") && times[2].0.contains("READY=1"), "{times:?}");
    // Each part's time is when it was seen ready; the whole is ready once the last one is.
    assert!(times.iter().all(|(_, t)| *t >= Duration::from_millis(50)), "{times:?}");
    assert!(times[0].1 >= times[1].1.max(times[2].1), "{times:?}");
    ex.stop().expect("stop");
}

#[test]
fn a_part_past_its_own_timeout_fails_all_of_them_and_is_named() {
    let mut ex = Executor::new(
        svc(&["--banner", "serving"]),
        ready::all()
            .with(ready::Banner::new("serving"))
            .with_timeout(ready::notify(), Duration::from_millis(200)),
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("the helper never notifies");
    assert!(began.elapsed() < QUICK);
    assert!(matches!(err, Error::CheckFailed { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("READY=1") && message.contains("within 200ms"), "{message}");
    assert!(message.contains("not ready within its own 200ms"), "{message}");
}

#[test]
fn any_is_ready_with_the_first_part_and_drops_failed_ones() {
    let mut ex = Executor::new(
        svc(&["--delay-ms", "300", "--banner", "serving"]),
        ready::any()
            .with_timeout(ready::notify(), Duration::from_millis(50))
            .with(ready::Banner::new("serving")),
    )
    .timeout(QUICK);
    ex.start().expect("the banner, after the notify part was dropped");
    let times = ex.readiness_times();
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(times[1].0.contains("serving"), "{times:?}");
    ex.stop().expect("stop");
}

#[test]
fn any_fails_when_every_part_failed() {
    let mut ex = Executor::new(
        svc(&[]),
        ready::any()
            .with_timeout(ready::notify(), Duration::from_millis(50))
            .with_timeout(ready::Banner::new("never"), Duration::from_millis(100)),
    )
    .timeout(Duration::from_secs(60));
    let err = ex.start().expect_err("nothing comes");
    let message = err.to_string();
    assert!(message.contains("every check failed"), "{message}");
    assert!(message.contains("READY=1") && message.contains("never"), "{message}");
}

#[test]
fn a_timeout_names_the_parts_still_pending() {
    let port = free_port();
    let mut ex = Executor::new(
        svc(&["--banner", "serving"]),
        ready::all()
            .with(ready::Banner::new("serving"))
            .with(ready::any().with(ready::notify()).with(ready::Tcp::new("127.0.0.1", port))),
    )
    .timeout(Duration::from_millis(400));
    let err = ex.start().expect_err("neither notify nor the port");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("still waiting for any of"), "nested parts are named: {message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("still waiting for the output"), "the banner was ready: {message}");
}

#[test]
fn time_to_ready_is_recorded_for_the_check_and_its_parts() {
    let mut ex = Executor::new(
        svc(&["--notify", "--delay-ms", "100", "--ready-fd", "3", "--banner", "serving"]),
        ready::all()
            .with(ready::ready_fd(3))
            .with(ready::any().with(ready::notify()).with(ready::Banner::new("never"))),
    )
    .timeout(QUICK);
    assert!(ex.readiness_times().is_empty(), "nothing before a start");
    ex.start().expect("ready");
    let times = ex.readiness_times();
    // all, ready_fd, any, notify (the winner of any)
    assert_eq!(times.len(), 4, "{times:?}");
    assert!(times[1].0.contains("readiness fd 3"), "{times:?}");
    assert!(times[2].0.starts_with("any of"), "{times:?}");
    assert!(times[3].0.contains("READY=1"), "{times:?}");
    assert!(times.iter().all(|(_, t)| *t >= Duration::from_millis(100)), "{times:?}");
    assert_eq!(Some(times[0].1), ex.ready_after());
    ex.stop().expect("stop");
}

#[mirakuru::fixture(ready = all, notify = true, args = [SERVICE, "--notify", "--tcp", "{port}"], tcp = auto, owned = true)]
#[test]
fn attribute_notify_and_owned_tcp(svc: &Fixture) {
    TcpStream::connect(("127.0.0.1", svc.port())).expect("listens");
    let times = svc.readiness_times();
    assert_eq!(times.len(), 4, "all, notify, tcp, ownership: {times:?}");
}

#[mirakuru::fixture(
    args = [SERVICE, "--delay-ms", "100", "--pid-file", "{tmpdir}/up.pid"],
    ready = all,
    exec = ["test", "-s", "{tmpdir}/up.pid"],
    exec_timeout = "1s",
    file = "{tmpdir}/up.pid",
    file_matches = "^[0-9]+$",
    check = |cx| if cx.elapsed() >= std::time::Duration::from_millis(100) { Status::Ready } else { Status::NotYet },
)]
#[test]
fn attribute_exec_file_and_custom_check(svc: &Fixture) {
    assert!(svc.tmpdir().join("up.pid").exists());
    assert_eq!(svc.readiness_times().len(), 4);
}

#[mirakuru::fixture(
    args = [SERVICE, "--banner", "serving"],
    notify = true,
    output = "serving",
    ready = any,
)]
#[test]
fn attribute_any(svc: &Fixture) {
    // The helper sends nothing without --notify: the banner won.
    assert!(svc.readiness_times()[1].0.contains("serving"));
}
