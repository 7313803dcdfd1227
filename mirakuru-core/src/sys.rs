//! Thin, safe wrappers over the few system calls std and nix do not cover: pidfds,
//! observing an exit without reaping it, random bytes, and non-blocking pipes.
//!
//! Everything here is small on purpose; the policy lives in `process.rs`, `sweep.rs` and
//! `supervisor.rs`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Opens a pidfd for `pid` (Linux 5.3+). `None` where the kernel or OS has none; callers
/// then fall back to plain pids, which is only safe for unreaped children of ours.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pidfd_open(_pid: u32) -> Option<OwnedFd> {
    None
}

/// Sends `signal` to the process a pidfd refers to. Unlike `kill(pid)`, this can never hit a
/// process that took over a recycled pid (pidfd_send_signal(2)). `Ok(false)` if the process
/// has already exited.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<bool> {
    // SAFETY: a null siginfo is allowed and means "as kill(2) would send it".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        e => Err(e),
    }
}

/// `kill(pid, signal)` that reports "no such process" as `Ok(false)`. EPERM is reported the same
/// way on macOS, where a zombie group leader answers EPERM (mirakuru #54, #222).
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<bool> {
    // SAFETY: kill(2) only takes integers.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        #[cfg(target_os = "macos")]
        Some(libc::EPERM) => Ok(false),
        _ => Err(err),
    }
}

/// How a child exited, observed without reaping it (`WNOWAIT`): the zombie keeps its pid and
/// process group reserved, so signals sent to them until we reap cannot reach a stranger.
/// `Ok(None)` while the child still runs; `Err` (ECHILD) if it is not, or no longer, ours.
pub(crate) fn exit_status_nowait(pid: u32) -> io::Result<Option<ExitStatus>> {
    exit_status_nowait_of(pid, None)
}

/// [`exit_status_nowait`] asked through `pidfd` where there is one. If something else in the
/// program reaped the child, its pid may already name another child of ours (a service spawned
/// since): asked by pid, waitid(2) would answer for that one; asked through the pidfd, it
/// answers ECHILD, for the process the pidfd was opened on.
pub(crate) fn exit_status_nowait_of(
    pid: u32,
    pidfd: Option<BorrowedFd<'_>>,
) -> io::Result<Option<ExitStatus>> {
    // SAFETY: siginfo_t is plain data; zeroed is a valid "no child changed state" value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    waitid(pid, pidfd, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)?;
    Ok(status_from_siginfo(&info))
}

/// Reaps an exited child. Only called once the exit has been observed, so it never blocks for
/// long; EINTR is retried. Through `pidfd` where there is one, so that a pid recycled after
/// something else reaped our child is never waited for (that would block until the stranger
/// exits, and take its status from whoever spawned it).
pub(crate) fn reap_of(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    // SAFETY: siginfo_t is plain data, written by waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    waitid(pid, pidfd, &mut info, libc::WEXITED)
}

/// waitid(2) on a pidfd (Linux 5.4+), else on the pid; EINTR is retried.
fn waitid(
    pid: u32,
    pidfd: Option<BorrowedFd<'_>>,
    info: &mut libc::siginfo_t,
    options: libc::c_int,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    let mut target = pidfd.map(|fd| (libc::P_PIDFD, fd.as_raw_fd() as libc::id_t));
    #[cfg(not(target_os = "linux"))]
    let mut target: Option<(libc::idtype_t, libc::id_t)> = pidfd.and(None);
    loop {
        let (idtype, id) = target.unwrap_or((libc::P_PID, pid as libc::id_t));
        // SAFETY: waitid writes only into `info`.
        if unsafe { libc::waitid(idtype, id, info, options) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Linux 5.3 has pidfds but not P_PIDFD: ask by pid, as before.
            Some(libc::EINVAL) if target.is_some() => target = None,
            _ => return Err(err),
        }
    }
}

fn status_from_siginfo(info: &libc::siginfo_t) -> Option<ExitStatus> {
    // SAFETY: waitid filled the si_pid/si_status union members, which exist for SIGCHLD infos.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return None;
    }
    // Rebuild a wait(2) status word so std's ExitStatus can answer code() and signal().
    let raw = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    };
    Some(ExitStatus::from_raw(raw))
}

/// Makes an fd non-blocking (the supervisor must never block on a pipe).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl with F_GETFL/F_SETFL only reads and writes the fd's flags.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `read(2)` that returns `Ok(None)` for EAGAIN and retries EINTR.
pub(crate) fn read_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: the buffer is valid for `buf.len()` bytes of writes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(err),
        }
    }
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
        // SAFETY: writes one byte from a valid buffer.
        let _ = unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
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

/// Fills `buf` with random bytes from the kernel's CSPRNG, so owner markers cannot be guessed
/// by another user's process.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let mut filled = 0;
        while filled < buf.len() {
            // SAFETY: getrandom writes at most `len` bytes into the valid remainder of `buf`.
            let n = unsafe {
                libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0)
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            filled += n as usize;
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(buf)
    }
}

/// Polls `fds` for readability until one is ready or `timeout` passes (`None`: no limit).
/// Returns which fds are readable (or hung up). EINTR counts as a spurious wake-up.
///
/// Linux uses ppoll(2) for microsecond timeouts: probe schedules start at 100 µs, and
/// poll(2)'s millisecond granularity would make every early probe at least 1 ms late.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
        .collect();
    let rc = sys_poll(&mut pollfds, timeout);
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
        return Ok(vec![false; fds.len()]);
    }
    Ok(pollfds.iter().map(|p| p.revents != 0).collect())
}

#[cfg(target_os = "linux")]
pub(crate) fn sys_poll(pollfds: &mut [libc::pollfd], timeout: Option<std::time::Duration>) -> i32 {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: pollfds is a valid array of `len` pollfd structs; ts_ptr is null or valid.
    unsafe {
        libc::ppoll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ts_ptr, std::ptr::null())
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn sys_poll(pollfds: &mut [libc::pollfd], timeout: Option<std::time::Duration>) -> i32 {
    let timeout_ms = match timeout {
        None => -1,
        // Round up: waking a hair early only costs one more loop; waking late costs latency.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
    };
    // SAFETY: pollfds is a valid array of `len` pollfd structs.
    unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout_ms) }
}

/// Connects a unix stream socket to `path` without ever blocking. `Ok` when the connection is
/// made; otherwise the OS error as is — EAGAIN when the listener's backlog is full (it listens,
/// but would not accept yet), ENOENT when nothing is bound, ECONNREFUSED when nothing listens.
/// A blocking connect would hang on a full backlog (Python mirakuru's does).
pub(crate) fn connect_unix_nonblocking(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid empty address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    #[cfg(target_os = "linux")]
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let kind = libc::SOCK_STREAM;
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    #[cfg(not(target_os = "linux"))]
    {
        set_nonblocking(fd.as_fd())?;
        // SAFETY: fcntl only sets the fd's flags.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    let rc =
        unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
