//! Output is drained for the whole life of the process, kept in a bounded buffer, and searched
//! for banners across read boundaries (how the banner check itself behaves: `ready/output.rs`).

use std::time::{Duration, Instant};

use mirakuru::{OutputExecutor, Redirect, SimpleExecutor, TcpExecutor};
use mirakuru_test::{free_port, temp_dir};

use crate::svc;

#[test]
fn fifty_mib_before_the_banner_do_not_stop_it_being_found() {
    let mut ex =
        OutputExecutor::new(svc(&["--noise-mib", "50", "--banner", "READY NOW"]), "READY NOW")
            .timeout(Duration::from_secs(60));
    ex.start().expect("start");
    let out = ex.output();
    assert!(out.stdout_lossy().contains("READY NOW"));
    assert!(out.stdout.len() <= mirakuru::DEFAULT_OUTPUT_LIMIT, "the buffer is bounded");
    assert!(out.stdout_dropped >= 50 * 1024 * 1024 - mirakuru::DEFAULT_OUTPUT_LIMIT as u64);
    ex.stop().expect("stop");
}

#[test]
fn fifty_mib_after_ready_never_block_the_writer() {
    // Python mirakuru never read stdout after start: a chatty server blocked on a full pipe
    // (mirakuru #98). Here nobody asks for the output and the writer still finishes.
    let dir = temp_dir();
    let done = dir.path().join("flood-done");
    let port = free_port();
    let mut ex = TcpExecutor::new(
        svc(&[
            "--tcp",
            &port.to_string(),
            "--flood-after-ready-mib",
            "50",
            "--flood-done-file",
            &done.display().to_string(),
        ]),
        "127.0.0.1",
        port,
    );
    ex.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done.exists() {
        assert!(Instant::now() < deadline, "the writer is blocked: nobody drains its stdout");
        std::thread::sleep(Duration::from_millis(10));
    }
    ex.stop().expect("stop");
}

#[test]
fn a_banner_split_across_two_writes_is_found() {
    let mut ex = OutputExecutor::new(
        svc(&[
            "--banner",
            "database system is ready to accept connections",
            "--banner-split",
            "50",
        ]),
        "ready to accept connections",
    );
    ex.start().expect("start");
    ex.stop().expect("stop");
}

#[test]
fn a_banner_on_stderr_is_found() {
    let mut ex =
        OutputExecutor::new(svc(&["--banner", "on stderr", "--banner-stderr"]), "on stderr");
    ex.start().expect("start");
    assert!(ex.output().stderr_lossy().contains("on stderr"));
    ex.stop().expect("stop");
}

#[test]
fn a_banner_inside_a_ten_mib_line_is_found() {
    let mut ex =
        OutputExecutor::new(svc(&["--banner", "NEEDLE", "--banner-in-long-line", "5"]), "NEEDLE")
            .timeout(Duration::from_secs(60));
    ex.start().expect("start");
    ex.stop().expect("stop");
}

#[test]
fn a_mebibyte_without_newline_before_the_banner() {
    let mut ex = OutputExecutor::new(
        svc(&["--noise-mib", "1", "--noise-no-newline", "--banner", "AFTER NOISE"]),
        "AFTER NOISE",
    )
    .timeout(Duration::from_secs(60));
    ex.start().expect("start");
    ex.stop().expect("stop");
}

#[test]
fn non_utf8_output_is_kept_as_bytes() {
    let mut ex = OutputExecutor::new(svc(&["--non-utf8", "--banner", "after"]), "after");
    ex.start().expect("start");
    let out = ex.output();
    assert!(out.stdout.starts_with(b"\xff\xfe\xfd invalid utf8"), "{out:?}");
    assert!(out.stdout_lossy().contains('\u{fffd}'));
    ex.stop().expect("stop");
}

#[test]
fn a_process_that_closes_stdout_keeps_running_otherwise() {
    let mut ex = SimpleExecutor::new(svc(&["--close-stdout"]));
    ex.start().expect("start");
    std::thread::sleep(Duration::from_millis(50));
    assert!(ex.running());
    ex.stop().expect("stop");
}

#[test]
fn output_is_kept_after_stop_until_the_next_start() {
    let mut ex = OutputExecutor::new(svc(&["--banner", "hello there"]), "hello");
    assert!(ex.output().stdout.is_empty());
    ex.start().expect("start");
    ex.stop().expect("stop");
    assert!(ex.output().stdout_lossy().contains("hello there"));
}

#[test]
fn output_limit_bounds_what_is_kept() {
    let mut ex = OutputExecutor::new(svc(&["--noise-mib", "1", "--banner", "END"]), "END")
        .output_limit(1000);
    ex.start().expect("start");
    let out = ex.output();
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_lossy().ends_with("END\n"));
    ex.stop().expect("stop");
}

#[test]
fn output_can_go_to_a_file() {
    let dir = temp_dir();
    let log = dir.path().join("service.log");
    let mut ex =
        SimpleExecutor::new(svc(&["--banner", "to the file"])).stdout(Redirect::File(log.clone()));
    ex.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("to the file") {
        assert!(Instant::now() < deadline, "the banner never reached the file");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(ex.output().stdout.is_empty(), "not captured when redirected");
    ex.stop().expect("stop");
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #19
    #[test]
    fn output_file_in_a_missing_directory() {
        let probe = Probe::new();
        refused(
            SimpleExecutor::new(probe.argv())
                .stdout(Redirect::File("/no/such/dir/log".into()))
                .into_inner(),
            "is in a directory that does not exist",
            "create the directory first",
        );
        probe.assert_nothing_spawned();
    }
}

/// An output file that is a FIFO nobody reads fails the start at once: opening it blocked
/// `start()` forever.
#[test]
fn an_output_fifo_nobody_reads_fails_the_start_at_once() {
    let dir = mirakuru_test::temp_dir();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut ex = mirakuru::SimpleExecutor::new(svc(&[])).stderr(mirakuru::Redirect::File(fifo));
    let began = std::time::Instant::now();
    let err = ex.start().expect_err("nobody reads the FIFO");
    assert!(began.elapsed() < std::time::Duration::from_secs(5));
    assert!(err.to_string().contains("FIFO"), "{err}");
    assert!(ex.pid().is_none(), "nothing was started");
}
