//! Fixtures: services described declaratively (what `#[mirakuru::fixture(...)]` writes), each
//! with a private temporary directory, a port chosen automatically when asked, and teardown
//! in reverse order; the tail of their output is printed when the test fails.
//!
//! The attribute expands to calls into this module through the facade's hidden module; the
//! same calls work by hand:
//!
//! ```no_run
//! use mirakuru::fixture::{Fixtures, Port, Spec};
//!
//! let fixtures = Fixtures::start(vec![Spec::new("web", "python3 -m http.server {port} --bind {host}")
//!     .http(Port::Auto, "/")
//!     .method("GET")]);
//! let web = fixtures.get(0);
//! assert!(web.url().starts_with("http://127.0.0.1:"));
//! fixtures.finish(false); // stops them, last first
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::executor::Executor;
use crate::ready::{self, Check, StatusPattern};
use crate::{Error, Output, Signal, Stopped};

/// How many ports an automatic-port fixture tries before giving up.
const PORT_ATTEMPTS: usize = 5;

/// Lines of output per fixture printed when a test fails.
const FAILURE_TAIL_LINES: usize = 30;

/// A port: chosen by the fixture (`auto`), or a fixed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// A free port, chosen at start and written where `{port}` appears.
    Auto,
    /// This port. Tests of one binary that use the same fixed port run one after another.
    Fixed(u16),
}

/// What the service's command is: a command line or a list of arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cmd {
    Line(String),
    Args(Vec<String>),
}

/// When the fixture is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Readiness {
    Started,
    Tcp(Port),
    Http { port: Port, path: String, url: Option<String> },
    Unix(Option<String>),
    Pid(String),
    Output(String),
}

/// A fixture's description: what `#[mirakuru::fixture(...)]` arguments become. Every string
/// may contain `{port}`, `{host}`, `{tmpdir}` (the fixture's private directory) and `{socket}`
/// (a socket path inside it), filled in at start.
#[derive(Debug, Clone)]
#[must_use]
pub struct Spec {
    name: String,
    cmd: Cmd,
    readiness: Readiness,
    host: String,
    timeout: Option<Duration>,
    stop_timeout: Option<Duration>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    shell: bool,
    stop_signal: Option<Signal>,
    kill_signal: Option<Signal>,
    expected_returncode: Option<i32>,
    method: Option<String>,
    status: Option<StatusPattern>,
    user: Option<String>,
}

impl Spec {
    /// A fixture called `name` (used in messages) that runs a command line.
    pub fn new(name: impl Into<String>, cmd: impl Into<String>) -> Spec {
        Spec::with_cmd(name.into(), Cmd::Line(cmd.into()))
    }

    /// A fixture called `name` that runs a list of arguments.
    pub fn args<S: Into<String>>(
        name: impl Into<String>,
        args: impl IntoIterator<Item = S>,
    ) -> Spec {
        Spec::with_cmd(name.into(), Cmd::Args(args.into_iter().map(Into::into).collect()))
    }

    fn with_cmd(name: String, cmd: Cmd) -> Spec {
        Spec {
            name,
            cmd,
            readiness: Readiness::Started,
            host: "127.0.0.1".into(),
            timeout: None,
            stop_timeout: None,
            env: Vec::new(),
            cwd: None,
            shell: false,
            stop_signal: None,
            kill_signal: None,
            expected_returncode: None,
            method: None,
            status: None,
            user: None,
        }
    }

    /// Ready when `{host}:port` accepts TCP connections.
    pub fn tcp(mut self, port: Port) -> Spec {
        self.readiness = Readiness::Tcp(port);
        self
    }

    /// Ready when `http://{host}:port{path}` answers (any 2xx to `HEAD` unless
    /// [`method`](Spec::method) and [`status`](Spec::status) say otherwise).
    pub fn http(mut self, port: Port, path: impl Into<String>) -> Spec {
        self.readiness = Readiness::Http { port, path: path.into(), url: None };
        self
    }

    /// Like [`http`](Spec::http) with a whole URL (which may use `{host}` and `{port}`).
    pub fn http_url(mut self, port: Port, url: impl Into<String>) -> Spec {
        self.readiness = Readiness::Http { port, path: String::new(), url: Some(url.into()) };
        self
    }

    /// Ready when the unix socket at `path` accepts connections; `None`: at `{socket}`.
    pub fn unix(mut self, path: Option<&str>) -> Spec {
        self.readiness = Readiness::Unix(path.map(str::to_string));
        self
    }

    /// Ready when the pid file at `path` names a running process.
    pub fn pid(mut self, path: impl Into<String>) -> Spec {
        self.readiness = Readiness::Pid(path.into());
        self
    }

    /// Ready when the output matches the regex `banner`.
    pub fn output(mut self, banner: impl Into<String>) -> Spec {
        self.readiness = Readiness::Output(banner.into());
        self
    }

    /// The host of TCP and HTTP checks and of `{host}`. Default: `127.0.0.1`.
    pub fn host(mut self, host: impl Into<String>) -> Spec {
        self.host = host.into();
        self
    }

    /// See [`Executor::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Spec {
        self.timeout = Some(timeout);
        self
    }

    /// See [`Executor::stop_timeout`].
    pub fn stop_timeout(mut self, timeout: Duration) -> Spec {
        self.stop_timeout = Some(timeout);
        self
    }

    /// See [`Executor::env`].
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Spec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// See [`Executor::cwd`].
    pub fn cwd(mut self, dir: impl Into<String>) -> Spec {
        self.cwd = Some(dir.into());
        self
    }

    /// See [`Executor::shell`].
    pub fn shell(mut self, shell: bool) -> Spec {
        self.shell = shell;
        self
    }

    /// See [`Executor::stop_signal`].
    pub fn stop_signal(mut self, signal: Signal) -> Spec {
        self.stop_signal = Some(signal);
        self
    }

    /// See [`Executor::kill_signal`].
    pub fn kill_signal(mut self, signal: Signal) -> Spec {
        self.kill_signal = Some(signal);
        self
    }

    /// See [`Executor::expected_returncode`].
    pub fn expected_returncode(mut self, code: i32) -> Spec {
        self.expected_returncode = Some(code);
        self
    }

    /// The HTTP check's method (see [`HttpExecutor::method`](crate::HttpExecutor::method)).
    pub fn method(mut self, method: impl Into<String>) -> Spec {
        self.method = Some(method.into());
        self
    }

    /// The HTTP check's accepted status (see [`HttpExecutor::status`](crate::HttpExecutor::status)).
    pub fn status(mut self, status: impl Into<StatusPattern>) -> Spec {
        self.status = Some(status.into());
        self
    }

    /// See [`Executor::user`]. The fixture's `{tmpdir}` is given to that user.
    pub fn user(mut self, user: impl Into<String>) -> Spec {
        self.user = Some(user.into());
        self
    }

    /// The name, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fixed_port(&self) -> Option<u16> {
        match self.readiness {
            Readiness::Tcp(Port::Fixed(p)) | Readiness::Http { port: Port::Fixed(p), .. } => {
                Some(p)
            }
            _ => None,
        }
    }

    fn auto_port(&self) -> bool {
        matches!(
            self.readiness,
            Readiness::Tcp(Port::Auto) | Readiness::Http { port: Port::Auto, .. }
        )
    }

    /// Starts the fixture: fills in the placeholders, starts the executor and waits until it
    /// is ready. With an automatic port taken meanwhile by someone else, starts again on
    /// another port.
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::start`].
    pub fn start(&self) -> Result<Fixture, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match self.readiness {
                Readiness::Tcp(port) | Readiness::Http { port, .. } => Some(match port {
                    Port::Fixed(p) => p,
                    Port::Auto => free_port(&self.host),
                }),
                _ => None,
            };
            let tmpdir = make_tmpdir(self.user.as_deref()).map_err(|source| Error::Io {
                command: self.cmd_text(),
                action: "creating the temporary directory of".into(),
                source,
            })?;
            let places = Places { host: &self.host, port, tmpdir: tmpdir.path() };
            let (executor, details) = self.build(&places);
            let mut executor = executor;
            match executor.start() {
                Ok(()) => {
                    return Ok(Fixture {
                        name: self.name.clone(),
                        executor,
                        host: self.host.clone(),
                        port,
                        details,
                        tmpdir: Some(tmpdir),
                    })
                }
                Err(err) if self.auto_port() && attempt < PORT_ATTEMPTS && port_was_taken(&err) => {
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn cmd_text(&self) -> String {
        match &self.cmd {
            Cmd::Line(line) => line.clone(),
            Cmd::Args(args) => shell_words::join(args),
        }
    }

    fn build(&self, places: &Places<'_>) -> (Executor, Details) {
        let fill = |s: &str| places.fill(s);
        let command: crate::Command = match &self.cmd {
            // Split before filling in, so a temporary path never needs quoting.
            Cmd::Line(line) if !self.shell => match shell_words::split(line) {
                Ok(args) => args.iter().map(|a| fill(a)).collect::<Vec<_>>().into(),
                Err(_) => fill(line).into(), // start() reports the quoting error
            },
            Cmd::Line(line) => fill(line).into(),
            Cmd::Args(args) => args.iter().map(|a| fill(a)).collect::<Vec<_>>().into(),
        };
        let mut details = Details::default();
        let check: Box<dyn Check> = match &self.readiness {
            Readiness::Started => Box::new(ready::Nothing),
            Readiness::Tcp(_) => {
                Box::new(ready::Tcp::new(self.host.clone(), places.port.unwrap_or(0)))
            }
            Readiness::Http { url, path, .. } => {
                let url = match url {
                    Some(url) => fill(url),
                    None => {
                        let host = if self.host.contains(':') && !self.host.starts_with('[') {
                            format!("[{}]", self.host)
                        } else {
                            self.host.clone()
                        };
                        let path = fill(path);
                        let path = if path.starts_with('/') { path } else { format!("/{path}") };
                        format!("http://{host}:{}{path}", places.port.unwrap_or(0))
                    }
                };
                details.url = Some(url.clone());
                let mut http = ready::Http::new(url);
                if let Some(method) = &self.method {
                    http = http.with_method(method.clone());
                }
                if let Some(status) = &self.status {
                    http = http.with_status(status.clone());
                }
                Box::new(http)
            }
            Readiness::Unix(path) => {
                let path = PathBuf::from(path.as_deref().map_or_else(|| places.socket(), fill));
                details.socket = Some(path.clone());
                Box::new(ready::UnixSocket::new(path))
            }
            Readiness::Pid(path) => {
                let path = PathBuf::from(fill(path));
                details.pid_file = Some(path.clone());
                Box::new(ready::PidFile::new(path))
            }
            Readiness::Output(banner) => Box::new(ready::Banner::new(banner.clone())),
        };
        let mut ex = Executor::new(command, check).shell(self.shell);
        if let Some(t) = self.timeout {
            ex = ex.timeout(t);
        }
        if let Some(t) = self.stop_timeout {
            ex = ex.stop_timeout(t);
        }
        for (k, v) in &self.env {
            ex = ex.env(k, fill(v));
        }
        if let Some(cwd) = &self.cwd {
            ex = ex.cwd(fill(cwd));
        }
        if let Some(s) = self.stop_signal {
            ex = ex.stop_signal(s);
        }
        if let Some(s) = self.kill_signal {
            ex = ex.kill_signal(s);
        }
        if let Some(code) = self.expected_returncode {
            ex = ex.expected_returncode(code);
        }
        if let Some(user) = &self.user {
            ex = ex.user(user.clone());
        }
        (ex, details)
    }
}

/// The values placeholders stand for.
struct Places<'a> {
    host: &'a str,
    port: Option<u16>,
    tmpdir: &'a Path,
}

impl Places<'_> {
    fn socket(&self) -> String {
        self.tmpdir.join("socket").display().to_string()
    }

    fn fill(&self, s: &str) -> String {
        let mut out = s.replace("{tmpdir}", &self.tmpdir.display().to_string());
        out = out.replace("{socket}", &self.socket()).replace("{host}", self.host);
        if let Some(port) = self.port {
            out = out.replace("{port}", &port.to_string());
        }
        out
    }
}

/// Where a fixture's readiness points.
#[derive(Debug, Default, Clone)]
struct Details {
    url: Option<String>,
    socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
}

/// A private (0700) temporary directory, short enough for unix socket paths, owned by the
/// service's user when it runs as another one.
fn make_tmpdir(user: Option<&str>) -> std::io::Result<tempfile::TempDir> {
    let base = std::env::temp_dir();
    // sun_path holds 107 bytes; leave room for "/socket" and the random part.
    let base = if base.as_os_str().len() > 60 { PathBuf::from("/tmp") } else { base };
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("mirakuru-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)?;
    if let Some(user) = user {
        let owner = match user.split_once(':') {
            Some((u, g)) => u.parse::<u32>().ok().zip(g.parse::<u32>().ok()),
            None => match user.parse::<u32>() {
                Ok(uid) => nix::unistd::User::from_uid(uid.into()).ok().flatten(),
                Err(_) => nix::unistd::User::from_name(user).ok().flatten(),
            }
            .map(|u| (u.uid.as_raw(), u.gid.as_raw())),
        };
        // An unknown user is reported by start(), before anything is spawned.
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(dir)
}

/// Whether a failed start looks like another process took the chosen port.
fn port_was_taken(err: &Error) -> bool {
    match err {
        Error::AlreadyRunning { .. } => true,
        Error::ProcessExitedWithError { output, .. } | Error::TimeoutExpired { output, .. } => {
            let output = output.to_ascii_lowercase();
            output.contains("address already in use") || output.contains("eaddrinuse")
        }
        _ => false,
    }
}

/// A port that was free a moment ago and that this binary has not handed out before. The
/// kernel hands out ephemeral ports in rotation, so another process is unlikely to take it in
/// the meantime — and if one does, [`Spec::start`] starts again on another port.
fn free_port(host: &str) -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let bind_host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    for _ in 0..64 {
        let port = TcpListener::bind((bind_host, 0))
            .or_else(|_| TcpListener::bind(("127.0.0.1", 0)))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if port != 0 && given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    0 // start() reports "port 0 cannot be waited for"
}

/// A started fixture: its executor and where it can be reached. Tests get it as `&Fixture`.
pub struct Fixture {
    name: String,
    executor: Executor,
    host: String,
    port: Option<u16>,
    details: Details,
    tmpdir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// The fixture's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host of its TCP or HTTP check (and of `{host}`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port of a `tcp` or `http` fixture (the chosen one with `auto`).
    ///
    /// # Panics
    ///
    /// For a fixture without a port: that is a mistake in the test, found at its first run.
    pub fn port(&self) -> u16 {
        match self.port {
            Some(port) => port,
            None => panic!(
                "fixture `{}` has no port: it is neither a `tcp` nor an `http` fixture",
                self.name
            ),
        }
    }

    /// The URL of an `http` fixture.
    ///
    /// # Panics
    ///
    /// For a fixture that is not an `http` one.
    pub fn url(&self) -> &str {
        match &self.details.url {
            Some(url) => url,
            None => panic!("fixture `{}` has no URL: it is not an `http` fixture", self.name),
        }
    }

    /// The socket path of a `unix` fixture.
    ///
    /// # Panics
    ///
    /// For a fixture that is not a `unix` one.
    pub fn socket(&self) -> &Path {
        match &self.details.socket {
            Some(path) => path,
            None => panic!("fixture `{}` has no socket: it is not a `unix` fixture", self.name),
        }
    }

    /// The pid file of a `pid` fixture.
    ///
    /// # Panics
    ///
    /// For a fixture that is not a `pid` one.
    pub fn pid_file(&self) -> &Path {
        match &self.details.pid_file {
            Some(path) => path,
            None => panic!("fixture `{}` has no pid file: it is not a `pid` fixture", self.name),
        }
    }

    /// The fixture's private temporary directory (`{tmpdir}`), removed at teardown.
    pub fn tmpdir(&self) -> &Path {
        self.tmpdir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// The pid of the service's process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.executor.pid()
    }

    /// Whether the service runs.
    pub fn running(&self) -> bool {
        self.executor.running()
    }

    /// What the service wrote.
    pub fn output(&self) -> Output {
        self.executor.output()
    }

    /// Stops the service until the guard is dropped; used by
    /// [`stopped!`](https://docs.rs/mirakuru/latest/mirakuru/macro.stopped.html).
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::stop`].
    pub fn stopped(&self) -> Result<Stopped<Box<dyn Check>>, Error> {
        self.executor.stopped_shared()
    }

    /// The executor, for everything else.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Stops the service and removes its temporary directory.
    pub(crate) fn teardown(&mut self) -> Result<(), Error> {
        let result = self.executor.stop_shared();
        if let Some(dir) = self.tmpdir.take() {
            let _ = dir.close();
        }
        result
    }

    /// Stops a shared fixture at exit: it lives in a static and is never dropped.
    pub(crate) fn shut_down_shared(&self) {
        let _ = self.executor.stop_shared();
        if let Some(dir) = &self.tmpdir {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }

    /// The tail of its output, labelled, for a failing test.
    pub(crate) fn report(&self) -> String {
        let tail = self.output().tail(FAILURE_TAIL_LINES);
        let command = self.executor.command().to_string();
        if tail.is_empty() {
            format!("--- mirakuru fixture `{}` (`{command}`) wrote nothing ---\n", self.name)
        } else {
            format!("--- mirakuru fixture `{}` (`{command}`) ---\n{tail}", self.name)
        }
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The fixtures of one test: started in order, stopped in reverse. Holds the claims on fixed
/// ports so that tests using the same port run one after another.
pub struct Fixtures {
    list: Vec<Fixture>,
    claims: Claims,
    finished: bool,
}

impl Fixtures {
    /// Starts `specs` in order. On failure, stops those already started and panics with the
    /// error (it is how a test fails), at the test's line.
    #[track_caller]
    pub fn start(specs: Vec<Spec>) -> Fixtures {
        match Fixtures::try_start(specs) {
            Ok(fixtures) => fixtures,
            Err(failed) => panic!("mirakuru fixture `{}` could not start: {}", failed.0, failed.1),
        }
    }

    /// [`Fixtures::start`] returning the error, with the name of the fixture that failed.
    ///
    /// # Errors
    ///
    /// The first start error.
    pub fn try_start(specs: Vec<Spec>) -> Result<Fixtures, Box<(String, Error)>> {
        let mut keys: Vec<String> =
            specs.iter().filter_map(|s| s.fixed_port().map(|p| format!("port-{p}"))).collect();
        keys.sort();
        keys.dedup();
        let claims = claim_all(&keys);
        let mut fixtures =
            Fixtures { list: Vec::with_capacity(specs.len()), claims, finished: false };
        for spec in &specs {
            match spec.start() {
                Ok(fixture) => fixtures.list.push(fixture),
                Err(err) => return Err(Box::new((spec.name.clone(), err))),
            }
        }
        Ok(fixtures)
    }

    /// The `i`th fixture, in declaration order.
    ///
    /// # Panics
    ///
    /// If there are not that many (the attribute never asks for more).
    pub fn get(&self, i: usize) -> &Fixture {
        &self.list[i]
    }

    /// Ends the test: prints each fixture's output if it `failed`, then stops them, last
    /// first. If the test passed but a fixture did not stop cleanly, panics with that error.
    pub fn finish(mut self, failed: bool) {
        self.finished = true;
        if failed {
            self.print_reports();
        }
        let errors = self.teardown();
        if !failed {
            if let Some((name, err)) = errors.into_iter().next() {
                panic!("mirakuru fixture `{name}` did not stop cleanly: {err}");
            }
        }
    }

    fn print_reports(&self) {
        for fixture in &self.list {
            eprint!("{}", fixture.report());
        }
    }

    fn teardown(&mut self) -> Vec<(String, Error)> {
        let mut errors = Vec::new();
        while let Some(mut fixture) = self.list.pop() {
            if let Err(err) = fixture.teardown() {
                errors.push((fixture.name.clone(), err));
            }
        }
        self.claims = Claims::default();
        errors
    }
}

impl Drop for Fixtures {
    /// A panicking test body ends here: print the output, then stop everything.
    fn drop(&mut self) {
        if !self.finished && std::thread::panicking() {
            self.print_reports();
        }
        let _ = self.teardown();
    }
}

impl fmt::Debug for Fixtures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

/// Holds fixed resources (ports) for one test: an exclusive `flock(2)` on one lock file per
/// resource, so that tests using the same fixed port run one after another — between the
/// threads of one test binary, and between the processes of `cargo nextest`, which runs every
/// test in a process of its own. Closing the files (dropping this) releases them; the kernel
/// does it too if the test binary dies.
#[derive(Debug, Default)]
struct Claims {
    files: Vec<std::fs::File>,
}

/// Takes every claim, in sorted order, so that two tests claiming ports 1 and 2 in opposite
/// orders cannot deadlock. Claims that cannot be made (no writable temporary directory) are
/// skipped: the start then reports the port as taken, as it would without claims.
fn claim_all(keys: &[String]) -> Claims {
    let mut claims = Claims::default();
    if keys.is_empty() {
        return claims;
    }
    // One directory per user: another user's 0700 directory would be unusable.
    // SAFETY: geteuid cannot fail.
    let dir = std::env::temp_dir().join(format!("mirakuru-{}", unsafe { libc::geteuid() }));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    for key in keys {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{key}.lock")));
        let Ok(file) = file else { continue };
        // SAFETY: flock on an fd we own; blocks until the other holder closes theirs.
        let locked = loop {
            let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
            if rc == 0 {
                break true;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break false;
            }
        };
        if locked {
            claims.files.push(file);
        }
    }
    claims
}

/// Whether a test's result counts as a failure, for [`Fixtures::finish`]: `Err` does, anything
/// else does not. Used by the attribute through autoref specialization.
#[doc(hidden)]
pub trait ResultFailed {
    /// True for `Err`.
    fn __mirakuru_failed(&self) -> bool;
}

impl<T, E> ResultFailed for Result<T, E> {
    fn __mirakuru_failed(&self) -> bool {
        self.is_err()
    }
}

/// The fallback of [`ResultFailed`] for test bodies that return something else.
#[doc(hidden)]
pub trait OtherNotFailed {
    /// Always false.
    fn __mirakuru_failed(&self) -> bool;
}

impl<T> OtherNotFailed for &T {
    fn __mirakuru_failed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in() {
        let places = Places { host: "::1", port: Some(5432), tmpdir: Path::new("/tmp/x") };
        assert_eq!(
            places.fill("-p {port} -h {host} -D {tmpdir}/data -k {socket}"),
            "-p 5432 -h ::1 -D /tmp/x/data -k /tmp/x/socket"
        );
    }

    #[test]
    fn port_collisions_are_recognised() {
        let exited = Error::ProcessExitedWithError {
            command: "x".into(),
            status: std::os::unix::process::ExitStatusExt::from_raw(256),
            waited_for: "y".into(),
            after: Duration::ZERO,
            output: "bind: Address already in use".into(),
        };
        assert!(port_was_taken(&exited));
        assert!(port_was_taken(&Error::AlreadyRunning { command: "x".into(), reason: "y".into() }));
    }

    #[test]
    fn free_ports_are_not_handed_out_twice() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port("127.0.0.1")).collect();
        assert_eq!(ports.len(), 50);
    }

    #[test]
    fn claims_serialize_and_release() {
        let keys = vec!["unit-test-claim".to_string()];
        let held = claim_all(&keys);
        assert_eq!(held.files.len(), 1);
        let waiter = std::thread::spawn({
            let keys = keys.clone();
            move || claim_all(&keys).files.len()
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the second claim waits");
        drop(held);
        assert_eq!(waiter.join().expect("the second claim proceeds once released"), 1);
    }
}
