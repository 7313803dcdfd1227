//! The stopped scope: a service taken down for a while and started again afterwards, ready —
//! also when the code in between panics (Python mirakuru's `stopped()` did not restart on an
//! exception, and raised when the service was not running; reference §2.16.7).

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::executor::Inner;
use crate::ready::Check;

/// The service is stopped while this guard lives; dropping it starts it again and waits until
/// it is ready (see [`Executor::stopped`](crate::Executor::stopped)).
#[must_use = "the service is restarted when this guard is dropped"]
pub struct Stopped<C: Check> {
    pub(crate) inner: Option<Arc<Mutex<Inner<C>>>>,
}

impl<C: Check> Stopped<C> {
    /// Starts the service again now and reports the error, instead of when dropped.
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::start`](crate::Executor::start).
    pub fn restart(mut self) -> Result<(), Error> {
        match self.inner.take() {
            Some(inner) => inner.lock().unwrap_or_else(|p| p.into_inner()).start(),
            None => Ok(()),
        }
    }
}

impl<C: Check> Drop for Stopped<C> {
    /// Restarts the service. A failed restart panics (this guard lives in tests, where a panic
    /// is how failure is reported), unless the thread is already panicking: then the error is
    /// printed and the original panic goes on.
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        let result = inner.lock().unwrap_or_else(|p| p.into_inner()).start();
        if let Err(err) = result {
            if std::thread::panicking() {
                eprintln!("mirakuru: could not restart the service after a stopped scope: {err}");
            } else {
                panic!("could not restart the service after a stopped scope: {err}");
            }
        }
    }
}

impl<C: Check> fmt::Debug for Stopped<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped").field("restarts", &self.inner.is_some()).finish()
    }
}
