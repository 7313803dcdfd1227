//! No readiness check: the process is "ready" once it runs (Python mirakuru's
//! `SimpleExecutor`).

use super::{Check, Context, Status};

/// Ready as soon as the program has been executed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nothing;

impl Check for Nothing {
    fn describe(&self) -> String {
        "nothing (the process only has to start)".into()
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Status {
        Status::Ready
    }
}
