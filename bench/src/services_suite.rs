//! `mirakuru-bench services`: one suite of 30 tests — 20 PostgreSQL tests, each with a clean
//! database made from a template holding a schema, and 10 Redis tests, one through an outage
//! — written three times alike: `mirakuru-test/tests/services_suite.rs` run with `cargo test`
//! and with `cargo nextest run`, and `bench/python` run with pytest-postgresql and
//! pytest-redis (`bench/python/run_suite.sh`). Rounds alternate the order; one untimed round
//! first. Reported: each runner's median wall time and range, and the median time a test
//! waited for its clean database.
//!
//! Goals (issue 13): a clean database per test in at most 50 ms (median), and each Rust
//! runner's whole suite in at most half of pytest's time.
//!
//! pytest runs twice: as its users run it, its temporary files (the server's data directory
//! among them) in `$TMPDIR`; and with them in `/dev/shm`, where the presets keep their data
//! by themselves. On this machine's disk a `CREATE DATABASE` takes 4-10 times as long as in
//! memory: the second is the comparison of the two libraries alone, the first what a user
//! moving from one to the other sees. The goal is checked against both.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// A clean database's median time, at most.
const DATABASE_GOAL: Duration = Duration::from_millis(50);
/// Each Rust runner's median over pytest's, at most.
const SUITE_GOAL: f64 = 0.5;

struct Runner {
    name: &'static str,
    times: Vec<Duration>,
    databases: Vec<u64>,
}

pub(crate) fn main(runs: usize) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = ["-p", "mirakuru-test", "--test", "services_suite"];
    if !crate::suite::build(&cargo, &root, &target) {
        return ExitCode::FAILURE;
    }
    let mut runners = ["cargo test", "cargo nextest run", "pytest", "pytest, data in /dev/shm"]
        .map(|name| Runner { name, times: Vec::new(), databases: Vec::new() });
    let dir = mirakuru_test::temp_dir();
    for round in 0..=runs {
        for i in 0..runners.len() {
            let runner = &mut runners[(i + round) % 4];
            let times = dir.path().join(format!("databases-{round}-{i}"));
            // pytest runs as another user when this runs as root: the file must be writable.
            let _ = std::fs::write(&times, b"");
            let _ = std::fs::set_permissions(
                &times,
                std::os::unix::fs::PermissionsExt::from_mode(0o666),
            );
            let outcome = match runner.name {
                "pytest" => run_pytest(&root, &times, None),
                "pytest, data in /dev/shm" => run_pytest(&root, &times, Some("/dev/shm")),
                "cargo test" => run_cargo(&cargo, &root, &["test"], &target, &times),
                _ => run_cargo(&cargo, &root, &["nextest", "run"], &target, &times),
            };
            match outcome {
                Ok(took) if round > 0 => {
                    runner.times.push(took);
                    runner.databases.extend(read_times(&times));
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{}: {e}", runner.name);
                    return ExitCode::FAILURE;
                }
            }
            eprintln!("round {round}: {} done", runner.name);
        }
    }
    report(&runners)
}

fn run_cargo(
    cargo: &std::ffi::OsStr,
    root: &Path,
    args: &[&str],
    target: &[&str],
    times: &PathBuf,
) -> Result<Duration, String> {
    let began = Instant::now();
    let out = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .args(target)
        .env("MIRAKURU_BENCH_DB_TIMES", times)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let took = began.elapsed();
    check(out, took)
}

/// pytest's own wall time, as `run_suite.sh` measures it around pytest (not its setup of a
/// virtual environment).
fn run_pytest(root: &Path, times: &PathBuf, tmpdir: Option<&str>) -> Result<Duration, String> {
    let mut command = Command::new(root.join("bench/python/run_suite.sh"));
    if let Some(dir) = tmpdir {
        command.env("TMPDIR", dir);
    }
    let out = command
        .env("BENCH_DB_TIMES", times)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bench/python/run_suite.sh: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms =
        text.lines().rev().find_map(|l| l.strip_prefix("pytest_ms=")?.trim().parse::<u64>().ok());
    let took = Duration::from_millis(ms.unwrap_or(0));
    check(out, took)
}

fn check(out: std::process::Output, took: Duration) -> Result<Duration, String> {
    if out.status.success() {
        return Ok(took);
    }
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(25).collect();
    Err(format!("the suite failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
}

fn read_times(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn median<T: Ord + Copy + Default>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn report(runners: &[Runner]) -> ExitCode {
    println!("| runner | median wall time | range | clean database, median (n) |");
    println!("|---|---:|---:|---:|");
    for r in runners {
        let (min, max) = (r.times.iter().min(), r.times.iter().max());
        println!(
            "| {} | {:.0} ms | {:.0}–{:.0} ms | {:.1} ms ({}) |",
            r.name,
            median(&r.times).as_secs_f64() * 1e3,
            min.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            max.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            median(&r.databases) as f64 / 1e3,
            r.databases.len()
        );
    }
    let pytest = median(&runners[2].times).as_secs_f64();
    let pytest_in_memory = median(&runners[3].times).as_secs_f64();
    let mut ok = true;
    for r in &runners[..2] {
        let ratio = median(&r.times).as_secs_f64() / pytest;
        let in_memory = median(&r.times).as_secs_f64() / pytest_in_memory;
        let db = Duration::from_micros(median(&r.databases));
        let verdict = ratio <= SUITE_GOAL && in_memory <= SUITE_GOAL && db <= DATABASE_GOAL;
        ok &= verdict;
        println!(
            "\n{}: {ratio:.2}× pytest's time, {in_memory:.2}× with pytest's data in memory (goal \
             ≤ {SUITE_GOAL}×); a clean database in {:.1} ms (goal ≤ {} ms) — {}",
            r.name,
            db.as_secs_f64() * 1e3,
            DATABASE_GOAL.as_millis(),
            if verdict { "ok" } else { "MISSED" }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
