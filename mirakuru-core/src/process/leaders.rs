//! The leaders the supervisor spawned that still run, known to every part of the crate that
//! reads `/proc`: a process being spawned is a copy of this binary until it execs, and what
//! lives in a running leader's session is that leader's (a session cannot be joined, only
//! left), so a sweep for the members of other trees needs not read its environment.

use std::sync::{Mutex, MutexGuard};

static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn lock() -> MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held across a fork and exec, until the child's pid is [`Spawning::add`]ed: whoever reads
/// the list after a sweep of `/proc` finds a child the sweep met in the middle of its spawn.
pub(crate) struct Spawning(MutexGuard<'static, Vec<u32>>);

pub(crate) fn spawning() -> Spawning {
    Spawning(lock())
}

impl Spawning {
    pub(crate) fn add(mut self, pid: u32) {
        self.0.push(pid);
    }
}

/// The pids of the leaders that still run (or whose exit was not seen yet).
pub(crate) fn running() -> Vec<u32> {
    lock().clone()
}

/// Replaces the list with the leaders still running, when it has others (`len` is how many
/// still run: the list only ever holds more).
pub(crate) fn keep(len: usize, running: impl Iterator<Item = u32>) {
    let mut list = lock();
    if list.len() != len {
        list.clear();
        list.extend(running);
    }
}

static DISOWNED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Marks `pid`, a child this binary spawned for something else than a service (a run-scoped
/// fixture's keeper), as nobody's orphan: it lives in a session of its own as daemons do, and
/// must never be taken for one of a service and stopped with it.
pub(crate) fn disown(pid: u32) {
    DISOWNED.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

/// The pids [`disown`]ed.
pub(crate) fn disowned() -> Vec<u32> {
    DISOWNED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
