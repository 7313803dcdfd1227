//! The executor's handle on one spawned service: spawns it through the supervisor, adopts the
//! processes that turn out to be the service's, tells who holds its port, and ends it.

use std::io;
use std::os::fd::OwnedFd;
use std::process::{ChildStdin, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::leaders;
use super::monitor::Monitor;
use super::spawn::{self, Extras};
use super::sweep::{self, TreeId, MARKER_VAR};
use super::teardown;
use super::tree::{StopPlan, Tree};
use super::{live, sockets, supervisor};
use crate::command::{Command, Prepared};
use crate::platform;
use crate::signal::Signal;

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
        let leader_start = sweep::child_start_time(spawned.pid).unwrap_or(0);
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
        let tree = Arc::new(Tree::new(id, monitor, plan, spawned.id, leader_fd));
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
        let holder = |pids: &[u32]| sockets::holder(pids, &inodes);
        // Most servers listen in the process that was spawned: asked first, without a sweep.
        if holder(&[self.pid]).is_some() {
            return PortOwner::Service;
        }
        // Another process of the tree is adopted: a daemon that left the session and
        // overwrote its environment is a member now only as its exiting launcher's child,
        // and would be found by nothing once the launcher is gone.
        if let Some(pid) = holder(&self.tree_pids()) {
            let _ = self.try_adopt(pid);
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
        let since = self.tree.leader_start();
        // Without its leader's start time (reaped by something else before it was read), no
        // orphan can be told to be born after it.
        if since == 0 && platform::HAS_PROCFS {
            return Vec::new();
        }
        let mut found = sweep::orphans(since);
        // Asked after the sweep, so that a child it found being spawned, or a tree registered
        // meanwhile, is known by now (see `leaders.rs`).
        let mut ours = live::owned();
        ours.extend(leaders::running());
        ours.extend(leaders::disowned());
        if let Ok(supervisor) = supervisor::get() {
            ours.extend(supervisor.reaper_pid());
        }
        found.retain(|pid| !ours.contains(pid));
        found
    }

    /// The orphans that can only be this service's: started after its leader, and before the
    /// leader of any other service of the binary still starting. An orphan carries no trace
    /// of the launcher it came from: one that another service could have left while starting
    /// is not claimed by a guess (two services daemonizing at once would take each other's
    /// daemons), only by what it does for this one — the socket its check reached
    /// (`port_owner`), its pid file.
    pub(crate) fn own_orphans(&self) -> Vec<u32> {
        let first_other = (live::starting_leaders().into_iter())
            .filter(|&(leader, _)| leader != self.pid)
            .map(|(_, start)| start)
            .min()
            .unwrap_or(u64::MAX);
        (self.orphans().into_iter())
            .filter(|&pid| sweep::start_time(pid).is_some_and(|start| start < first_other))
            .collect()
    }

    /// The service is ready: orphans that appear from now on are not taken for another
    /// starting service's (see [`Process::own_orphans`]).
    pub(crate) fn started(&self) {
        self.tree.started();
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

    /// Whether the tree has processes besides the leader. Those that left the leader's
    /// session are adopted: once the leader has exited, nothing else may tie them to the
    /// tree — a daemon that overwrote its environment with its process title is no longer
    /// anyone's descendant but this binary's (`redis-server --daemonize yes`, ready while its
    /// launcher has not exited yet).
    pub(crate) fn others_held(&self) -> bool {
        let members = self.tree.members();
        let escaped = members.iter().filter(|p| p.pid != self.pid && p.sid != self.pid);
        for member in escaped {
            let _ = self.try_adopt(member.pid);
        }
        members.iter().any(|p| p.pid != self.pid)
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
        let graceful = end(&self.tree, first, grace, then);
        let status = self.tree.finish();
        live::unregister(&self.tree);
        Ended { status, graceful }
    }
}

impl Drop for Process {
    /// A `Process` is consumed by [`Process::terminate`]; one dropped otherwise (a panic in
    /// the middle of a start) must not leave its tree behind.
    fn drop(&mut self) {
        if !self.tree.finished() {
            end(&self.tree, Signal::SIGKILL, Duration::from_secs(5), Signal::SIGKILL);
            self.tree.finish();
            live::unregister(&self.tree);
        }
    }
}

/// Ends `tree`: `first`, up to `grace`, then `then` (see `teardown::terminate`). True if it
/// went within the grace period.
fn end(tree: &Tree, first: Signal, grace: Duration, then: Signal) -> bool {
    teardown::terminate(&[teardown::Ending { tree, first, grace, then }]) == [true]
}
