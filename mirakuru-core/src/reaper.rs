//! The last line of defence: a tiny process that outlives the test binary just long enough to
//! kill whatever the binary still owned.
//!
//! `PR_SET_PDEATHSIG` kills each spawned service when the test binary dies, however it dies
//! (SIGKILL, abort, OOM, a nextest timeout). It does not reach the service's own descendants:
//! the setting is not inherited across fork(2), so a daemon that double-forked into a new
//! session survives its launcher. Python mirakuru's `atexit` sweep runs only on a normal exit
//! (mirakuru #89), testcontainers' watchdog only on three signals (testcontainers-rs #577).
//!
//! So the first spawn forks a reaper. It holds one end of a socket pair whose other end only
//! the test binary holds; the kernel closes that end when the binary exits for any reason. The
//! binary tells the reaper the session id of every service it starts and stops. On end of file
//! the reaper kills, with SIGKILL, every process of our user that is in one of those sessions,
//! or whose environment carries this binary's owner marker, and all their descendants — then
//! exits.
//!
//! The reaper is a fork of a multi-threaded process that never execs, so after fork(2) it may
//! only make async-signal-safe system calls: no allocation, no locks, no panics. `sweep.rs`
//! provides primitives written under the same rules.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// The binary's end of the lifeline.
#[derive(Debug)]
pub(crate) struct Reaper {
    lifeline: OwnedFd,
}

const ADD: u8 = b'+';
const REMOVE: u8 = b'-';
const MAX_SESSIONS: usize = 1024;
const MAX_PROCS: usize = 2048;

impl Reaper {
    /// Forks the reaper. Called by the supervisor thread before it spawns anything: its stack
    /// is known to be large enough for the reaper's fixed-size tables (about 200 KiB).
    pub(crate) fn start(owner_prefix: &[u8]) -> io::Result<Reaper> {
        let (ours, theirs) = UnixStream::pair()?;
        // Everything the child needs is prepared before fork: no allocation afterwards.
        let mut needle = [0u8; 64];
        let needle_len = owner_prefix.len().min(needle.len());
        needle[..needle_len].copy_from_slice(&owner_prefix[..needle_len]);
        let theirs_fd = theirs.as_raw_fd();
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        // SAFETY: the child only runs `reaper_main`, which makes async-signal-safe calls only.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => reaper_main(theirs_fd, &needle[..needle_len], uid),
            _ => {
                drop(theirs);
                let lifeline = OwnedFd::from(ours);
                crate::sys::set_nonblocking(std::os::fd::AsFd::as_fd(&lifeline))?;
                Ok(Reaper { lifeline })
            }
        }
    }

    /// Tells the reaper about a session to kill if the binary dies.
    pub(crate) fn watch(&self, sid: u32) {
        self.send(ADD, sid);
    }

    /// Tells the reaper a session is gone, so a recycled id is never killed.
    pub(crate) fn forget(&self, sid: u32) {
        self.send(REMOVE, sid);
    }

    fn send(&self, op: u8, sid: u32) {
        let b = sid.to_le_bytes();
        let record = [op, b[0], b[1], b[2], b[3]];
        // Five bytes go in one piece or not at all on a stream socket with room; if the reaper
        // is gone or its buffer is full, the marker sweep still finds the tree.
        // SAFETY: sends from a valid 5-byte buffer; MSG_NOSIGNAL avoids SIGPIPE.
        let _ = unsafe {
            libc::send(
                self.lifeline.as_raw_fd(),
                record.as_ptr().cast(),
                record.len(),
                libc::MSG_NOSIGNAL,
            )
        };
    }
}

/// The reaper's whole life. Never returns.
fn reaper_main(lifeline: i32, owner_needle: &[u8], uid: u32) -> ! {
    // SAFETY (whole function): only async-signal-safe calls on memory of this stack frame.
    unsafe {
        // Own session: a Ctrl-C or a group kill aimed at the test binary must not end the
        // reaper before it has swept.
        libc::setsid();
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_NAME, c"mirakuru-reaper".as_ptr());
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // Hold nothing of the binary's: not its stdout (nextest would wait for it and report a
        // leak), not its listening sockets, not service pipes. Only the lifeline, moved to fd 3.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if lifeline != 3 {
            libc::dup2(lifeline, 3);
        }
        close_from(4);
    }
    let mut sessions = [0u32; MAX_SESSIONS];
    let mut count = 0usize;
    let mut record = [0u8; 5];
    let mut filled = 0usize;
    loop {
        // SAFETY: reads into the unfilled part of a valid buffer.
        let n =
            unsafe { libc::read(3, record[filled..].as_mut_ptr().cast(), record.len() - filled) };
        if n == 0 {
            break;
        }
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        filled += n as usize;
        if filled < record.len() {
            continue;
        }
        filled = 0;
        let sid = u32::from_le_bytes([record[1], record[2], record[3], record[4]]);
        if record[0] == ADD && count < MAX_SESSIONS {
            sessions[count] = sid;
            count += 1;
        } else if record[0] == REMOVE {
            if let Some(i) = sessions[..count].iter().position(|&s| s == sid) {
                count -= 1;
                sessions[i] = sessions[count];
            }
        }
    }
    // Root owns every process; its services and their workers may run as other users.
    let own = [uid];
    let uids: &[u32] = if uid == 0 { &[] } else { &own };
    sweep(&sessions[..count], owner_needle, uids);
    // SAFETY: _exit is async-signal-safe and skips atexit handlers inherited from the binary.
    unsafe { libc::_exit(0) }
}

#[cfg(target_os = "linux")]
fn sweep(sessions: &[u32], owner_needle: &[u8], uids: &[u32]) {
    use crate::sweep::{
        close_over_descendants, environ_matches, for_each_process, ProcInfo, Scratch,
    };
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() } as u32;
    let mut infos = [ProcInfo::default(); MAX_PROCS];
    let mut scratch = Scratch::new();
    // One pass is a snapshot that can be stale by the time it is used: a process listed
    // alive may fork and die before its stat is read, its child missing from the listing; a
    // process in the middle of execve(2) shows no environment yet. So passes repeat until
    // three in a row, some milliseconds apart, find nothing (bounded).
    let mut quiet = 0;
    for pass in 0..200 {
        let mut len = 0usize;
        for_each_process(&mut scratch, uids, 0, |p| {
            if p.pid != me && len < MAX_PROCS {
                infos[len] = p;
                len += 1;
            }
        });
        let mut selected = [false; MAX_PROCS];
        for i in 0..len {
            let p = infos[i];
            selected[i] = sessions.contains(&p.sid) || environ_matches(p.pid, owner_needle, false);
        }
        close_over_descendants(&infos[..len], &mut selected[..len]);
        let mut killed = false;
        for i in 0..len {
            if selected[i] {
                kill_if_same(infos[i]);
                killed = true;
            }
        }
        quiet = if killed { 0 } else { quiet + 1 };
        if quiet == 3 || pass == 199 {
            return;
        }
        let pause = libc::timespec { tv_sec: 0, tv_nsec: 2_000_000 * quiet as libc::c_long };
        // SAFETY: nanosleep reads the timespec and may write the remainder (null: ignored).
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    }
}

/// SIGKILLs `p` unless its pid now names another process (checked through a pidfd).
#[cfg(target_os = "linux")]
fn kill_if_same(p: crate::sweep::ProcInfo) {
    // SAFETY: raw syscalls on integers; the fd is closed before returning.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, p.pid as libc::pid_t, 0) as i32;
        if fd < 0 {
            return;
        }
        let same =
            crate::sweep::proc_info(p.pid, &[]).is_some_and(|now| now.start_time == p.start_time);
        if same {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
        libc::close(fd);
    }
}

/// Without `/proc`, the reaper can still kill the process groups it was told about (each
/// service leads its own session and group).
#[cfg(not(target_os = "linux"))]
fn sweep(sessions: &[u32], _owner_needle: &[u8], _uids: &[u32]) {
    for &sid in sessions {
        // SAFETY: killpg only takes integers.
        unsafe { libc::killpg(sid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Closes every fd from `first` up.
unsafe fn close_from(first: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range only closes fds.
        if unsafe {
            libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0)
        } == 0
        {
            return;
        }
    }
    for fd in first..4096 {
        // SAFETY: closing an fd we may or may not hold is harmless in this process.
        unsafe { libc::close(fd) };
    }
}
