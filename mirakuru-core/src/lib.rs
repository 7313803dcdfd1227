//! The runtime of [`mirakuru`](https://docs.rs/mirakuru): executors that start the processes a
//! test depends on, block until each is really ready, and tear the whole process tree down
//! afterwards. Use it through the `mirakuru` crate, which re-exports everything here and
//! carries the guide.
//!
//! Where things live:
//!
//! | module | what |
//! |---|---|
//! | `command.rs` | what to run: a command line or arguments, environment, user, streams |
//! | `settings.rs` | every option of an executor, defined once |
//! | `executor.rs` | [`Executor`]: `start`, `stop`, `kill`, `stopped`, `check_alive` |
//! | `events.rs` | what executors report through `tracing` |
//! | `named.rs` | [`TcpExecutor`], [`HttpExecutor`], …: Python mirakuru's names |
//! | [`ready`] | the readiness checks, one a file |
//! | `process/` | spawning, watching, signalling and reaping process trees; the reaper |
//! | `platform/` | the system calls, and all that differs between operating systems |
//! | `output.rs` | captured output and banner search |
//! | [`fixture`] | what the attribute describes: [`fixture::Spec`], [`Fixture`], ports |
//! | `shared.rs` | [`SharedFixture`]: one service for the tests of a binary, or of a run |
//! | `run/` | run scope: one service for a whole test run, kept by a keeper process |
//! | `error.rs` | [`Error`] |

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(clippy::unwrap_used)]

mod command;
mod error;
mod events;
mod executor;
pub mod fixture;
mod named;
mod output;
mod platform;
mod process;
pub mod ready;
mod run;
pub mod services;
mod settings;
mod shared;
mod signal;
mod stopped;

pub use command::{Command, Redirect, Stdin};
pub use error::Error;
pub use executor::Executor;
pub use fixture::{free_port, Fixture};
pub use named::{
    HttpExecutor, OutputExecutor, PidExecutor, SimpleExecutor, TcpExecutor, UnixSocketExecutor,
};
pub use output::{Output, Stream, DEFAULT_OUTPUT_LIMIT};
pub use services::Database;
pub use shared::{SharedFixture, SharedGuard, SharedStopped};
pub use signal::Signal;
pub use stopped::Stopped;
