//! `mirakuru-bench suite`: one test suite under both runners. The `run_scope` test target of
//! `mirakuru-test` — 32 tests using one run-scoped fixture, a service that takes a second to
//! start as a database server does, 25 ms of work with it in each test — run with `cargo test` (one process, 32 threads) and with
//! `cargo nextest run` (32 processes), rounds alternating. Reported: the wall time of each,
//! median and range, and how many servers each started (counted by the service itself, in
//! `MIRAKURU_RUN_SCOPE_STARTS`). Goal: nextest within 1.3× of `cargo test`.
//!
//! Both include cargo's own check that the build is fresh (built first, untimed), as a user
//! typing either command waits for it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The goal: nextest's median within this many times `cargo test`'s.
const GOAL: f64 = 1.3;

struct Runner {
    name: &'static str,
    args: &'static [&'static str],
    times: Vec<Duration>,
    starts: Vec<usize>,
}

pub(crate) fn main(runs: usize) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = ["-p", "mirakuru-test", "--test", "run_scope"];
    let mut runners = [
        Runner { name: "cargo test", args: &["test"], times: Vec::new(), starts: Vec::new() },
        Runner {
            name: "cargo nextest run",
            args: &["nextest", "run", "--no-fail-fast"],
            times: Vec::new(),
            starts: Vec::new(),
        },
    ];
    if !build(&cargo, &root, &target) {
        return ExitCode::FAILURE;
    }
    let dir = mirakuru_test::temp_dir();
    // One untimed round of each first: caches, and nextest's first listing.
    for round in 0..=runs {
        for i in 0..runners.len() {
            let runner = &mut runners[(i + round) % 2];
            let starts = dir.path().join(format!("starts-{round}-{i}"));
            match run_once(&cargo, &root, runner.args, &target, &starts) {
                Ok((took, started)) if round > 0 => {
                    runner.times.push(took);
                    runner.starts.push(started);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{}: {e}", runner.name);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    report(&runners)
}

/// Builds a suite's test target first, untimed, as a user's earlier build would have; says
/// what failed.
pub(crate) fn build(cargo: &std::ffi::OsStr, root: &Path, target: &[&str]) -> bool {
    eprint!("building the suite ... ");
    let built = Command::new(cargo)
        .current_dir(root)
        .args(["test", "--no-run"])
        .args(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let ok = built.is_ok_and(|s| s.success());
    eprintln!(
        "{}",
        if ok {
            "done".to_string()
        } else {
            format!("failed: `cargo test --no-run {}`", target.join(" "))
        }
    );
    ok
}

/// One run of the suite: its wall time and the starts the service counted.
fn run_once(
    cargo: &std::ffi::OsStr,
    root: &Path,
    args: &[&str],
    target: &[&str],
    starts: &PathBuf,
) -> Result<(Duration, usize), String> {
    let began = Instant::now();
    let out = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .args(target)
        .env("MIRAKURU_RUN_SCOPE_STARTS", starts)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let took = began.elapsed();
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        return Err(format!(
            "the suite failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let counted = std::fs::read_to_string(starts).unwrap_or_default().lines().count();
    Ok((took, counted))
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn report(runners: &[Runner]) -> ExitCode {
    println!("| runner | median wall time | range | servers started per run |");
    println!("|---|---:|---:|---:|");
    for r in runners {
        let (min, max) = (r.times.iter().min(), r.times.iter().max());
        let starts: Vec<String> = r.starts.iter().map(|s| s.to_string()).collect();
        println!(
            "| {} | {:.0} ms | {:.0}–{:.0} ms | {} |",
            r.name,
            median(&r.times).as_secs_f64() * 1e3,
            min.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            max.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            starts.join(", ")
        );
    }
    let ratio = median(&runners[1].times).as_secs_f64() / median(&runners[0].times).as_secs_f64();
    let once = runners.iter().all(|r| r.starts.iter().all(|&s| s == 1));
    let verdict = if ratio <= GOAL && once { "ok" } else { "MISSED" };
    println!(
        "\nnextest / cargo test: {ratio:.2}× (goal ≤ {GOAL}×); one server per run: {once} — {verdict}"
    );
    if verdict == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
