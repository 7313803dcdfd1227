//! A running process tree as one unit: its members (group, session, marked and adopted
//! processes and their descendants), signalled as a whole, and reaped.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::monitor::Monitor;
use super::procfs::ProcInfo;
use super::supervisor;
use super::sweep::{self, TreeId};
use crate::platform;
use crate::signal::Signal;

/// How long processes sent SIGKILL may take to die: at once, unless stuck in the kernel
/// (uninterruptible sleep); a stop must never hang on them.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(5);

/// How to end a tree when the test binary exits with it still running.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopPlan {
    pub(crate) stop_signal: Signal,
    pub(crate) kill_signal: Signal,
    pub(crate) stop_timeout: Duration,
}

/// The part of a process tree that the exit hook needs too.
#[derive(Debug)]
pub(crate) struct Tree {
    id: Mutex<TreeId>,
    pub(crate) monitor: Arc<Monitor>,
    pub(crate) plan: StopPlan,
    pub(super) supervisor_id: u64,
    reaped: AtomicBool,
    /// Until the service is ready: while it starts, it may leave orphans (a launcher that
    /// daemonizes), and an orphan of the binary could be its.
    starting: AtomicBool,
    /// The sessions and groups members were seen in: the orphans this binary inherits (as a
    /// subreaper) from them are the tree's, and are reaped once they died, so that no zombie
    /// stays behind — the intermediate process of a double fork included, never seen alive.
    seen_sessions: Mutex<Vec<u32>>,
    /// A pidfd of the leader (Linux), opened at spawn: its pid may be recycled once something
    /// other than us reaped it, the pidfd always names the process we spawned.
    leader_fd: Option<OwnedFd>,
}

impl Tree {
    /// The tree of a process just spawned, and known to the supervisor as `supervisor_id`.
    pub(super) fn new(
        id: TreeId,
        monitor: Arc<Monitor>,
        plan: StopPlan,
        supervisor_id: u64,
        leader_fd: Option<OwnedFd>,
    ) -> Tree {
        Tree {
            id: Mutex::new(id),
            monitor,
            plan,
            supervisor_id,
            reaped: AtomicBool::new(false),
            starting: AtomicBool::new(true),
            seen_sessions: Mutex::new(Vec::new()),
            leader_fd,
        }
    }

    /// The service is ready: its start-up is over.
    pub(super) fn started(&self) {
        self.starting.store(false, Ordering::Release);
    }

    /// Whether the service is still starting (see `starting`).
    pub(super) fn starting(&self) -> bool {
        self.starting.load(Ordering::Acquire)
    }

    /// Whether [`Tree::finish`] ran.
    pub(super) fn finished(&self) -> bool {
        self.reaped.load(Ordering::Acquire)
    }

    pub(super) fn id(&self) -> MutexGuard<'_, TreeId> {
        self.id.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn leader(&self) -> u32 {
        self.id().leader
    }

    pub(super) fn leader_start(&self) -> u64 {
        self.id().leader_start
    }

    pub(super) fn adopted(&self) -> Vec<u32> {
        self.id().adopted.iter().map(|&(pid, _)| pid).collect()
    }

    /// The leader is ours to signal by pid while it is unreaped: even as a zombie it holds its
    /// pid and process group id, so they cannot name a stranger. If something else reaped it,
    /// only pidfd-checked signals are safe. Asked through the leader's pidfd: asked by pid, a
    /// recycled pid that now names another child of ours (another service) would answer.
    fn leader_is_ours(&self) -> bool {
        !self.reaped.load(Ordering::Acquire)
            && platform::exit_status_nowait(self.leader(), self.leader_fd()).is_ok()
    }

    pub(super) fn leader_fd(&self) -> Option<BorrowedFd<'_>> {
        self.leader_fd.as_ref().map(AsFd::as_fd)
    }

    pub(crate) fn members(&self) -> Vec<ProcInfo> {
        let members = sweep::tree_members(&self.current_id());
        self.note_seen(&members);
        members
    }

    /// What recognises the tree's members now.
    pub(super) fn current_id(&self) -> TreeId {
        let mut id = self.id();
        // Its exit was seen without a status: something else reaped the leader, and its
        // number may already be a stranger's session or group.
        if matches!(self.monitor.exit(), Some(None)) {
            id.number_is_ours = false;
        }
        id.clone()
    }

    /// Remembers the sessions and groups `members` were seen in (see `seen_sessions`).
    pub(super) fn note_seen(&self, members: &[ProcInfo]) {
        let mut seen = self.seen_sessions.lock().unwrap_or_else(|p| p.into_inner());
        for number in members.iter().flat_map(|p| [p.sid, p.pgid]) {
            if !seen.contains(&number) {
                seen.push(number);
            }
        }
    }

    pub(super) fn any_member_alive(&self) -> bool {
        let leader = self.leader();
        if platform::HAS_PROCFS {
            self.members().iter().any(|p| p.pid != leader)
        } else {
            self.leader_is_ours() && platform::group_exists(leader)
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        self.signal_leader(signal);
        self.signal_members(&self.members(), signal);
    }

    /// Signals the leader and its process group, while they are ours to signal by number.
    pub(super) fn signal_leader(&self, signal: Signal) {
        if self.leader_is_ours() {
            let leader = self.leader();
            match self.leader_fd() {
                Some(fd) => drop(platform::pidfd_send_signal(fd, signal)),
                None => drop(platform::kill(leader, signal)),
            }
            let _ = platform::kill_group(leader, signal);
        }
    }

    /// Signals the swept `members` other than the leader, each unless its pid was reused.
    /// Returns the pidfds of those it signalled through one, to wait for their exits with.
    pub(super) fn signal_members(
        &self,
        members: &[ProcInfo],
        signal: Signal,
    ) -> Vec<(u32, OwnedFd)> {
        let leader = self.leader();
        (members.iter().filter(|p| p.pid != leader))
            .filter_map(|&member| Some((member.pid, signal_checked(member, signal)?)))
            .collect()
    }

    /// Whether processes of the tree may remain that no sweep finds: without `/proc`, those
    /// in the leader's process group.
    pub(super) fn group_alive_unswept(&self) -> bool {
        !platform::HAS_PROCFS && self.leader_is_ours() && platform::group_exists(self.leader())
    }

    /// Reaps the leader and the tree's dead orphans, and forgets the tree everywhere.
    /// Idempotent.
    pub(crate) fn finish(self: &Arc<Self>) -> Option<ExitStatus> {
        self.finish_reaping(true)
    }

    /// [`Tree::finish`] at the exit of the binary, which leaves its zombies to init: without
    /// a pass over `/proc` per tree for them.
    pub(super) fn finish_at_exit(self: &Arc<Self>) {
        self.finish_reaping(false);
    }

    fn finish_reaping(self: &Arc<Self>, dead_orphans: bool) -> Option<ExitStatus> {
        let status = self.monitor.exit().flatten();
        if self.reaped.swap(true, Ordering::AcqRel) {
            return status;
        }
        let leader = self.leader();
        if dead_orphans {
            self.reap_dead_children();
        }
        // Only an exit observed with its status is ours to reap: a lost status means something
        // else reaped the leader, and its pid may be another child of ours by now (waiting for
        // it would block until that one exits, and take its status). Through the pidfd, a
        // reap after the observation by someone else is answered ECHILD.
        if matches!(self.monitor.exit(), Some(Some(_))) {
            let _ = platform::reap(leader, self.leader_fd());
        }
        if let Ok(supervisor) = supervisor::get() {
            supervisor.release(self.supervisor_id);
            let adopted: Vec<u32> = self.id().adopted.iter().map(|&(pid, _)| pid).collect();
            supervisor.tell_reaper(|r| {
                r.forget_session(leader);
                adopted.into_iter().for_each(|pid| r.forget_process(pid));
            });
        }
        status
    }
}

impl Tree {
    /// Reaps the members that died as children of this binary (orphans it inherited): a
    /// zombie holds its pid, so one with the start time seen is the same process; it is reaped
    /// through a pidfd, which cannot name another.
    fn reap_dead_children(&self) {
        let id = self.id().clone();
        let (leader, adopted) = (id.leader, &id.adopted);
        let mut sessions = self.seen_sessions.lock().unwrap_or_else(|p| p.into_inner()).clone();
        sessions.push(leader);
        for zombie in sweep::zombie_children(&id) {
            let ours = zombie.pid != leader
                && (sessions.contains(&zombie.sid)
                    || sessions.contains(&zombie.pgid)
                    || adopted.contains(&(zombie.pid, zombie.start_time)));
            // Through a pidfd, which names this very zombie: its pid cannot be reused yet.
            // A multi-threaded process shows as a zombie before its other threads are gone; it
            // can be reaped once its pidfd says the whole thread group exited.
            if let (true, Some(fd)) = (ours, platform::pidfd_open(zombie.pid)) {
                let _ = platform::poll_readable(&[fd.as_fd()], Some(KILL_WAIT));
                let _ = platform::reap_nowait(zombie.pid, Some(fd.as_fd()));
            }
        }
    }
}

/// An instant no deadline reaches: "no limit", for durations too large to add to now.
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    // About 30 years: more than any test runs, and never an overflow.
    now.checked_add(Duration::from_secs(1 << 30)).unwrap_or(now)
}

/// Signals a swept process unless its pid now names another process; returns the pidfd it
/// was signalled through, which names that very process.
fn signal_checked(member: ProcInfo, signal: Signal) -> Option<OwnedFd> {
    match platform::pidfd_open(member.pid) {
        Some(fd) => {
            if sweep::start_time(member.pid) != Some(member.start_time) {
                return None;
            }
            let _ = platform::pidfd_send_signal(fd.as_fd(), signal);
            Some(fd)
        }
        None => {
            if !platform::HAS_PROCFS || sweep::start_time(member.pid) == Some(member.start_time) {
                let _ = platform::kill(member.pid, signal);
            }
            None
        }
    }
}
