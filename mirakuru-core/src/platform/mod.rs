//! The system calls the crate makes, in one place, safe. Everything here is a thin wrapper;
//! the policy lives in `process/`.
//!
//! What differs between operating systems is in `linux.rs` and `other.rs`, and nowhere else
//! in the crate: Linux has pidfds (signals and waits that can never reach a process that took
//! over a recycled pid), `PR_SET_PDEATHSIG`, inotify, `/proc` and `SO_PASSCRED`. Elsewhere the
//! same functions return `None` or do less, and callers fall back to polling and process
//! groups — the rest of the crate is written once.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, WaitIdOptions, WaitIdStatus};

use crate::signal::Signal;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as os;

pub(crate) use os::{
    close_inherited_fds, for_each_dir_entry, in_spawned_child, make_child_subreaper, pidfd_open,
    random_bytes, receive_credentials, recv_datagram, set_process_name, tcp_listening,
    unix_stream_socket, DirWatch, HAS_PROCFS, MAX_SOCKET_PATH,
};

/// The effective user id of this process.
pub(crate) fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| Errno::SRCH.into())
}

/// Whether an error of `kill(2)` means the target is gone. macOS answers EPERM for a zombie
/// group leader (mirakuru #54, #222).
fn gone(err: Errno) -> bool {
    err == Errno::SRCH || (os::EPERM_MAY_MEAN_GONE && err == Errno::PERM)
}

/// `kill(pid, signal)`; `Ok(false)` if there is no such process.
pub(crate) fn kill(target: u32, signal: Signal) -> io::Result<bool> {
    match rustix::process::kill_process(pid(target)?, signal.to_rustix()) {
        Ok(()) => Ok(true),
        Err(e) if gone(e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `kill(-pgid, signal)`; `Ok(false)` if there is no such process group.
pub(crate) fn kill_group(pgid: u32, signal: Signal) -> io::Result<bool> {
    match rustix::process::kill_process_group(pid(pgid)?, signal.to_rustix()) {
        Ok(()) => Ok(true),
        Err(e) if gone(e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a process of this pid exists (a zombie included). EPERM: it exists, someone
/// else's.
pub(crate) fn process_exists(target: u32) -> bool {
    let Ok(target) = pid(target) else { return false };
    !matches!(rustix::process::test_kill_process(target), Err(e) if gone(e))
}

/// Whether a process group of this id has a member.
pub(crate) fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = pid(pgid) else { return false };
    !matches!(rustix::process::test_kill_process_group(pgid), Err(e) if gone(e))
}

/// Sends `signal` to the process a pidfd refers to: unlike `kill(pid)`, this can never reach
/// a process that took over a recycled pid (pidfd_send_signal(2)). `Ok(false)` if it has
/// exited.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<bool> {
    os::pidfd_send_signal(pidfd, signal)
}

/// How a child exited, observed without reaping it (`WNOWAIT`): the zombie keeps its pid and
/// process group reserved, so signals sent to them until we reap cannot reach a stranger.
/// `Ok(None)` while it runs; `Err` (ECHILD) if it is not, or no longer, ours. Asked through
/// `pidfd` where there is one: if something else in the program reaped the child, its pid may
/// already name another child of ours, and waitid(2) by pid would answer for that one.
pub(crate) fn exit_status_nowait(
    pid: u32,
    pidfd: Option<BorrowedFd<'_>>,
) -> io::Result<Option<ExitStatus>> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(os::waitid(pid, pidfd, options)?.as_ref().map(exit_status))
}

/// Reaps an exited child (only called once its exit was observed, so it does not block for
/// long). Through `pidfd` where there is one, so that a pid recycled after something else
/// reaped our child is never waited for.
pub(crate) fn reap(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    os::waitid(pid, pidfd, WaitIdOptions::EXITED).map(drop)
}

/// Reaps a child if it has exited, without waiting: for zombies this binary inherited.
pub(crate) fn reap_nowait(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    os::waitid(pid, pidfd, WaitIdOptions::EXITED | WaitIdOptions::NOHANG).map(drop)
}

/// A wait(2) status word rebuilt from waitid(2)'s answer, so that std's `ExitStatus` answers
/// `code()` and `signal()`.
fn exit_status(status: &WaitIdStatus) -> ExitStatus {
    let raw = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => (code & 0xff) << 8,
        (None, Some(signal)) if status.dumped() => (signal & 0x7f) | 0x80,
        (None, Some(signal)) => signal & 0x7f,
        (None, None) => 0,
    };
    ExitStatus::from_raw(raw)
}

/// Makes an fd non-blocking (the supervisor must never block on a pipe).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// `read(2)` that returns `Ok(None)` for EAGAIN and retries EINTR.
pub(crate) fn read_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(Some(n)),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Polls `fds` until one is readable (or hung up) or `timeout` passes (`None`: no limit);
/// returns which are. EINTR counts as a spurious wake-up. The timeout is kept to the
/// nanosecond where the OS can (ppoll(2)): probe schedules start at 100 µs, and poll(2)'s
/// millisecond would make every early probe late.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<PollFd<'_>> =
        fds.iter().map(|fd| PollFd::new(fd, PollFlags::IN)).collect();
    poll(&mut pollfds, timeout)?;
    Ok(pollfds.iter().map(|p| !p.revents().is_empty()).collect())
}

/// Whether `fd` is readable at once: for a pidfd, whether its process exited.
pub(crate) fn readable_now(fd: BorrowedFd<'_>) -> bool {
    poll_readable(&[fd], Some(Duration::ZERO)).is_ok_and(|r| r.first() == Some(&true))
}

/// poll(2) over prepared `PollFd`s; EINTR counts as nothing ready.
pub(crate) fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    match rustix::event::poll(fds, timeout.as_ref()) {
        Ok(n) => Ok(n),
        Err(Errno::INTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Connects a unix stream socket to `path` without ever blocking. `Ok` when the connection is
/// made; otherwise the OS error as is — EAGAIN when the listener's backlog is full (it listens
/// but would not accept yet), ENOENT when nothing is bound, ECONNREFUSED when nothing listens.
/// A blocking connect would hang on a full backlog (Python mirakuru's does).
pub(crate) fn connect_unix_nonblocking(path: &Path) -> io::Result<OwnedFd> {
    let addr = rustix::net::SocketAddrUnix::new(path)?;
    let fd = unix_stream_socket()?;
    rustix::net::connect(&fd, &addr)?;
    Ok(fd)
}

/// A self-pipe: one side writes a byte to wake whoever polls the other. Both ends are
/// non-blocking and close-on-exec, so a spawned service never inherits them.
#[derive(Debug)]
pub(crate) struct WakePipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl WakePipe {
    pub(crate) fn new() -> io::Result<WakePipe> {
        let (read, write) = std::io::pipe()?;
        let (read, write) = (OwnedFd::from(read), OwnedFd::from(write));
        set_nonblocking(read.as_fd())?;
        set_nonblocking(write.as_fd())?;
        Ok(WakePipe { read, write })
    }

    /// Wakes the reader. A full pipe already means "wake up", so EAGAIN is fine.
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(&self.write, &[1u8]);
    }

    /// Consumes pending wake-ups.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while let Ok(Some(n)) = read_nonblocking(self.read.as_fd(), &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// Makes sure this binary's children leave an exit status to collect. A program started with
/// SIGCHLD ignored, or with a handler installed with `SA_NOCLDWAIT` (some CI runners and
/// supervisors start their jobs so), has its children reaped by the kernel the moment they
/// exit: waitid(2) answers ECHILD, and a launcher that exited 0 looks like one that vanished
/// (sigaction(2), "POSIX.1-2001 specifies that if the disposition of SIGCHLD is set to
/// SIG_IGN ... children that terminate do not become zombies"). The default disposition is
/// put back; a handler of the program's own is kept, without the flag.
pub(crate) fn keep_exit_statuses() -> io::Result<()> {
    // SAFETY: sigaction(2) with a null new action only reads the current one into `old`,
    // a zeroed plain C struct; the second call installs a copy of it, changed in two fields.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        let ignored = old.sa_sigaction == libc::SIG_IGN;
        if !ignored && old.sa_flags & libc::SA_NOCLDWAIT == 0 {
            return Ok(());
        }
        let mut new = old;
        new.sa_flags &= !libc::SA_NOCLDWAIT;
        if ignored {
            new.sa_sigaction = libc::SIG_DFL;
        }
        if libc::sigaction(libc::SIGCHLD, &new, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a spawned child before exec: every signal the binary was started with ignored gets its
/// default action back, as systemd gives its services (systemd.exec(5), "all signal handlers
/// are reset"). Ignored dispositions survive exec(2): a service started from a runner that
/// ignores SIGTERM or SIGHUP would ignore them too, and every stop would wait out its grace
/// period. Handlers need no reset (exec does it); std empties the signal mask. Only
/// sigaction(2) is called, which is async-signal-safe.
pub(crate) fn reset_ignored_signals() {
    for signal in 1..32 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: as in `keep_exit_statuses`: a query into a zeroed struct, then SIG_DFL
        // installed from a copy of it. Neither allocates nor takes a lock.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut action) == 0
                && action.sa_sigaction == libc::SIG_IGN
            {
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }
}

/// The soft limit on open files the binary was started with (`u64::MAX`: none), once it was
/// raised; `NOT_RAISED` before. Plain atomics: a spawned child reads them between fork and exec.
static STARTED_WITH_FILES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(NOT_RAISED);
const NOT_RAISED: u64 = u64::MAX - 1;

/// Raises this binary's soft limit on open files to its hard limit, as Go's runtime does at
/// startup (Go 1.19 release notes, "os"): every executor holds three or four descriptors (a
/// pidfd, its output pipes), and the usual soft limit of 1,024 ends a suite at a few hundred
/// services while the hard limit allows far more. Services get the limit the binary was
/// started with back ([`restore_open_files_limit`]): a program that uses select(2) breaks on
/// descriptors past 1,024.
pub(crate) fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    use std::sync::atomic::Ordering;
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else { return }; // no soft limit at all
    if limit.maximum.is_some_and(|maximum| current >= maximum) {
        return;
    }
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    // macOS refuses more than OPEN_MAX (10,240) for an unlimited hard limit.
    let fallback = Rlimit { current: Some(10_240), maximum: limit.maximum };
    let done = setrlimit(Resource::Nofile, raised).is_ok()
        || (current < 10_240 && setrlimit(Resource::Nofile, fallback).is_ok());
    if done {
        STARTED_WITH_FILES.store(current, Ordering::Release);
    }
}

/// In a spawned child before exec: the soft limit on open files the binary was started with,
/// if [`raise_open_files_limit`] raised it. Async-signal-safe: an atomic load, setrlimit(2).
pub(crate) fn restore_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let original = STARTED_WITH_FILES.load(std::sync::atomic::Ordering::Acquire);
    if original == NOT_RAISED {
        return;
    }
    let maximum = getrlimit(Resource::Nofile).maximum;
    let current = (original != u64::MAX).then_some(original);
    let _ = setrlimit(Resource::Nofile, Rlimit { current, maximum });
}
