//! The services the scenarios start: the helper (`mirakuru-test-service`'s code, run by this
//! very binary) and, when installed, Redis, PostgreSQL, nginx and memcached. Every command line
//! here is mirrored by `bench/python/bench.py`; keep the two in sync so that the comparison is
//! fair.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mirakuru_test::Tag;
use tempfile::TempDir;

use crate::launch::{Launch, Ready, RunAs};

/// The first argument that makes this binary the helper service (`mirakuru_test::test_service`)
/// instead of the benchmark. The helper is this binary rather than `mirakuru-test-service`, so
/// that `cargo run -p mirakuru-bench` has all it needs: cargo builds only the binary it runs,
/// and a binary of another package could be missing or stale.
pub const AS_HELPER: &str = "helper-service";

/// The helper's command line without its flags: this binary, made the helper service.
pub fn helper_argv() -> Vec<String> {
    let me = std::env::current_exe().expect("the path of the running benchmark");
    vec![me.display().to_string(), AS_HELPER.to_string()]
}

/// The helper's start delay: "ready after 20 ms".
pub const HELPER_DELAY_MS: &str = "20";
/// What the helper prints when ready, for output readiness (no regex metacharacters).
pub const HELPER_BANNER: &str = "mirakuru-bench-ready";
/// What Redis logs when ready.
pub const REDIS_BANNER: &str = "Ready to accept connections";

/// Everything the scenarios share for one run of the benchmark.
pub struct Env {
    /// Given to every process started, so that the end-of-run check finds leftovers.
    pub tag: Tag,
    /// Every scratch directory of the run lives in here; removed at the end.
    pub root: TempDir,
    /// The helper's command line without its flags (see [`helper_argv`]).
    pub helper: Vec<String>,
    pub programs: Programs,
}

/// Installed real servers.
#[derive(Debug, Default)]
pub struct Programs {
    pub redis: Option<PathBuf>,
    pub memcached: Option<PathBuf>,
    pub nginx: Option<PathBuf>,
    pub postgres: Option<Postgres>,
}

/// A PostgreSQL installation.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

impl Programs {
    /// Looks for each server in PATH (and /usr/sbin, /sbin, where nginx lives), PostgreSQL
    /// under `/usr/lib/postgresql/<version>/bin` (the newest version wins).
    pub fn detect() -> Programs {
        Programs {
            redis: find_program("redis-server"),
            memcached: find_program("memcached"),
            nginx: find_program("nginx"),
            postgres: find_postgres(),
        }
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn find_postgres() -> Option<Postgres> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versions.sort();
    let (_, bin) = versions.pop()?;
    Some(Postgres { initdb: bin.join("initdb"), postgres: bin.join("postgres") })
}

impl Env {
    /// A fresh private scratch directory inside the run's root.
    pub fn scratch(&self) -> TempDir {
        tempfile::Builder::new()
            .prefix("r")
            .tempdir_in(self.root.path())
            .expect("creating a scratch directory in the run's temporary root")
    }
}

/// Whether this process runs as root (PostgreSQL and memcached need care then).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// The helper
// ---------------------------------------------------------------------------------------------

/// How the helper announces readiness, after its 20 ms delay.
#[derive(Debug, Clone, Copy)]
pub enum HelperKind {
    Tcp,
    Http,
    Unix,
    Pid,
    Output,
}

/// The helper, ready after 20 ms by `kind`.
pub fn helper(env: &Env, kind: HelperKind) -> Launch {
    let mut argv = env.helper.clone();
    argv.extend(["--delay-ms".into(), HELPER_DELAY_MS.into()]);
    let mut scratch = None;
    let ready = match kind {
        HelperKind::Tcp => {
            let port = mirakuru_test::free_port();
            argv.extend(["--tcp".into(), port.to_string()]);
            Ready::Tcp(port)
        }
        HelperKind::Http => {
            let port = mirakuru_test::free_port();
            argv.extend(["--tcp".into(), port.to_string(), "--http".into()]);
            Ready::Http(port)
        }
        HelperKind::Unix => {
            let dir = env.scratch();
            let path = dir.path().join("helper.sock");
            argv.extend(["--unix".into(), s(&path)]);
            scratch = Some(dir);
            Ready::Unix(path)
        }
        HelperKind::Pid => {
            let dir = env.scratch();
            let path = dir.path().join("helper.pid");
            argv.extend(["--pid-file".into(), s(&path)]);
            scratch = Some(dir);
            Ready::Pid(path)
        }
        HelperKind::Output => {
            argv.extend(["--banner".into(), HELPER_BANNER.into()]);
            Ready::Output(HELPER_BANNER)
        }
    };
    let mut launch = Launch::new(argv, ready);
    launch.scratch = scratch;
    launch
}

/// The helper, sleeping until a signal, ready at once (`SimpleExecutor`).
pub fn helper_sleeping(env: &Env) -> Launch {
    Launch::new(env.helper.clone(), Ready::Nothing)
}

/// The helper, ready when its banner is out, with extra flags (signal handling).
pub fn helper_with_banner(env: &Env, flags: &[&str]) -> Launch {
    let mut argv = env.helper.clone();
    argv.extend(flags.iter().map(|f| f.to_string()));
    argv.extend(["--banner".into(), HELPER_BANNER.into()]);
    Launch::new(argv, Ready::Output(HELPER_BANNER))
}

// ---------------------------------------------------------------------------------------------
// Redis and memcached
// ---------------------------------------------------------------------------------------------

/// How a Redis round tells it is ready.
#[derive(Debug, Clone, Copy)]
pub enum RedisReady {
    Tcp,
    Output,
    Unix,
    /// `--supervised systemd`: Redis sends `READY=1` itself.
    Notify,
}

/// `redis-server --port P --save '' --appendonly no` (+ `--unixsocket PATH`).
pub fn redis(env: &Env, program: &Path, how: RedisReady) -> Launch {
    let port = mirakuru_test::free_port();
    let mut argv = vec![
        s(program),
        "--port".into(),
        port.to_string(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
    ];
    let mut scratch = None;
    let ready = match how {
        RedisReady::Tcp => Ready::Tcp(port),
        RedisReady::Output => Ready::Output(REDIS_BANNER),
        RedisReady::Unix => {
            let dir = env.scratch();
            let path = dir.path().join("redis.sock");
            argv.extend(["--unixsocket".into(), s(&path)]);
            scratch = Some(dir);
            Ready::Unix(path)
        }
        RedisReady::Notify => {
            argv.extend(["--supervised".into(), "systemd".into()]);
            Ready::Notify
        }
    };
    let mut launch = Launch::new(argv, ready);
    launch.scratch = scratch;
    launch
}

/// `memcached -p P -l 127.0.0.1 -U 0` (+ `-u root`: as root memcached insists on a user).
pub fn memcached(program: &Path) -> Launch {
    let port = mirakuru_test::free_port();
    let mut argv = vec![s(program), "-p".into(), port.to_string(), "-l".into(), "127.0.0.1".into()];
    argv.extend(["-U".into(), "0".into()]);
    if is_root() {
        argv.extend(["-u".into(), "root".into()]);
    }
    Launch::new(argv, Ready::Tcp(port))
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// nginx with a generated configuration: in the foreground, ready when `HEAD /` answers 200
/// (`http-nginx`), or daemonized, ready when the daemon has written its pid file (`pid-nginx`).
pub fn nginx(env: &Env, program: &Path, daemon: bool) -> Launch {
    let dir = env.scratch();
    let port = mirakuru_test::free_port();
    let root = dir.path();
    let pid_file = root.join("nginx.pid");
    let conf = root.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(root, port, daemon)).expect("writing nginx.conf");
    let argv = vec![
        s(program),
        "-p".into(),
        format!("{}/", root.display()),
        "-c".into(),
        s(&conf),
        "-e".into(),
        s(&root.join("error.log")),
    ];
    let ready = if daemon { Ready::Pid(pid_file.clone()) } else { Ready::Http(port) };
    let mut launch = Launch::new(argv, ready);
    // SIGKILL of the master would orphan its worker; SIGTERM takes both down.
    launch.shutdown = libc::SIGTERM;
    launch.daemon_pid_file = daemon.then_some(pid_file);
    launch.scratch = Some(dir);
    launch
}

/// Everything nginx writes goes to `root`; one worker; `return 200` needs no files.
fn nginx_conf(root: &Path, port: u16, daemon: bool) -> String {
    let r = root.display();
    let daemon = if daemon { "on" } else { "off" };
    format!(
        "daemon {daemon};\n\
         master_process on;\n\
         worker_processes 1;\n\
         pid {r}/nginx.pid;\n\
         error_log {r}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         \x20   access_log {r}/access.log;\n\
         \x20   client_body_temp_path {r}/client_body;\n\
         \x20   proxy_temp_path {r}/proxy;\n\
         \x20   fastcgi_temp_path {r}/fastcgi;\n\
         \x20   uwsgi_temp_path {r}/uwsgi;\n\
         \x20   scgi_temp_path {r}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{ return 200 \"ok\\n\"; }}\n\
         \x20   }}\n\
         }}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A database cluster made once per run (`initdb` is not timed) and started every round.
pub struct Cluster {
    pub program: PathBuf,
    pub data: PathBuf,
    pub socket_dir: PathBuf,
    pub user: Option<RunAs>,
    _dir: TempDir,
}

/// `initdb` into a scratch directory; as root, all of it runs as user `postgres`, which
/// PostgreSQL demands (the Debian package creates that user).
pub fn init_cluster(env: &Env, pg: &Postgres) -> Result<Cluster, String> {
    let dir = env.scratch();
    let user = if is_root() { Some(lookup_user("postgres")?) } else { None };
    if let Some(user) = &user {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
            .map_err(|e| format!("chown {} to postgres: {e}", dir.path().display()))?;
        // The run's root is 0700 root: let `postgres` through to its own directory.
        std::fs::set_permissions(env.root.path(), std::fs::Permissions::from_mode(0o711))
            .map_err(|e| format!("chmod {}: {e}", env.root.path().display()))?;
    }
    let data = dir.path().join("data");
    let mut cmd = Command::new(&pg.initdb);
    cmd.args(["-D", &s(&data), "-A", "trust", "-U", "postgres", "--no-sync", "--no-locale"])
        .args(["-E", "UTF8"])
        .current_dir(dir.path())
        .stdin(Stdio::null());
    if let Some(user) = &user {
        std::os::unix::process::CommandExt::uid(&mut cmd, user.uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, user.gid);
    }
    let out = cmd.output().map_err(|e| format!("running {}: {e}", pg.initdb.display()))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Cluster {
        program: pg.postgres.clone(),
        socket_dir: dir.path().to_path_buf(),
        data,
        user,
        _dir: dir,
    })
}

impl Cluster {
    /// `postgres -D DIR -p P -k SOCKDIR -c listen_addresses=127.0.0.1 -c fsync=off`, ready when
    /// the port accepts connections.
    pub fn launch(&self) -> Launch {
        self.launch_ready(Ready::Tcp)
    }

    /// The same server, ready when it says so over `NOTIFY_SOCKET` (the Debian build of
    /// PostgreSQL sends `READY=1` whenever that variable is set).
    pub fn launch_notify(&self) -> Launch {
        self.launch_ready(|_| Ready::Notify)
    }

    fn launch_ready(&self, ready: impl FnOnce(u16) -> Ready) -> Launch {
        let port = mirakuru_test::free_port();
        let argv = vec![
            s(&self.program),
            "-D".into(),
            s(&self.data),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            s(&self.socket_dir),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "fsync=off".into(),
        ];
        let mut launch = Launch::new(argv, ready(port));
        launch.user = self.user.clone();
        launch.cwd = Some(self.socket_dir.clone());
        // Fast shutdown: SIGKILL would force crash recovery on the next round's start.
        launch.shutdown = libc::SIGINT;
        launch
    }
}

fn lookup_user(name: &str) -> Result<RunAs, String> {
    let c_name = CString::new(name).map_err(|_| format!("bad user name {name:?}"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is read at once,
    // before any other call could overwrite it (the benchmark's main thread is the only caller).
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(format!("user {name} does not exist (PostgreSQL refuses to run as root)"));
    }
    // SAFETY: non-null, points to a valid passwd record.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(RunAs { name: name.to_string(), uid, gid })
}
