//! Process control: spawning, watching, signalling and reaping process trees, and making sure
//! none outlives the test binary.
//!
//! | file | what |
//! |---|---|
//! | `spawn.rs` | a checked command becomes a spawn: one `pre_exec` for services and probes |
//! | `supervisor.rs` | the one thread that spawns everything and drains output, sees exits |
//! | `leaders.rs` | the leaders spawned that still run (and one being spawned) |
//! | `monitor.rs` | what the supervisor saw of one process: output and exit |
//! | `handle.rs` | the executor's handle on a service: spawn, adopt, port owner, end |
//! | `tree.rs` | a spawned tree as one unit: its members, signalled, reaped |
//! | `teardown.rs` | ending trees: signal, grace period, escalation; one or all at once |
//! | `liveness.rs` | after ready: which process is the service, and whether it still runs |
//! | `sweep.rs` | the members of trees, found in `/proc`; the binary's orphans |
//! | `sockets.rs` | which TCP ports processes listen on, from `/proc` |
//! | `procfs.rs` | reading `/proc` without allocating (the reaper uses it after fork) |
//! | `reaper.rs` | the process that kills what is left when the binary dies |
//! | `table.rs` | the reaper's lists, without the allocator |
//! | `run_dir.rs` | the binary's directory, where fixtures and notify sockets keep their files |
//! | `live.rs`, `at_exit.rs` | what is stopped when the binary exits normally |

mod at_exit;
mod handle;
mod leaders;
mod live;
mod liveness;
mod monitor;
mod procfs;
mod reaper;
mod run_dir;
mod sockets;
mod spawn;
mod supervisor;
mod sweep;
mod table;
mod teardown;
mod tree;

pub(crate) use at_exit::at_exit;
pub(crate) use handle::{PortOwner, Process};
pub(crate) use leaders::disown;
pub(crate) use liveness::{Liveness, Survivors};
pub(crate) use monitor::Monitor;
pub(crate) use run_dir::{data_dir, private_dir};

/// Forks the reaper now, with the run directories made, if that was not done: before a
/// fixture fills its directory (a preset copies tens of megabytes into it), so that a kill of
/// the binary at that moment leaves nothing either.
pub(crate) fn ensure_reaper() {
    let _ = run_dir::run_dir();
    match supervisor::get() {
        // Once forked, it stays: no round trip to the supervisor thread at each start.
        Ok(supervisor) if supervisor.reaper_pid().is_some() => {}
        Ok(supervisor) => supervisor.ensure_reaper(),
        Err(_) => {}
    }
}

/// Makes ready for a preset's helper programs (`initdb`, `psql`, `mariadb`) run outside the
/// supervisor: the reaper runs (and the run directories exist) before them, and `cmd` carries
/// this binary's marker, so that if the binary is killed meanwhile, the reaper ends them and
/// removes what they were filling.
pub(crate) fn mark_helper(cmd: &mut std::process::Command) {
    ensure_reaper();
    if let Ok(marker) = spawn::new_marker() {
        cmd.env(sweep::MARKER_VAR, marker);
    }
}
pub(crate) use sockets::listeners_of;
pub(crate) use spawn::{new_marker, Extras};
pub(crate) use sweep::start_time;
pub(crate) use tree::{far_future, StopPlan};

/// The `std::process::Command` of a readiness probe: built like a service's, so it runs in a
/// session of its own, dies with the test and carries an owner marker for the reaper.
pub(crate) fn probe_command(
    command: &crate::command::Command,
    prepared: &crate::command::Prepared,
) -> std::io::Result<std::process::Command> {
    spawn::build(command, prepared, &Extras::default(), &new_marker()?)
}
