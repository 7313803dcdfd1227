//! Signals, as the `nix` crate names them.

/// A POSIX signal, for [`Executor::stop_signal`](crate::Executor::stop_signal) and
/// [`Executor::kill_signal`](crate::Executor::kill_signal): `Signal::SIGTERM`,
/// `Signal::SIGINT`, `Signal::SIGKILL`, …
///
/// ```
/// use mirakuru::{Signal, SimpleExecutor};
///
/// // PostgreSQL's "fast shutdown" is SIGINT.
/// let postgres = SimpleExecutor::new("postgres -D /tmp/data").stop_signal(Signal::SIGINT);
/// # let _ = postgres;
/// ```
pub use nix::sys::signal::Signal;
