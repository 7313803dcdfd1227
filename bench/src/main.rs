//! `mirakuru-bench`: how long mirakuru takes to start services, find them ready and stop them,
//! compared with an oracle — the same process spawned with `std::process::Command` and the
//! same readiness condition checked in a tight loop with no sleep, the fastest anyone could
//! know. Also what a running executor costs in memory and threads.
//!
//! ```text
//! cargo run --release -p mirakuru-bench -- [--runs N] [--warmup N]
//!     [--json] [--only NAME[,NAME...]] [--list]
//! mirakuru-bench helper-service FLAGS...    # the helper service (see `services.rs`)
//! mirakuru-bench suite [--runs N]            # one suite under cargo test and nextest
//! mirakuru-bench services [--runs N]         # the presets' suite against pytest-postgresql
//! ```
//!
//! Each scenario runs `--warmup` untimed rounds (default 1), then `--runs` timed ones
//! (default 20). A round runs the library and the oracle one after the other, the order
//! alternating every round, so that drifting machine load hits both alike. Real servers that
//! are not installed are skipped with a note on stderr. Nothing is left running: the run ends
//! with a check of every process it started (exit status 1 if any was left).

mod launch;
mod leftovers;
mod library;
mod memory;
mod oracle;
mod report;
mod scenarios;
mod services;
mod services_suite;
mod suite;

use std::ffi::OsStr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use mirakuru_test::Tag;

use crate::report::{Goal, OracleFigure, Outcome};
use crate::scenarios::{Oracle, Plan, Rounds};
use crate::services::{Env, Programs};

const USAGE: &str =
    "usage: mirakuru-bench [--runs N] [--warmup N] [--json] [--only NAME[,NAME...]] [--list]";

struct Options {
    runs: usize,
    warmup: usize,
    json: bool,
    only: Option<Vec<String>>,
    list: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options { runs: 20, warmup: 1, json: false, only: None, list: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = parse_count(&value()?, "--runs", 1)?,
            "--warmup" => options.warmup = parse_count(&value()?, "--warmup", 0)?,
            "--json" => options.json = true,
            "--list" => options.list = true,
            "--only" => options
                .only
                .get_or_insert_with(Vec::new)
                .extend(value()?.split(',').map(str::to_string)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(options)
}

/// A suite: its subcommand, its default number of runs, and how it runs.
type Suite = (&'static str, usize, fn(usize) -> ExitCode);

/// A suite's `--runs N`, or `default`.
fn suite_runs(default: usize) -> Result<usize, String> {
    match std::env::args().skip(2).collect::<Vec<_>>().as_slice() {
        [] => Ok(default),
        [flag, n] if flag == "--runs" => parse_count(n, "--runs", 1),
        other => Err(format!("unexpected arguments {other:?}")),
    }
}

fn parse_count(value: &str, flag: &str, min: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{flag} wants a whole number >= {min}, not {value:?}")),
    }
}

fn main() -> ExitCode {
    // First of all: when started as the helper service, be nothing else.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(OsStr::new(services::AS_HELPER)) {
        mirakuru_test::test_service::run(vec![services::AS_HELPER.into()], args)
    }
    // The suites: `suite` (one runner against the other), `services` (the presets against
    // pytest-postgresql and pytest-redis).
    let suites: [Suite; 2] = [("suite", 5, suite::main), ("services", 3, services_suite::main)];
    let first = std::env::args().nth(1);
    if let Some(&(name, default, run)) = suites.iter().find(|(n, ..)| first.as_deref() == Some(*n))
    {
        return match suite_runs(default) {
            Ok(runs) => run(runs),
            Err(msg) => {
                eprintln!("mirakuru-bench {name}: {msg}\nusage: mirakuru-bench {name} [--runs N]");
                ExitCode::from(2)
            }
        };
    }
    let options = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("mirakuru-bench: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let env = Rc::new(Env {
        tag: Tag::new(),
        root: mirakuru_test::temp_dir(),
        helper: services::helper_argv(),
        programs: Programs::detect(),
    });
    let tag = env.tag.clone();
    let root = env.root.path().to_path_buf();

    let outcomes = run(&env, &options);
    drop(env); // the last references went with the scenarios: the run's root is removed here

    if !options.list {
        if options.json {
            for outcome in &outcomes {
                println!("{}", outcome.json());
            }
        } else {
            print!("{}", report::table(&outcomes));
        }
    }

    let mut clean = true;
    let left = leftovers::check(&tag, &root.display().to_string(), Duration::from_secs(2));
    if !left.is_empty() {
        eprintln!("mirakuru-bench: processes were left behind (now killed):");
        for what in &left {
            eprintln!("  {what}");
        }
        clean = false;
    }
    if root.exists() {
        eprintln!("mirakuru-bench: the temporary root {} was not removed", root.display());
        clean = false;
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the selected scenarios and returns their outcomes in catalogue order.
fn run(env: &Rc<Env>, options: &Options) -> Vec<Outcome> {
    let catalogue = scenarios::catalogue(env);
    if options.list {
        for entry in &catalogue {
            println!("{}", entry.name);
        }
        return Vec::new();
    }
    if let Some(only) = &options.only {
        for name in only {
            if !catalogue.iter().any(|e| e.name == name) {
                eprintln!("note: no scenario named {name:?} (see --list)");
            }
        }
    }
    let mut selected: Vec<(usize, scenarios::Entry)> = catalogue
        .into_iter()
        .enumerate()
        .filter(|(_, e)| options.only.as_ref().is_none_or(|only| only.iter().any(|n| n == e.name)))
        .collect();
    // `memory` first, while the heap is small and before any one-time cost was paid.
    selected.sort_by_key(|(i, e)| (e.name != "memory", *i));

    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    for (index, entry) in selected {
        let name = entry.name;
        let goal = entry.goal.clone();
        eprint!("{name} ... ");
        let outcome = match (entry.setup)() {
            Ok(None) => {
                eprintln!("skipped");
                continue;
            }
            Ok(Some(Plan::Rounds(rounds))) => run_rounds(name, goal, rounds, options),
            Ok(Some(Plan::Memory)) => run_memory(env, goal),
            Err(e) => failed(name, goal, format!("setup: {e}")),
        };
        match (&outcome.error, outcome.median_ms()) {
            (Some(e), _) => eprintln!("FAILED: {e}"),
            (None, Some(m)) => eprintln!("median {m:.3} ms ({})", outcome.verdict()),
            (None, None) => eprintln!("no samples"),
        }
        outcomes.push((index, outcome));
    }
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

fn failed(name: &'static str, goal: Goal, error: String) -> Outcome {
    Outcome {
        name,
        goal,
        samples: Vec::new(),
        oracle: OracleFigure::None,
        extra: Vec::new(),
        error: Some(error),
    }
}

/// Warm-up rounds, then timed rounds; library and oracle interleaved, order alternating.
fn run_rounds(name: &'static str, goal: Goal, mut rounds: Rounds, options: &Options) -> Outcome {
    let mut samples = Vec::with_capacity(options.runs);
    let mut oracle_samples = Vec::with_capacity(options.runs);
    for round in 0..options.warmup + options.runs {
        let timed = round >= options.warmup;
        let mut one = |library: bool| -> Result<(), String> {
            match (library, &mut rounds.oracle) {
                (true, _) => {
                    let d = (rounds.library)()?;
                    if timed {
                        samples.push(d);
                    }
                }
                (false, Oracle::Measured(oracle)) => {
                    let d = oracle()?;
                    if timed {
                        oracle_samples.push(d);
                    }
                }
                (false, Oracle::Constant(_)) => {}
            }
            Ok(())
        };
        let library_first = round % 2 == 0;
        if let Err(e) = one(library_first).and_then(|()| one(!library_first)) {
            let mut outcome = failed(name, goal, format!("round {round}: {e}"));
            outcome.samples = samples;
            return outcome;
        }
    }
    let oracle = match rounds.oracle {
        Oracle::Measured(_) => OracleFigure::Samples(oracle_samples),
        Oracle::Constant(d) => OracleFigure::Constant(d),
    };
    Outcome { name, goal, samples, oracle, extra: Vec::new(), error: None }
}

fn run_memory(env: &Env, goal: Goal) -> Outcome {
    match memory::measure(env) {
        Ok(m) => Outcome {
            name: "memory",
            goal,
            samples: m.starts,
            oracle: OracleFigure::None,
            extra: vec![
                ("rss_kib_per_executor", m.rss_kib_per_executor),
                ("threads_per_executor", m.threads_per_executor),
                ("one_time_rss_kib", m.one_time_rss_kib),
                ("one_time_threads", m.one_time_threads),
            ],
            error: None,
        },
        Err(e) => failed("memory", goal, e),
    }
}
