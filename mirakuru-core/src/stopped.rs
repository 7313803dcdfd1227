//! The stopped scope: a service taken down for a while and started again afterwards, ready —
//! also when the code in between panics (Python mirakuru's `stopped()` did not restart on an
//! exception, and raised when the service was not running; docs/design.md §2.16.7).

use std::fmt;

use crate::error::Error;

type Restart = Box<dyn FnOnce() -> Result<(), Error> + Send>;

/// The service is stopped while this guard lives; dropping it starts it again and waits until
/// it is ready (see [`Executor::stopped`](crate::Executor::stopped)).
#[must_use = "the service is restarted when this guard is dropped"]
pub struct Stopped {
    restart: Option<Restart>,
}

impl Stopped {
    /// A guard that calls `restart` when dropped; `None`: there is nothing to restart.
    pub(crate) fn new(restart: Option<Restart>) -> Stopped {
        Stopped { restart }
    }

    /// Starts the service again now and reports the error, instead of when dropped.
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::start`](crate::Executor::start).
    pub fn restart(mut self) -> Result<(), Error> {
        match self.restart.take() {
            Some(restart) => restart(),
            None => Ok(()),
        }
    }
}

impl Drop for Stopped {
    /// Restarts the service. A failed restart panics (this guard lives in tests, where a panic
    /// is how failure is reported), unless the thread is already panicking: then the error is
    /// printed and the original panic goes on.
    fn drop(&mut self) {
        let Some(restart) = self.restart.take() else { return };
        if let Err(err) = restart() {
            if std::thread::panicking() {
                eprintln!("mirakuru: could not restart the service after a stopped scope: {err}");
            } else {
                panic!("could not restart the service after a stopped scope: {err}");
            }
        }
    }
}

impl fmt::Debug for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped").field("restarts", &self.restart.is_some()).finish()
    }
}
