//! Statistics, goals, the table and the JSON lines.

use std::fmt::Write as _;
use std::time::Duration;

/// A product goal for one scenario (medians, in milliseconds).
#[derive(Debug, Clone)]
pub enum Goal {
    /// The library's median is below this.
    Under(f64),
    /// The library's median is at most this much above the oracle's.
    NearOracle(f64),
    /// The library's median is within `tolerance` of `target`.
    Around { target: f64, tolerance: f64 },
    /// Every one of these holds.
    All(Vec<Goal>),
    /// At most 512 KiB of RSS and 2 threads per running executor.
    Memory,
}

const MEMORY_RSS_KIB: f64 = 512.0;
const MEMORY_THREADS: f64 = 2.0;

impl Goal {
    fn describe(&self) -> String {
        match self {
            Goal::Under(ms) => format!("< {ms} ms"),
            Goal::NearOracle(ms) => format!("<= oracle+{ms} ms"),
            Goal::Around { target, tolerance } => format!("{target}+-{tolerance} ms"),
            Goal::All(goals) => goals.iter().map(Goal::describe).collect::<Vec<_>>().join(", "),
            Goal::Memory => format!("<= {MEMORY_RSS_KIB} KiB, <= {MEMORY_THREADS} thr"),
        }
    }

    /// `None` when the figures it needs are missing.
    fn holds(&self, o: &Outcome) -> Option<bool> {
        let median = o.median_ms()?;
        match self {
            Goal::Under(ms) => Some(median < *ms),
            Goal::NearOracle(ms) => Some(median - o.oracle_median_ms()? <= *ms),
            Goal::Around { target, tolerance } => Some((median - target).abs() <= *tolerance),
            Goal::All(goals) => goals.iter().try_fold(true, |all, g| Some(all && g.holds(o)?)),
            Goal::Memory => Some(
                o.extra("rss_kib_per_executor")? <= MEMORY_RSS_KIB
                    && o.extra("threads_per_executor")? <= MEMORY_THREADS,
            ),
        }
    }
}

/// What the library is compared with, as measured.
#[derive(Debug, Clone)]
pub enum OracleFigure {
    Samples(Vec<Duration>),
    Constant(Duration),
    None,
}

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub goal: Goal,
    pub samples: Vec<Duration>,
    pub oracle: OracleFigure,
    /// Scenario-specific figures, also emitted as JSON keys.
    pub extra: Vec<(&'static str, f64)>,
    /// Set when a round failed: the scenario was abandoned.
    pub error: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median; the mean of the two middle values for an even count.
pub fn median(samples: &[Duration]) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().map(ms).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

impl Outcome {
    pub fn median_ms(&self) -> Option<f64> {
        median(&self.samples)
    }

    pub fn oracle_median_ms(&self) -> Option<f64> {
        match &self.oracle {
            OracleFigure::Samples(s) => median(s),
            OracleFigure::Constant(d) => Some(ms(*d)),
            OracleFigure::None => None,
        }
    }

    fn min_ms(&self) -> Option<f64> {
        self.samples.iter().copied().min().map(ms)
    }

    fn max_ms(&self) -> Option<f64> {
        self.samples.iter().copied().max().map(ms)
    }

    fn extra(&self, key: &str) -> Option<f64> {
        self.extra.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// `ok`, `MISSED`, or `n/a` (failed, or not enough figures).
    pub fn verdict(&self) -> &'static str {
        if self.error.is_some() {
            return "n/a";
        }
        match self.goal.holds(self) {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "n/a",
        }
    }

    /// One JSON object, on one line.
    pub fn json(&self) -> String {
        let mut out =
            format!("{{\"scenario\": \"{}\", \"runs\": {}", self.name, self.samples.len());
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let _ = write!(
            out,
            ", \"median_ms\": {}, \"oracle_median_ms\": {}, \"min_ms\": {}, \"max_ms\": {}",
            num(self.median_ms()),
            num(self.oracle_median_ms()),
            num(self.min_ms()),
            num(self.max_ms())
        );
        for (key, value) in &self.extra {
            let _ = write!(out, ", \"{key}\": {value:.3}");
        }
        if let Some(error) = &self.error {
            let _ = write!(out, ", \"error\": \"{}\"", json_escape(error));
        }
        out.push('}');
        out
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The human-readable table, with notes for extra figures and failures underneath.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<28} result",
        "scenario", "runs", "median", "oracle", "diff", "min", "max", "goal"
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for o in outcomes {
        let diff = o.median_ms().zip(o.oracle_median_ms()).map(|(a, b)| a - b);
        let _ = writeln!(
            out,
            "{:<20} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<28} {}",
            o.name,
            o.samples.len(),
            f(o.median_ms()),
            f(o.oracle_median_ms()),
            diff.map_or("-".to_string(), |d| format!("{d:+.3}")),
            f(o.min_ms()),
            f(o.max_ms()),
            o.goal.describe(),
            o.verdict()
        );
    }
    let _ = writeln!(
        out,
        "(milliseconds; medians of the library and of the oracle, min/max of the library)"
    );
    for o in outcomes {
        if !o.extra.is_empty() {
            let figures: Vec<String> =
                o.extra.iter().map(|(k, v)| format!("{k} = {v:.2}")).collect();
            let _ = writeln!(out, "{}: {}", o.name, figures.join(", "));
        }
        if let Some(error) = &o.error {
            let _ = writeln!(out, "{}: FAILED: {error}", o.name);
        }
    }
    out
}
