//! The end-of-run check that the benchmark left no process behind, on either side.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mirakuru_test::Tag;

/// One process, as /proc shows it.
struct Proc {
    ppid: u32,
    zombie: bool,
    tagged: bool,
    cmdline: String,
    exe: Option<std::path::PathBuf>,
}

/// Processes this run left behind: those carrying `tag`, those whose command line names the
/// run's temporary root (nginx rewrites its environment, so the tag is lost there), our
/// children (except the library's reaper, a fork of this binary that never execs and lives
/// until we exit), and all their descendants. Waits up to `grace` for them to go, then kills
/// what is left (SIGKILL) and returns their descriptions.
pub fn check(tag: &Tag, root: &str, grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    loop {
        let left = find(tag, root);
        if left.is_empty() || Instant::now() >= deadline {
            for (pid, _) in &left {
                // SAFETY: kill only takes integers; best effort.
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
            return left.into_iter().map(|(_, what)| what).collect();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn find(tag: &Tag, root: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let procs = snapshot(tag);
    // The helper runs this binary too, so a child is told from the reaper by its command line
    // as well: only a fork that never exec'd has ours.
    let reaper_like =
        |p: &Proc| procs.get(&me).is_some_and(|m| p.exe == m.exe && p.cmdline == m.cmdline);
    let is_root = |pid: &u32, p: &Proc| {
        *pid != me && (p.tagged || p.cmdline.contains(root) || (p.ppid == me && !reaper_like(p)))
    };
    let mut found: HashSet<u32> =
        procs.iter().filter(|(pid, p)| is_root(pid, p)).map(|(pid, _)| *pid).collect();
    // Descendants of what was found (nginx workers, PostgreSQL backends...).
    loop {
        let more: Vec<u32> = procs
            .iter()
            .filter(|(pid, p)| !found.contains(pid) && found.contains(&p.ppid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            break;
        }
        found.extend(more);
    }
    let mut left: Vec<(u32, String)> = found
        .into_iter()
        .filter_map(|pid| {
            let p = procs.get(&pid)?;
            // Zombies of other parents are not ours to reap; our own would be a leak.
            if p.zombie && p.ppid != me {
                return None;
            }
            let state = if p.zombie { " (zombie)" } else { "" };
            Some((pid, format!("{pid} ppid {} {}{state}", p.ppid, p.cmdline)))
        })
        .collect();
    left.sort();
    left
}

fn snapshot(tag: &Tag) -> HashMap<u32, Proc> {
    let needle = format!("{}={}", Tag::VAR, tag.value());
    let Ok(dir) = std::fs::read_dir("/proc") else { return HashMap::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            let tagged = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == needle.as_bytes()));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
                .unwrap_or_default();
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let zombie = state == "Z" || state == "X";
            Some((pid, Proc { ppid, zombie, tagged, cmdline, exe }))
        })
        .collect()
}
