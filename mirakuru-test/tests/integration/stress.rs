//! Stress: thousands of start/stop cycles leak no file descriptor, no zombie and (almost) no
//! memory; many threads starting fixtures on automatic ports at once never collide.
//!
//! The cycles run in `mirakuru-test-stress`, a process of their own, so that the other tests
//! of this binary do not move its figures. The sizes here keep the suite short on two cores;
//! the full counts run with the same code as ignored tests:
//! `cargo test -p mirakuru-test --test integration stress -- --ignored`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirakuru_test::{bin_path, temp_dir, Tag};

/// How much resident memory may grow over all the cycles.
const RSS_GROWTH_LIMIT_KIB: i64 = 1024;

/// Runs `mirakuru-test-stress ARGS`, with a deadline that only catches hangs, and returns its
/// `key=value` figures; then checks that none of the services it started is left.
fn run_stress(args: &[&str], deadline: Duration) -> HashMap<String, String> {
    let tag = Tag::new();
    let dir = temp_dir();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(bin_path("mirakuru-test-stress"))
        .args(args)
        .env(Tag::VAR, tag.value())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start mirakuru-test-stress");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if began.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            tag.assert_none_left_within(Duration::from_secs(5));
            panic!("mirakuru-test-stress {args:?} hung for {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "{status}\n{stdout}\n{}", tail(&stderr));
    tag.assert_none_left_within(Duration::from_secs(1));
    // Shown with --nocapture: the figures the README reports.
    println!("mirakuru-test-stress {}:\n{stdout}", args.join(" "));
    let figures: HashMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(figures.get("failures").map(String::as_str), Some("0"), "{stdout}");
    figures
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn number(figures: &HashMap<String, String>, key: &str) -> i64 {
    figures
        .get(key)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no figure {key} in {figures:?}")) as i64
}

fn cycles(n: usize, deadline: Duration) {
    let figures = run_stress(&["cycles", &n.to_string()], deadline);
    assert_eq!(number(&figures, "cycles"), n as i64);
    assert_eq!(
        number(&figures, "fds_after"),
        number(&figures, "fds_before"),
        "open file descriptors grew: {figures:?}"
    );
    assert_eq!(number(&figures, "zombies"), 0, "unreaped children: {figures:?}");
    let growth = number(&figures, "rss_after_kib") - number(&figures, "rss_before_kib");
    assert!(growth < RSS_GROWTH_LIMIT_KIB, "resident memory grew by {growth} KiB: {figures:?}");
}

fn parallel(threads: usize, n: usize, deadline: Duration) {
    let figures = run_stress(&["parallel", &threads.to_string(), &n.to_string()], deadline);
    assert_eq!(number(&figures, "cycles"), (threads * n) as i64);
    assert_eq!(number(&figures, "port_clashes"), 0, "{figures:?}");
    assert_eq!(number(&figures, "zombies"), 0, "unreaped children: {figures:?}");
}

#[test]
fn a_thousand_start_stop_cycles_leak_nothing() {
    cycles(1_000, Duration::from_secs(300));
}

#[test]
fn sixteen_threads_start_25_fixtures_each_on_automatic_ports() {
    parallel(16, 25, Duration::from_secs(300));
}

#[test]
#[ignore = "full count, about a minute: cargo test -p mirakuru-test --test integration stress -- --ignored"]
fn ten_thousand_start_stop_cycles_leak_nothing() {
    cycles(10_000, Duration::from_secs(1800));
}

#[test]
#[ignore = "full count, about half a minute: cargo test -p mirakuru-test --test integration stress -- --ignored"]
fn sixty_four_threads_start_100_fixtures_each_on_automatic_ports() {
    parallel(64, 100, Duration::from_secs(1800));
}
