//! Ending process trees: a signal, a grace period for every process of the tree to exit, then
//! escalation. One tree for a stop, or every tree at once for the exit hook — one pass over
//! `/proc` serving all of them, so that ending a thousand leaked trees is not a thousand
//! passes each time (issue: 1,000 leaked executors took 160 s at exit).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::procfs::ProcInfo;
use super::sweep::{self, TreeId};
use super::tree::{far_future, Tree, KILL_WAIT};
use crate::platform;
use crate::signal::Signal;

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
    let mut teardown = Teardown {
        trees: endings.iter().map(|e| e.tree).collect(),
        state: endings.iter().map(|_| State::default()).collect(),
    };
    let all: Vec<usize> = (0..endings.len()).collect();
    // The grace period starts with the signal, not after the sweep that follows it.
    let start = Instant::now();
    let deadlines: Vec<Instant> =
        endings.iter().map(|e| start.checked_add(e.grace).unwrap_or_else(far_future)).collect();
    teardown.signal(&all, |i| endings[i].first);
    let late = teardown.wait_gone(all, &deadlines);
    let mut graceful = vec![true; endings.len()];
    late.iter().for_each(|&i| graceful[i] = false);
    if late.is_empty() {
        return graceful;
    }
    teardown.signal(&late, |i| endings[i].then);
    let now = Instant::now();
    let after_then = |e: &Ending<'_>| {
        now + if e.then == Signal::SIGKILL { KILL_WAIT } else { KILL_SIGNAL_GRACE }
    };
    let deadlines: Vec<Instant> = endings.iter().map(after_then).collect();
    let stubborn: Vec<usize> = (teardown.wait_gone(late, &deadlines).into_iter())
        .filter(|&i| endings[i].then != Signal::SIGKILL)
        .collect();
    if !stubborn.is_empty() {
        teardown.signal(&stubborn, |_| Signal::SIGKILL);
        let deadlines = vec![Instant::now() + KILL_WAIT; endings.len()];
        teardown.wait_gone(stubborn, &deadlines);
    }
    graceful
}

/// Trees being ended, and what is known of each.
struct Teardown<'a> {
    trees: Vec<&'a Tree>,
    /// Indexed like `trees`.
    state: Vec<State>,
}

/// What one tree's teardown has done so far.
#[derive(Default)]
struct State {
    /// The signal the tree was sent last.
    signal: Option<Signal>,
    /// The processes that were sent it, with their start times.
    signalled: Vec<(u32, u64)>,
    /// pidfds of the members seen, until each exits.
    watched: Vec<(u32, OwnedFd)>,
    /// Members born after the signal was sent, and when they are sent it again.
    newborn: Vec<(u32, u64)>,
    resend: Option<Resend>,
}

/// When members born after the signal get it again: at growing intervals.
struct Resend {
    at: Instant,
    gap: Duration,
}

impl Teardown<'_> {
    /// Sends each tree of `which` its signal: leaders first, then — from one sweep — the
    /// members.
    fn signal(&mut self, which: &[usize], signal_of: impl Fn(usize) -> Signal) {
        for &i in which {
            self.trees[i].signal_leader(signal_of(i));
            let state = &mut self.state[i];
            state.signal = Some(signal_of(i));
            state.signalled.clear();
            state.newborn.clear();
            state.resend = None;
        }
        let ids: Vec<TreeId> = which.iter().map(|&i| self.trees[i].current_id()).collect();
        for (&i, members) in which.iter().zip(sweep::members_of_all(&ids)) {
            self.trees[i].note_seen(&members);
            // Followed from now on: one that exits at once may already be past being found
            // by its marker in the next sweep (its environment goes before its exit shows),
            // and had it been a child of ours, the stop would end before it is a zombie to reap.
            let fds = self.trees[i].signal_members(&members, signal_of(i));
            self.state[i].watch(fds);
            self.state[i].signalled.extend(members.iter().map(|p| (p.pid, p.start_time)));
        }
    }

    /// Waits until every process of each tree of `pending` has exited, or the tree's deadline
    /// (`deadlines` is indexed like `trees`). Returns the trees that outlived their deadline.
    fn wait_gone(&mut self, pending: Vec<usize>, deadlines: &[Instant]) -> Vec<usize> {
        let trees = &self.trees;
        // Leaders first: their exits are reported by the supervisor at once. All were
        // signalled together, so waiting for one after another takes as long as the slowest.
        let (mut pending, mut late): (Vec<usize>, Vec<usize>) =
            pending.into_iter().partition(|&i| trees[i].monitor.wait_exit_until(deadlines[i]));
        let mut pause = Duration::from_micros(200);
        while !pending.is_empty() {
            let ids: Vec<TreeId> = pending.iter().map(|&i| trees[i].current_id()).collect();
            let found = sweep::members_of_all(&ids);
            let now = Instant::now();
            let mut still = Vec::with_capacity(pending.len());
            for (&i, members) in pending.iter().zip(found) {
                if self.state[i].follow(trees[i], members, now) {
                    continue;
                }
                if now >= deadlines[i] {
                    late.push(i);
                } else {
                    still.push(i);
                }
            }
            pending = still;
            let resends = pending.iter().filter_map(|&i| self.state[i].resend.as_ref());
            let next = (pending.iter().map(|&i| deadlines[i])).chain(resends.map(|r| r.at)).min();
            let Some(next) = next else { break };
            // Wait for any of them to exit; re-sweep at least every 100 ms for processes
            // forked meanwhile.
            let wait = next.saturating_duration_since(now).min(Duration::from_millis(100));
            let fds: Vec<BorrowedFd<'_>> = (pending.iter())
                .flat_map(|&i| self.state[i].watched.iter().map(|(_, fd)| fd.as_fd()))
                .collect();
            if fds.is_empty() {
                std::thread::sleep(pause.min(wait));
                pause = (pause * 2).min(Duration::from_millis(10));
            } else {
                let _ = platform::poll_readable(&fds, Some(wait));
            }
        }
        late
    }
}

impl State {
    /// Takes in the members a sweep found of `tree`, whose leader has exited; true once every
    /// process of the tree is gone.
    fn follow(&mut self, tree: &Tree, members: Vec<ProcInfo>, now: Instant) -> bool {
        tree.note_seen(&members);
        let leader = tree.leader();
        if let Some(signal) = self.signal {
            self.signal_newborn(tree, &members, signal, now);
        }
        // Every member seen is followed until its pidfd says it exited: a process on its way
        // out no longer shows its environment, so a sweep stops finding it by its marker
        // before it is gone — and a stop that returned then would leave it running a moment
        // longer. Without pidfds (Linux < 5.3) it is swept again until it is not found.
        let mut unwatched = false;
        for member in members.into_iter().filter(|p| p.pid != leader) {
            if !self.watched.iter().any(|(pid, _)| *pid == member.pid) {
                match platform::pidfd_open(member.pid) {
                    Some(fd) => self.watched.push((member.pid, fd)),
                    None => unwatched = true,
                }
            }
        }
        self.watched.retain(|(_, fd)| !platform::readable_now(fd.as_fd()));
        self.watched.is_empty() && !unwatched && !tree.group_alive_unswept()
    }

    /// Follows the processes of `fds` until they exit (see [`State::follow`]).
    fn watch(&mut self, fds: Vec<(u32, OwnedFd)>) {
        for (pid, fd) in fds {
            if !self.watched.iter().any(|(p, _)| *p == pid) {
                self.watched.push((pid, fd));
            }
        }
    }

    /// Sends `signal` to the members forked after it was sent, which never got it — and again
    /// at growing intervals while they live. A service still starting up when its stop signal
    /// came may take it and not act on it: nginx's master notes a SIGTERM in its handler and
    /// looks at the note only when sigsuspend(2) next returns; the worker it forks meanwhile
    /// inherits the note and looks at it only when epoll_wait(2) returns — nothing wakes
    /// either, and the stop would sit out its whole timeout. A signal that reaches the worker
    /// in epoll_wait ends it, and its exit wakes the master. Processes that were there when
    /// the signal was sent get it once.
    fn signal_newborn(&mut self, tree: &Tree, members: &[ProcInfo], signal: Signal, now: Instant) {
        let leader = tree.leader();
        let born: Vec<ProcInfo> = (members.iter())
            .filter(|p| p.pid != leader && !self.signalled.contains(&(p.pid, p.start_time)))
            .copied()
            .collect();
        if !born.is_empty() {
            let fds = tree.signal_members(&born, signal);
            self.watch(fds);
            let ids = born.iter().map(|p| (p.pid, p.start_time));
            self.signalled.extend(ids.clone());
            self.newborn.extend(ids);
            self.resend.get_or_insert(Resend { at: now + FIRST_RESEND, gap: FIRST_RESEND });
        }
        let Some(resend) = self.resend.as_mut().filter(|r| now >= r.at) else { return };
        let living: Vec<ProcInfo> = (members.iter())
            .filter(|p| !born.contains(p) && self.newborn.contains(&(p.pid, p.start_time)))
            .copied()
            .collect();
        let _ = tree.signal_members(&living, signal);
        resend.gap = (resend.gap * 2).min(LAST_RESEND);
        resend.at = now + resend.gap;
    }
}

/// The first interval after which members born after the signal get it again, and the
/// longest: it doubles from one to the other.
const FIRST_RESEND: Duration = Duration::from_millis(10);
const LAST_RESEND: Duration = Duration::from_secs(1);
