//! Linux: pidfds, `PR_SET_PDEATHSIG`, inotify, `/proc`, `SO_PASSCRED`.

use std::ffi::{CStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

use crate::signal::Signal;

/// `/proc` lists processes, their sessions, environments and sockets.
pub(crate) const HAS_PROCFS: bool = true;

/// Linux answers ESRCH for a process that is gone, never EPERM.
pub(crate) const EPERM_MAY_MEAN_GONE: bool = false;

/// The longest socket path: `sun_path` is 108 bytes, the terminating NUL included (unix(7)).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// Opens a pidfd for `pid` (Linux 5.3+); `None` on older kernels, where callers fall back to
/// plain pids — safe only for unreaped children of ours.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok()
}

pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<bool> {
    match rustix::process::pidfd_send_signal(pidfd, signal.to_rustix()) {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// waitid(2) on a pidfd (Linux 5.4+), else on the pid; EINTR is retried.
pub(crate) fn waitid(
    pid: u32,
    mut pidfd: Option<BorrowedFd<'_>>,
    options: WaitIdOptions,
) -> io::Result<Option<WaitIdStatus>> {
    let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(0)).ok_or(Errno::CHILD)?;
    loop {
        let id = match pidfd {
            Some(fd) => WaitId::PidFd(fd),
            None => WaitId::Pid(pid),
        };
        match rustix::process::waitid(id, options) {
            Ok(status) => return Ok(status),
            Err(Errno::INTR) => continue,
            // Linux 5.3 has pidfds but not P_PIDFD: ask by pid, as before.
            Err(Errno::INVAL) if pidfd.is_some() => pidfd = None,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs in the spawned child between fork and exec (async-signal-safe calls only): the child
/// gets SIGKILL when the thread that forked it — mirakuru's supervisor, which lives as long as
/// the test binary — dies, so nothing outlives a killed test binary (prctl(2)).
pub(crate) fn in_spawned_child(parent: u32) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    // If the binary died between fork and prctl, nobody will send the signal.
    if rustix::process::getppid().map(Pid::as_raw_pid) != i32::try_from(parent).ok() {
        return Err(Errno::SRCH.into());
    }
    Ok(())
}

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER): a
/// service's daemon whose launcher exited is reparented to the test binary instead of init,
/// and stays recognisable as the binary's.
pub(crate) fn make_child_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Fills `buf` from the kernel's CSPRNG, so owner markers cannot be guessed.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A non-blocking, close-on-exec unix stream socket.
pub(crate) fn unix_stream_socket() -> io::Result<OwnedFd> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    Ok(rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?)
}

/// Receives one datagram without blocking, with the sender's pid (`SO_PASSCRED` must be on,
/// see [`receive_credentials`]); `Ok(None)` when none is waiting. File descriptors sent
/// along are closed at once: the sender of an sd_notify `BARRIER=1` waits for that.
///
/// nix, not rustix: the kernel reports pid 0 for a sender outside this pid namespace (an
/// ancestor namespace's process that reaches the socket), and rustix reads the credentials
/// into a non-zero pid type, which is undefined behaviour for that message.
pub(crate) fn recv_datagram(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<u32>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::os::fd::{AsRawFd, FromRawFd};
    // Room for the credentials and the most fds one message can carry (SCM_MAX_FD, 253), so
    // that none is left unread, and so unclosed, by a truncated control buffer.
    let mut space = nix::cmsg_space!(libc::ucred, [RawFd; 253]);
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    loop {
        let mut iov = [io::IoSliceMut::new(&mut *buf)];
        let msg = match recvmsg::<UnixAddr>(socket.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut sender = None;
        for message in msg.cmsgs().into_iter().flatten() {
            match message {
                ControlMessageOwned::ScmCredentials(creds) => {
                    sender = u32::try_from(creds.pid()).ok().filter(|&pid| pid != 0);
                }
                ControlMessageOwned::ScmRights(fds) => {
                    // SAFETY: the kernel installed these descriptors in this process for this
                    // message; nothing else knows of them, so each is closed exactly once.
                    fds.into_iter().for_each(|fd| drop(unsafe { OwnedFd::from_raw_fd(fd) }));
                }
                _ => {}
            }
        }
        return Ok(Some((msg.bytes, sender)));
    }
}

/// Has the kernel attach the sender's credentials to every datagram received on `socket`.
pub(crate) fn receive_credentials(socket: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_socket_passcred(socket, true)?)
}

/// Names this process in `ps` (the reaper).
pub(crate) fn set_process_name(name: &CStr) {
    let _ = rustix::thread::set_name(name);
}

/// Closes every fd of this process but stdin, stdout, stderr and `keep`: the reaper, a fork
/// of the test binary, must hold none of its pipes and sockets (nextest waits for a test's
/// output pipes to close, and a service's listening socket must go with the service).
pub(crate) fn close_inherited_fds(keep: RawFd) {
    let keep = keep.max(3) as libc::c_uint;
    for (first, last) in [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)] {
        if first <= last {
            // SAFETY: called in the reaper right after fork, before any fd of this process is
            // used by anything but `keep`: nothing holds the fds closed here, so no `OwnedFd`
            // is left dangling. close_range(2) only closes descriptors.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        }
    }
}

/// Calls `f` with the name of every entry of the directory `dir`, through getdents64(2) into
/// a buffer on the stack: no allocation, usable in a forked child. False if it cannot be read.
pub(crate) fn for_each_dir_entry(dir: BorrowedFd<'_>, mut f: impl FnMut(&[u8])) -> bool {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut entries = rustix::fs::RawDir::new(dir, &mut buf);
    while let Some(entry) = entries.next() {
        match entry {
            Ok(entry) => f(entry.file_name().to_bytes()),
            Err(_) => return false,
        }
    }
    true
}

/// Events on one file name in one directory: inotify, set up before the spawn, so a file
/// created early is not missed (docs/design.md §5). `None` where it cannot be set up (a file
/// system without inotify, exhausted `max_user_watches`): callers then poll on a schedule.
#[derive(Debug)]
pub(crate) struct DirWatch {
    inotify: OwnedFd,
    name: OsString,
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
    pub(crate) fn new(file: &Path) -> Option<DirWatch> {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = file.file_name()?.to_os_string();
        let inotify = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok()?;
        // Creation, atomic rename into place, writes and the final close of a writer.
        let mask = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::MODIFY
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::ATTRIB;
        inotify::add_watch(&inotify, dir, mask).ok()?;
        Some(DirWatch { inotify, name })
    }

    /// Consumes pending events and says what happened to our file.
    pub(crate) fn drain(&self) -> Seen {
        let mut seen = Seen::default();
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&self.inotify, &mut buf);
        while let Ok(event) = events.next() {
            let flags = event.events();
            let overflow = flags.contains(ReadFlags::QUEUE_OVERFLOW);
            let ours = event.file_name().is_some_and(|n| n.to_bytes() == self.name.as_bytes());
            if overflow || ours {
                seen.changed = true;
                // A rename into place is a finished write too.
                seen.written |=
                    overflow || flags.intersects(ReadFlags::CLOSE_WRITE | ReadFlags::MOVED_TO);
            }
        }
        seen
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

/// The TCP sockets listening in this process's network namespace, as (address, port, socket
/// inode), asked of the kernel over `NETLINK_SOCK_DIAG` (sock_diag(7)) as `ss -lt` does: a
/// dump of listening sockets walks only the listening hash, where a read of `/proc/net/tcp`
/// walks the whole connection table — 1.6 ms a read on a 24 GiB machine, for 40 rows.
/// `None` if the kernel does not answer (no `inet_diag` module): then read `/proc`.
pub(crate) fn tcp_listening() -> Option<Vec<(std::net::IpAddr, u16, u64)>> {
    use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};
    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(SOCK_DIAG),
    )
    .ok()?;
    let mut found = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for family in [AF_INET, AF_INET6] {
        let request = sock_diag_request(family);
        let kernel = SocketAddrNetlink::new(0, 0);
        rustix::net::sendto(&socket, &request, rustix::net::SendFlags::empty(), &kernel).ok()?;
        loop {
            let (_, len) = rustix::net::recv(&socket, &mut buf[..], RecvFlags::empty()).ok()?;
            match sock_diag_answers(&buf[..len.min(buf.len())], &mut found)? {
                true => break,
                false => continue,
            }
        }
    }
    Some(found)
}

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `nlmsghdr` (16 bytes) and `inet_diag_sockid` (48 bytes), linux/netlink.h, linux/inet_diag.h.
const NLMSG_HEADER: usize = 16;
const SOCKID: usize = 48;

/// `SOCK_DIAG_BY_FAMILY` dump of the TCP sockets of `family` in state LISTEN.
fn sock_diag_request(family: u8) -> Vec<u8> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
    const TCP_LISTEN: u32 = 10;
    let len = NLMSG_HEADER + 8 + SOCKID;
    let mut request = Vec::with_capacity(len);
    request.extend_from_slice(&(len as u32).to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
    // The sequence number and port id, then inet_diag_req_v2: family, protocol (IPPROTO_TCP),
    // extensions, padding, states.
    request.extend_from_slice(&[0; 8]);
    request.extend_from_slice(&[family, 6, 0, 0]);
    request.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    request.resize(len, 0); // the socket id: any
    request
}

/// Takes in one datagram of answers; `Some(true)` at the end of the dump, `None` on an error.
fn sock_diag_answers(
    mut data: &[u8],
    found: &mut Vec<(std::net::IpAddr, u16, u64)>,
) -> Option<bool> {
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    let u32_at =
        |b: &[u8], at: usize| Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?));
    while data.len() >= NLMSG_HEADER {
        let len = u32_at(data, 0)? as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let message = data.get(NLMSG_HEADER..len)?;
        match kind {
            NLMSG_DONE => return Some(true),
            NLMSG_ERROR => return None,
            _ => {
                // inet_diag_msg: family, state, timer, retrans, the socket id, then expires,
                // rqueue, wqueue, uid and inode.
                let family = *message.first()?;
                let id = message.get(4..4 + SOCKID)?;
                let port = u16::from_be_bytes([id[0], id[1]]);
                let src = &id[4..20];
                let addr = match family {
                    AF_INET => std::net::IpAddr::from(<[u8; 4]>::try_from(&src[..4]).ok()?),
                    _ => std::net::IpAddr::from(<[u8; 16]>::try_from(src).ok()?),
                };
                let inode = u64::from(u32_at(message, 4 + SOCKID + 16)?);
                found.push((addr, port, inode));
            }
        }
        // Messages are aligned to 4 bytes.
        data = data.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Some(false)
}
