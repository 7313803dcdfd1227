//! Finding every process of a tree, including descendants that left its process group.
//!
//! A service is spawned as a session leader (so its session id and process group id equal its
//! pid) with an owner marker in its environment. Its tree is then:
//!
//! - the leader, and every process in its session or process group;
//! - every process whose environment holds the marker, matched *exactly* — Python mirakuru
//!   matched a substring of the value, so pid `12` also matched `4123:…` and killed other
//!   workers' services (reference §2.15);
//! - the daemon pids the service reported (a pid file), while they keep their start time;
//! - transitively, the children of all of these and the members of any session they lead —
//!   that catches a double-forked daemon (`setsid`, new session) whose environment was
//!   overwritten by its process title (nginx and PostgreSQL do that), as long as one of its
//!   ancestors was found while alive.
//!
//! Only processes of our own effective user are ever considered.
//!
//! The scanning primitives allocate nothing and use only async-signal-safe system calls:
//! the reaper (`reaper.rs`) runs them in a forked child of a multi-threaded process.

/// What the sweep needs to know about one process, read from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) pgid: u32,
    pub(crate) sid: u32,
    /// Clock ticks since boot; a recycled pid has a different start time.
    pub(crate) start_time: u64,
}

/// The name of the environment variable that marks a service's tree.
pub(crate) const MARKER_VAR: &str = "MIRAKURU_OWNER";

/// Marks the processes reachable from roots: children of selected processes and members of
/// sessions or groups led by selected processes, repeated until nothing changes.
pub(crate) fn close_over_descendants(infos: &[ProcInfo], selected: &mut [bool]) {
    loop {
        let mut changed = false;
        for i in 0..infos.len() {
            if selected[i] {
                continue;
            }
            let p = infos[i];
            let reached = infos.iter().zip(selected.iter()).any(|(q, &sel)| {
                sel && (q.pid == p.ppid
                    || (q.pid == q.sid && q.sid == p.sid)
                    || (q.pid == q.pgid && q.pgid == p.pgid))
            });
            if reached {
                selected[i] = true;
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

#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(target_os = "linux")]
mod linux {
    use super::{EnvMatcher, ProcInfo};
    use std::os::fd::RawFd;

    /// Formats `/proc/<pid>/<leaf>\0` into `buf` without allocating.
    fn proc_path<'b>(buf: &'b mut [u8; 64], pid: u32, leaf: &[u8]) -> &'b [u8] {
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
        for &b in b"/proc/" {
            buf[at] = b;
            at += 1;
        }
        for i in (0..len).rev() {
            buf[at] = digits[i];
            at += 1;
        }
        buf[at] = b'/';
        at += 1;
        for &b in leaf.iter().take(64 - at - 1) {
            buf[at] = b;
            at += 1;
        }
        buf[at] = 0;
        &buf[..=at]
    }

    fn open_ro(path: &[u8]) -> Option<RawFd> {
        // SAFETY: `path` is NUL-terminated (built by proc_path).
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        (fd >= 0).then_some(fd)
    }

    fn close(fd: RawFd) {
        // SAFETY: closes an fd this module opened and still owns.
        unsafe { libc::close(fd) };
    }

    fn read_some(fd: RawFd, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            n as usize
        } else {
            0
        }
    }

    /// Reads `/proc/<pid>/stat`; `None` if the process is gone, a zombie, or owned by a user
    /// not in `uids` (an empty `uids` accepts every user).
    pub(crate) fn proc_info(pid: u32, uids: &[u32]) -> Option<ProcInfo> {
        let mut path = [0u8; 64];
        let fd = open_ro(proc_path(&mut path, pid, b"stat"))?;
        // SAFETY: `st` is plain data filled by fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes only into `st`.
        let owner_ok = unsafe { libc::fstat(fd, &mut st) } == 0
            && (uids.is_empty() || uids.contains(&st.st_uid));
        let mut buf = [0u8; 1024];
        let len = if owner_ok { read_some(fd, &mut buf) } else { 0 };
        close(fd);
        if len == 0 {
            return None;
        }
        parse_stat(pid, &buf[..len])
    }

    /// Parses the fields after the command name, which is in parentheses and may itself
    /// contain spaces and parentheses: the last ')' ends it.
    pub(crate) fn parse_stat(pid: u32, stat: &[u8]) -> Option<ProcInfo> {
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
        // Fields (1-based, man proc_pid_stat): 3 state, 4 ppid, 5 pgrp, 6 session, 22 starttime.
        // Zombies (and dead entries) hold nothing to stop; their parent reaps them.
        if matches!(stat.get(close + 2), Some(b'Z' | b'X' | b'x')) {
            return None;
        }
        let ppid = nth(1)? as u32; // skips field 3, the state
        let pgid = nth(0)? as u32;
        let sid = nth(0)? as u32;
        let start_time = nth(15)?;
        Some(ProcInfo { pid, ppid, pgid, sid, start_time })
    }

    /// Whether `/proc/<pid>/environ` holds an entry matching `needle` (see [`EnvMatcher`]).
    pub(crate) fn environ_matches(pid: u32, needle: &[u8], exact: bool) -> bool {
        environ_match(pid, needle, exact).unwrap_or(false)
    }

    /// [`environ_matches`], with `None` when there was no environment to read: the process
    /// is gone or exiting (or was started with an empty environment).
    pub(crate) fn environ_match(pid: u32, needle: &[u8], exact: bool) -> Option<bool> {
        let mut path = [0u8; 64];
        let fd = open_ro(proc_path(&mut path, pid, b"environ"))?;
        let mut matcher = EnvMatcher::new(needle, exact);
        let mut buf = [0u8; 4096];
        let mut any = false;
        let found = loop {
            let n = read_some(fd, &mut buf);
            if n == 0 {
                break matcher.finish();
            }
            any = true;
            if matcher.feed(&buf[..n]) {
                break true;
            }
        };
        close(fd);
        any.then_some(found)
    }

    /// How many pids one listing holds; beyond, the rest is streamed without a second look.
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

    /// Calls `f` once with every process of the users `uids`, read straight from `/proc` with
    /// getdents64(2). Returns false if `/proc` cannot be read.
    ///
    /// One listing is a snapshot that goes stale while it is read: a process listed alive can
    /// fork and exit before its stat is read, and its child, created after the listing, would
    /// be missed. So `/proc` is listed again until a listing shows no new pid.
    ///
    /// Pids below `min_pid` are listed but not read: a caller that knows no pid has wrapped
    /// around since its tree began can skip every older process.
    pub(crate) fn for_each_process(
        scratch: &mut Scratch,
        uids: &[u32],
        min_pid: u32,
        mut f: impl FnMut(ProcInfo),
    ) -> bool {
        let Scratch { seen, listed } = scratch;
        let mut seen_len = 0usize;
        for _ in 0..8 {
            let Some((len, overflow)) = list_pids(listed) else {
                return false;
            };
            let mut new = false;
            for &pid in &listed[..len] {
                if let Err(at) = seen[..seen_len].binary_search(&pid) {
                    new = true;
                    if pid >= min_pid {
                        if let Some(info) = proc_info(pid, uids) {
                            f(info);
                        }
                    }
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
                    if pid > last && pid >= min_pid {
                        if let Some(info) = proc_info(pid, uids) {
                            f(info);
                        }
                    }
                });
            }
            if !new {
                break;
            }
        }
        true
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
        let Some(dir) = open_dir(b"/proc\0") else {
            return false;
        };
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: getdents64 writes at most `len` bytes of dirents into `buf`.
            let n =
                unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            while at + 19 < n as usize {
                // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
                let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                // A record shorter than its header would make the slice below panic, and a
                // panic must never happen here: this code runs in a forked child (reaper.rs).
                if reclen < 20 {
                    break;
                }
                let name = &buf[at + 19..(at + reclen).min(n as usize)];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                if let Some(pid) = parse_pid(name) {
                    f(pid);
                }
                at += reclen;
            }
        }
        close(dir);
        true
    }

    fn open_dir(path: &[u8]) -> Option<RawFd> {
        // SAFETY: `path` is NUL-terminated.
        let fd = unsafe {
            libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        };
        (fd >= 0).then_some(fd)
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
}

/// Everything needed to recognise the members of one service's tree.
#[derive(Debug, Clone)]
pub(crate) struct TreeId {
    /// The spawned process: session leader and process group leader.
    pub(crate) leader: u32,
    /// Its start time (0 if unknown), to tell it from a process that was given its pid.
    pub(crate) leader_start: u64,
    /// `MIRAKURU_OWNER=<owner pid>:<random>` as bytes.
    pub(crate) marker_entry: Vec<u8>,
    /// The users whose processes may belong to the tree: ours, and the one the service runs
    /// as; empty for root, which owns them all. Processes of other users are never considered.
    pub(crate) uids: Vec<u32>,
    /// How many processes the system had forked when the leader was spawned (`/proc/stat`).
    pub(crate) forks_at_spawn: Option<u64>,
    /// Daemons the service reported (pid files), with the start time seen when they were.
    pub(crate) daemons: Vec<(u32, u64)>,
}

/// The current members of a tree (never including the calling process), with their start
/// times so that a signal can be checked against pid reuse.
#[cfg(target_os = "linux")]
pub(crate) fn tree_members(tree: &TreeId) -> Vec<ProcInfo> {
    // One sweep is a snapshot that can miss a process born after its listing of `/proc`: a
    // launcher's intermediate process forks the daemon and exits, and if it is exiting by the
    // time its environment is read, neither it nor the daemon is found. The tree then looks
    // empty while the daemon runs, and "empty" is final for the callers (a launcher "left
    // nothing", a stop is complete); seen under load. A process that vanished while the sweep
    // read it may have left such a child: when nothing but the leader was found, sweep once
    // more — the child was forked before its parent began to exit, so this listing has it,
    // and its pid is larger than its parent's, so only those need reading. A non-empty answer
    // needs no second look: the callers sweep again when the members found exit.
    let (mut members, vanished) = sweep_tree(tree, 0);
    if let Some(oldest) = vanished {
        if members.iter().all(|p| p.pid == tree.leader) {
            let (more, _) = sweep_tree(tree, oldest);
            members.extend(more.into_iter().filter(|p| p.pid != tree.leader));
        }
    }
    members
}

/// One sweep for [`tree_members`], reading only pids from `at_least` up when pids cannot have
/// wrapped around; also gives the smallest pid that vanished while it was read.
#[cfg(target_os = "linux")]
fn sweep_tree(tree: &TreeId, at_least: u32) -> (Vec<ProcInfo>, Option<u32>) {
    let me = std::process::id();
    let mut infos = Vec::with_capacity(64);
    let mut scratch = Box::new(Scratch::new());
    // Every member was created after the leader, and — unless pids have wrapped around
    // since — has a larger pid. Skipping the older processes matters: reading one
    // /proc/<pid>/stat costs about 10 µs, and a stop reads the tree twice.
    let min_pid =
        if no_wrap_since(tree.leader, tree.forks_at_spawn) { tree.leader.max(at_least) } else { 0 };
    for_each_process(&mut scratch, &tree.uids, min_pid, |info| {
        if info.pid != me {
            infos.push(info);
        }
    });
    // Once something other than us has reaped the leader, its pid can be given to a stranger,
    // which may lead a session or group of that number in turn. Then nothing is ours by that
    // number: the kernel never recycles a pid still used as a session or group id, so no
    // process of the tree can be left in the leader's session or group.
    let recycled = tree.leader_start != 0
        && infos.iter().any(|p| p.pid == tree.leader && p.start_time != tree.leader_start);
    let mut selected: Vec<bool> = infos
        .iter()
        .map(|p| {
            (!recycled && (p.pid == tree.leader || p.sid == tree.leader || p.pgid == tree.leader))
                || tree.daemons.iter().any(|&(pid, start)| pid == p.pid && start == p.start_time)
        })
        .collect();
    let mut vanished: Option<u32> = None;
    for (i, p) in infos.iter().enumerate() {
        if selected[i] {
            continue;
        }
        match environ_match(p.pid, &tree.marker_entry, true) {
            Some(found) => selected[i] = found,
            // No environment: exiting (its memory is gone before it turns zombie), or a
            // kernel thread, which has none ever (all are children of kthreadd, pid 2).
            None if p.pid != 2 && p.ppid != 2 => {
                vanished = Some(vanished.map_or(p.pid, |v| v.min(p.pid)));
            }
            None => {}
        }
    }
    close_over_descendants(&infos, &mut selected);
    let members = infos.into_iter().zip(selected).filter_map(|(p, sel)| sel.then_some(p));
    (members.collect(), vanished)
}

/// Whether every process created since the leader was spawned has a larger pid than it.
///
/// Pids are handed out upwards from the last one given, skipping those in use, and wrap
/// around at `pid_max`. Each fork moves that cursor up by one at least, so a cursor that went
/// round and came back above the leader moved almost `pid_max` places while the system forked
/// no more processes than the distance it now stands above the leader — possible only with
/// nearly every pid in use, which we rule out. When in doubt, the answer is no and the caller
/// reads every process. Were a wrap ever missed, a leftover would still be killed by the
/// reaper when the binary exits.
#[cfg(target_os = "linux")]
fn no_wrap_since(leader: u32, forks_at_spawn: Option<u64>) -> bool {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let (Some(then), Some(now)) = (forks_at_spawn, forks_since_boot()) else { return false };
    let Some(last) =
        read("/proc/sys/kernel/ns_last_pid").and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return false;
    };
    // The fourth field of loadavg is "runnable/total" scheduling entities: the pids in use.
    let in_use = read("/proc/loadavg")
        .and_then(|s| s.split_whitespace().nth(3)?.split_once('/')?.1.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let leader = u64::from(leader);
    last >= leader && now.saturating_sub(then) <= last - leader + 1 && in_use < pid_max() / 2
}

/// How many processes (and threads) the system has forked since boot: `processes` in
/// `/proc/stat` (proc_stat(5)). Counted across all pid namespaces, so it can only overstate
/// the pids used in ours — the safe direction.
#[cfg(target_os = "linux")]
pub(crate) fn forks_since_boot() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("processes ")?.trim().parse().ok())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn forks_since_boot() -> Option<u64> {
    None
}

/// `/proc/sys/kernel/pid_max`, read once.
#[cfg(target_os = "linux")]
fn pid_max() -> u64 {
    static PID_MAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PID_MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32768)
    })
}

/// Without `/proc`, the tree is what the process group holds; `killpg` reaches it.
#[cfg(not(target_os = "linux"))]
pub(crate) fn tree_members(_tree: &TreeId) -> Vec<ProcInfo> {
    Vec::new()
}

/// The start time of a live process, used to recognise it later.
#[cfg(target_os = "linux")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    proc_info(pid, &[]).map(|p| p.start_time)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_time(_pid: u32) -> Option<u64> {
    Some(0)
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
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn environ_of_a_live_process_is_matched() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("MIRAKURU_OWNER", "123:abc")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        // Right after exec, the kernel has not yet published the new environment; the
        // sweep copes by repeating itself, this test by waiting a moment.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let found = environ_matches(pid, b"MIRAKURU_OWNER=123:abc", true);
        let prefix = environ_matches(pid, b"MIRAKURU_OWNER=123:", false);
        let other = environ_matches(pid, b"MIRAKURU_OWNER=12:", false);
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(found && prefix && !other, "{found} {prefix} {other}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = b"42 (a) b (c)) S 7 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        let info = parse_stat(42, stat).expect("parses");
        assert_eq!(info, ProcInfo { pid: 42, ppid: 7, pgid: 42, sid: 42, start_time: 12345 });
    }
}
