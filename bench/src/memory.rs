//! The `memory` scenario: what a running executor costs the process that owns it.

use std::time::{Duration, Instant};

use crate::library::{self, Service};
use crate::services::{self, Env};

/// How many executors run at once.
pub const EXECUTORS: usize = 100;

/// The figures of one measurement.
pub struct Memory {
    /// How long each `start()` took, the k-th while k−1 others run.
    pub starts: Vec<Duration>,
    pub rss_kib_per_executor: f64,
    pub threads_per_executor: f64,
    /// What the first executor of a process costs once (supervisor thread, reaper, tables).
    pub one_time_rss_kib: f64,
    pub one_time_threads: f64,
}

/// Starts one executor and stops it (one-time costs), then runs `EXECUTORS` at once and
/// compares VmRSS and Threads of /proc/self/status. Best run before the other scenarios, while
/// the heap is still small; the caller does so.
pub fn measure(env: &Env) -> Result<Memory, String> {
    let fresh = Status::read()?;
    {
        let mut warm = executor(env);
        warm.start().map_err(|e| format!("warm-up start: {e}"))?;
        warm.stop().map_err(|e| format!("warm-up stop: {e}"))?;
    }
    let mut running: Vec<Box<dyn Service>> = Vec::with_capacity(EXECUTORS);
    let mut starts = Vec::with_capacity(EXECUTORS);
    let base = Status::read()?;
    let result = (|| {
        for _ in 0..EXECUTORS {
            let mut service = executor(env);
            let started = Instant::now();
            service.start().map_err(|e| format!("start: {e}"))?;
            starts.push(started.elapsed());
            running.push(service);
        }
        Status::read()
    })();
    // Stop all, also after a failed start, before reporting anything.
    let mut stop_error = None;
    for service in &mut running {
        if let Err(e) = service.stop() {
            stop_error.get_or_insert(format!("stop: {e}"));
        }
    }
    let loaded = result?;
    if let Some(e) = stop_error {
        return Err(e);
    }
    let n = EXECUTORS as f64;
    Ok(Memory {
        starts,
        rss_kib_per_executor: (loaded.rss_kib - base.rss_kib) as f64 / n,
        threads_per_executor: (loaded.threads - base.threads) as f64 / n,
        one_time_rss_kib: (base.rss_kib - fresh.rss_kib) as f64,
        one_time_threads: (base.threads - fresh.threads) as f64,
    })
}

fn executor(env: &Env) -> Box<dyn Service> {
    library::executor(&services::helper_sleeping(env), &env.tag, None)
}

/// The two lines of /proc/self/status that matter here.
struct Status {
    rss_kib: i64,
    threads: i64,
}

impl Status {
    fn read() -> Result<Status, String> {
        let text = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("reading /proc/self/status: {e}"))?;
        let field = |name: &str| -> Result<i64, String> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/self/status"))
        };
        Ok(Status { rss_kib: field("VmRSS:")?, threads: field("Threads:")? })
    }
}
