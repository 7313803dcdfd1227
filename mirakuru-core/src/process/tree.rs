//! A running process tree as one unit: spawned through the supervisor, signalled as a whole
//! (group, session, marked and adopted processes and their descendants), torn down with a
//! grace period and escalation, and reaped.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{ChildStdin, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::monitor::Monitor;
use super::procfs::ProcInfo;
use super::spawn::{self, Extras};
use super::sweep::{self, TreeId, MARKER_VAR};
use super::teardown::{self, KILL_WAIT};
use super::{live, sockets, supervisor};
use crate::command::{Command, Prepared};
use crate::platform;
use crate::signal::Signal;

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
    supervisor_id: u64,
    reaped: AtomicBool,
    /// The sessions and groups members were seen in: the orphans this binary inherits (as a
    /// subreaper) from them are the tree's, and are reaped once they died, so that no zombie
    /// stays behind — the intermediate process of a double fork included, never seen alive.
    seen_sessions: Mutex<Vec<u32>>,
    /// A pidfd of the leader (Linux), opened at spawn: its pid may be recycled once something
    /// other than us reaped it, the pidfd always names the process we spawned.
    leader_fd: Option<OwnedFd>,
}

/// A spawned, not yet reaped process tree.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) spawned_at: Instant,
    tree: Arc<Tree>,
    /// Held open for `Stdin::Open`; closed when the process is dropped.
    _stdin: Option<ChildStdin>,
}

/// Who holds a TCP port.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PortOwner {
    /// A process of the service's tree.
    Service,
    /// A process that is not the service's.
    Foreign(u16),
    /// Nothing listens on the port.
    Nobody(u16),
}

/// How a tree ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    /// How the leader ended (`None` if its status was lost).
    pub(crate) status: Option<ExitStatus>,
    /// Whether the tree ended within the grace period, without escalation.
    pub(crate) graceful: bool,
}

impl Process {
    /// Spawns `prepared` as described by `command`, from the supervisor thread.
    pub(crate) fn spawn(
        command: &Command,
        prepared: &Prepared,
        extras: &Extras,
        monitor: Arc<Monitor>,
        plan: StopPlan,
    ) -> io::Result<Process> {
        let marker = spawn::new_marker()?;
        let cmd = spawn::build(command, prepared, extras, &marker)?;
        // Before the spawn: the count must not include the service's own forks.
        let forks_at_spawn = sweep::forks_since_boot();
        let supervisor = supervisor::get()?;
        // Only our own processes are ever considered. Root owns them all: its services may
        // run as another user (`Executor::user`), and their workers too (nginx's `nobody`).
        let me = platform::geteuid();
        let uids = if me == 0 { Vec::new() } else { vec![me] };
        let spawned_at = Instant::now();
        let spawned = supervisor.spawn(cmd, Arc::clone(&monitor))?;
        // Opened first: the leader is our unreaped child, so the pid still names it.
        let leader_fd = platform::pidfd_open(spawned.pid);
        let leader_start = sweep::start_time(spawned.pid).unwrap_or(0);
        supervisor.tell_reaper(|r| r.watch_session(spawned.pid, leader_start));
        let service_uid = prepared.user.map_or(me, |(uid, _)| uid);
        let id = TreeId {
            service_uid,
            leader: spawned.pid,
            leader_start,
            number_is_ours: true,
            marker_entry: format!("{MARKER_VAR}={marker}").into_bytes(),
            uids,
            forks_at_spawn,
            adopted: Vec::new(),
        };
        let tree = Arc::new(Tree {
            id: Mutex::new(id),
            monitor,
            plan,
            supervisor_id: spawned.id,
            reaped: AtomicBool::new(false),
            seen_sessions: Mutex::new(Vec::new()),
            leader_fd,
        });
        live::register(Arc::clone(&tree));
        Ok(Process { pid: spawned.pid, spawned_at, tree, _stdin: spawned.stdin })
    }

    pub(crate) fn monitor(&self) -> &Arc<Monitor> {
        &self.tree.monitor
    }

    /// Counts `pid` as part of the tree (a daemon the service reported in its pid file or with
    /// `MAINPID=`, the owner of its port), as long as it keeps its current start time. Only a
    /// process of the tree, or one of the service's own user started after it, is adopted:
    /// what the service names, `stop()` signals, and a service running as another user must
    /// not make the test signal a process that user could not (root's, another user's).
    /// The error says why not.
    pub(crate) fn try_adopt(&self, pid: u32) -> Result<(), String> {
        let start = sweep::start_time(pid).ok_or("it is not running")?;
        let (leader_start, service_uid) = {
            let id = self.tree.id();
            (id.leader_start, id.service_uid)
        };
        if start < leader_start {
            return Err("it started before the service, which cannot have started it".into());
        }
        let in_tree = self.tree.members().iter().any(|p| p.pid == pid);
        if !in_tree && platform::HAS_PROCFS {
            match sweep::owner_uid(pid) {
                Some(uid) if uid == service_uid => {}
                Some(uid) => {
                    return Err(format!(
                        "it is not a process of the service, and belongs to uid {uid}, not to \
                         the service's user (uid {service_uid})"
                    ))
                }
                None => return Err("it is not running".into()),
            }
        }
        let mut id = self.tree.id();
        if !id.adopted.iter().any(|&(p, _)| p == pid) {
            id.adopted.push((pid, start));
            // Whatever stop() would stop, the reaper must kill if the binary dies.
            if let Ok(supervisor) = supervisor::get() {
                supervisor.tell_reaper(|r| r.adopt(pid, start));
            }
        }
        Ok(())
    }

    /// [`Process::try_adopt`], as a yes or no.
    pub(crate) fn adopt(&self, pid: u32) -> bool {
        self.try_adopt(pid).is_ok()
    }

    /// Who holds TCP `port` (in this binary's network namespace). A listener among this
    /// binary's orphans — a daemon that left the service's session, reparented to this binary
    /// (it is a child subreaper, see `supervisor.rs`) — is the service's: it is adopted, so
    /// that it is stopped with the service and by the reaper.
    pub(crate) fn port_owner(&self, port: u16) -> PortOwner {
        let inodes = sockets::listening_on(port);
        if inodes.is_empty() {
            return PortOwner::Nobody(port);
        }
        let holder = |pids: &[u32]| {
            sockets::listeners_of(pids)
                .into_iter()
                .find(|l| inodes.contains(&l.inode))
                .map(|l| l.pid)
        };
        // Most servers listen in the process that was spawned: asked first, without a sweep.
        if holder(&[self.pid]).is_some() || holder(&self.tree_pids()).is_some() {
            return PortOwner::Service;
        }
        match holder(&self.orphans()) {
            Some(pid) if self.adopt(pid) => PortOwner::Service,
            _ => PortOwner::Foreign(port),
        }
    }

    /// This binary's orphans (as a subreaper) started since the leader: daemons services left
    /// behind, this one's perhaps.
    pub(crate) fn orphans(&self) -> Vec<u32> {
        let mut children = live::owned();
        if let Ok(supervisor) = supervisor::get() {
            children.extend(supervisor.reaper_pid());
        }
        sweep::orphans(self.tree.leader_start(), &children)
    }

    /// Takes in what the process has written so far (see `Supervisor::drain`).
    pub(crate) fn drain_output(&self) {
        if let Ok(supervisor) = supervisor::get() {
            supervisor.drain(self.tree.supervisor_id);
        }
    }

    /// How the leader exited, if it has — asked of the kernel when the supervisor has not
    /// recorded the exit yet, so that a caller who saw the process die is never told it runs.
    pub(crate) fn exit_now(&self) -> Option<Option<ExitStatus>> {
        if let Some(exit) = self.tree.monitor.exit() {
            return Some(exit);
        }
        match platform::exit_status_nowait(self.pid, self.tree.leader_fd()) {
            Ok(Some(status)) => Some(Some(status)),
            _ => None,
        }
    }

    /// Whether the leader still runs.
    pub(crate) fn leader_running(&self) -> bool {
        self.exit_now().is_none()
    }

    /// Whether any process of the tree still runs.
    pub(crate) fn alive(&self) -> bool {
        self.leader_running() || self.tree.any_member_alive()
    }

    /// The pids of the processes of the tree that run now, the leader first if it runs.
    pub(crate) fn tree_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.tree.members().iter().map(|p| p.pid).collect();
        pids.sort_by_key(|&p| p != self.pid);
        pids
    }

    /// pidfds of the processes of the tree other than the leader, to wait for their exits.
    pub(crate) fn member_pidfds(&self) -> Vec<OwnedFd> {
        self.tree
            .members()
            .into_iter()
            .filter(|p| p.pid != self.pid)
            .filter_map(|p| platform::pidfd_open(p.pid))
            .collect()
    }

    /// Sends `signal` to every process of the tree.
    pub(crate) fn signal(&self, signal: Signal) {
        self.tree.signal(signal);
    }

    /// Stops the tree: `first` to every process, up to `grace` for all of them to exit, then
    /// `then` (and, if even that is ignored, SIGKILL). Reaps the leader and returns how it
    /// ended, and whether the tree ended within the grace period.
    pub(crate) fn terminate(self, first: Signal, grace: Duration, then: Signal) -> Ended {
        let graceful = self.tree.terminate(first, grace, then);
        let status = self.tree.finish();
        Ended { status, graceful }
    }
}

impl Drop for Process {
    /// A `Process` is consumed by [`Process::terminate`]; one dropped otherwise (a panic in
    /// the middle of a start) must not leave its tree behind.
    fn drop(&mut self) {
        if !self.tree.reaped.load(Ordering::Acquire) {
            self.tree.terminate(Signal::SIGKILL, Duration::from_secs(5), Signal::SIGKILL);
            self.tree.finish();
        }
    }
}

impl Tree {
    fn id(&self) -> MutexGuard<'_, TreeId> {
        self.id.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn leader(&self) -> u32 {
        self.id().leader
    }

    fn leader_start(&self) -> u64 {
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

    fn leader_fd(&self) -> Option<BorrowedFd<'_>> {
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

    fn any_member_alive(&self) -> bool {
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
    pub(super) fn signal_members(&self, members: &[ProcInfo], signal: Signal) {
        let leader = self.leader();
        for &member in members.iter().filter(|p| p.pid != leader) {
            signal_checked(member, signal);
        }
    }

    /// Whether processes of the tree may remain that no sweep finds: without `/proc`, those
    /// in the leader's process group.
    pub(super) fn group_alive_unswept(&self) -> bool {
        !platform::HAS_PROCFS && self.leader_is_ours() && platform::group_exists(self.leader())
    }

    /// `first`, up to `grace` for the tree to go, then `then` — and if `then` is not SIGKILL
    /// and the tree outlives it briefly, SIGKILL. True if it went within the grace period.
    pub(crate) fn terminate(&self, first: Signal, grace: Duration, then: Signal) -> bool {
        let ending = teardown::Ending { tree: self, first, grace, then };
        teardown::terminate(&[ending]) == [true]
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
        live::unregister(self);
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

/// Signals a swept process unless its pid now names another process.
fn signal_checked(member: ProcInfo, signal: Signal) {
    match platform::pidfd_open(member.pid) {
        Some(fd) => {
            if sweep::start_time(member.pid) == Some(member.start_time) {
                let _ = platform::pidfd_send_signal(fd.as_fd(), signal);
            }
        }
        None => {
            if !platform::HAS_PROCFS || sweep::start_time(member.pid) == Some(member.start_time) {
                let _ = platform::kill(member.pid, signal);
            }
        }
    }
}
