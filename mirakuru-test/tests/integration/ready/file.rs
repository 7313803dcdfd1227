//! File readiness (`ready::file`): a file's content watched until it matches; a file left by an
//! earlier run does not count. (Pid files: `pidfile.rs`.)

use std::time::Duration;

use mirakuru::ready;
use mirakuru::Executor;
use mirakuru_test::temp_dir;

use crate::QUICK;

#[test]
fn file_content_is_watched_until_it_matches() {
    let dir = temp_dir();
    let file = dir.path().join("state");
    let script = format!(
        "echo starting > {f}; sleep 0.2; echo ready > {f}; exec sleep 30",
        f = file.display()
    );
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::file(&file).matches("^ready$"),
    )
    .timeout(QUICK);
    ex.start().expect("ready");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(200));
    ex.stop().expect("stop");
}

#[test]
fn a_file_left_by_an_earlier_run_does_not_count() {
    let dir = temp_dir();
    let file = dir.path().join("state");
    std::fs::write(&file, "ready\n").expect("stale file");
    let script = format!("sleep 0.3; echo ready > {}; exec sleep 30", file.display());
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::file(&file).matches("^ready"),
    )
    .timeout(QUICK);
    ex.start().expect("ready once rewritten");
    assert!(
        ex.ready_after().expect("ready") >= Duration::from_millis(300),
        "the stale file did not count"
    );
    ex.stop().expect("stop");
}
