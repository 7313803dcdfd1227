//! Support for mirakuru's own tests and benchmark: where the helper binaries are, free ports,
//! short private temporary directories, and the checks that nothing was left running.
//!
//! Not published. The binaries of this package are `mirakuru-test-service` (a scriptable fake
//! service, whose code is [`test_service`]), `mirakuru-test-owner` (a program that owns
//! services, for tests that kill it), and the programs the tests run as scenarios
//! (`mirakuru-test-shared`, `-scenario`, `-stress`). The benchmark is the `mirakuru-bench`
//! package, in `bench/`.

pub mod test_service;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The path of a binary of this package, next to the running test binary.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test binary");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built; run the tests through cargo", path.display());
    path
}

/// Where a run-scoped test service counts its starts (`--count-file`): the file named by
/// `MIRAKURU_RUN_SCOPE_STARTS` (`.ci/run` and `mirakuru-bench suite` set it for a whole run,
/// and check it afterwards), else the fixture's own `{tmpdir}/starts`.
pub fn run_scope_starts_file() -> String {
    std::env::var("MIRAKURU_RUN_SCOPE_STARTS").unwrap_or_else(|_| "{tmpdir}/starts".into())
}

/// `mirakuru-test-service`, as a string for command lines.
pub fn service() -> String {
    bin_path("mirakuru-test-service").display().to_string()
}

/// A TCP port that was free a moment ago and that no other test of this binary got (see
/// [`mirakuru::free_port`]: bound without listening, so nothing can connect to it meanwhile).
pub fn free_port() -> u16 {
    mirakuru::free_port().expect("a free TCP port on 127.0.0.1")
}

/// A private (0700) temporary directory with a short path (unix socket paths are limited to
/// 107 bytes), removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mk-")
        .tempdir_in("/tmp")
        .expect("creating a temporary directory")
}

/// A unique environment tag: give it to a service, and find every process that inherited it.
#[derive(Debug, Clone)]
pub struct Tag(String);

impl Default for Tag {
    fn default() -> Self {
        Tag::new()
    }
}

impl Tag {
    /// The variable that carries tags.
    pub const VAR: &'static str = "MIRAKURU_TEST_TAG";

    /// A tag no other test of any run uses.
    pub fn new() -> Tag {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Tag(format!("{}-{}-{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// The tag's value.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// Live (non-zombie) processes carrying this tag.
    pub fn pids(&self) -> Vec<u32> {
        let needle = format!("{}={}", Tag::VAR, self.0);
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|entry| entry == needle.as_bytes()))
                    && !is_zombie(pid)
            })
            .collect()
    }

    /// Waits up to `timeout` until no process carries the tag; panics with what is left.
    pub fn assert_none_left_within(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.pids();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let described: Vec<String> = left.iter().map(|&p| describe(p)).collect();
                for &pid in &left {
                    // SAFETY: kill only takes integers; the test fails anyway, clean up.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
                panic!("processes left running: {}", described.join("; "));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`Tag::assert_none_left_within`] with 5 s.
    pub fn assert_none_left(&self) {
        self.assert_none_left_within(Duration::from_secs(5));
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(true)
}

/// `pid (cmdline)`, for failure messages.
pub fn describe(pid: u32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
        .unwrap_or_default();
    format!("{pid} ({cmd})")
}

/// Whether `pid` names a live, non-zombie process.
pub fn is_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks existence.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0;
    exists && !is_zombie(pid)
}

/// Waits up to `timeout` for `pid` to be gone (or a zombie).
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Waits up to `timeout` for `pid` to be gone; if it is not, kills it with SIGKILL so that the
/// failing test leaves nothing behind. Says whether it went by itself.
pub fn gone_or_killed(pid: u32, timeout: Duration) -> bool {
    let gone = wait_gone(pid, timeout);
    if !gone {
        // SAFETY: kill only takes integers; the test fails anyway, clean up.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    gone
}

/// The pid a pid file holds, once it is written (a daemon often writes it after it listens,
/// so after a readiness check passed), waiting up to `timeout`.
pub fn pid_from_file(path: &std::path::Path, timeout: Duration) -> Option<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let pid = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok());
        if pid.is_some() || Instant::now() >= deadline {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether a real server program is installed. When it is not, prints one line and returns
/// false, so the test can return; with `MIRAKURU_REQUIRE_SERVICES=1` (set by CI after
/// installing them) it fails the test instead.
pub fn require(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        || ["/usr/sbin", "/sbin"].iter().any(|d| std::path::Path::new(d).join(program).is_file());
    if found {
        return true;
    }
    if std::env::var("MIRAKURU_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{program} is required (MIRAKURU_REQUIRE_SERVICES=1) but not installed");
    }
    println!("skipped: {program} is not installed");
    false
}

/// A PostgreSQL server program (`initdb`, `postgres`, `pg_ctl`, `psql`): from PATH, or from
/// Debian's `/usr/lib/postgresql/<version>/bin`, newest version first. Like [`require`], prints
/// one line and returns `None` when missing, or fails with `MIRAKURU_REQUIRE_SERVICES=1`.
pub fn postgres_bin(program: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
    });
    let debian = || {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin").join(program)))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    };
    match on_path.or_else(debian) {
        Some(path) => Some(path),
        None => {
            require(program);
            None
        }
    }
}

/// When running as root, the unprivileged user that servers refusing root (PostgreSQL) run
/// as, and a directory made theirs; `None` when not root.
pub fn unprivileged_user_for(dir: &std::path::Path) -> Option<&'static str> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let user = ["postgres", "nobody"]
        .into_iter()
        .find(|u| {
            std::process::Command::new("id").arg(u).output().is_ok_and(|o| o.status.success())
        })
        .expect("a postgres or nobody user to run PostgreSQL as");
    let status =
        std::process::Command::new("chown").args(["-R", user]).arg(dir).status().expect("chown");
    assert!(status.success(), "chown {user} {}", dir.display());
    Some(user)
}

/// `redis-cli TARGET... COMMAND...` (`TARGET`: `["-p", "6379"]` or `["-s", "/path.sock"]`): its
/// answer, or why there was none.
pub fn redis_cli(target: &[&str], command: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("redis-cli")
        .args(target)
        .args(command)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !text.starts_with("Could not connect") {
        Ok(text)
    } else {
        Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A fresh PostgreSQL cluster in `dir/data`, made by `initdb` as the user PostgreSQL will run
/// as (as root: `postgres`, see [`unprivileged_user_for`]), with trust authentication for the
/// role `postgres`. Returns that user and the data directory; `None` when PostgreSQL is
/// missing (see [`postgres_bin`]).
pub fn initdb(dir: &std::path::Path) -> Option<(Option<&'static str>, PathBuf)> {
    let initdb = postgres_bin("initdb")?;
    let user = unprivileged_user_for(dir);
    let data = dir.join("data");
    let mut cmd = std::process::Command::new(initdb);
    cmd.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
    if let Some(user) = user {
        let id = |flag: &str| -> u32 {
            let out = std::process::Command::new("id").args([flag, user]).output().expect("id");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("a numeric id")
        };
        use std::os::unix::process::CommandExt;
        cmd.uid(id("-u")).gid(id("-g"));
    }
    let out = cmd.output().expect("initdb runs");
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    Some((user, data))
}

/// `postgres -D DATA -p PORT -k SOCKET_DIR`, listening on 127.0.0.1 only, without fsync (a
/// test's cluster need not survive a power cut).
pub fn postgres_command(
    postgres: &std::path::Path,
    data: &std::path::Path,
    port: u16,
    socket_dir: &std::path::Path,
) -> Vec<String> {
    let path = |p: &std::path::Path| p.display().to_string();
    let mut cmd = vec![path(postgres), "-D".into(), path(data), "-p".into(), port.to_string()];
    cmd.extend(["-k".into(), path(socket_dir), "-c".into(), "listen_addresses=127.0.0.1".into()]);
    cmd.extend(["-c".into(), "fsync=off".into()]);
    cmd
}

/// `psql -c SQL` as role `postgres` on 127.0.0.1:`port`: the answer, unaligned, or the error.
pub fn psql(port: u16, sql: &str) -> Result<String, String> {
    let psql = postgres_bin("psql").ok_or("no psql")?;
    let port = port.to_string();
    let args = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres", "-tAc", sql];
    let out = std::process::Command::new(psql).args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
