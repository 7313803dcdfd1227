//! The runtime of [`mirakuru`](https://docs.rs/mirakuru): executors that start the processes a
//! test depends on, block until each is really ready, and tear the whole process tree down
//! afterwards. Use it through the `mirakuru` crate, which re-exports everything here.
//!
//! # Executors
//!
//! | executor | ready when |
//! |---|---|
//! | [`SimpleExecutor`] | the program runs |
//! | [`OutputExecutor`] | its output matches a banner regex |
//! | [`TcpExecutor`] | a TCP port accepts connections |
//! | [`UnixSocketExecutor`] | a unix socket accepts connections |
//! | [`HttpExecutor`] | an HTTP request gets an expected status |
//! | [`PidExecutor`] | it has written its pid file |
//! | [`Executor`] | any [`ready::Check`], such as a closure ([`ready::custom`]) |
//!
//! ```no_run
//! # fn main() -> Result<(), mirakuru_core::Error> {
//! use mirakuru_core::TcpExecutor;
//! use std::time::Duration;
//!
//! let mut redis = TcpExecutor::new("redis-server --port 6390 --save ''", "127.0.0.1", 6390)
//!     .timeout(Duration::from_secs(10));
//! redis.start()?;
//! redis.stop()?;
//! # Ok(()) }
//! ```
//!
//! # Process trees
//!
//! Each service runs in a session of its own, with a random owner marker in its environment
//! and `PR_SET_PDEATHSIG(SIGKILL)`. Stopping signals the session, the process group, every
//! process carrying the marker and their descendants; a process that ignores the stop signal
//! gets the kill signal after the stop timeout. What is still running when the test binary
//! exits is stopped by an exit hook, and a reaper process kills what is left if the binary
//! dies any other way (SIGKILL, abort, a test-runner timeout).

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(clippy::unwrap_used)]

mod command;
mod error;
mod executor;
mod exit;
pub mod fixture;
mod named;
mod output;
mod port;
mod process;
pub mod ready;
mod reaper;
mod shared;
mod signal;
mod stopped;
mod supervisor;
mod sweep;
mod sys;

pub use command::{Command, Redirect, Stdin};
pub use error::Error;
pub use executor::Executor;
pub use fixture::Fixture;
pub use output::{Output, Stream, DEFAULT_OUTPUT_LIMIT};
pub use port::free_port;
pub use ready::{
    HttpExecutor, OutputExecutor, PidExecutor, SimpleExecutor, TcpExecutor, UnixSocketExecutor,
};
pub use shared::{SharedFixture, SharedGuard, SharedStopped};
pub use signal::Signal;
pub use stopped::Stopped;
