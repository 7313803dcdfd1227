//! Floods of output: a gibibyte written after ready never blocks the writer, is counted to the
//! byte and never held in memory, and does not slow other services down; odd output around the
//! banner. (`output.rs` covers the rest: 50 MiB before the banner, a banner inside a 10 MiB
//! line, 1 MiB without a newline before it, non-UTF-8 output; `ready/output.rs` a banner wait
//! on a stdout closed at once.)

use std::time::{Duration, Instant};

use mirakuru::{OutputExecutor, Redirect, DEFAULT_OUTPUT_LIMIT};
use mirakuru_test::{temp_dir, Tag};

use crate::{svc, tag_env};

const MIB: u64 = 1024 * 1024;

/// Waits for `path` to exist; false after `within`.
fn appears(path: &std::path::Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn a_gibibyte_after_ready_never_blocks_the_writer_and_is_counted_to_the_byte() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let done = dir.path().join("flood-done");
    let banner = "flooding now";
    let mut flooder = OutputExecutor::new(
        svc(&[
            "--banner",
            banner,
            "--flood-after-ready-mib",
            "1024",
            "--flood-done-file",
            &done.display().to_string(),
        ]),
        banner,
    )
    .env(k, v);
    flooder.start().expect("start");
    let began = Instant::now();

    // Meanwhile another service starts as fast as ever: the flood does not starve the
    // supervisor's other work.
    let mut other = OutputExecutor::new(svc(&["--banner", "other ready"]), "other ready");
    other.start().expect("another service starts during the flood");
    let other_ready = other.ready_after().expect("ready");
    let flood_still_running = !done.exists();
    other.stop().expect("stop");
    assert!(other_ready < Duration::from_secs(5), "started in {other_ready:?} during the flood");

    // Nobody reads the output, and the writer finishes: the supervisor drains it.
    assert!(appears(&done, Duration::from_secs(300)), "the writer is blocked");
    let written = began.elapsed();
    // Every byte is accounted for — the ones kept plus the ones dropped — once the last are
    // read from the pipe.
    let expected = 1024 * MIB + banner.len() as u64 + 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = flooder.output();
        if out.stdout.len() as u64 + out.stdout_dropped >= expected || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(out.stdout.len() as u64 + out.stdout_dropped, expected);
    assert_eq!(out.stdout.len(), DEFAULT_OUTPUT_LIMIT, "only the tail is held in memory");
    assert!(
        out.stdout.ends_with(&[[b'z'; 63].as_slice(), b"\n"].concat()),
        "the tail is the end of the flood"
    );
    flooder.stop().expect("stop");
    tag.assert_none_left();
    println!(
        "1 GiB drained in {written:?} ({:.0} MiB/s); another service became ready in \
         {other_ready:?} during it (flood still running then: {flood_still_running})",
        1024.0 / written.as_secs_f64()
    );
}

#[test]
fn a_banner_on_stderr_is_found_when_stdout_is_closed_at_once() {
    let mut ex = OutputExecutor::new(
        svc(&["--close-stdout", "--banner", "on stderr", "--banner-stderr"]),
        "on stderr",
    )
    .timeout(Duration::from_secs(60));
    ex.start().expect("one closed stream does not end the wait while the other is open");
    assert!(ex.running());
    ex.stop().expect("stop");
}

#[test]
fn non_utf8_output_before_and_after_the_banner_is_kept_as_bytes_in_errors_too() {
    // The banner never comes; the error's output tail shows the invalid bytes replaced, not
    // dropped, and the process is gone.
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = OutputExecutor::new(svc(&["--non-utf8", "--banner", "not this one"]), "never")
        .timeout(Duration::from_millis(300))
        .env(k, v);
    let err = ex.start().expect_err("no banner");
    let message = err.to_string();
    assert!(message.contains("\u{fffd}\u{fffd}\u{fffd} invalid utf8"), "{message}");
    assert!(message.contains("not this one"), "{message}");
    tag.assert_none_left();
}

#[test]
fn a_ten_mib_line_on_stderr_with_the_banner_inside_and_a_small_output_limit() {
    // The banner is searched in the stream as it arrives, not in what is kept.
    let mut ex = OutputExecutor::new(
        svc(&["--banner", "NEEDLE-42", "--banner-in-long-line", "5", "--banner-stderr"]),
        r"NEEDLE-\d+",
    )
    .output_limit(4096)
    .stdout(Redirect::Null)
    .timeout(Duration::from_secs(60));
    ex.start().expect("the banner is found although the line is not kept");
    let out = ex.output();
    assert!(out.stderr.len() <= 4096);
    assert!(out.stderr_dropped >= 10 * MIB - 4096, "{}", out.stderr_dropped);
    ex.stop().expect("stop");
}
