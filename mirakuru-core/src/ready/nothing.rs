//! No readiness check: the process is "ready" once it runs (Python mirakuru's
//! `SimpleExecutor`).

use super::{Check, Context, Status};
use crate::command::Command;
use crate::executor::Executor;
use crate::named::named_executor;

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

named_executor! {
    /// Starts a process and returns as soon as it runs; stops its whole tree.
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::SimpleExecutor;
    ///
    /// let mut sleeper = SimpleExecutor::new("sleep 300");
    /// sleeper.start()?;
    /// assert!(sleeper.running());
    /// sleeper.stop()?;
    /// assert!(!sleeper.running());
    /// # Ok(()) }
    /// ```
    SimpleExecutor(Nothing)
}

impl SimpleExecutor {
    /// An executor for `command` (a command line or a list of arguments).
    pub fn new(command: impl Into<Command>) -> SimpleExecutor {
        SimpleExecutor(Executor::new(command, Nothing))
    }
}
