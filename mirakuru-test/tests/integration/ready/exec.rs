//! Exec probes (`ready::exec`): a command run until it exits 0, its output matched, each attempt
//! bounded and killed with what it left behind.

use std::time::Duration;

use mirakuru::ready;
use mirakuru::{Error, Executor};
use mirakuru_test::{temp_dir, Tag};

use crate::{svc, tag_env, QUICK};

#[test]
fn exec_probe_runs_until_it_exits_zero() {
    let dir = temp_dir();
    let flag = dir.path().join("flag.pid");
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = Executor::new(
        svc(&["--delay-ms", "200", "--pid-file", &flag.display().to_string()]),
        ready::exec(vec!["test".to_string(), "-s".into(), flag.display().to_string()]),
    )
    .env(k, v)
    .timeout(QUICK);
    ex.start().expect("the probe succeeded");
    assert!(flag.exists());
    assert!(ex.read_check(|e| e.attempts()) > 1, "the probe ran until it succeeded");
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn exec_probe_output_must_match() {
    let dir = temp_dir();
    let file = dir.path().join("state");
    let script = format!(
        "echo starting > {f}; sleep 0.2; echo accepting > {f}; exec sleep 30",
        f = file.display()
    );
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::exec(format!("cat {}", file.display())).output("^accepting$"),
    )
    .timeout(QUICK);
    ex.start().expect("the probe printed `accepting`");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(200));
    ex.stop().expect("stop");
}

#[test]
fn a_hanging_probe_is_killed_at_its_attempt_timeout() {
    let tag = Tag::new();
    let mut ex = Executor::new(
        svc(&[]),
        ready::exec("sleep 30")
            .env(Tag::VAR, tag.value())
            .attempt_timeout(Duration::from_millis(100)),
    )
    .timeout(Duration::from_millis(700));
    let err = ex.start().expect_err("the probe never finishes");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    assert!(err.to_string().contains("did not finish within 100ms and was killed"), "{err}");
    // No probe outlives its attempt.
    tag.assert_none_left();
}

#[test]
fn a_probe_that_cannot_run_fails_before_the_spawn() {
    let mut ex = Executor::new(svc(&[]), ready::exec("no-such-probe-program --x"));
    let err = ex.start().expect_err("not found");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("no-such-probe-program"), "{err}");
}

#[test]
fn a_probe_that_leaves_a_child_holding_its_pipes_is_judged_at_its_exit() {
    let tag = Tag::new();
    let mut ex = Executor::new(
        svc(&[]),
        ready::exec(["sh", "-c", "sleep 30 & echo up"]).env(Tag::VAR, tag.value()).output("^up$"),
    )
    .timeout(QUICK);
    ex.start().expect("ready at the probe's exit, not when its child closes the pipes");
    assert!(ex.ready_after().expect("ready") < Duration::from_secs(5));
    ex.stop().expect("stop");
    // What the probe left behind is killed with it.
    tag.assert_none_left();
}
