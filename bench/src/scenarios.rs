//! The scenarios: what is timed on the library side, what on the oracle side, and the goal.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::launch::Launch;
use crate::library::{self, Service};
use crate::oracle;
use crate::report::Goal;
use crate::services::{self, Env, HelperKind, RedisReady};

/// One timed round of one side; `Err` aborts the scenario with that message.
pub type RoundFn = Box<dyn FnMut() -> Result<Duration, String>>;

/// What the library is compared with.
pub enum Oracle {
    /// Measured every round, interleaved with the library.
    Measured(RoundFn),
    /// A known lower bound (the stop timeout a TERM-ignoring process must sit out).
    Constant(Duration),
}

/// A scenario measured in rounds.
pub struct Rounds {
    pub library: RoundFn,
    pub oracle: Oracle,
}

/// How a scenario is measured.
pub enum Plan {
    Rounds(Rounds),
    /// The `memory` scenario: one measurement of 100 executors at once.
    Memory,
}

/// A scenario of the catalogue: its fixed name, goal, and how to set it up. `setup` runs only
/// when the scenario is selected; `Ok(None)` means skipped (a server is not installed).
pub struct Entry {
    pub name: &'static str,
    pub goal: Goal,
    pub setup: Box<dyn FnOnce() -> Result<Option<Plan>, String>>,
}

/// Every scenario, in the order of the report.
pub fn catalogue(env: &Rc<Env>) -> Vec<Entry> {
    let mut entries = vec![
        entry("simple-start-stop", Goal::Under(3.0), simple_start_stop(env)),
        helper_entry(env, "tcp-helper", HelperKind::Tcp, 2.0),
        helper_entry(env, "http-helper", HelperKind::Http, 2.0),
        helper_entry(env, "unix-helper", HelperKind::Unix, 1.0),
        helper_entry(env, "pid-helper", HelperKind::Pid, 1.0),
        helper_entry(env, "output-helper", HelperKind::Output, 1.0),
        entry(
            "stop-prompt",
            Goal::All(vec![Goal::Under(2.0), Goal::NearOracle(1.0)]),
            stop_prompt(env),
        ),
        entry(
            "stop-term-ignoring",
            Goal::Around { target: 100.0, tolerance: 5.0 },
            stop_term_ignoring(env),
        ),
    ];
    entries.extend(real_services(env));
    entries.push(Entry {
        name: "memory",
        goal: Goal::Memory,
        setup: Box::new(|| Ok(Some(Plan::Memory))),
    });
    entries
}

fn entry(name: &'static str, goal: Goal, rounds: Rounds) -> Entry {
    Entry { name, goal, setup: Box::new(move || Ok(Some(Plan::Rounds(rounds)))) }
}

/// A scenario that needs an installed program: skipped (with a note) when it is missing.
fn needs<P: 'static>(
    name: &'static str,
    goal: Goal,
    program: Option<P>,
    what: &'static str,
    make: impl FnOnce(P) -> Result<Rounds, String> + 'static,
) -> Entry {
    let setup = move || match program {
        Some(p) => make(p).map(|r| Some(Plan::Rounds(r))),
        None => {
            eprintln!("note: {name} skipped: {what} is not installed");
            Ok(None)
        }
    };
    Entry { name, goal, setup: Box::new(setup) }
}

fn helper_entry(env: &Rc<Env>, name: &'static str, kind: HelperKind, ms: f64) -> Entry {
    let env2 = Rc::clone(env);
    entry(name, Goal::NearOracle(ms), start_to_ready(env, move || services::helper(&env2, kind)))
}

fn real_services(env: &Rc<Env>) -> Vec<Entry> {
    let p = &env.programs;
    let redis = |name, how| {
        let env2 = Rc::clone(env);
        let goal = Goal::NearOracle(if matches!(how, RedisReady::Tcp) { 2.0 } else { 1.0 });
        needs(name, goal, p.redis.clone(), "redis-server", move |prog| {
            let env3 = Rc::clone(&env2);
            Ok(start_to_ready(&env2, move || services::redis(&env3, &prog, how)))
        })
    };
    let nginx = |name, daemon| {
        let env2 = Rc::clone(env);
        let goal = Goal::NearOracle(if daemon { 1.0 } else { 2.0 });
        needs(name, goal, p.nginx.clone(), "nginx", move |prog| {
            let env3 = Rc::clone(&env2);
            Ok(start_to_ready(&env2, move || services::nginx(&env3, &prog, daemon)))
        })
    };
    let env_pg = Rc::clone(env);
    let env_pg_notify = Rc::clone(env);
    let env_mc = Rc::clone(env);
    let env_stop = Rc::clone(env);
    vec![
        redis("tcp-redis", RedisReady::Tcp),
        redis("output-redis", RedisReady::Output),
        redis("unix-redis", RedisReady::Unix),
        redis("notify-redis", RedisReady::Notify),
        needs("tcp-postgres", Goal::NearOracle(2.0), p.postgres.clone(), "PostgreSQL", move |pg| {
            // initdb once, untimed; every round starts and stops the same cluster.
            let cluster = Rc::new(services::init_cluster(&env_pg, &pg)?);
            Ok(start_to_ready(&env_pg, move || cluster.launch()))
        }),
        needs(
            "notify-postgres",
            Goal::NearOracle(1.0),
            p.postgres.clone(),
            "PostgreSQL",
            move |pg| {
                let cluster = Rc::new(services::init_cluster(&env_pg_notify, &pg)?);
                Ok(start_to_ready(&env_pg_notify, move || cluster.launch_notify()))
            },
        ),
        nginx("http-nginx", false),
        nginx("pid-nginx", true),
        needs("tcp-memcached", Goal::NearOracle(2.0), p.memcached.clone(), "memcached", move |m| {
            Ok(start_to_ready(&env_mc, move || services::memcached(&m)))
        }),
        needs("stop-redis", Goal::NearOracle(1.0), p.redis.clone(), "redis-server", move |prog| {
            let env2 = Rc::clone(&env_stop);
            Ok(stop_only(&env_stop, None, move || services::redis(&env2, &prog, RedisReady::Tcp)))
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Measurement shapes
// ---------------------------------------------------------------------------------------------

/// Times spawn to ready. Each side gets a fresh launch (own port, own scratch directory); the
/// teardown after the measurement is not timed.
fn start_to_ready(env: &Rc<Env>, make: impl Fn() -> Launch + 'static) -> Rounds {
    let make = Rc::new(make);
    let (env_l, make_l) = (Rc::clone(env), Rc::clone(&make));
    let library = move || {
        let launch = make_l();
        let mut service = library::executor(&launch, &env_l.tag, None);
        let started = Instant::now();
        service.start().map_err(|e| format!("library start: {e}"))?;
        let took = started.elapsed();
        service.stop().map_err(|e| format!("library stop: {e}"))?;
        Ok(took)
    };
    let env_o = Rc::clone(env);
    let oracle = move || {
        let launch = make();
        let started = Instant::now();
        let mut process = oracle::spawn(&launch, &env_o.tag)?;
        process.wait_ready(&launch.ready)?;
        let took = started.elapsed();
        drop(process); // untimed: shut down and reaped
        Ok(took)
    };
    Rounds { library: Box::new(library), oracle: Oracle::Measured(Box::new(oracle)) }
}

/// Times only the stop of a service that was started and found ready beforehand.
fn stop_only(
    env: &Rc<Env>,
    stop_timeout: Option<Duration>,
    make: impl Fn() -> Launch + 'static,
) -> Rounds {
    let make = Rc::new(make);
    let (env_l, make_l) = (Rc::clone(env), Rc::clone(&make));
    let library = move || {
        let launch = make_l();
        let mut service = library::executor(&launch, &env_l.tag, stop_timeout);
        service.start().map_err(|e| format!("library start: {e}"))?;
        timed_stop(service.as_mut())
    };
    let env_o = Rc::clone(env);
    let oracle = move || {
        let launch = make();
        let mut process = oracle::spawn(&launch, &env_o.tag)?;
        process.wait_ready(&launch.ready)?;
        let started = Instant::now();
        process.terminate_and_wait()?;
        Ok(started.elapsed())
    };
    Rounds { library: Box::new(library), oracle: Oracle::Measured(Box::new(oracle)) }
}

fn timed_stop(service: &mut dyn Service) -> Result<Duration, String> {
    let started = Instant::now();
    service.stop().map_err(|e| format!("library stop: {e}"))?;
    Ok(started.elapsed())
}

/// `start()` + `stop()` of a process that just waits; the oracle spawns, SIGTERMs and reaps.
fn simple_start_stop(env: &Rc<Env>) -> Rounds {
    let env_l = Rc::clone(env);
    let library = move || {
        let launch = services::helper_sleeping(&env_l);
        let mut service = library::executor(&launch, &env_l.tag, None);
        let started = Instant::now();
        service.start().map_err(|e| format!("library start: {e}"))?;
        service.stop().map_err(|e| format!("library stop: {e}"))?;
        Ok(started.elapsed())
    };
    let env_o = Rc::clone(env);
    let oracle = move || {
        let launch = services::helper_sleeping(&env_o);
        let started = Instant::now();
        let mut process = oracle::spawn(&launch, &env_o.tag)?;
        process.terminate_and_wait()?;
        Ok(started.elapsed())
    };
    Rounds { library: Box::new(library), oracle: Oracle::Measured(Box::new(oracle)) }
}

/// Stop of a process that exits with 0 on SIGTERM at once.
fn stop_prompt(env: &Rc<Env>) -> Rounds {
    let env2 = Rc::clone(env);
    stop_only(env, None, move || services::helper_with_banner(&env2, &["--exit-on", "TERM:0"]))
}

/// Stop, with a 100 ms stop timeout, of a process that ignores SIGTERM: the library must sit
/// the timeout out, then kill; nothing can be faster than the timeout itself.
fn stop_term_ignoring(env: &Rc<Env>) -> Rounds {
    const STOP_TIMEOUT: Duration = Duration::from_millis(100);
    let env_l = Rc::clone(env);
    let library = move || {
        let launch = services::helper_with_banner(&env_l, &["--ignore", "TERM"]);
        let mut service = library::executor(&launch, &env_l.tag, Some(STOP_TIMEOUT));
        service.start().map_err(|e| format!("library start: {e}"))?;
        timed_stop(service.as_mut())
    };
    Rounds { library: Box::new(library), oracle: Oracle::Constant(STOP_TIMEOUT) }
}
