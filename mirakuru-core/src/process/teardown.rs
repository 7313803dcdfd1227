//! Ending process trees: a signal, a grace period for every process of the tree to exit, then
//! escalation. One tree for a stop, or every tree at once for the exit hook — one pass over
//! `/proc` serving all of them, so that ending a thousand leaked trees is not a thousand
//! passes each time (issue: 1,000 leaked executors took 160 s at exit).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::sweep::{self, TreeId};
use super::tree::{far_future, Tree};
use crate::platform;
use crate::signal::Signal;

/// How long processes sent SIGKILL may take to die: at once, unless stuck in the kernel
/// (uninterruptible sleep); a stop must never hang on them.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long a kill signal other than SIGKILL is given before SIGKILL follows: the stop
/// timeout is already spent, and a stop must not overrun it by more than this.
const KILL_SIGNAL_GRACE: Duration = Duration::from_millis(100);

/// How to end one tree.
pub(super) struct Ending<'a> {
    pub(super) tree: &'a Tree,
    /// Sent first, to every process of the tree.
    pub(super) first: Signal,
    /// How long the tree has to go after `first`.
    pub(super) grace: Duration,
    /// Sent after the grace period; SIGKILL follows if even that is ignored.
    pub(super) then: Signal,
}

/// Ends every tree of `endings` together: `first`, up to `grace` for the tree to go, then
/// `then` — and if `then` is not SIGKILL and the tree outlives it briefly, SIGKILL. Says for
/// each whether it went within its grace period.
pub(super) fn terminate(endings: &[Ending<'_>]) -> Vec<bool> {
    let trees: Vec<&Tree> = endings.iter().map(|e| e.tree).collect();
    let all: Vec<usize> = (0..endings.len()).collect();
    // The grace period starts with the signal, not after the sweep that follows it.
    let start = Instant::now();
    let deadlines: Vec<Instant> =
        endings.iter().map(|e| start.checked_add(e.grace).unwrap_or_else(far_future)).collect();
    signal(&trees, &all, |i| endings[i].first);
    let late = wait_gone(&trees, all, &deadlines);
    let mut graceful = vec![true; endings.len()];
    late.iter().for_each(|&i| graceful[i] = false);
    if late.is_empty() {
        return graceful;
    }
    signal(&trees, &late, |i| endings[i].then);
    let now = Instant::now();
    let after_then = |e: &Ending<'_>| {
        now + if e.then == Signal::SIGKILL { KILL_WAIT } else { KILL_SIGNAL_GRACE }
    };
    let deadlines: Vec<Instant> = endings.iter().map(after_then).collect();
    let stubborn: Vec<usize> = wait_gone(&trees, late, &deadlines)
        .into_iter()
        .filter(|&i| endings[i].then != Signal::SIGKILL)
        .collect();
    if !stubborn.is_empty() {
        signal(&trees, &stubborn, |_| Signal::SIGKILL);
        let deadlines = vec![Instant::now() + KILL_WAIT; endings.len()];
        wait_gone(&trees, stubborn, &deadlines);
    }
    graceful
}

/// Sends each tree of `which` its signal: leaders first, then — from one sweep — the members.
fn signal(trees: &[&Tree], which: &[usize], signal_of: impl Fn(usize) -> Signal) {
    for &i in which {
        trees[i].signal_leader(signal_of(i));
    }
    let ids: Vec<TreeId> = which.iter().map(|&i| trees[i].current_id()).collect();
    for (&i, members) in which.iter().zip(sweep::members_of_all(&ids)) {
        trees[i].note_seen(&members);
        trees[i].signal_members(&members, signal_of(i));
    }
}

/// Waits until every process of each tree of `pending` has exited, or the tree's deadline
/// (`deadlines` is indexed like `trees`). Returns the trees that outlived their deadline.
fn wait_gone(trees: &[&Tree], pending: Vec<usize>, deadlines: &[Instant]) -> Vec<usize> {
    // Leaders first: their exits are reported by the supervisor at once. All were signalled
    // together, so waiting for one after another takes as long as the slowest.
    let (mut pending, mut late): (Vec<usize>, Vec<usize>) =
        pending.into_iter().partition(|&i| trees[i].monitor.wait_exit_until(deadlines[i]));
    // Then every member seen, until its pidfd says it exited: a process on its way out no
    // longer shows its environment, so a sweep stops finding it by its marker before it is
    // gone — and a stop that returned then would leave it running a moment longer.
    let mut watched: Vec<Vec<(u32, OwnedFd)>> = trees.iter().map(|_| Vec::new()).collect();
    let mut pause = Duration::from_micros(200);
    while !pending.is_empty() {
        let ids: Vec<TreeId> = pending.iter().map(|&i| trees[i].current_id()).collect();
        let found = sweep::members_of_all(&ids);
        let now = Instant::now();
        let mut still = Vec::with_capacity(pending.len());
        for (&i, members) in pending.iter().zip(found) {
            let tree = trees[i];
            tree.note_seen(&members);
            let leader = tree.leader();
            // No pidfds (Linux < 5.3): swept again until it is not found.
            let mut unwatched = false;
            for member in members.into_iter().filter(|p| p.pid != leader) {
                if !watched[i].iter().any(|(pid, _)| *pid == member.pid) {
                    match platform::pidfd_open(member.pid) {
                        Some(fd) => watched[i].push((member.pid, fd)),
                        None => unwatched = true,
                    }
                }
            }
            watched[i].retain(|(_, fd)| !platform::readable_now(fd.as_fd()));
            if watched[i].is_empty() && !unwatched && !tree.group_alive_unswept() {
                continue;
            }
            if now >= deadlines[i] {
                late.push(i);
            } else {
                still.push(i);
            }
        }
        pending = still;
        let Some(&next_deadline) = pending.iter().map(|&i| &deadlines[i]).min() else { break };
        // Wait for any of them to exit; re-sweep at least every 100 ms for processes forked
        // meanwhile.
        let wait = next_deadline.saturating_duration_since(now).min(Duration::from_millis(100));
        let fds: Vec<BorrowedFd<'_>> =
            pending.iter().flat_map(|&i| watched[i].iter().map(|(_, fd)| fd.as_fd())).collect();
        if fds.is_empty() {
            std::thread::sleep(pause.min(wait));
            pause = (pause * 2).min(Duration::from_millis(10));
        } else {
            let _ = platform::poll_readable(&fds, Some(wait));
        }
    }
    late
}
