//! Checks of one's own: a closure (`ready::custom`) that sees the context and may fail for good,
//! and any boxed `Check`.

use std::time::Duration;

use mirakuru::ready::{self, Status};
use mirakuru::{Error, Executor};
use mirakuru_test::{free_port, temp_dir, Tag};

use crate::{assert_stopped_and_gone, svc, tag_env, QUICK};

#[test]
fn generic_executor_takes_a_closure() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let flag = dir.path().join("flag");
    let seen = flag.clone();
    let mut ex = Executor::new(
        vec![
            "sh".to_string(),
            "-c".into(),
            format!("sleep 0.05; touch {}; exec sleep 300", flag.display()),
        ],
        ready::custom("the flag file", move |cx| {
            assert!(cx.pid() > 0);
            if seen.exists() {
                Status::Ready
            } else {
                Status::NotYet
            }
        }),
    )
    .env(k, v);
    ex.start().expect("start");
    assert!(flag.exists());
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn generic_executor_takes_a_boxed_check() {
    let port = free_port();
    let check: Box<dyn ready::Check> = Box::new(ready::Tcp::new("localhost", port));
    let mut ex = Executor::new(svc(&["--tcp", &port.to_string()]), check);
    ex.start().expect("start");
    ex.stop().expect("stop");
}

#[test]
fn a_custom_check_sees_pid_port_output_and_listeners() {
    let port = free_port();
    let mut ex = Executor::new(
        svc(&["--tcp", &port.to_string(), "--banner", "serving"]),
        ready::all().with(ready::Tcp::new("127.0.0.1", port)).with(ready::custom(
            "the port in the context and in the listeners",
            move |cx| {
                assert!(cx.pid() > 0);
                let listens = cx.listening_ports().contains(&port);
                let printed = cx.output().stdout_lossy().contains("serving");
                match (cx.port(), listens && printed) {
                    (Some(p), true) if p == port => Status::Ready,
                    (Some(p), _) if p != port => Status::Failed(format!("wrong port {p}")),
                    _ => Status::NotYet,
                }
            },
        )),
    )
    .timeout(QUICK);
    ex.start().expect("ready");
    assert_eq!(ex.port(), Some(port));
    ex.stop().expect("stop");
}

#[test]
fn a_custom_check_can_fail_for_good() {
    let mut ex = Executor::new(
        svc(&["--banner", "FATAL: bad config"]),
        ready::custom("no fatal line", |cx| {
            if cx.output().stdout_lossy().contains("FATAL") {
                Status::Failed("the service printed FATAL".into())
            } else {
                Status::NotYet
            }
        }),
    )
    .timeout(Duration::from_secs(60));
    let err = ex.start().expect_err("failed for good");
    assert!(matches!(err, Error::CheckFailed { .. }), "{err}");
    assert!(err.to_string().contains("the service printed FATAL"), "{err}");
}
