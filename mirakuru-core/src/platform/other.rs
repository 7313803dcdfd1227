//! Other Unix systems (macOS, the BSDs): no pidfds, no parent-death signal, no inotify, no
//! `/proc`. Exits are polled, files and sockets are polled, and trees are process groups.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketType};
use rustix::process::{Pid, WaitId, WaitIdOptions, WaitIdStatus};

use crate::signal::Signal;

/// There is no `/proc` to list processes, their sessions, environments and sockets.
pub(crate) const HAS_PROCFS: bool = false;

/// macOS answers EPERM to `kill(-pgid, 0)` when the group leader is a zombie.
pub(crate) const EPERM_MAY_MEAN_GONE: bool = true;

/// `sun_path` is 104 bytes on macOS and the BSDs, the terminating NUL included (unix(4)).
pub(crate) const MAX_SOCKET_PATH: usize = 103;

pub(crate) fn pidfd_open(_pid: u32) -> Option<OwnedFd> {
    None
}

pub(crate) fn pidfd_send_signal(_pidfd: BorrowedFd<'_>, _signal: Signal) -> io::Result<bool> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn waitid(
    pid: u32,
    _pidfd: Option<BorrowedFd<'_>>,
    options: WaitIdOptions,
) -> io::Result<Option<WaitIdStatus>> {
    let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(0)).ok_or(Errno::CHILD)?;
    loop {
        match rustix::process::waitid(WaitId::Pid(pid), options) {
            Ok(status) => return Ok(status),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn in_spawned_child(_parent: u32) -> io::Result<()> {
    Ok(())
}

pub(crate) fn make_child_subreaper() -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

pub(crate) fn unix_stream_socket() -> io::Result<OwnedFd> {
    let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    super::set_nonblocking(fd.as_fd())?;
    Ok(fd)
}

/// One datagram without blocking; the sender is unknown (no `SO_PASSCRED`).
pub(crate) fn recv_datagram(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<u32>)>> {
    loop {
        match rustix::net::recv(socket, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(Some((n, None))),
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn receive_credentials(_socket: BorrowedFd<'_>) -> io::Result<()> {
    Ok(())
}

pub(crate) fn set_process_name(_name: &CStr) {}

/// Closes every fd but stdin, stdout, stderr and `keep` (see the Linux version).
pub(crate) fn close_inherited_fds(keep: RawFd) {
    for fd in 3..4096 {
        if fd != keep {
            // SAFETY: called in the reaper right after fork; nothing there uses these fds.
            unsafe { libc::close(fd) };
        }
    }
}

pub(crate) fn for_each_dir_entry(_dir: BorrowedFd<'_>, _f: impl FnMut(&[u8])) -> bool {
    false
}

/// No inotify: never constructed; callers poll.
#[derive(Debug)]
pub(crate) struct DirWatch {
    never: std::convert::Infallible,
}

/// What [`DirWatch::drain`] saw happen to the file.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Seen {
    /// Anything at all.
    pub(crate) changed: bool,
    /// A writer closed it, or it was renamed into place.
    pub(crate) written: bool,
}

impl DirWatch {
    pub(crate) fn new(_file: &Path) -> Option<DirWatch> {
        None
    }

    pub(crate) fn drain(&self) -> Seen {
        match self.never {}
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }
}

/// No `NETLINK_SOCK_DIAG`: the listening sockets are not known here.
pub(crate) fn tcp_listening() -> Option<Vec<(std::net::IpAddr, u16, u64)>> {
    None
}
