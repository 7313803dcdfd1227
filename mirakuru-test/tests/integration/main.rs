//! Integration tests of mirakuru: real processes (the `mirakuru-test-service` helper, and real
//! servers where installed), started, waited for and stopped through the public API.
//!
//! One test binary for the whole package keeps builds lean; each module covers one concern.

mod defects;
mod executors;
mod fixtures;
mod floods;
mod invalid;
mod lifecycle;
mod orphans;
mod output;
mod readiness;
mod readiness_plus;
mod security;
mod services;
mod stress;
mod trees;

use mirakuru_test::{service, Tag};

/// The helper's argv with `args`, as a `Vec` an executor takes.
pub fn svc(args: &[&str]) -> Vec<String> {
    std::iter::once(service()).chain(args.iter().map(|a| a.to_string())).collect()
}

/// The banner [`ready`] waits for.
pub const READY: &str = "mirakuru-test-service is ready";

/// The helper with `args`, ready once it prints its banner, which comes after it has set up
/// its signal handlers, sockets and children (a `SimpleExecutor` would return before).
pub fn ready(args: &[&str]) -> mirakuru::OutputExecutor {
    let mut argv = svc(args);
    argv.extend(["--banner".to_string(), READY.to_string()]);
    mirakuru::OutputExecutor::new(argv, regex_escape(READY))
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_alphanumeric() || c == ' ' { vec![c] } else { vec!['\\', c] })
        .collect()
}

/// The helper's argv with a tag in its environment is not possible through argv; executors
/// get the tag through `.env(Tag::VAR, tag.value())`. This names the pair once.
pub fn tag_env(tag: &Tag) -> (&'static str, String) {
    (Tag::VAR, tag.value().to_string())
}
