//! Finding every process of one service's tree, including descendants that left its process
//! group.
//!
//! A service is spawned as a session leader (so its session id and process group id equal its
//! pid) with an owner marker in its environment. Its tree is then:
//!
//! - the leader, and every process in its session or process group — while the leader's pid
//!   is known to be reserved for it (see `TreeId::number_is_ours`);
//! - every process whose environment holds the marker, matched *exactly*: Python mirakuru
//!   matched a substring of the value, so pid `12` also matched `4123:…` and killed other
//!   workers' services (docs/design.md §2.15);
//! - the processes adopted as the service's (a pid file's daemon, sd_notify `MAINPID=`, the
//!   owner of the socket its check reached), while they keep their start time;
//! - transitively, the children of all of these and the members of any session or group they
//!   lead — that catches a double-forked daemon (`setsid`, new session) whose environment was
//!   overwritten by its process title (nginx and PostgreSQL do that), as long as one of its
//!   ancestors was found while alive.
//!
//! Only processes of our own effective user are considered (as root, every user's: services
//! may run as another user).

use std::collections::HashMap;

use super::leaders;
use super::procfs::{self, close_over_descendants, ProcInfo, Scratch};
use crate::platform;

/// The name of the environment variable that marks a service's tree.
pub(crate) const MARKER_VAR: &str = "MIRAKURU_OWNER";

/// Everything needed to recognise the members of one service's tree.
#[derive(Debug, Clone)]
pub(crate) struct TreeId {
    /// The spawned process: session leader and process group leader.
    pub(crate) leader: u32,
    /// Its start time (0 if unknown), to tell it from a process that was given its pid.
    pub(crate) leader_start: u64,
    /// Whether the leader's pid — and so its session and group number — is still reserved
    /// for it: it runs, or is our unreaped zombie. Once something else has reaped it, the
    /// number may be handed to a stranger, who may lead a session of that number in turn.
    pub(crate) number_is_ours: bool,
    /// The user the service runs as.
    pub(crate) service_uid: u32,
    /// `MIRAKURU_OWNER=<owner pid>:<random>` as bytes.
    pub(crate) marker_entry: Vec<u8>,
    /// The users whose processes may belong to the tree: ours, and the one the service runs
    /// as; empty for root, which owns them all. Processes of other users are never considered.
    pub(crate) uids: Vec<u32>,
    /// How many processes the system had forked when the leader was spawned (`/proc/stat`).
    pub(crate) forks_at_spawn: Option<u64>,
    /// Processes adopted as the service's, with the start time seen when they were.
    pub(crate) adopted: Vec<(u32, u64)>,
}

/// The current members of a tree (never including the calling process), with their start
/// times so that a signal can be checked against pid reuse.
pub(crate) fn tree_members(tree: &TreeId) -> Vec<ProcInfo> {
    members_of_all(std::slice::from_ref(tree)).pop().unwrap_or_default()
}

/// The current members of each of `trees`, from one pass over `/proc`: the exit hook stops
/// every leaked tree together, and a pass per tree made that quadratic (1,000 leaked
/// executors took 160 s).
pub(crate) fn members_of_all(trees: &[TreeId]) -> Vec<Vec<ProcInfo>> {
    // One sweep is a snapshot that can miss a process born after its listing of `/proc`: a
    // launcher's intermediate process forks the daemon and exits, and if it is exiting by the
    // time its environment is read, neither it nor the daemon is found. The tree then looks
    // empty while the daemon runs, and "empty" is final for the callers (a launcher "left
    // nothing", a stop is complete); seen under load. A process that vanished while the sweep
    // read it may have left such a child: when a tree showed nothing but its leader, sweep
    // once more — the child was forked before its parent began to exit, so this listing has
    // it, and its pid is larger than its parent's, so only those need reading. A non-empty
    // answer needs no second look: the callers sweep again when the members found exit.
    let (mut members, vanished) = sweep_trees(trees, 0);
    let only_leader = |t: &TreeId, found: &[ProcInfo]| found.iter().all(|p| p.pid == t.leader);
    let Some(oldest) = vanished else { return members };
    if !trees.iter().zip(&members).any(|(t, found)| only_leader(t, found)) {
        return members;
    }
    let (more, _) = sweep_trees(trees, oldest);
    for ((tree, found), more) in trees.iter().zip(&mut members).zip(more) {
        if only_leader(tree, found) {
            found.extend(more.into_iter().filter(|p| p.pid != tree.leader));
        }
    }
    members
}

/// One pass over `/proc` for the members of `trees`, reading only pids from `at_least` up when
/// pids cannot have wrapped around; also gives the smallest pid that vanished while it was read.
fn sweep_trees(trees: &[TreeId], at_least: u32) -> (Vec<Vec<ProcInfo>>, Option<u32>) {
    let me = std::process::id();
    // The users any tree may have processes of; none (every user) if one may have anyone's.
    let mut uids: Vec<u32> = trees.iter().flat_map(|t| t.uids.iter().copied()).collect();
    if trees.iter().any(|t| t.uids.is_empty()) {
        uids.clear();
    }
    uids.sort_unstable();
    uids.dedup();
    // Every member was created after its leader, and — unless pids have wrapped around
    // since — has a larger pid. Skipping the older processes matters: reading one
    // /proc/<pid>/stat costs about 10 µs, and a stop reads the tree twice.
    let pids_now = PidCursor::now();
    let min_pid = trees
        .iter()
        .map(|t| if pids_now.no_wrap_since(t) { t.leader.max(at_least) } else { 0 })
        .min()
        .unwrap_or(0);
    // A session can be left but never joined: what is in this binary's session (what the
    // tests run themselves), or in the session of another service that still runs, belongs
    // to no tree swept here (unless a tree adopted it). Such processes are not read — the
    // cost of a sweep among a thousand live services.
    let my_session = my_session();
    let adopted = |pid: u32| trees.iter().any(|t| t.adopted.iter().any(|&(p, _)| p == pid));
    let mut others = leaders::running();
    others.retain(|&leader| !trees.iter().any(|t| t.leader == leader) && !adopted(leader));
    others.sort_unstable();
    let mut infos = Vec::with_capacity(64);
    let mut scratch = Box::new(Scratch::new());
    procfs::for_each_process(&mut scratch, &uids, min_pid, &others, |info| {
        if info.pid != me {
            infos.push(info);
        }
    });
    infos.sort_unstable_by_key(|p| p.pid);
    // A process's mark: the number of its tree, counted from 1; 0 for none.
    let mark = |i: usize| i as u32 + 1;
    // The kernel never recycles a pid still used as a session or group id, so while a
    // leader's number is reserved, whatever is in its session or group is its tree's.
    let start_of =
        |pid: u32| infos.binary_search_by_key(&pid, |p| p.pid).ok().map(|at| infos[at].start_time);
    let by_number: HashMap<u32, u32> = (trees.iter().enumerate())
        .filter(|(_, t)| t.number_is_ours && start_of(t.leader).is_none_or(|s| s == t.leader_start))
        .map(|(i, t)| (t.leader, mark(i)))
        .collect();
    let by_adoption: HashMap<(u32, u64), u32> = (trees.iter().enumerate())
        .flat_map(|(i, t)| t.adopted.iter().map(move |&adopted| (adopted, mark(i))))
        .collect();
    let by_marker: HashMap<&[u8], u32> =
        trees.iter().enumerate().map(|(i, t)| (t.marker_entry.as_slice(), mark(i))).collect();
    let mut marks = vec![0u32; infos.len()];
    let mut vanished: Option<u32> = None;
    for (p, m) in infos.iter().zip(&mut marks) {
        let known = [p.pid, p.sid, p.pgid].iter().find_map(|n| by_number.get(n));
        if let Some(&known) = known.or_else(|| by_adoption.get(&(p.pid, p.start_time))) {
            *m = known;
            continue;
        }
        if p.sid == my_session || others.binary_search(&p.sid).is_ok() {
            continue;
        }
        match marker_in_environ(p.pid, &by_marker) {
            Some(found) => *m = found,
            // No environment: exiting (its memory is gone before it turns zombie), or a
            // kernel thread, which has none ever (all are children of kthreadd, pid 2).
            None if p.pid != 2 && p.ppid != 2 => {
                vanished = Some(vanished.map_or(p.pid, |v| v.min(p.pid)));
            }
            None => {}
        }
    }
    close_over_descendants(&infos, &mut marks);
    let mut members = vec![Vec::new(); trees.len()];
    for (p, m) in infos.into_iter().zip(marks) {
        if m != 0 {
            members[m as usize - 1].push(p);
        }
    }
    (members, vanished)
}

/// The mark of the tree whose marker `pid`'s environment holds, matched as a whole entry
/// (0 for none); `None` if it has no environment to read.
fn marker_in_environ(pid: u32, by_marker: &HashMap<&[u8], u32>) -> Option<u32> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok().filter(|e| !e.is_empty())?;
    let prefix = MARKER_VAR.as_bytes();
    let found = environ
        .split(|&b| b == 0)
        .filter(|entry| entry.starts_with(prefix) && entry.get(prefix.len()) == Some(&b'='))
        .find_map(|entry| by_marker.get(entry));
    Some(found.copied().unwrap_or(0))
}

/// This binary's orphans: processes it did not start whose parent died, reparented to it as
/// the subreaper of its descendants (`platform::make_child_subreaper`) — the daemons services
/// left behind. Not its own children: those are in its session (what the tests start with
/// `std::process::Command`), or lead a tree of their own, or are the reaper: the caller
/// removes those. Only processes started after `since` (a leader's start time) are
/// considered.
pub(crate) fn orphans(since: u64) -> Vec<u32> {
    let me = std::process::id();
    let my_session = my_session();
    let me_uid = platform::geteuid();
    let uids = if me_uid == 0 { Vec::new() } else { vec![me_uid] };
    let mut scratch = Box::new(Scratch::new());
    let mut found = Vec::new();
    procfs::for_each_process(&mut scratch, &uids, 0, &[], |p| {
        if p.ppid == me && p.sid != my_session && p.start_time >= since {
            found.push(p.pid);
        }
    });
    // The reaper of a test binary this one ran (a child test process killed, whose reaper came
    // to this binary as an orphan) is still at work: taken for a daemon and killed, it would
    // leave that binary's services running.
    found.retain(|pid| {
        std::fs::read(format!("/proc/{pid}/comm")).map_or(true, |c| c != b"mirakuru-reaper\n")
    });
    // Nor is a run-scoped fixture's keeper, which comes to this binary when the test process
    // that started it (a child of this one) exits: it keeps the service of a whole run.
    found.retain(|pid| !is_keeper(*pid));
    found
}

/// Whether `pid` is a run-scoped fixture's keeper: its environment names the fixture it keeps.
fn is_keeper(pid: u32) -> bool {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let name = crate::run::KEEP.as_bytes();
    environ.split(|&b| b == 0).any(|e| e.starts_with(name) && e.get(name.len()) == Some(&b'='))
}

/// The zombies among this binary's children started since the tree's leader. (Not from
/// `/proc/self/task/*/children`: those lists skip entries while children come and go.)
pub(crate) fn zombie_children(tree: &TreeId) -> Vec<ProcInfo> {
    let me = std::process::id();
    let min_pid = if PidCursor::now().no_wrap_since(tree) { tree.leader } else { 0 };
    let mut zombies = Vec::new();
    procfs::for_each_pid(min_pid, |pid| {
        if let Some(z) = procfs::zombie_info(pid) {
            if z.ppid == me && z.start_time >= tree.leader_start {
                zombies.push(z);
            }
        }
    });
    zombies
}

/// Where pid allocation stands now, to tell whether pids have wrapped around since a tree's
/// leader was spawned; read once for any number of trees.
struct PidCursor {
    forks: Option<u64>,
    last_pid: Option<u64>,
    in_use: u64,
}

impl PidCursor {
    fn now() -> PidCursor {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        PidCursor {
            forks: forks_since_boot(),
            last_pid: read("/proc/sys/kernel/ns_last_pid").and_then(|s| s.trim().parse().ok()),
            // The fourth field of loadavg is "runnable/total" scheduling entities: pids in use.
            in_use: read("/proc/loadavg")
                .and_then(|s| s.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok())
                .unwrap_or(u64::MAX),
        }
    }

    /// Whether every process created since `tree`'s leader was spawned has a larger pid.
    ///
    /// Pids are handed out upwards from the last one given, skipping those in use, and wrap
    /// around at `pid_max`. Each fork moves that cursor up by one at least, so a cursor that
    /// went round and came back above the leader moved almost `pid_max` places while the
    /// system forked no more processes than the distance it now stands above the leader —
    /// possible only with nearly every pid in use, which we rule out. When in doubt, the
    /// answer is no and the caller reads every process. Were a wrap ever missed, a leftover
    /// would still be killed by the reaper when the binary exits.
    fn no_wrap_since(&self, tree: &TreeId) -> bool {
        let (Some(then), Some(now), Some(last)) = (tree.forks_at_spawn, self.forks, self.last_pid)
        else {
            return false;
        };
        let leader = u64::from(tree.leader);
        last >= leader
            && now.saturating_sub(then) <= last - leader + 1
            && self.in_use < pid_max() / 2
    }
}

/// How many processes (and threads) the system has forked since boot: `processes` in
/// `/proc/stat` (proc_stat(5)). Counted across all pid namespaces, so it can only overstate
/// the pids used in ours — the safe direction.
pub(crate) fn forks_since_boot() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("processes ")?.trim().parse().ok())
}

/// `/proc/sys/kernel/pid_max`, read once.
pub(crate) fn pid_max() -> u64 {
    static PID_MAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PID_MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32768)
    })
}

/// The uid owning a live process.
pub(crate) fn owner_uid(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The session of this binary: 0 when its leader lives outside this pid namespace (a
/// container's init started the binary without a session of its own), which is also the
/// number `/proc` shows for every process of that session. Not rustix: its `getsid` takes a
/// 0 from the kernel for a bug and panics (debug builds) or claims a non-zero pid.
fn my_session() -> u32 {
    nix::unistd::getsid(None).map_or(0, |s| s.as_raw().max(0) as u32)
}

/// The start time of a child of this binary that has not been reaped, a zombie included (its
/// pid cannot name another process until it is reaped). A launcher that daemonizes is often
/// a zombie by the time its spawn returns; read as "not running", its tree got the start
/// time 0, and every orphan born since boot became a candidate daemon of it — another
/// service's included.
pub(crate) fn child_start_time(pid: u32) -> Option<u64> {
    start_time(pid).or_else(|| procfs::zombie_info(pid).map(|z| z.start_time))
}

/// The start time of a live process, used to recognise it later. Without `/proc` there is
/// none to compare, and every process counts as the one first seen (0).
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    if !platform::HAS_PROCFS {
        return platform::process_exists(pid).then_some(0);
    }
    procfs::proc_info(pid, &[]).map(|p| p.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that exited and was not reaped still has its start time: a launcher that
    /// daemonized is often a zombie by the time its spawn returns.
    #[test]
    fn a_zombie_child_keeps_its_start_time() {
        if !platform::HAS_PROCFS {
            return;
        }
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while procfs::zombie_info(pid).is_none() {
            assert!(std::time::Instant::now() < deadline, "`true` never exited");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let zombie = procfs::zombie_info(pid).map(|z| z.start_time);
        assert_eq!(start_time(pid), None, "a zombie is not running");
        assert_eq!(child_start_time(pid), zombie);
        assert!(zombie.is_some_and(|t| t > 0));
        child.wait().expect("reap");
    }

    /// A tree whose leader is `leader`, recognised by its session and group number only.
    fn by_number(leader: u32, number_is_ours: bool) -> TreeId {
        TreeId {
            service_uid: platform::geteuid(),
            leader,
            leader_start: start_time(leader).unwrap_or(0),
            number_is_ours,
            marker_entry: b"MIRAKURU_OWNER=nobody:matches".to_vec(),
            uids: Vec::new(),
            forks_at_spawn: None,
            adopted: Vec::new(),
        }
    }

    /// Once the leader is known to have been reaped by something else, its number may be a
    /// stranger's session or group: nothing is selected by it any more (a stranger's session
    /// that was given the number used to be signalled by stop() and by the reaper).
    #[test]
    fn a_session_is_selected_by_number_only_while_the_number_is_the_services() {
        if !platform::HAS_PROCFS {
            return;
        }
        // A session leader with a member: `setsid sh -c 'sleep 30 & wait'`.
        let mut leader = std::process::Command::new("setsid")
            .args(["-w", "sh", "-c", "sleep 30 & wait"])
            .spawn()
            .expect("setsid");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let sid = procfs::proc_info(leader.id(), &[])
            .map(|p| p.sid)
            .filter(|&sid| sid != 0)
            .expect("its session");
        let members = |ours| tree_members(&by_number(sid, ours)).len();
        let while_ours = members(true);
        let once_reaped_elsewhere = members(false);
        let _ = leader.kill();
        let _ = std::process::Command::new("pkill").args(["-s", &sid.to_string()]).status();
        let _ = leader.wait();
        assert!(while_ours >= 2, "the session's processes: {while_ours}");
        assert_eq!(once_reaped_elsewhere, 0, "nothing is selected by a number no longer ours");
    }
}
