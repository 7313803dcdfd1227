//! Run scope: one service for a whole test run, across test processes (`cargo nextest run`
//! runs every test in a process of its own; `cargo test` runs one binary after another).
//!
//! The service belongs to a keeper — the test binary run again on a hidden test — which stops
//! it when the runner exits; test processes find it through files in a private directory.
//!
//! | file | what |
//! |---|---|
//! | `runner.rs` | which run this process is in, and the runner whose exit ends it |
//! | `place.rs` | the run's private directory; what crashed runs left, removed |
//! | `state.rs` | what the keeper tells the tests: where the service is, or why it failed |
//! | `control.rs` | the keeper's socket: requests and replies |
//! | `keeper.rs` | the keeper: starts, answers, and stops when the run ends |
//! | `kept.rs` | a test's side: starting the keeper once, the service it keeps, leases |

mod control;
mod keeper;
mod kept;
mod place;
mod runner;
mod state;

pub(crate) use keeper::{keep, KEEP};
pub(crate) use kept::{attach, Kept, KeptStopped};
