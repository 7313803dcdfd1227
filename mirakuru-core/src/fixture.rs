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

use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::executor::Executor;
use crate::ready::{self, Captures, Check, Context, Status, StatusPattern};
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

/// A readiness check built at each start by user code.
type Factory = Arc<dyn Fn() -> Box<dyn Check> + Send + Sync>;
/// A custom check's closure, shared by the starts of the fixture.
type CustomFn = Arc<dyn Fn(&Context<'_>) -> Status + Send + Sync>;

/// One thing the fixture waits for.
#[derive(Clone)]
enum Readiness {
    Tcp(Port),
    /// `tcp = discover`: whatever TCP port the service listens on.
    Discover,
    Http {
        port: Port,
        path: String,
        url: Option<String>,
    },
    Unix(Option<String>),
    Pid(String),
    Output(String),
    Notify,
    ReadyFd(i32),
    Exec(Cmd),
    Redis(Port),
    Postgres(Port),
    File(String),
    Custom(String, CustomFn),
    Check(Factory),
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Tcp(p) => write!(f, "Tcp({p:?})"),
            Readiness::Discover => write!(f, "Discover"),
            Readiness::Http { port, path, url } => write!(f, "Http({port:?}, {path:?}, {url:?})"),
            Readiness::Unix(p) => write!(f, "Unix({p:?})"),
            Readiness::Pid(p) => write!(f, "Pid({p:?})"),
            Readiness::Output(b) => write!(f, "Output({b:?})"),
            Readiness::Notify => write!(f, "Notify"),
            Readiness::ReadyFd(n) => write!(f, "ReadyFd({n})"),
            Readiness::Exec(c) => write!(f, "Exec({c:?})"),
            Readiness::Redis(p) => write!(f, "Redis({p:?})"),
            Readiness::Postgres(p) => write!(f, "Postgres({p:?})"),
            Readiness::File(p) => write!(f, "File({p:?})"),
            Readiness::Custom(what, _) => write!(f, "Custom({what:?})"),
            Readiness::Check(_) => write!(f, "Check(..)"),
        }
    }
}

impl Readiness {
    /// The port this check waits on, if it is one that waits on a port.
    fn port(&self) -> Option<Port> {
        match self {
            Readiness::Tcp(p)
            | Readiness::Http { port: p, .. }
            | Readiness::Redis(p)
            | Readiness::Postgres(p) => Some(*p),
            _ => None,
        }
    }
}

/// A fixture's description: what `#[mirakuru::fixture(...)]` arguments become. Every string
/// may contain `{port}`, `{host}`, `{tmpdir}` (the fixture's private directory) and `{socket}`
/// (a socket path inside it), filled in at start.
///
/// The readiness setters ([`tcp`](Spec::tcp), [`notify`](Spec::notify),
/// [`redis`](Spec::redis), …) add up: with several, the fixture is ready when all of them are
/// — or any of them, with [`ready_any`](Spec::ready_any). Without any, it is ready once the
/// program runs. Checks on a port share the fixture's one port: `Port::Auto` everywhere
/// means the same free port.
///
/// ```no_run
/// use mirakuru::fixture::{Fixtures, Port, Spec};
///
/// let fixtures = Fixtures::start(vec![Spec::new("redis", "redis-server --port {port} --save '' --supervised systemd")
///     .notify()
///     .redis(Port::Auto)]);
/// assert!(fixtures.get(0).port() > 0);
/// fixtures.finish(false);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Spec {
    name: String,
    cmd: Cmd,
    readiness: Vec<Readiness>,
    any: bool,
    owned: bool,
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
    exec_output: Option<String>,
    exec_timeout: Option<Duration>,
    file_matches: Option<String>,
    file_line: Option<usize>,
}

impl fmt::Debug for Spec {
    /// Environment values are left out: they often hold passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("cmd", &self.cmd)
            .field("readiness", &self.readiness)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
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
            readiness: Vec::new(),
            any: false,
            owned: false,
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
            exec_output: None,
            exec_timeout: None,
            file_matches: None,
            file_line: None,
        }
    }

    fn ready_when(mut self, readiness: Readiness) -> Spec {
        self.readiness.push(readiness);
        self
    }

    /// Ready when `{host}:port` accepts TCP connections.
    pub fn tcp(self, port: Port) -> Spec {
        self.ready_when(Readiness::Tcp(port))
    }

    /// Ready when the service listens on a TCP port, whichever: start it on port 0 (write
    /// `0` in its command) and read the port the kernel gave it from
    /// [`Fixture::port`]. No free port is guessed, so none can be taken by another test in
    /// the meantime. Linux only.
    pub fn discover_port(self) -> Spec {
        self.ready_when(Readiness::Discover)
    }

    /// Ready when `http://{host}:port{path}` answers (any 2xx to `HEAD` unless
    /// [`method`](Spec::method) and [`status`](Spec::status) say otherwise).
    pub fn http(self, port: Port, path: impl Into<String>) -> Spec {
        self.ready_when(Readiness::Http { port, path: path.into(), url: None })
    }

    /// Like [`http`](Spec::http) with a whole URL (which may use `{host}` and `{port}`).
    pub fn http_url(self, port: Port, url: impl Into<String>) -> Spec {
        self.ready_when(Readiness::Http { port, path: String::new(), url: Some(url.into()) })
    }

    /// Ready when the unix socket at `path` accepts connections; `None`: at `{socket}`.
    pub fn unix(self, path: Option<&str>) -> Spec {
        self.ready_when(Readiness::Unix(path.map(str::to_string)))
    }

    /// Ready when the pid file at `path` names a running process.
    pub fn pid(self, path: impl Into<String>) -> Spec {
        self.ready_when(Readiness::Pid(path.into()))
    }

    /// Ready when the output matches the regex `banner`. Its groups are the fixture's
    /// [`captures`](Fixture::captures); a group named `port` is its [`port`](Fixture::port).
    pub fn output(self, banner: impl Into<String>) -> Spec {
        self.ready_when(Readiness::Output(banner.into()))
    }

    /// Ready when the service sends `READY=1` over `NOTIFY_SOCKET` (see [`ready::Notify`]).
    pub fn notify(self) -> Spec {
        self.ready_when(Readiness::Notify)
    }

    /// Ready when the service writes a newline to its fd `fd` (see [`ready::ReadyFd`]).
    pub fn ready_fd(self, fd: i32) -> Spec {
        self.ready_when(Readiness::ReadyFd(fd))
    }

    /// Ready when the command line `probe` exits 0 (and prints a match of
    /// [`exec_output`](Spec::exec_output), if given); see [`ready::Exec`].
    pub fn exec(self, probe: impl Into<String>) -> Spec {
        self.ready_when(Readiness::Exec(Cmd::Line(probe.into())))
    }

    /// [`exec`](Spec::exec) with a list of arguments.
    pub fn exec_args<S: Into<String>>(self, probe: impl IntoIterator<Item = S>) -> Spec {
        self.ready_when(Readiness::Exec(Cmd::Args(probe.into_iter().map(Into::into).collect())))
    }

    /// The regex the [`exec`](Spec::exec) probe's output must match too.
    pub fn exec_output(mut self, pattern: impl Into<String>) -> Spec {
        self.exec_output = Some(pattern.into());
        self
    }

    /// How long one run of the [`exec`](Spec::exec) probe may take.
    pub fn exec_timeout(mut self, timeout: Duration) -> Spec {
        self.exec_timeout = Some(timeout);
        self
    }

    /// Ready when Redis on `{host}:port` answers `PING` with `PONG` (see [`ready::Redis`]).
    pub fn redis(self, port: Port) -> Spec {
        self.ready_when(Readiness::Redis(port))
    }

    /// Ready when PostgreSQL on `{host}:port` accepts connections, as `pg_isready` decides
    /// (see [`ready::Postgres`]).
    pub fn postgres(self, port: Port) -> Spec {
        self.ready_when(Readiness::Postgres(port))
    }

    /// Ready when the file at `path` exists (and matches [`file_matches`](Spec::file_matches),
    /// if given); see [`ready::FileContent`].
    pub fn file(self, path: impl Into<String>) -> Spec {
        self.ready_when(Readiness::File(path.into()))
    }

    /// The regex the [`file`](Spec::file)'s content must match.
    pub fn file_matches(mut self, pattern: impl Into<String>) -> Spec {
        self.file_matches = Some(pattern.into());
        self
    }

    /// Applies [`file_matches`](Spec::file_matches) to this line of the file only (1-based).
    pub fn file_line(mut self, line: usize) -> Spec {
        self.file_line = Some(line);
        self
    }

    /// Ready when `check` says so (see [`ready::custom`]); `what` completes "waited for …".
    pub fn custom<F>(self, what: impl Into<String>, check: F) -> Spec
    where
        F: Fn(&Context<'_>) -> Status + Send + Sync + 'static,
    {
        self.ready_when(Readiness::Custom(what.into(), Arc::new(check)))
    }

    /// Ready when the check `make` builds is: any [`Check`], such as combinators with
    /// timeouts of their own. `make` is called at each start.
    pub fn check<C, F>(self, make: F) -> Spec
    where
        C: Check + 'static,
        F: Fn() -> C + Send + Sync + 'static,
    {
        self.ready_when(Readiness::Check(Arc::new(move || Box::new(make()) as Box<dyn Check>)))
    }

    /// With several readiness checks: ready when any of them is, instead of all.
    pub fn ready_any(mut self, any: bool) -> Spec {
        self.any = any;
        self
    }

    /// Only a listener of the service's own process tree counts on the fixture's port: a
    /// foreign process answering there does not make it ready (see [`ready::Tcp::owned`]).
    /// Linux only.
    pub fn owned(mut self, owned: bool) -> Spec {
        self.owned = owned;
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

    fn fixed_ports(&self) -> Vec<u16> {
        self.readiness
            .iter()
            .filter_map(|r| match r.port() {
                Some(Port::Fixed(p)) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn auto_port(&self) -> bool {
        self.readiness.iter().any(|r| r.port() == Some(Port::Auto))
    }

    /// The fixture's port before start: the first port-bearing check's.
    fn port_before_start(&self) -> Option<Port> {
        self.readiness.iter().find_map(Readiness::port)
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
            let port = self.port_before_start().map(|port| match port {
                Port::Fixed(p) => p,
                // 0 makes start() say "port 0 cannot be waited for" in the rare failure.
                Port::Auto => crate::port::free_port_for(&self.host).unwrap_or(0),
            });
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
        let mut checks: Vec<Box<dyn Check>> =
            self.readiness.iter().map(|r| self.check_of(r, places, &mut details)).collect();
        // Ownership: a single TCP check checks it itself (`Tcp::owned`); otherwise the port
        // must also have a listener of the service, whatever else is awaited.
        let single_tcp = matches!(self.readiness.as_slice(), [Readiness::Tcp(_)]);
        let owner = match (self.owned && !single_tcp, places.port) {
            (true, Some(port)) => Some(Box::new(ready::listening().port(port)) as Box<dyn Check>),
            _ => None,
        };
        let check: Box<dyn Check> = match (checks.len(), owner) {
            (0, None) => Box::new(ready::Nothing),
            (0, Some(owner)) => owner,
            (1, None) => checks.remove(0),
            (_, owner) if self.any && checks.len() > 1 => {
                let any: Box<dyn Check> = Box::new(checks.into_iter().collect::<ready::Any>());
                match owner {
                    Some(owner) => Box::new([any, owner].into_iter().collect::<ready::All>()),
                    None => any,
                }
            }
            (_, owner) => Box::new(checks.into_iter().chain(owner).collect::<ready::All>()),
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
    /// The check for one readiness item, with its placeholders filled in.
    fn check_of(
        &self,
        readiness: &Readiness,
        places: &Places<'_>,
        details: &mut Details,
    ) -> Box<dyn Check> {
        let fill = |s: &str| places.fill(s);
        let port = places.port.unwrap_or(0);
        match readiness {
            Readiness::Tcp(_) => {
                let tcp = ready::Tcp::new(self.host.clone(), port);
                Box::new(if self.owned { tcp.owned() } else { tcp })
            }
            Readiness::Discover => Box::new(ready::listening()),
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
                        format!("http://{host}:{port}{path}")
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
            Readiness::Notify => Box::new(ready::notify()),
            Readiness::ReadyFd(fd) => Box::new(ready::ready_fd(*fd)),
            Readiness::Exec(cmd) => {
                let command: crate::Command = match cmd {
                    Cmd::Line(line) => match shell_words::split(line) {
                        Ok(args) => args.iter().map(|a| fill(a)).collect::<Vec<_>>().into(),
                        Err(_) => fill(line).into(), // start() reports the quoting error
                    },
                    Cmd::Args(args) => args.iter().map(|a| fill(a)).collect::<Vec<_>>().into(),
                };
                let mut exec = ready::exec(command);
                if let Some(pattern) = &self.exec_output {
                    exec = exec.output(pattern.clone());
                }
                if let Some(timeout) = self.exec_timeout {
                    exec = exec.attempt_timeout(timeout);
                }
                Box::new(exec)
            }
            Readiness::Redis(_) => Box::new(ready::redis(self.host.clone(), port)),
            Readiness::Postgres(_) => Box::new(ready::postgres(self.host.clone(), port)),
            Readiness::File(path) => {
                let mut file = ready::file(fill(path));
                if let Some(pattern) = &self.file_matches {
                    file = file.matches(pattern.clone());
                }
                if let Some(line) = self.file_line {
                    file = file.line(line);
                }
                Box::new(file)
            }
            Readiness::Custom(what, check) => {
                let check = Arc::clone(check);
                Box::new(ready::custom(what.clone(), move |cx: &Context<'_>| check(cx)))
            }
            Readiness::Check(make) => make(),
        }
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

    /// The port of the fixture: the one its `tcp`, `http`, `redis` or `postgres` check waits
    /// on (the chosen one with `auto`), the one found with `tcp = discover`, or the group
    /// named `port` of its `output` banner.
    ///
    /// # Panics
    ///
    /// For a fixture without a port: that is a mistake in the test, found at its first run.
    pub fn port(&self) -> u16 {
        match self.port.or_else(|| self.executor.port()) {
            Some(port) => port,
            None => panic!(
                "fixture `{}` has no port: it waits on no TCP port (`tcp`, `http`, `redis`, \
                 `postgres`), and found none (`tcp = discover`, a banner group named `port`)",
                self.name
            ),
        }
    }

    /// What its readiness check captured: the groups of its `output` banner (or `file`
    /// pattern), the line written to its `ready_fd`.
    pub fn captures(&self) -> Option<Captures> {
        self.executor.captures()
    }

    /// How long after the spawn each of its checks became ready (see
    /// [`Executor::readiness_times`]).
    pub fn readiness_times(&self) -> Vec<(String, Duration)> {
        self.executor.readiness_times()
    }

    /// Whether the service still runs: an [`Error::ServiceDied`] with its exit status and last
    /// lines if it died during the test (see [`Executor::check_alive`]). The fixture checks
    /// it when the test ends, and fails the test with it.
    ///
    /// # Errors
    ///
    /// [`Error::ServiceDied`].
    pub fn check_alive(&self) -> Result<(), Error> {
        self.executor.check_alive()
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

    /// The tail of its output, labelled, for a failing test; and whether it died during it.
    pub(crate) fn report(&self) -> String {
        let tail = self.output().tail(FAILURE_TAIL_LINES);
        let command = self.executor.command().to_string();
        let died = match self.check_alive() {
            Err(err) => match err.exit_status() {
                Some(status) => {
                    format!(" died during the test ({})", crate::error::describe_status(&status))
                }
                None => " died during the test".to_string(),
            },
            Ok(()) => String::new(),
        };
        if tail.is_empty() {
            format!("--- mirakuru fixture `{}` (`{command}`){died} wrote nothing ---\n", self.name)
        } else {
            format!("--- mirakuru fixture `{}` (`{command}`){died} ---\n{tail}", self.name)
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
            specs.iter().flat_map(|s| s.fixed_ports()).map(|p| format!("port-{p}")).collect();
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
    /// first. If the test passed but a fixture died during it, panics with how it died and
    /// its last lines ([`Error::ServiceDied`]); if one did not stop cleanly, with that error.
    pub fn finish(mut self, failed: bool) {
        self.finished = true;
        if failed {
            self.print_reports();
        }
        // Before the teardown, which would report a death as an unclean stop.
        let died: Vec<(String, Error)> = self
            .list
            .iter()
            .filter_map(|f| f.check_alive().err().map(|e| (f.name.clone(), e)))
            .collect();
        let errors = self.teardown();
        if !failed {
            if let Some((name, err)) = died.into_iter().next() {
                panic!("mirakuru fixture `{name}`: {err}");
            }
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
