//! After a service is ready: which process *is* the service, and whether it still runs.
//!
//! Usually the spawned process. But a launcher that daemonizes exits once its server is up
//! (`pg_ctl start`), and a service may name its main process (sd_notify `MAINPID=`, a pid
//! file): then that process's death is the service's death, whatever the launcher did.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitStatus;
use std::time::Instant;

use super::handle::Process;
use super::sweep;
use crate::platform;

/// When the service became ready, and what tells whether it still runs.
#[derive(Debug)]
pub(crate) struct Liveness {
    pub(crate) ready_at: Instant,
    main: Main,
}

#[derive(Debug)]
enum Main {
    /// The spawned process (the usual case): its exit status is known. An exit with code 0
    /// is a death only if it left processes behind when it became ready (a launcher such as
    /// `pg_ctl start`, exiting once its server is up): then the tree is watched after it;
    /// otherwise the service finished, as a one-shot command or after a SHUTDOWN, which a
    /// stop does not count as an error either.
    Leader { others: bool },
    /// A process the service named (sd_notify `MAINPID=`, a pid file): watched through a
    /// pidfd where there are pidfds, else by pid and start time.
    Pid { pid: u32, pidfd: Option<OwnedFd>, start: Option<u64> },
    /// The launcher had exited (it daemonized) and named nobody: any process of the tree.
    Tree,
}

/// How a service died: the process, and its exit status when it is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Death {
    pub(crate) pid: u32,
    pub(crate) status: Option<ExitStatus>,
    /// Spawned by mirakuru, but reaped by something else: its status is lost.
    pub(crate) status_taken: bool,
}

impl Liveness {
    /// The service just became ready; `named` is the main pid a check learnt, if any.
    pub(crate) fn new(process: &Process, named: Option<u32>) -> Liveness {
        process.started();
        let main = match named {
            Some(pid) if pid != process.pid => {
                Main::Pid { pid, pidfd: platform::pidfd_open(pid), start: sweep::start_time(pid) }
            }
            // Other processes of the tree, besides the leader (which may be a zombie already).
            _ if process.leader_running() => Main::Leader { others: process.others_held() },
            _ => Main::Tree,
        };
        Liveness { ready_at: Instant::now(), main }
    }

    /// The service's main process: the one it named, else the spawned one.
    pub(crate) fn main_pid(&self, process: &Process) -> u32 {
        match &self.main {
            Main::Pid { pid, .. } => *pid,
            _ => process.pid,
        }
    }

    /// `Some` once the service has died.
    pub(crate) fn death(&self, process: &Process) -> Option<Death> {
        let leader = |status, status_taken| Death { pid: process.pid, status, status_taken };
        match &self.main {
            Main::Leader { others } => match process.monitor().exit()? {
                Some(status) if !status.success() => Some(leader(Some(status), false)),
                // Reaped by something else: it is gone, how is unknown.
                None if !*others => Some(leader(None, true)),
                // A launcher that left its server behind: the tree is the service.
                _ if *others => (!process.alive()).then(|| leader(None, false)),
                // Exit 0: it finished, as one-shot commands do.
                _ => None,
            },
            Main::Pid { pid, pidfd, start } => {
                let gone = match pidfd {
                    Some(fd) => platform::readable_now(fd.as_fd()),
                    None => {
                        !platform::process_exists(*pid)
                            || (start.is_some() && sweep::start_time(*pid) != *start)
                    }
                };
                gone.then_some(Death { pid: *pid, status: None, status_taken: false })
            }
            // The launcher's exit says nothing of how its daemon ended.
            Main::Tree => (!process.alive()).then(|| leader(None, false)),
        }
    }
}

/// During a start, after a launcher exited 0: the processes it left, watched through pidfds.
#[derive(Debug, Default)]
pub(crate) struct Survivors {
    pidfds: Option<Vec<OwnedFd>>,
}

impl Survivors {
    /// Whether some process of the tree still runs; sweeps again only once every known
    /// survivor has exited.
    pub(crate) fn any_alive(&mut self, process: &Process) -> bool {
        if let Some(fds) = &self.pidfds {
            if fds.iter().any(|fd| !platform::readable_now(fd.as_fd())) {
                return true;
            }
        }
        if !platform::HAS_PROCFS {
            return process.alive();
        }
        let mut fds = process.member_pidfds();
        if fds.is_empty() {
            // A daemon that left the session and cleared its environment is found by nothing
            // but its parentage: it is an orphan of this binary now (the subreaper). One that
            // can only be this service's is adopted, so that a failed start kills it too, and
            // a stop finds it; the others still count as the tree living on.
            let own = process.own_orphans();
            for &pid in &own {
                process.adopt(pid);
            }
            let orphans = if own.is_empty() { process.orphans() } else { own };
            fds = orphans.into_iter().filter_map(platform::pidfd_open).collect();
        }
        let alive = !fds.is_empty();
        self.pidfds = Some(fds);
        alive
    }

    /// Their pidfds: readable when they exit.
    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.pidfds.iter().flatten().map(AsFd::as_fd)
    }
}
