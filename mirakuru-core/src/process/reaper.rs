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
//! only make async-signal-safe system calls: no allocation, no locks, no panics. It uses the
//! primitives of `procfs.rs`, written under the same rules.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::signal::{SigSet, SigmaskHow, Signal as NixSignal};
use nix::unistd::ForkResult;

use super::procfs::{
    close_over_descendants, environ_match, for_each_process, proc_info, ProcInfo, Scratch,
};
use crate::platform;
use crate::signal::Signal;

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
        let uid = platform::geteuid();
        // SAFETY: the child runs only `reaper_main`, which makes async-signal-safe calls on
        // its own stack and never returns into the caller's code.
        match unsafe { nix::unistd::fork() }? {
            ForkResult::Child => reaper_main(theirs, &needle[..needle_len], uid),
            ForkResult::Parent { .. } => {
                drop(theirs);
                let lifeline = OwnedFd::from(ours);
                platform::set_nonblocking(lifeline.as_fd())?;
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
        let _ = rustix::net::send(&self.lifeline, &record, rustix::net::SendFlags::NOSIGNAL);
    }
}

/// The reaper's whole life. Never returns.
fn reaper_main(lifeline: UnixStream, owner_needle: &[u8], uid: u32) -> ! {
    // Own session: a Ctrl-C or a group kill aimed at the test binary must not end the reaper
    // before it has swept. Blocked, the terminal signals stay pending forever.
    let _ = rustix::process::setsid();
    platform::set_process_name(c"mirakuru-reaper");
    let mut blocked = SigSet::empty();
    for sig in [
        NixSignal::SIGINT,
        NixSignal::SIGTERM,
        NixSignal::SIGHUP,
        NixSignal::SIGQUIT,
        NixSignal::SIGPIPE,
    ] {
        blocked.add(sig);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    // Hold nothing of the binary's: not its stdout (nextest would wait for it and report a
    // leak), not its listening sockets, not service pipes. Only the lifeline.
    if let Ok(null) = rustix::fs::open(
        c"/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    platform::close_inherited_fds(lifeline.as_raw_fd());
    let mut sessions = [0u32; MAX_SESSIONS];
    let count = listen(&lifeline, &mut sessions);
    // Root owns every process; its services and their workers may run as other users.
    let own = [uid];
    let uids: &[u32] = if uid == 0 { &[] } else { &own };
    sweep(&sessions[..count], owner_needle, uids);
    // SAFETY: _exit(2) ends this process at once; nothing of the binary's runs after it —
    // its atexit handlers, inherited by this fork, must not. No safe wrapper offers it.
    unsafe { libc::_exit(0) }
}

/// Reads the binary's records until the lifeline breaks; returns how many sessions are kept.
fn listen(lifeline: &UnixStream, sessions: &mut [u32; MAX_SESSIONS]) -> usize {
    let mut count = 0usize;
    let mut record = [0u8; 5];
    let mut filled = 0usize;
    loop {
        match rustix::io::read(lifeline, &mut record[filled..]) {
            Ok(0) => return count,
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return count,
        }
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
}

fn sweep(sessions: &[u32], owner_needle: &[u8], uids: &[u32]) {
    if !platform::HAS_PROCFS {
        // Without `/proc`, the process groups it was told about (each service leads its own
        // session and group).
        for &sid in sessions {
            let _ = platform::kill_group(sid, Signal::SIGKILL);
        }
        return;
    }
    let me = std::process::id();
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
            selected[i] = sessions.contains(&p.sid)
                || environ_match(p.pid, owner_needle, false).unwrap_or(false);
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
        let pause = rustix::thread::Timespec { tv_sec: 0, tv_nsec: 2_000_000 * quiet as i64 };
        let _ = rustix::thread::nanosleep(&pause);
    }
}

/// SIGKILLs `p` unless its pid now names another process (checked through a pidfd).
fn kill_if_same(p: ProcInfo) {
    let Some(fd) = platform::pidfd_open(p.pid) else { return };
    if proc_info(p.pid, &[]).is_some_and(|now| now.start_time == p.start_time) {
        let _ = platform::pidfd_send_signal(fd.as_fd(), Signal::SIGKILL);
    }
}
