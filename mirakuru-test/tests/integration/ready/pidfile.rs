//! Pid file readiness (`ready::PidFile`, `PidExecutor`): the file written, its pid followed to
//! a daemon, its lines matched; a file naming a live process, and stale files of earlier runs.

use std::time::Duration;

use mirakuru::ready;
use mirakuru::{Error, Executor, PidExecutor};
use mirakuru_test::{temp_dir, Tag};

use crate::{assert_stopped_and_gone, svc, tag_env, QUICK};

#[test]
fn pid_executor_waits_for_the_pid_file() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let pid_file = dir.path().join("service.pid");
    let arg = pid_file.display().to_string();
    let mut ex =
        PidExecutor::new(svc(&["--delay-ms", "30", "--pid-file", &arg]), &pid_file).env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    let written: u32 =
        std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("a pid");
    assert_eq!(written, pid);
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
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

#[test]
fn a_pid_file_line_must_match_too() {
    let dir = temp_dir();
    let pid_file = dir.path().join("server.pid");
    let script = format!(
        "printf '%s\\nstarting\\n' $$ > {f}; sleep 0.2; printf '%s\\nready\\n' $$ > {f}; exec sleep 30",
        f = pid_file.display()
    );
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::PidFile::new(&pid_file).line(2).matches("^ready"),
    )
    .timeout(QUICK);
    ex.start().expect("ready");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(200));
    ex.stop().expect("stop");
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #35
    #[test]
    fn pid_file_in_a_missing_directory() {
        let probe = Probe::new();
        refused(
            PidExecutor::new(probe.argv(), "/no/such/dir/x.pid").into_inner(),
            "the directory of the pid file /no/such/dir/x.pid does not exist",
            "create it first",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #36
    #[test]
    fn empty_pid_file_path() {
        let probe = Probe::new();
        refused(
            PidExecutor::new(probe.argv(), "").into_inner(),
            "the pid file path is empty",
            "give the path the service writes its pid to",
        );
        probe.assert_nothing_spawned();
    }

    // Pid files left by an earlier run.

    /// `start()` with a pid file holding `content` fails as stale, naming it and what to do.
    fn stale(content: &str, says: &str) {
        let probe = Probe::new();
        let pid_file = probe.dir.path().join("old.pid");
        std::fs::write(&pid_file, content).expect("write");
        let mut ex = PidExecutor::new(probe.argv(), &pid_file);
        let err = ex.start().expect_err(says);
        let message = err.to_string();
        assert!(matches!(err, Error::StalePidFile { .. }), "not AlreadyRunning: {message}");
        assert!(message.contains(&pid_file.display().to_string()), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(message.contains("delete it"), "{message}");
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #37
    #[test]
    fn pid_file_with_garbage() {
        stale("garbage\n", "it holds \"garbage\", which is not a pid");
    }

    // bad-input catalogue #38
    #[test]
    fn pid_file_naming_a_dead_pid() {
        // Beyond the largest pid Linux hands out: surely nobody's.
        stale("4194304\n", "it names process 4194304, which is not running");
    }

    // bad-input catalogue #39
    #[test]
    fn empty_pid_file() {
        stale("", "it is empty");
    }
}
