//! Reading `/proc` without allocating: which processes exist, their parent, process group,
//! session and start time, and whether their environment carries a marker.
//!
//! Everything here uses only async-signal-safe system calls and the stack: the reaper
//! (`reaper.rs`) runs it in a forked child of a multi-threaded process, where allocating could
//! deadlock on a lock held by a thread that no longer exists. Where `/proc` is missing (macOS)
//! every function answers "nothing".

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

use crate::platform;

/// What a sweep needs to know about one process, read from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) pgid: u32,
    pub(crate) sid: u32,
    /// Clock ticks since boot; a recycled pid has a different start time.
    pub(crate) start_time: u64,
}

/// Formats `/proc/<pid>/<leaf>\0` into `buf`.
fn proc_path<'b>(buf: &'b mut [u8; 64], pid: u32, leaf: &[u8]) -> Option<&'b CStr> {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = 0;
    let mut put = |b: u8| {
        if at < buf.len() - 1 {
            buf[at] = b;
            at += 1;
        }
    };
    b"/proc/".iter().for_each(|&b| put(b));
    digits[..len].iter().rev().for_each(|&b| put(b));
    put(b'/');
    leaf.iter().for_each(|&b| put(b));
    buf[at] = 0;
    CStr::from_bytes_with_nul(&buf[..=at]).ok()
}

fn open_ro(path: &CStr) -> Option<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    rustix::io::read(fd, buf).unwrap_or(0)
}

/// Reads `/proc/<pid>/stat`; `None` if the process is gone, a zombie, or owned by a user not
/// in `uids` (an empty `uids` accepts every user).
pub(crate) fn proc_info(pid: u32, uids: &[u32]) -> Option<ProcInfo> {
    let mut path = [0u8; 64];
    let fd = open_ro(proc_path(&mut path, pid, b"stat")?)?;
    if !uids.is_empty() {
        let owner = rustix::fs::fstat(&fd).ok()?.st_uid;
        if !uids.contains(&owner) {
            return None;
        }
    }
    let mut buf = [0u8; 1024];
    let len = read_some(&fd, &mut buf);
    parse_stat(pid, &buf[..len])
}

/// Parses the fields after the command name, which is in parentheses and may itself contain
/// spaces and parentheses: the last ')' ends it.
pub(crate) fn parse_stat(pid: u32, stat: &[u8]) -> Option<ProcInfo> {
    // Zombies (and dead entries) hold nothing to stop; their parent reaps them.
    match parse_stat_any(pid, stat)? {
        (_, true) => None,
        (info, false) => Some(info),
    }
}

/// A zombie's `/proc/<pid>/stat`: what it was, if `pid` is a zombie (any user's).
pub(crate) fn zombie_info(pid: u32) -> Option<ProcInfo> {
    let mut path = [0u8; 64];
    let fd = open_ro(proc_path(&mut path, pid, b"stat")?)?;
    let mut buf = [0u8; 1024];
    let len = read_some(&fd, &mut buf);
    match parse_stat_any(pid, &buf[..len])? {
        (info, true) => Some(info),
        (_, false) => None,
    }
}

/// The fields of `/proc/<pid>/stat`, and whether the process is a zombie.
fn parse_stat_any(pid: u32, stat: &[u8]) -> Option<(ProcInfo, bool)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    let mut nth = |skip: usize| -> Option<u64> {
        let f = fields.nth(skip)?;
        let mut v: u64 = 0;
        for &b in f {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        Some(v)
    };
    // Fields (1-based, proc_pid_stat(5)): 3 state, 4 ppid, 5 pgrp, 6 session, 22 starttime.
    let zombie = matches!(stat.get(close + 2), Some(b'Z' | b'X' | b'x'));
    let ppid = nth(1)? as u32; // skips field 3, the state
    let pgid = nth(0)? as u32;
    let sid = nth(0)? as u32;
    let start_time = nth(15)?;
    Some((ProcInfo { pid, ppid, pgid, sid, start_time }, zombie))
}

/// Whether `/proc/<pid>/environ` holds an entry matching `needle` (see [`EnvMatcher`]);
/// `None` when there was no environment to read: the process is gone or exiting, or has
/// none (kernel threads).
pub(crate) fn environ_match(pid: u32, needle: &[u8], exact: bool) -> Option<bool> {
    let mut path = [0u8; 64];
    let fd = open_ro(proc_path(&mut path, pid, b"environ")?)?;
    let mut matcher = EnvMatcher::new(needle, exact);
    let mut buf = [0u8; 4096];
    let mut any = false;
    let found = loop {
        let n = read_some(&fd, &mut buf);
        if n == 0 {
            break matcher.finish();
        }
        any = true;
        if matcher.feed(&buf[..n]) {
            break true;
        }
    };
    any.then_some(found)
}

/// How many pids one listing holds. A busy machine has more: those are streamed in a second
/// pass over `/proc`, so no process is ever skipped for want of room.
const MAX_LISTED: usize = 8192;

/// Room for two listings (64 KiB): on the stack of the reaper, which cannot allocate, and
/// boxed elsewhere, where the calling thread's stack may be small.
#[derive(Debug)]
pub(crate) struct Scratch {
    seen: [u32; MAX_LISTED],
    listed: [u32; MAX_LISTED],
}

impl Scratch {
    pub(crate) const fn new() -> Scratch {
        Scratch { seen: [0; MAX_LISTED], listed: [0; MAX_LISTED] }
    }
}

/// Calls `f` once with every process of the users `uids` (empty: all users), read from
/// `/proc`. Returns false if `/proc` cannot be read.
///
/// One listing is a snapshot that goes stale while it is read: a process listed alive can
/// fork and exit before its stat is read, and its child, created after the listing, would be
/// missed. So `/proc` is listed again until a listing shows no new pid.
///
/// Pids below `min_pid` are listed but not read: a caller that knows no pid has wrapped
/// around since its tree began can skip every older process. Neither are the pids in `skip`
/// (sorted).
pub(crate) fn for_each_process(
    scratch: &mut Scratch,
    uids: &[u32],
    min_pid: u32,
    skip: &[u32],
    mut f: impl FnMut(ProcInfo),
) -> bool {
    let Scratch { seen, listed } = scratch;
    let mut seen_len = 0usize;
    let mut visit = |pid: u32| {
        if pid >= min_pid && skip.binary_search(&pid).is_err() {
            if let Some(info) = proc_info(pid, uids) {
                f(info);
            }
        }
    };
    for _ in 0..8 {
        let Some((len, overflow)) = list_pids(listed) else {
            return false;
        };
        let mut new = false;
        for &pid in &listed[..len] {
            if let Err(at) = seen[..seen_len].binary_search(&pid) {
                new = true;
                visit(pid);
                if seen_len < MAX_LISTED {
                    seen.copy_within(at..seen_len, at + 1);
                    seen[at] = pid;
                    seen_len += 1;
                }
            }
        }
        if overflow {
            // More processes than fit: stream the ones past the listing, once.
            let last = listed[len - 1];
            return walk_proc(|pid| {
                if pid > last {
                    visit(pid);
                }
            });
        }
        if !new {
            break;
        }
    }
    true
}

/// Calls `f` with every pid in `/proc` from `min_pid` up (one listing).
pub(crate) fn for_each_pid(min_pid: u32, mut f: impl FnMut(u32)) -> bool {
    walk_proc(|pid| {
        if pid >= min_pid {
            f(pid)
        }
    })
}

/// The pids in `/proc`, ascending; `true` with them if there were more than fit.
fn list_pids(out: &mut [u32; MAX_LISTED]) -> Option<(usize, bool)> {
    let mut len = 0usize;
    let mut overflow = false;
    let ok = walk_proc(|pid| {
        if len < out.len() {
            out[len] = pid;
            len += 1;
        } else {
            overflow = true;
        }
    });
    // /proc lists pids in ascending order; sort anyway, the search above relies on it.
    out[..len].sort_unstable();
    ok.then_some((len, overflow && len > 0))
}

/// Calls `f` with each pid directory of `/proc`.
fn walk_proc(mut f: impl FnMut(u32)) -> bool {
    let Some(dir) = rustix::fs::open(
        c"/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok() else {
        return false;
    };
    platform::for_each_dir_entry(dir.as_fd(), |name| {
        if let Some(pid) = parse_pid(name) {
            f(pid);
        }
    })
}

fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in name {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    (v > 0).then_some(v)
}

/// Marks the processes reachable from the marked ones: their children, and the members of
/// sessions or process groups they lead, repeated until nothing changes. A mark is any value
/// other than `T::default()` — `true`, or the number of the tree a process belongs to — and
/// is passed on as it is. `infos` is sorted by pid: each look-up is a binary search, so a pass
/// over thousands of processes stays cheap.
pub(crate) fn close_over_descendants<T: Copy + Default + PartialEq>(
    infos: &[ProcInfo],
    marks: &mut [T],
) {
    let unmarked = T::default();
    loop {
        let mut changed = false;
        for i in 0..infos.len() {
            if marks[i] != unmarked {
                continue;
            }
            let p = infos[i];
            // The process whose pid is a session or group id leads that session or group.
            let mark_of = |pid: u32| {
                let at = infos.binary_search_by_key(&pid, |q| q.pid).ok()?;
                (pid != p.pid && marks[at] != unmarked).then_some(marks[at])
            };
            if let Some(mark) =
                mark_of(p.ppid).or_else(|| mark_of(p.sid)).or_else(|| mark_of(p.pgid))
            {
                marks[i] = mark;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Streams an environment block (`KEY=VALUE\0...`) and reports whether one entry is exactly
/// `needle` (`exact`) or starts with it. Fed chunk by chunk, it never needs the whole block.
#[derive(Debug)]
pub(crate) struct EnvMatcher<'a> {
    needle: &'a [u8],
    exact: bool,
    matched: usize,
    dead: bool,
    found: bool,
}

impl<'a> EnvMatcher<'a> {
    pub(crate) fn new(needle: &'a [u8], exact: bool) -> Self {
        EnvMatcher { needle, exact, matched: 0, dead: false, found: false }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            if self.found {
                return true;
            }
            if b == 0 {
                if !self.dead && self.matched == self.needle.len() {
                    self.found = true;
                    return true;
                }
                self.matched = 0;
                self.dead = false;
            } else if self.dead {
            } else if self.matched < self.needle.len() {
                if b == self.needle[self.matched] {
                    self.matched += 1;
                } else {
                    self.dead = true;
                }
            } else if self.exact {
                self.dead = true;
            } else {
                self.found = true;
            }
        }
        self.found
    }

    pub(crate) fn finish(&self) -> bool {
        self.found || (!self.dead && self.matched == self.needle.len() && self.matched > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(env: &[u8], needle: &[u8], exact: bool) -> bool {
        let mut m = EnvMatcher::new(needle, exact);
        m.feed(env) || m.finish()
    }

    #[test]
    fn marker_matches_whole_entries_only() {
        let env = b"A=1\0MIRAKURU_OWNER=12:abc\0B=2\0";
        assert!(matches(env, b"MIRAKURU_OWNER=12:abc", true));
        assert!(
            !matches(env, b"MIRAKURU_OWNER=12:ab", true),
            "a prefix of the value is not the marker"
        );
        assert!(!matches(env, b"MIRAKURU_OWNER=2:abc", true));
        assert!(!matches(b"XMIRAKURU_OWNER=12:abc\0", b"MIRAKURU_OWNER=12:abc", true));
        assert!(
            matches(b"MIRAKURU_OWNER=12:abc", b"MIRAKURU_OWNER=12:abc", true),
            "last entry without NUL"
        );
    }

    #[test]
    fn owner_prefix_needs_the_colon() {
        // mirakuru's defect: owner pid 12 matched 123's processes.
        assert!(!matches(b"MIRAKURU_OWNER=123:ff\0", b"MIRAKURU_OWNER=12:", false));
        assert!(matches(b"MIRAKURU_OWNER=12:ff\0", b"MIRAKURU_OWNER=12:", false));
    }

    #[test]
    fn matcher_works_across_chunks() {
        let mut m = EnvMatcher::new(b"MIRAKURU_OWNER=7:x", true);
        assert!(!m.feed(b"A=b\0MIRAKURU_OW"));
        assert!(!m.feed(b"NER=7:"));
        assert!(m.feed(b"x\0C=d\0"));
    }

    #[test]
    fn descendants_and_session_members_are_reached() {
        let p = |pid, ppid, pgid, sid| ProcInfo { pid, ppid, pgid, sid, start_time: 0 };
        let infos = [
            p(10, 1, 10, 10),  // leader (root)
            p(11, 10, 10, 10), // child
            p(20, 1, 20, 20),  // daemon that escaped: own session, reparented to init
            p(21, 20, 20, 20), // its worker
            p(30, 1, 30, 30),  // a stranger
        ];
        let mut selected = [true, false, true, false, false];
        close_over_descendants(&infos, &mut selected);
        assert_eq!(selected, [true, true, true, true, false]);
        // Marks are passed on as they are: two trees stay apart.
        let mut trees = [1u32, 0, 2, 0, 0];
        close_over_descendants(&infos, &mut trees);
        assert_eq!(trees, [1, 1, 2, 2, 0]);
    }

    #[test]
    fn environ_of_a_live_process_is_matched() {
        if !platform::HAS_PROCFS {
            return;
        }
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("MIRAKURU_OWNER", "123:abc")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        // Right after exec, the kernel has not yet published the new environment; the
        // sweep copes by repeating itself, this test by waiting a moment.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let found = environ_match(pid, b"MIRAKURU_OWNER=123:abc", true);
        let prefix = environ_match(pid, b"MIRAKURU_OWNER=123:", false);
        let other = environ_match(pid, b"MIRAKURU_OWNER=12:", false);
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert_eq!((found, prefix, other), (Some(true), Some(true), Some(false)));
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = b"42 (a) b (c)) S 7 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        let info = parse_stat(42, stat).expect("parses");
        assert_eq!(info, ProcInfo { pid: 42, ppid: 7, pgid: 42, sid: 42, start_time: 12345 });
    }

    #[test]
    fn every_process_is_listed_once() {
        if !platform::HAS_PROCFS {
            return;
        }
        let mut scratch = Box::new(Scratch::new());
        let mut pids = Vec::new();
        assert!(for_each_process(&mut scratch, &[], 0, &[], |p| pids.push(p.pid)));
        let me = std::process::id();
        assert!(pids.contains(&me), "this process is listed");
        let len = pids.len();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), len, "no process twice");
    }
}
