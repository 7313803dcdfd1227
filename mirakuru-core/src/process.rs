//! A running process tree as one unit: spawned as a session (and process group) leader with an
//! owner marker in its environment and `PR_SET_PDEATHSIG(SIGKILL)`; signalled as a whole —
//! group, session, marked processes and their descendants; torn down with a grace period and
//! escalation; and reaped. Any tree still alive when the test binary exits normally is stopped
//! by an exit hook; the reaper (`reaper.rs`) covers every other way to die.

use std::ffi::OsString;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::command::{Command, Prepared, Redirect, Stdin};
use crate::output::{Capture, Output, Stream};
use crate::signal::Signal;
use crate::supervisor;
use crate::sweep::{self, TreeId, MARKER_VAR};
use crate::sys::{self, WakePipe};

/// Variables that tell a process how to talk to *its* supervisor. Inherited from a test binary
/// that runs under systemd, they would make PostgreSQL or Redis notify the wrong manager.
const SUPERVISOR_VARS: [&str; 4] = ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// What the supervisor observed about one process: its output and its exit. Shared between
/// the supervisor thread, which writes it, and the executor, which waits on it.
#[derive(Debug)]
pub(crate) struct Monitor {
    state: Mutex<State>,
    changed: Condvar,
    wake: WakePipe,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    exited: bool,
    status: Option<ExitStatus>,
}

impl State {
    pub(crate) fn capture(&mut self, stream: Stream) -> &mut Capture {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// `Some(status)` once the leader has exited; the inner `None` if its status was lost
    /// because something else reaped it.
    pub(crate) fn exit(&self) -> Option<Option<ExitStatus>> {
        self.exited.then_some(self.status)
    }
}

impl Monitor {
    pub(crate) fn new(output_limit: usize) -> io::Result<Arc<Monitor>> {
        Ok(Arc::new(Monitor {
            state: Mutex::new(State {
                stdout: Capture::new(output_limit),
                stderr: Capture::new(output_limit),
                exited: false,
                status: None,
            }),
            changed: Condvar::new(),
            wake: WakePipe::new()?,
        }))
    }

    /// The state, also after a panic elsewhere: it holds plain data that stays consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Something changed: wake the executor's readiness wait and any thread waiting for exit.
    pub(crate) fn notify(&self) {
        self.wake.wake();
        self.changed.notify_all();
    }

    pub(crate) fn set_exit(&self, status: Option<ExitStatus>) {
        {
            let mut state = self.lock();
            state.exited = true;
            state.status = status;
        }
        self.notify();
    }

    pub(crate) fn exit(&self) -> Option<Option<ExitStatus>> {
        self.lock().exit()
    }

    /// Waits until the leader has exited or `deadline` passes; true if it exited.
    pub(crate) fn wait_exit_until(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        loop {
            if state.exited {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }

    pub(crate) fn output(&self) -> Output {
        let state = self.lock();
        let (stdout, stdout_dropped) = state.stdout.kept();
        let (stderr, stderr_dropped) = state.stderr.kept();
        Output { stdout, stderr, stdout_dropped, stderr_dropped }
    }

    /// Readable when something changed since the last [`Monitor::clear_wake`].
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.fd()
    }

    pub(crate) fn clear_wake(&self) {
        self.wake.drain();
    }
}

/// How to end a tree when the test binary exits with it still running.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopPlan {
    pub(crate) stop_signal: Signal,
    pub(crate) kill_signal: Signal,
    pub(crate) stop_timeout: Duration,
}

/// The part of a process that the exit hook needs too.
#[derive(Debug)]
struct Tree {
    /// Start time of the leader (0 if unknown), to recognise processes it could have started.
    leader_start: u64,
    id: Mutex<TreeId>,
    monitor: Arc<Monitor>,
    plan: StopPlan,
    supervisor_id: u64,
    reaped: AtomicBool,
    /// A pidfd of the leader (Linux), opened at spawn: its pid may be recycled once something
    /// other than us reaped it, the pidfd always names the process we spawned.
    leader_fd: Option<std::os::fd::OwnedFd>,
}

/// A spawned, not yet reaped process tree.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) spawned_at: Instant,
    tree: Arc<Tree>,
    /// Held open for [`Stdin::Open`]; closed when the process is dropped.
    _stdin: Option<ChildStdin>,
}

impl Process {
    /// Spawns `argv` as described by `command`, from the supervisor thread.
    pub(crate) fn spawn(
        command: &Command,
        prepared: &Prepared,
        extra_env: &[(OsString, OsString)],
        pass_fds: &[(std::os::fd::OwnedFd, i32)],
        monitor: Arc<Monitor>,
        plan: StopPlan,
    ) -> io::Result<Process> {
        let marker = new_marker()?;
        let cmd = build(command, prepared, extra_env, pass_fds, &marker)?;
        // Before the spawn: the count must not include the service's own forks.
        let forks_at_spawn = sweep::forks_since_boot();
        let supervisor = supervisor::get()?;
        // Only our own processes are ever considered. Root owns them all: its services may
        // run as another user (`Executor::user`), and their workers too (nginx's `nobody`).
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let uids = if me == 0 { Vec::new() } else { vec![me] };
        let spawned_at = Instant::now();
        let spawned = supervisor.spawn(cmd, Arc::clone(&monitor))?;
        // Opened first: the leader is our unreaped child, so the pid still names it.
        let leader_fd = sys::pidfd_open(spawned.pid);
        let leader_start = sweep::start_time(spawned.pid).unwrap_or(0);
        let id = TreeId {
            leader: spawned.pid,
            leader_start,
            marker_entry: format!("{MARKER_VAR}={marker}").into_bytes(),
            uids,
            forks_at_spawn,
            daemons: Vec::new(),
        };
        let tree = Arc::new(Tree {
            leader_start,
            id: Mutex::new(id),
            monitor,
            plan,
            supervisor_id: spawned.id,
            reaped: AtomicBool::new(false),
            leader_fd,
        });
        live::register(Arc::clone(&tree));
        Ok(Process { pid: spawned.pid, spawned_at, tree, _stdin: spawned.stdin })
    }

    pub(crate) fn monitor(&self) -> &Arc<Monitor> {
        &self.tree.monitor
    }

    /// Counts `pid` (a daemon the service reported, e.g. in its pid file) as part of the tree,
    /// as long as it keeps its current start time. Refuses pids older than the tree, which
    /// cannot have been started by it.
    pub(crate) fn adopt(&self, pid: u32) -> bool {
        let Some(start) = sweep::start_time(pid) else {
            return false;
        };
        if start < self.tree.leader_start {
            return false;
        }
        let mut id = self.tree.id.lock().unwrap_or_else(|p| p.into_inner());
        if !id.daemons.iter().any(|&(p, _)| p == pid) {
            id.daemons.push((pid, start));
        }
        true
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
        match sys::exit_status_nowait_of(self.pid, self.tree.leader_fd()) {
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
    pub(crate) fn member_pidfds(&self) -> Vec<std::os::fd::OwnedFd> {
        self.tree
            .members()
            .into_iter()
            .filter(|p| p.pid != self.pid)
            .filter_map(|p| sys::pidfd_open(p.pid))
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

/// How a tree ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    /// How the leader ended (`None` if its status was lost).
    pub(crate) status: Option<ExitStatus>,
    /// Whether the tree ended within the grace period, without escalation.
    pub(crate) graceful: bool,
}

/// How long to wait for processes that were sent SIGKILL: they die at once unless stuck in
/// the kernel (uninterruptible sleep), and a stop must never hang on them.
const KILL_WAIT: Duration = Duration::from_secs(5);

impl Tree {
    fn leader(&self) -> u32 {
        self.id.lock().unwrap_or_else(|p| p.into_inner()).leader
    }

    /// The leader is ours to signal by pid while it is unreaped: even as a zombie it holds its
    /// pid and process group id, so they cannot name a stranger. If something else reaped it,
    /// only pidfd-checked signals are safe. Asked through the leader's pidfd: asked by pid, a
    /// recycled pid that now names another child of ours (another service) would answer.
    fn leader_is_ours(&self) -> bool {
        !self.reaped.load(Ordering::Acquire)
            && sys::exit_status_nowait_of(self.leader(), self.leader_fd()).is_ok()
    }

    fn leader_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.leader_fd.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    fn members(&self) -> Vec<sweep::ProcInfo> {
        let id = self.id.lock().unwrap_or_else(|p| p.into_inner()).clone();
        sweep::tree_members(&id)
    }

    fn any_member_alive(&self) -> bool {
        let leader = self.leader();
        if cfg!(target_os = "linux") {
            self.members().iter().any(|p| p.pid != leader)
        } else {
            self.leader_is_ours() && matches!(sys::kill(-(leader as i32), 0), Ok(true))
        }
    }

    fn signal(&self, signal: Signal) {
        let sig = signal as i32;
        let leader = self.leader();
        if self.leader_is_ours() {
            match self.leader_fd() {
                Some(fd) => drop(sys::pidfd_send_signal(fd, sig)),
                None => drop(sys::kill(leader as i32, sig)),
            }
            let _ = sys::kill(-(leader as i32), sig);
        }
        for member in self.members() {
            if member.pid != leader {
                signal_checked(member, sig);
            }
        }
    }

    /// Waits until every process of the tree has exited, or `deadline`.
    fn wait_gone(&self, deadline: Instant) -> bool {
        if !self.monitor.wait_exit_until(deadline) {
            return false;
        }
        let leader = self.leader();
        let mut pause = Duration::from_micros(200);
        loop {
            let members: Vec<_> = self.members().into_iter().filter(|p| p.pid != leader).collect();
            let group_alive = !cfg!(target_os = "linux")
                && self.leader_is_ours()
                && matches!(sys::kill(-(leader as i32), 0), Ok(true));
            if members.is_empty() && !group_alive {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Wait for any of them to exit, through pidfds where the OS has them; re-sweep at
            // least every 100 ms for processes forked meanwhile.
            let pidfds: Vec<_> = members.iter().filter_map(|p| sys::pidfd_open(p.pid)).collect();
            let wait = (deadline - now).min(Duration::from_millis(100));
            if pidfds.is_empty() {
                std::thread::sleep(pause.min(wait));
                pause = (pause * 2).min(Duration::from_millis(10));
            } else {
                let fds: Vec<_> = pidfds.iter().map(std::os::fd::AsFd::as_fd).collect();
                let _ = sys::poll_readable(&fds, Some(wait));
            }
        }
    }

    fn terminate(&self, first: Signal, grace: Duration, then: Signal) -> bool {
        // The grace period starts with the signal, not after the sweep that follows it.
        let deadline = Instant::now() + grace;
        self.signal(first);
        if self.wait_gone(deadline) {
            return true;
        }
        self.signal(then);
        if !self.wait_gone(Instant::now() + KILL_WAIT) && then != Signal::SIGKILL {
            self.signal(Signal::SIGKILL);
            self.wait_gone(Instant::now() + KILL_WAIT);
        }
        false
    }

    /// Reaps the leader and forgets the tree everywhere. Idempotent.
    fn finish(self: &Arc<Self>) -> Option<ExitStatus> {
        let status = self.monitor.exit().flatten();
        if self.reaped.swap(true, Ordering::AcqRel) {
            return status;
        }
        let leader = self.leader();
        // Only an exit observed with its status is ours to reap: a lost status means something
        // else reaped the leader, and its pid may be another child of ours by now (waiting for
        // it would block until that one exits, and take its status). Through the pidfd, a
        // reap after the observation by someone else is answered ECHILD.
        if matches!(self.monitor.exit(), Some(Some(_))) {
            let _ = sys::reap_of(leader, self.leader_fd());
        }
        if let Ok(supervisor) = supervisor::get() {
            supervisor.release(self.supervisor_id);
            if let Some(reaper) = supervisor.reaper() {
                reaper.forget(leader);
            }
        }
        live::unregister(self);
        status
    }
}

/// Signals a swept process unless its pid now names another process.
fn signal_checked(member: sweep::ProcInfo, sig: i32) {
    match sys::pidfd_open(member.pid) {
        Some(fd) => {
            if sweep::start_time(member.pid) == Some(member.start_time) {
                let _ = sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), sig);
            }
        }
        None => {
            if cfg!(not(target_os = "linux"))
                || sweep::start_time(member.pid) == Some(member.start_time)
            {
                let _ = sys::kill(member.pid as i32, sig);
            }
        }
    }
}

/// `<owner pid>:<128 random bits>`: the owner part lets the reaper find everything of this
/// binary; the random part makes one executor's tree unguessable and distinct from all others.
fn new_marker() -> io::Result<String> {
    let mut random = [0u8; 16];
    sys::random_bytes(&mut random)?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}:{hex}", std::process::id()))
}

fn build(
    command: &Command,
    prepared: &Prepared,
    extra_env: &[(OsString, OsString)],
    pass_fds: &[(std::os::fd::OwnedFd, i32)],
    marker: &str,
) -> io::Result<std::process::Command> {
    let argv = &prepared.argv;
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some((uid, gid)) = prepared.user {
        // std drops the supplementary groups when root switches user without setting them.
        cmd.uid(uid).gid(gid);
    }
    if command.env_clear {
        cmd.env_clear();
    }
    for var in SUPERVISOR_VARS {
        cmd.env_remove(var);
    }
    for (key, value) in &command.env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    for (key, value) in extra_env {
        cmd.env(key, value);
    }
    cmd.env(MARKER_VAR, marker);
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(match command.stdin {
        Stdin::Null => Stdio::null(),
        Stdin::Inherit => Stdio::inherit(),
        Stdin::Open => Stdio::piped(),
    });
    cmd.stdout(redirect(command, &command.stdout)?);
    cmd.stderr(redirect(command, &command.stderr)?);
    let parent = std::process::id() as libc::pid_t;
    let fds: Vec<(i32, i32)> = pass_fds
        .iter()
        .map(|(fd, target)| (std::os::fd::AsRawFd::as_raw_fd(fd), *target))
        .collect();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            // Passed fds land on their numbers without close-on-exec; ours are closed by exec.
            for &(fd, target) in &fds {
                if fd == target {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(fd, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // A session of its own: its own process group to signal as one, and no
            // controlling terminal, so a Ctrl-C meant for the test binary does not reach it
            // half-way and a program cannot block on a terminal prompt.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(io::Error::last_os_error());
                }
                // If the binary died between fork and prctl, nobody will send the signal.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
    Ok(cmd)
}

fn redirect(command: &Command, to: &Redirect) -> io::Result<Stdio> {
    Ok(match to {
        Redirect::Capture => Stdio::piped(),
        Redirect::Inherit => Stdio::inherit(),
        Redirect::Null => Stdio::null(),
        Redirect::File(path) => Stdio::from(
            std::fs::OpenOptions::new().create(true).append(true).open(command.resolve(path))?,
        ),
    })
}

/// Trees still running, for the exit hook.
mod live {
    use super::*;

    static LIVE: Mutex<Vec<Arc<Tree>>> = Mutex::new(Vec::new());
    static HOOK: Once = Once::new();
    static EXITING: AtomicBool = AtomicBool::new(false);

    pub(super) fn register(tree: Arc<Tree>) {
        HOOK.call_once(|| crate::exit::at_exit(stop_all_at_exit));
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).push(tree);
    }

    pub(super) fn unregister(tree: &Arc<Tree>) {
        if EXITING.load(Ordering::Acquire) {
            return; // the hook owns the list now
        }
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|t| !Arc::ptr_eq(t, tree));
    }

    /// Rust never drops statics, and an executor can be leaked: at a normal exit (the end of
    /// `main`, `std::process::exit`, libtest's exit) stop what is left, gracefully and all at
    /// once, as each executor's own stop would.
    fn stop_all_at_exit() {
        {
            EXITING.store(true, Ordering::Release);
            let trees: Vec<Arc<Tree>> = {
                // Another thread may be inside register(); never wait long for it.
                let mut guard = None;
                for _ in 0..200 {
                    match LIVE.try_lock() {
                        Ok(g) => {
                            guard = Some(g);
                            break;
                        }
                        Err(std::sync::TryLockError::Poisoned(p)) => {
                            guard = Some(p.into_inner());
                            break;
                        }
                        Err(std::sync::TryLockError::WouldBlock) => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                    }
                }
                match guard {
                    Some(mut g) => std::mem::take(&mut *g),
                    None => return,
                }
            };
            let start = Instant::now();
            for tree in &trees {
                tree.signal(tree.plan.stop_signal);
            }
            for tree in &trees {
                if !tree.wait_gone(start + tree.plan.stop_timeout) {
                    tree.signal(tree.plan.kill_signal);
                    if !tree.wait_gone(Instant::now() + KILL_WAIT) {
                        tree.signal(Signal::SIGKILL);
                        tree.wait_gone(Instant::now() + KILL_WAIT);
                    }
                }
                tree.finish();
            }
        }
    }
}
