//! A check written as a closure: it sees the context (pid, output so far, time elapsed) and
//! says ready, not yet, or failed for good. It is polled on the probe schedule and whenever the
//! process writes output.

use super::{Backoff, Check, Context, Status};

/// A readiness check made of a closure; see [`custom`].
pub struct Custom<F> {
    what: String,
    check: F,
    backoff: Backoff,
}

/// A check that asks `check` whether the service is ready. `what` completes "waited for …" in
/// error messages.
///
/// ```
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
/// use mirakuru::ready::Status;
///
/// // Ready once the process has printed three lines.
/// let mut ex = Executor::new(
///     ["sh", "-c", "echo a; echo b; echo c; exec sleep 30"],
///     ready::custom("three lines of output", |cx| {
///         if cx.output().stdout.iter().filter(|&&b| b == b'\n').count() >= 3 {
///             Status::Ready
///         } else {
///             Status::NotYet
///         }
///     }),
/// );
/// ex.start()?;
/// ex.stop()?;
/// # Ok(()) }
/// ```
pub fn custom<F>(what: impl Into<String>, check: F) -> Custom<F>
where
    F: FnMut(&Context<'_>) -> Status + Send,
{
    Custom { what: what.into(), check, backoff: Backoff::new() }
}

impl<F> std::fmt::Debug for Custom<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custom").field("what", &self.what).finish_non_exhaustive()
    }
}

impl<F> Check for Custom<F>
where
    F: FnMut(&Context<'_>) -> Status + Send,
{
    fn describe(&self) -> String {
        self.what.clone()
    }

    fn prepare(&mut self, _setup: &mut super::Setup<'_>) -> Result<(), String> {
        self.backoff = Backoff::new();
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let status = (self.check)(cx);
        if status == Status::NotYet {
            cx.poll_again_in(self.backoff.next_delay());
        }
        status
    }
}
