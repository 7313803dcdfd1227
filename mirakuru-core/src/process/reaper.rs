//! The last line of defence: a tiny process that outlives the test binary just long enough to
//! kill whatever the binary still owned, and to remove its files.
//!
//! `PR_SET_PDEATHSIG` kills each spawned service when the test binary dies, however it dies
//! (SIGKILL, abort, OOM, a nextest timeout). It does not reach the service's own descendants:
//! the setting is not inherited across fork(2), so a daemon that double-forked into a new
//! session survives its launcher. Python mirakuru's `atexit` sweep runs only on a normal exit
//! (mirakuru #89), testcontainers' watchdog only on three signals (testcontainers-rs #577).
//!
//! So the first spawn forks a reaper. It holds one end of a socket pair whose other end only
//! the test binary holds; the kernel closes that end when the binary exits for any reason.
//! The binary tells the reaper every session it starts (a service leads one) and every
//! process it adopts (a pid file's daemon, `MAINPID=`, the owner of a listening socket), and
//! when they are gone. On end of file the reaper kills, with SIGKILL, every process in one of
//! those sessions, every adopted process, every process whose environment carries this
//! binary's owner marker, and all their descendants; removes the binary's run directory;
//! then exits.
//!
//! The reaper is a fork of a multi-threaded process that never execs, so after fork(2) it may
//! only make async-signal-safe system calls: no allocation, no locks, no panics. It uses the
//! primitives of `procfs.rs` and the tables of `table.rs`, written under the same rules.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::signal::{SigSet, SigmaskHow, Signal as NixSignal};
use nix::unistd::ForkResult;
use rustix::fs::{AtFlags, Mode, OFlags, CWD};

use super::procfs::{
    close_over_descendants, environ_match, for_each_process, proc_info, ProcInfo, Scratch,
};
use super::table::Table;
use crate::platform;
use crate::signal::Signal;

/// The binary's end of the lifeline.
#[derive(Debug)]
pub(crate) struct Reaper {
    lifeline: OwnedFd,
    pid: u32,
}

/// A record: what, a pid, a start time (13 bytes; a stream socket with room takes it whole).
const SESSION: u8 = b'S';
const FORGET_SESSION: u8 = b's';
const PROCESS: u8 = b'P';
const FORGET_PROCESS: u8 = b'p';
const RECORD: usize = 13;

/// The longest run directory path the reaper can remove (PATH_MAX).
const MAX_PATH: usize = 4096;

/// What the reaper is told before it forks: all of it is copied onto its stack.
struct Orders {
    owner_needle: [u8; 64],
    needle_len: usize,
    /// The run directory and its memory-backed twin: paths, their lengths (0: none), and
    /// their identities (device, inode) when the reaper started.
    run_dirs: [[u8; MAX_PATH]; 2],
    run_dir_lens: [usize; 2],
    run_dir_ids: [(u64, u64); 2],
    uid: u32,
    pid_max: usize,
}

impl Reaper {
    /// Forks the reaper. `owner_prefix` is this binary's marker prefix; `run_dirs` (the run
    /// directory and its twin in memory) are removed after the sweep.
    pub(crate) fn start(
        owner_prefix: &[u8],
        run_dirs: &[&Path],
        pid_max: usize,
    ) -> io::Result<Reaper> {
        let (ours, theirs) = UnixStream::pair()?;
        // Everything the child needs is prepared before fork: no allocation afterwards.
        let mut orders = Orders {
            owner_needle: [0; 64],
            needle_len: owner_prefix.len().min(64),
            run_dirs: [[0; MAX_PATH]; 2],
            run_dir_lens: [0; 2],
            run_dir_ids: [(0, 0); 2],
            uid: platform::geteuid(),
            pid_max,
        };
        orders.owner_needle[..orders.needle_len]
            .copy_from_slice(&owner_prefix[..orders.needle_len]);
        for (i, path) in run_dirs.iter().take(2).enumerate() {
            use std::os::unix::fs::MetadataExt;
            let dir = path.as_os_str().as_bytes();
            let Ok(meta) = std::fs::symlink_metadata(path) else { continue };
            if dir.len() < MAX_PATH && !dir.contains(&0) {
                orders.run_dirs[i][..dir.len()].copy_from_slice(dir);
                orders.run_dir_lens[i] = dir.len();
                orders.run_dir_ids[i] = (meta.dev(), meta.ino());
            }
        }
        // SAFETY: the child runs only `reaper_main`, which makes async-signal-safe calls on
        // its own stack and on memory mapped for it, and never returns into the caller.
        match unsafe { nix::unistd::fork() }? {
            ForkResult::Child => reaper_main(theirs, &orders),
            ForkResult::Parent { child } => {
                drop(theirs);
                let lifeline = OwnedFd::from(ours);
                platform::set_nonblocking(lifeline.as_fd())?;
                Ok(Reaper { lifeline, pid: child.as_raw().unsigned_abs() })
            }
        }
    }

    /// The reaper's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// A service leading session `sid` (its leader started at `start`) was spawned.
    pub(crate) fn watch_session(&self, sid: u32, start: u64) {
        self.send(SESSION, sid, start);
    }

    /// The session's leader is gone and its number may be given to a stranger: it is no
    /// longer ours to kill by number.
    pub(crate) fn forget_session(&self, sid: u32) {
        self.send(FORGET_SESSION, sid, 0);
    }

    /// Process `pid` (started at `start`) belongs to a service: kill it too.
    pub(crate) fn adopt(&self, pid: u32, start: u64) {
        self.send(PROCESS, pid, start);
    }

    /// The adopted process is gone.
    pub(crate) fn forget_process(&self, pid: u32) {
        self.send(FORGET_PROCESS, pid, 0);
    }

    fn send(&self, op: u8, id: u32, start: u64) {
        let mut record = [0u8; RECORD];
        record[0] = op;
        record[1..5].copy_from_slice(&id.to_le_bytes());
        record[5..].copy_from_slice(&start.to_le_bytes());
        // If the reaper is gone or its buffer is full, the marker sweep still finds the tree.
        let _ = rustix::net::send(&self.lifeline, &record, rustix::net::SendFlags::NOSIGNAL);
    }
}

/// The reaper's whole life. Never returns.
fn reaper_main(lifeline: UnixStream, orders: &Orders) -> ! {
    detach(&lifeline);
    let sessions = Table::<(u32, u64)>::with_capacity(orders.pid_max);
    let procs = Table::<(u32, u64)>::with_capacity(orders.pid_max);
    if let (Some(mut sessions), Some(mut procs)) = (sessions, procs) {
        listen(&lifeline, &mut sessions, &mut procs);
        sessions.as_mut_slice().sort_unstable();
        procs.as_mut_slice().sort_unstable();
        sweep(orders, sessions.as_slice(), procs.as_slice());
    } else {
        // No memory for the records: the owner marker still finds most of what is left.
        listen_until_closed(&lifeline);
        sweep(orders, &[], &[]);
    }
    for ((dir, &len), &id) in
        orders.run_dirs.iter().zip(&orders.run_dir_lens).zip(&orders.run_dir_ids)
    {
        if len > 0 {
            remove_tree(&dir[..len], id);
        }
    }
    // SAFETY: _exit(2) ends this process at once; nothing of the binary's runs after it —
    // its atexit handlers, inherited by this fork, must not. No safe wrapper offers it.
    unsafe { libc::_exit(0) }
}

/// Cuts the reaper loose from the binary: its own session (a Ctrl-C or a group kill aimed at
/// the binary must not end it before it has swept), terminal signals blocked, and none of the
/// binary's files held — not its stdout (nextest would wait for it and report a leak), not
/// its listening sockets, not service pipes. Only the lifeline.
fn detach(lifeline: &UnixStream) {
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
    if let Ok(null) = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    platform::close_inherited_fds(lifeline.as_raw_fd());
}

/// Reads the binary's records until the lifeline breaks.
fn listen(lifeline: &UnixStream, sessions: &mut Table<(u32, u64)>, procs: &mut Table<(u32, u64)>) {
    let mut record = [0u8; RECORD];
    let mut filled = 0usize;
    loop {
        match rustix::io::read(lifeline, &mut record[filled..]) {
            Ok(0) => return,
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        if filled < RECORD {
            continue;
        }
        filled = 0;
        let id = u32::from_le_bytes([record[1], record[2], record[3], record[4]]);
        let mut start = [0u8; 8];
        start.copy_from_slice(&record[5..]);
        let start = u64::from_le_bytes(start);
        match record[0] {
            SESSION => add(sessions, id, start),
            FORGET_SESSION => remove(sessions, id),
            PROCESS => add(procs, id, start),
            FORGET_PROCESS => remove(procs, id),
            _ => {}
        }
    }
}

fn listen_until_closed(lifeline: &UnixStream) {
    let mut buf = [0u8; 256];
    loop {
        match rustix::io::read(lifeline, &mut buf) {
            Ok(0) => return,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

fn add(table: &mut Table<(u32, u64)>, id: u32, start: u64) {
    match table.as_slice().iter().position(|&(i, _)| i == id) {
        Some(at) => table.as_mut_slice()[at] = (id, start),
        None => {
            // Full means the kernel gave no more memory: the marker sweep remains.
            let _ = table.push((id, start));
        }
    }
}

fn remove(table: &mut Table<(u32, u64)>, id: u32) {
    if let Some(at) = table.as_slice().iter().position(|&(i, _)| i == id) {
        table.swap_remove(at);
    }
}

/// Kills everything that was the binary's. One pass is a snapshot that can be stale by the
/// time it is used: a process listed alive may fork and die before its stat is read, its
/// child missing from the listing; a process in the middle of execve(2) shows no environment
/// yet. So passes repeat until three in a row, some milliseconds apart, find nothing.
fn sweep(orders: &Orders, sessions: &[(u32, u64)], procs: &[(u32, u64)]) {
    if !platform::HAS_PROCFS {
        // Without `/proc`, the process groups it was told about (each service leads its own
        // session and group).
        for &(sid, _) in sessions {
            let _ = platform::kill_group(sid, Signal::SIGKILL);
        }
        return;
    }
    let (Some(mut infos), Some(mut selected)) = (
        Table::<ProcInfo>::with_capacity(orders.pid_max),
        Table::<bool>::with_capacity(orders.pid_max),
    ) else {
        return;
    };
    let own = [orders.uid];
    // Root owns every process; its services and their workers may run as other users.
    let uids: &[u32] = if orders.uid == 0 { &[] } else { &own };
    let needle = &orders.owner_needle[..orders.needle_len];
    let me = std::process::id();
    let mut scratch = Scratch::new();
    let mut quiet = 0;
    for pass in 0..200 {
        infos.clear();
        for_each_process(&mut scratch, uids, 0, &[], |p| {
            if p.pid != me {
                let _ = infos.push(p);
            }
        });
        infos.as_mut_slice().sort_unstable_by_key(|p| p.pid);
        let infos = infos.as_slice();
        selected.clear();
        for p in infos {
            let ours = in_session(p, sessions, infos)
                || procs
                    .binary_search_by_key(&p.pid, |&(pid, _)| pid)
                    .is_ok_and(|at| procs[at].1 == p.start_time)
                || environ_match(p.pid, needle, false).unwrap_or(false);
            let _ = selected.push(ours);
        }
        close_over_descendants(infos, selected.as_mut_slice());
        let mut killed = false;
        for (p, &sel) in infos.iter().zip(selected.as_slice()) {
            if sel {
                kill_if_same(*p);
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

/// Whether `p` is in a session (or process group) of a service, by a number that is still
/// the service's: if a process holds the leader's pid with another start time, the number
/// was recycled for a stranger.
fn in_session(p: &ProcInfo, sessions: &[(u32, u64)], infos: &[ProcInfo]) -> bool {
    [p.sid, p.pgid].into_iter().any(|number| {
        let Ok(at) = sessions.binary_search_by_key(&number, |&(sid, _)| sid) else {
            return false;
        };
        let start = sessions[at].1;
        match infos.binary_search_by_key(&number, |q| q.pid) {
            Ok(leader) => start == 0 || infos[leader].start_time == start,
            Err(_) => true,
        }
    })
}

/// SIGKILLs `p` unless its pid now names another process (checked through a pidfd).
fn kill_if_same(p: ProcInfo) {
    let Some(fd) = platform::pidfd_open(p.pid) else { return };
    if proc_info(p.pid, &[]).is_some_and(|now| now.start_time == p.start_time) {
        let _ = platform::pidfd_send_signal(fd.as_fd(), Signal::SIGKILL);
    }
}

/// How deep [`remove_tree`] goes: a fixture's directory holds a data directory a few levels
/// deep; deeper is left.
const REMOVE_DEPTH: usize = 32;

/// Removes the directory at `path` and everything in it — only if it is still the directory
/// `id` (device, inode) names: the binary may have removed it at its exit, and in a
/// world-writable `/tmp` or `/dev/shm` anybody may have made another at that name since.
/// Walks with directory descriptors (`openat`, `unlinkat`), never by path below the top and
/// never through a symbolic link, so that nothing a service's user renames inside its
/// directory can send the walk elsewhere; without allocating. Entries that cannot be removed
/// are left (the walk is bounded).
fn remove_tree(path: &[u8], id: (u64, u64)) {
    let mut buf = [0u8; MAX_PATH + 1];
    buf[..path.len()].copy_from_slice(path);
    let Ok(top) = CStr::from_bytes_with_nul(&buf[..=path.len()]) else { return };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(root) = rustix::fs::open(top, flags, Mode::empty()) else { return };
    match rustix::fs::fstat(&root) {
        Ok(stat) if (stat.st_dev, stat.st_ino) == id => {}
        _ => return,
    }
    let mut dirs: [Option<OwnedFd>; REMOVE_DEPTH] = std::array::from_fn(|_| None);
    let mut names = [[0u8; 256]; REMOVE_DEPTH];
    dirs[0] = Some(root);
    let mut depth = 1;
    for _ in 0..100_000 {
        let Some(dir) = dirs[depth - 1].as_ref() else { return };
        // Read from the start again: entries were removed since, a child emptied.
        let _ = rustix::fs::seek(dir, rustix::fs::SeekFrom::Start(0));
        let mut descend: Option<([u8; 256], usize)> = None;
        platform::for_each_dir_entry(dir.as_fd(), |name| {
            if descend.is_some() || name == b"." || name == b".." || name.len() > 255 {
                return;
            }
            let mut entry = [0u8; 256];
            entry[..name.len()].copy_from_slice(name);
            let Ok(entry_name) = CStr::from_bytes_with_nul(&entry[..=name.len()]) else {
                return;
            };
            let unlinked = rustix::fs::unlinkat(dir, entry_name, AtFlags::empty());
            if unlinked == Err(rustix::io::Errno::ISDIR) {
                descend = Some((entry, name.len()));
            }
        });
        let opened = descend.filter(|_| depth < REMOVE_DEPTH).and_then(|(name, n)| {
            let entry = CStr::from_bytes_with_nul(&name[..=n]).ok()?;
            let child = rustix::fs::openat(dir, entry, flags, Mode::empty()).ok()?;
            Some((child, name))
        });
        match opened {
            Some((child, name)) => {
                dirs[depth] = Some(child);
                names[depth] = name;
                depth += 1;
            }
            None => {
                // Empty now (or holding what cannot go): remove it from its parent, go up.
                dirs[depth - 1] = None;
                depth -= 1;
                if depth == 0 {
                    // The top, which is still ours: checked above, and in a sticky directory
                    // nobody else may replace another user's entry.
                    let _ = rustix::fs::unlinkat(CWD, top, AtFlags::REMOVEDIR);
                    return;
                }
                let name = &names[depth];
                let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                if let (Some(parent), Ok(entry)) =
                    (dirs[depth - 1].as_ref(), CStr::from_bytes_with_nul(&name[..=n.min(255)]))
                {
                    let _ = rustix::fs::unlinkat(parent, entry, AtFlags::REMOVEDIR);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(path: &Path) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).expect("it exists");
        (meta.dev(), meta.ino())
    }

    /// The reaper removes a run directory and all in it, but never through a symbolic link,
    /// and never a directory made at its name by somebody else after the binary removed it.
    #[test]
    fn a_run_directory_is_removed_only_if_it_is_the_one_made() {
        let scratch = tempfile::tempdir().expect("a directory");
        let outside = scratch.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("keep"), b"not ours").expect("write");
        let run = scratch.path().join("run");
        std::fs::create_dir_all(run.join("fixture/data/base/1")).expect("mkdir");
        std::fs::write(run.join("fixture/data/base/1/file"), b"x").expect("write");
        std::os::unix::fs::symlink(&outside, run.join("fixture/link")).expect("symlink");
        let made = id_of(&run);
        let bytes = run.as_os_str().as_bytes();

        // Made again at the same name: another directory, left alone.
        std::fs::rename(&run, scratch.path().join("moved")).expect("rename");
        std::fs::create_dir(&run).expect("mkdir");
        std::fs::write(run.join("theirs"), b"y").expect("write");
        remove_tree(bytes, made);
        assert!(run.join("theirs").exists(), "another directory at the name is not removed");
        std::fs::remove_dir_all(&run).expect("cleanup");

        std::fs::rename(scratch.path().join("moved"), &run).expect("rename back");
        remove_tree(bytes, made);
        assert!(!run.exists(), "the run directory is removed, however deep");
        assert!(outside.join("keep").exists(), "nothing is removed through a symbolic link");
    }

    fn info(pid: u32, sid: u32, start_time: u64) -> ProcInfo {
        ProcInfo { pid, ppid: 1, pgid: sid, sid, start_time }
    }

    /// The reaper kills a session by number only while the number is the service's: when a
    /// process holds the leader's pid with another start time, the pid was recycled for a
    /// stranger, whose session it would be.
    #[test]
    fn a_recycled_session_number_is_not_killed() {
        let sessions = [(100, 5_000)];
        let ours = [info(100, 100, 5_000), info(101, 100, 5_001)];
        assert!(in_session(&ours[1], &sessions, &ours), "a member of the service's session");
        let recycled = [info(100, 100, 9_000), info(101, 100, 9_001)];
        assert!(!in_session(&recycled[1], &sessions, &recycled), "a stranger's session");
        let leaderless = [info(101, 100, 5_001)];
        assert!(in_session(&leaderless[0], &sessions, &leaderless), "members keep the number");
    }
}
