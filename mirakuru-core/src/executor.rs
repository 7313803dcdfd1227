//! The executor: a command, a readiness check and timeouts; `start` blocks until the service
//! is ready, `stop` takes its whole tree down, `Drop` stops it if the test did not.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::command::{Command, Redirect, Stdin};
use crate::error::Error;
use crate::output::{Output, DEFAULT_OUTPUT_LIMIT};
use crate::process::{Monitor, Process, StopPlan};
use crate::ready::{Captures, Check, Context, Setup, Status};
use crate::signal::Signal;
use crate::stopped::Stopped;
use crate::sys;

/// How many lines of output an error message carries.
const TAIL_LINES: usize = 20;

/// How long a failed check waits for the exit of a process that is probably exiting.
const EXIT_GRACE: Duration = Duration::from_millis(50);

/// Runs a command and blocks in [`start`](Executor::start) until `check` says it is ready.
///
/// The named executors ([`TcpExecutor`](crate::TcpExecutor), [`HttpExecutor`](crate::HttpExecutor),
/// …) are this type with one check each; use `Executor` directly for any other
/// [`Check`], such as a closure:
///
/// ```
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
/// use mirakuru::ready::Status;
///
/// let dir = std::env::temp_dir().join(format!("mirakuru-doc-{}", std::process::id()));
/// let flag = dir.join("flag");
/// std::fs::create_dir_all(&dir).unwrap();
/// let check_flag = flag.clone();
/// let mut ex = Executor::new(
///     vec!["sh".to_string(), "-c".into(), format!("sleep 0.05; touch {}; exec sleep 30", flag.display())],
///     ready::custom("the flag file", move |_cx| {
///         if check_flag.exists() { Status::Ready } else { Status::NotYet }
///     }),
/// );
/// ex.start()?;
/// assert!(flag.exists());
/// ex.stop()?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
///
/// Defaults: startup [`timeout`](Executor::timeout) 60 s, [`stop_timeout`](Executor::stop_timeout)
/// 10 s, stop signal SIGTERM, kill signal SIGKILL, no shell, stdin `/dev/null`, stdout and
/// stderr captured (last 64 KiB of each kept).
///
/// An `Executor` is `Send` and `Sync`; dropping it stops the service.
pub struct Executor<C: Check = Box<dyn Check>> {
    inner: Arc<Mutex<Inner<C>>>,
}

pub(crate) struct Inner<C: Check> {
    config: Config,
    check: C,
    /// The running tree, from spawn to teardown.
    process: Option<Process>,
    /// Output of the current or the last run, kept after stop for post-mortems.
    monitor: Option<Arc<Monitor>>,
    ready_after: Option<Duration>,
    /// When the service became ready, and what tells whether it still runs.
    alive: Option<Liveness>,
    /// Time to ready of the whole check and of its parts, of the last start.
    times: Vec<(String, Duration)>,
}

/// After ready: which process is the service, whose death is the service's death.
#[derive(Debug)]
struct Liveness {
    ready_at: Instant,
    main: Main,
}

#[derive(Debug)]
enum Main {
    /// The spawned process (the usual case): its exit status is known. An exit with code 0
    /// is a death only if it left processes behind when it became ready (a launcher such as
    /// `pg_ctl start`, exiting once its server is up): then the tree is watched after it;
    /// otherwise the service finished, as a one-shot command or after a SHUTDOWN, which
    /// [`Executor::stop`] does not count as an error either.
    Leader { others: bool },
    /// A process the service named (sd_notify `MAINPID=`, a pid file): watched through a
    /// pidfd where there are pidfds, else by pid and start time.
    Pid { pid: u32, pidfd: Option<OwnedFd>, start: Option<u64> },
    /// The launcher had exited (it daemonized) and named nobody: any process of the tree.
    Tree,
}

#[derive(Clone)]
struct Config {
    command: Command,
    timeout: Duration,
    stop_timeout: Duration,
    stop_signal: Signal,
    kill_signal: Signal,
    expected_returncode: Option<i32>,
    output_limit: usize,
}

impl<C: Check> Executor<C> {
    /// An executor for `command` (a command line or a list of arguments, see
    /// [`Command`]) that is ready when `check` says so. Never fails: arguments are checked by
    /// [`start`](Executor::start), before anything is spawned.
    pub fn new(command: impl Into<Command>, check: C) -> Executor<C> {
        let config = Config {
            command: command.into(),
            timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            stop_signal: Signal::SIGTERM,
            kill_signal: Signal::SIGKILL,
            expected_returncode: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        };
        let inner = Inner {
            config,
            check,
            process: None,
            monitor: None,
            ready_after: None,
            alive: None,
            times: Vec::new(),
        };
        Executor { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<C>> {
        // A panic inside a user's check closure must not make the executor unusable (and its
        // Drop must still stop the service).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn configure(self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.lock().config);
        self
    }

    pub(crate) fn configure_check(self, f: impl FnOnce(&mut C)) -> Self {
        f(&mut self.lock().check);
        self
    }

    /// Reads the readiness check's own state: what it saw in the last start.
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::{ready, Executor};
    ///
    /// let mut ex = Executor::new(["sh", "-c", "echo :99 >&3; exec sleep 30"], ready::ready_fd(3));
    /// ex.start()?;
    /// assert_eq!(ex.read_check(|fd| fd.line()).as_deref(), Some(":99"));
    /// ex.stop()?;
    /// # Ok(()) }
    /// ```
    pub fn read_check<R>(&self, f: impl FnOnce(&C) -> R) -> R {
        f(&self.lock().check)
    }

    /// How long [`start`](Executor::start) waits for readiness before it kills the process
    /// and fails with [`Error::TimeoutExpired`]. Default: 60 s (Python mirakuru: 3600 s).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.configure(|c| c.timeout = timeout)
    }

    /// How long [`stop`](Executor::stop) waits after the stop signal before it sends the kill
    /// signal. Separate from the startup timeout, unlike in Python mirakuru (#252). Default: 10 s.
    pub fn stop_timeout(self, timeout: Duration) -> Self {
        self.configure(|c| c.stop_timeout = timeout)
    }

    /// Runs the command through `sh -c` (for pipes, redirections, `$VARS`). Default: false,
    /// the command is split like a shell would and executed directly.
    pub fn shell(self, shell: bool) -> Self {
        self.configure(|c| c.command.shell = shell)
    }

    /// The working directory of the process; relative pid-file and socket paths are resolved
    /// against it too. Default: the test's working directory.
    pub fn cwd(self, dir: impl Into<PathBuf>) -> Self {
        self.configure(|c| c.command.cwd = Some(dir.into()))
    }

    /// Sets an environment variable for the process (the rest of the test's environment is
    /// inherited, unless [`env_clear`](Executor::env_clear)).
    pub fn env(self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.configure(|c| c.command.env.push((key.into(), Some(value.into()))))
    }

    /// Sets several environment variables.
    pub fn envs<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.configure(|c| {
            c.command.env.extend(vars.into_iter().map(|(k, v)| (k.into(), Some(v.into()))))
        })
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(self, key: impl Into<OsString>) -> Self {
        self.configure(|c| c.command.env.push((key.into(), None)))
    }

    /// Starts from an empty environment: only the variables set with
    /// [`env`](Executor::env) are passed.
    pub fn env_clear(self) -> Self {
        self.configure(|c| {
            c.command.env_clear = true;
            c.command.env.clear();
        })
    }

    /// The signal [`stop`](Executor::stop) sends first. Default: SIGTERM.
    pub fn stop_signal(self, signal: Signal) -> Self {
        self.configure(|c| c.stop_signal = signal)
    }

    /// The signal sent when the stop timeout expires, and by [`kill`](Executor::kill).
    /// Default: SIGKILL.
    pub fn kill_signal(self, signal: Signal) -> Self {
        self.configure(|c| c.kill_signal = signal)
    }

    /// The exit that counts as a clean stop, as Python's returncode: `143` for a JVM
    /// (mirakuru #388), `1` for Click programs (#457), `-15` for "killed by SIGTERM". Exit
    /// code 0 is always clean. Default: killed by the stop signal, or exit code 0.
    pub fn expected_returncode(self, code: i32) -> Self {
        self.configure(|c| c.expected_returncode = Some(code))
    }

    /// Runs the command as another user — a name, a uid or `uid:gid` — with that user's uid and
    /// primary group and no supplementary groups. PostgreSQL, for one, refuses to run as
    /// root. Only root can switch users; `start()` says so otherwise. Default: the test's user.
    pub fn user(self, user: impl Into<String>) -> Self {
        let user = user.into();
        self.configure(|c| c.command.user = Some(user))
    }

    /// Where stdin comes from. Default: [`Stdin::Null`].
    pub fn stdin(self, stdin: Stdin) -> Self {
        self.configure(|c| c.command.stdin = stdin)
    }

    /// Where stdout goes. Default: [`Redirect::Capture`].
    pub fn stdout(self, to: Redirect) -> Self {
        self.configure(|c| c.command.stdout = to)
    }

    /// Where stderr goes. Default: [`Redirect::Capture`].
    pub fn stderr(self, to: Redirect) -> Self {
        self.configure(|c| c.command.stderr = to)
    }

    /// How many of the last bytes of each captured stream are kept. Default: 64 KiB.
    pub fn output_limit(self, bytes: usize) -> Self {
        self.configure(|c| c.output_limit = bytes.max(1))
    }

    /// The command, as given.
    pub fn command(&self) -> Command {
        self.lock().config.command.clone()
    }

    /// Starts the process and blocks until it is ready.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`]: the command or the check is invalid; nothing was spawned.
    /// - [`Error::AlreadyRunning`]: this executor runs already, or something else answers
    ///   where the service will (port, socket, pid file); nothing was spawned.
    /// - [`Error::StalePidFile`]: a pid file left by an earlier run is in the way.
    /// - [`Error::Spawn`]: the operating system could not start the program.
    /// - [`Error::ProcessExitedWithError`]: the process exited before it was ready.
    /// - [`Error::TimeoutExpired`]: not ready within [`timeout`](Executor::timeout).
    /// - [`Error::CheckFailed`]: the check decided the service can never be ready.
    ///
    /// After an error, nothing of the process is left running.
    pub fn start(&mut self) -> Result<(), Error> {
        self.lock().start()
    }

    /// Stops the whole process tree: the stop signal to every process of it, up to
    /// [`stop_timeout`](Executor::stop_timeout) for them to exit, then the kill signal. Then
    /// checks how the process ended. A no-op when not running.
    ///
    /// # Errors
    ///
    /// [`Error::ProcessFinishedWithError`] if the process ended otherwise than expected (see
    /// [`expected_returncode`](Executor::expected_returncode)) — for instance because it had
    /// crashed before `stop` was called. The tree is gone either way.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.stop_shared()
    }

    /// [`Executor::stop`] through a shared reference, for fixtures.
    pub(crate) fn stop_shared(&self) -> Result<(), Error> {
        self.lock().stop(None, None)
    }

    /// [`stop`](Executor::stop) with another signal and expected exit for this once (Python
    /// mirakuru's `stop(stop_signal, expected_returncode)`).
    pub fn stop_with(
        &mut self,
        signal: Signal,
        expected_returncode: Option<i32>,
    ) -> Result<(), Error> {
        self.lock().stop(Some(signal), expected_returncode)
    }

    /// Kills the whole tree with the kill signal, without a grace period and without checking
    /// the exit. Never hangs: a kill signal that is ignored is followed by SIGKILL. A no-op
    /// when not running.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.lock().kill();
        Ok(())
    }

    /// Sends `signal` to every process of the service's tree (a SIGHUP to reload its
    /// configuration, say). A no-op when not running.
    pub fn signal(&self, signal: Signal) {
        if let Some(process) = &self.lock().process {
            process.signal(signal);
        }
    }

    /// [`stop`](Executor::stop), then [`start`](Executor::start).
    pub fn restart(&mut self) -> Result<(), Error> {
        let mut inner = self.lock();
        inner.stop(None, None)?;
        inner.start()
    }

    /// Stops the service until the returned guard is dropped or
    /// [`restarted`](Stopped::restart), then starts it again and waits until it is ready —
    /// also when the code in between panics. If the service was not started, it stays down.
    /// [`stopped!`](https://docs.rs/mirakuru/latest/mirakuru/macro.stopped.html) wraps this.
    ///
    /// # Errors
    ///
    /// The errors of [`stop`](Executor::stop).
    pub fn stopped(&mut self) -> Result<Stopped<C>, Error> {
        self.stopped_shared()
    }

    /// [`Executor::stopped`] through a shared reference, for fixtures handed to tests as `&`.
    pub(crate) fn stopped_shared(&self) -> Result<Stopped<C>, Error> {
        let was_started = {
            let mut inner = self.lock();
            let was_started = inner.process.is_some();
            inner.stop(None, None)?;
            was_started
        };
        Ok(Stopped { inner: was_started.then(|| Arc::clone(&self.inner)) })
    }

    /// Whether the service runs: its process, or — for launchers that daemonize — any
    /// process of its tree. (Python mirakuru looks at the launcher only.)
    pub fn running(&self) -> bool {
        self.lock().process.as_ref().is_some_and(Process::alive)
    }

    /// The pid of the spawned process, while started (as std's `Child::id`).
    pub fn pid(&self) -> Option<u32> {
        self.lock().process.as_ref().map(|p| p.pid)
    }

    /// How the spawned process exited, if it did and has not been stopped yet.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().process.as_ref().and_then(|p| p.exit_now().flatten())
    }

    /// What the process wrote — everything written before this call, within the captured part
    /// (see [`output_limit`](Executor::output_limit)) —
    /// also after it stopped: the output of the last run is kept until the next start.
    pub fn output(&self) -> Output {
        let inner = self.lock();
        if let Some(process) = &inner.process {
            process.drain_output();
        }
        inner.monitor.as_ref().map(|m| m.output()).unwrap_or_default()
    }

    /// How long the last successful start took, from spawn to ready.
    pub fn ready_after(&self) -> Option<Duration> {
        self.lock().ready_after
    }

    /// How long after the spawn each check became ready in the last successful start: the
    /// whole check first, then, for combinators ([`ready::All`](crate::ready::All),
    /// [`ready::Any`](crate::ready::Any)), each part that became ready, nested parts after
    /// their parent. Empty before a successful start. The same numbers are emitted as
    /// `tracing` events (target `mirakuru`, fields `command`, `check`, `elapsed_ms`).
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::{ready, Executor};
    ///
    /// let mut ex = Executor::new(
    ///     ["sh", "-c", "echo one; sleep 0.05; echo two; exec sleep 30"],
    ///     ready::all().with(ready::Banner::new("one")).with(ready::Banner::new("two")),
    /// );
    /// ex.start()?;
    /// let times = ex.readiness_times();
    /// assert_eq!(times.len(), 3); // the whole, then each banner
    /// assert!(times[1].1 <= times[2].1);
    /// assert!(times[0].1 >= times[2].1); // ready once the last part was
    /// ex.stop()?;
    /// # Ok(()) }
    /// ```
    pub fn readiness_times(&self) -> Vec<(String, Duration)> {
        self.lock().times.clone()
    }

    /// What the check captured in the last start: the groups of a banner or file regex,
    /// the line written to a readiness fd (see [`Captures`]).
    pub fn captures(&self) -> Option<Captures> {
        self.lock().check.captures()
    }

    /// The TCP port the check waits on, or found the service listening on (a service started
    /// on port 0 and checked with [`ready::listening`](crate::ready::listening); a banner
    /// group named `port`). `None` if no check knows one.
    pub fn port(&self) -> Option<u16> {
        self.lock().check.port()
    }

    /// The service's main process, while started: the one it named (sd_notify `MAINPID=`, its
    /// pid file), else the spawned one.
    pub fn main_pid(&self) -> Option<u32> {
        let inner = self.lock();
        let process = inner.process.as_ref()?;
        match inner.alive.as_ref().map(|l| &l.main) {
            Some(Main::Pid { pid, .. }) => Some(*pid),
            _ => Some(process.pid),
        }
    }

    /// Whether the service still runs, as an error that says how it died if it did not:
    /// call it in a test to fail with "redis died during the test (killed by signal 9); its
    /// last lines: …" instead of the confusing connection error that would follow.
    /// Fixtures check it when the test ends.
    ///
    /// The service is its main process: the spawned one, or the one it named (sd_notify
    /// `MAINPID=`, a pid file); for a launcher that daemonized without naming its daemon,
    /// any process of its tree. An exit with code 0 is no death — the service finished (a
    /// one-shot command, a SHUTDOWN sent by the test), as for [`stop`](Executor::stop) —
    /// unless it leaves the service's other processes behind, which are then watched. `Ok`
    /// when the service is not started.
    ///
    /// # Errors
    ///
    /// [`Error::ServiceDied`], with the exit status when it is known and the output tail.
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::{Error, SimpleExecutor};
    ///
    /// let mut ex = SimpleExecutor::new(["sh", "-c", "sleep 0.05; echo oops >&2; exit 3"]);
    /// ex.start()?;
    /// ex.check_alive()?; // running
    /// std::thread::sleep(std::time::Duration::from_millis(500));
    /// let err = ex.check_alive().unwrap_err();
    /// assert!(matches!(err, Error::ServiceDied { .. }));
    /// assert_eq!(err.exit_status().and_then(|s| s.code()), Some(3));
    /// assert!(err.to_string().contains("oops"));
    /// let _ = ex.stop(); // reports the unexpected exit too
    /// # Ok(()) }
    /// ```
    pub fn check_alive(&self) -> Result<(), Error> {
        self.lock().check_alive()
    }
}

impl<C: Check> Inner<C> {
    pub(crate) fn start(&mut self) -> Result<(), Error> {
        let command = self.config.command.to_string();
        if self.process.is_some() {
            return Err(Error::AlreadyRunning {
                command,
                reason:
                    "this executor has already started it; call stop() before starting it again"
                        .into(),
            });
        }
        if self.config.timeout.is_zero() {
            return Err(Error::InvalidArgument {
                command,
                problem: "the startup timeout is zero".into(),
                hint: "give `.timeout(...)` a positive duration".into(),
            });
        }
        let prepared = self.config.command.validate()?;
        let monitor = Monitor::new(self.config.output_limit).map_err(|source| Error::Io {
            command: command.clone(),
            action: "preparing to start".into(),
            source,
        })?;
        let mut setup = Setup {
            command: &self.config.command,
            monitor: &monitor,
            env: Vec::new(),
            fds: Vec::new(),
            user: prepared.user,
        };
        self.times.clear();
        self.alive = None;
        let prepared_check =
            self.check.prepare(&mut setup).map_err(|problem| Error::InvalidArgument {
                command: command.clone(),
                problem,
                hint: "fix the readiness check's arguments".into(),
            });
        let already = match prepared_check {
            Ok(()) => self.check.already_running(&setup),
            Err(err) => Err(err),
        };
        match already {
            Ok(None) => {}
            Ok(Some(reason)) => {
                self.check.release();
                return Err(Error::AlreadyRunning { command, reason });
            }
            Err(err) => {
                self.check.release();
                return Err(err);
            }
        }
        let extra_env = std::mem::take(&mut setup.env);
        let pass_fds = std::mem::take(&mut setup.fds);
        let plan = StopPlan {
            stop_signal: self.config.stop_signal,
            kill_signal: self.config.kill_signal,
            stop_timeout: self.config.stop_timeout,
        };
        let deadline = Instant::now() + self.config.timeout;
        let spawned = Process::spawn(
            &self.config.command,
            &prepared,
            &extra_env,
            &pass_fds,
            Arc::clone(&monitor),
            plan,
        );
        // The service has its copies now. Ours must go: a readiness pipe only reports
        // "closed" once every write end is.
        drop(pass_fds);
        let process = match spawned {
            Ok(process) => process,
            Err(source) => {
                self.check.release();
                return Err(Error::Spawn { command, source });
            }
        };
        self.monitor = Some(monitor);
        match self.wait_until_ready(&process, deadline) {
            Ok(main_pid) => {
                let after = process.spawned_at.elapsed();
                self.ready_after = Some(after);
                self.times = std::iter::once((self.check.describe(), after))
                    .chain(self.check.ready_times())
                    .collect();
                for (check, elapsed) in &self.times {
                    tracing::info!(
                        target: "mirakuru",
                        command = %command,
                        check = %check,
                        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                        "ready"
                    );
                }
                self.alive =
                    Some(Liveness { ready_at: Instant::now(), main: main(&process, main_pid) });
                self.process = Some(process);
                Ok(())
            }
            Err(err) => {
                // Nothing of a failed start survives it.
                process.terminate(self.config.kill_signal, Duration::ZERO, Signal::SIGKILL);
                self.check.release();
                tracing::warn!(target: "mirakuru", command = %command, error = %err, "start failed");
                Err(err)
            }
        }
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        let (Some(process), Some(alive)) = (&self.process, &self.alive) else {
            return Ok(());
        };
        let leader_exit =
            || process.monitor().exit().map(|s| s.unwrap_or_else(|| ExitStatus::from_raw(0)));
        let (dead, status, pid) = match &alive.main {
            Main::Leader { others } => match leader_exit() {
                None => (false, None, process.pid),
                Some(status) if !status.success() => (true, Some(status), process.pid),
                Some(_) if *others => (!process.alive(), None, process.pid),
                Some(_) => (false, None, process.pid),
            },
            Main::Pid { pid, pidfd, start } => {
                let gone = match pidfd {
                    Some(fd) => {
                        sys::poll_readable(&[std::os::fd::AsFd::as_fd(fd)], Some(Duration::ZERO))
                            .map(|r| r.first().copied().unwrap_or(false))
                            .unwrap_or(false)
                    }
                    None => {
                        !matches!(sys::kill(*pid as i32, 0), Ok(true))
                            || (start.is_some() && crate::sweep::start_time(*pid) != *start)
                    }
                };
                (gone, None, *pid)
            }
            // The launcher's exit says nothing of how its daemon ended.
            Main::Tree => (!process.alive(), None, process.pid),
        };
        if !dead {
            return Ok(());
        }
        let err = Error::ServiceDied {
            command: self.config.command.to_string(),
            pid,
            status,
            after: alive.ready_at.elapsed(),
            output: process.monitor().output().tail(TAIL_LINES),
        };
        tracing::warn!(target: "mirakuru", command = %self.config.command, error = %err, "service died");
        Err(err)
    }

    /// Polls the check until it is ready; returns the main pid a check named, if one did.
    fn wait_until_ready(
        &mut self,
        process: &Process,
        deadline: Instant,
    ) -> Result<Option<u32>, Error> {
        let monitor = Arc::clone(process.monitor());
        let mut cx = Context::new(process, deadline);
        let mut survivors = Survivors::default();
        loop {
            // Clear first: anything that happens from here on wakes the poll below.
            monitor.clear_wake();
            let exit = monitor.exit();
            cx.reset();
            cx.port = self.check.port();
            let status = self.check.poll(&mut cx);
            if status == Status::Ready {
                return Ok(cx.main_pid);
            }
            let exited_early = |status: ExitStatus| Error::ProcessExitedWithError {
                command: self.config.command.to_string(),
                status,
                waited_for: self.check.describe(),
                after: process.spawned_at.elapsed(),
                output: monitor.output().tail(TAIL_LINES),
            };
            // The exit, when there is one, is the fact to report: it explains a failed check.
            let exit = exit.map(|s| s.unwrap_or_else(|| ExitStatus::from_raw(0)));
            match (exit, status) {
                (Some(exit), _) if !exit.success() => return Err(exited_early(exit)),
                (Some(exit), Status::Failed(_)) => return Err(exited_early(exit)),
                (None, Status::Failed(reason)) => {
                    // A check often fails because the process is exiting (its output closed
                    // first): its exit status, once published, is the better explanation.
                    if monitor.wait_exit_until(Instant::now() + EXIT_GRACE) {
                        if let Some(status) = monitor.exit().flatten() {
                            if !status.success() {
                                return Err(exited_early(status));
                            }
                        }
                    }
                    return Err(self.check_failed(process, reason));
                }
                // A launcher that exits 0 may have left a daemon behind (`pg_ctl start`):
                // wait on, as long as some process of the tree lives.
                (Some(exit), _) if !survivors.any_alive(process) => return Err(exited_early(exit)),
                _ => {}
            }
            let now = Instant::now();
            let deadline = cx.deadline;
            if now >= deadline {
                return Err(Error::TimeoutExpired {
                    command: self.config.command.to_string(),
                    waited_for: self.check.describe(),
                    timeout: self.config.timeout,
                    last_attempt: self.check.last_attempt(),
                    output: monitor.output().tail(TAIL_LINES),
                });
            }
            let until = cx.wake_at.map_or(deadline, |t| t.min(deadline));
            // The fds the check registered stay open while it is borrowed here (see unsafe_borrow).
            let fds: Vec<BorrowedFd<'_>> = std::iter::once(monitor.wake_fd())
                .chain(cx.wake_fds.iter().map(|&fd| unsafe_borrow(fd)))
                .chain(survivors.fds())
                .collect();
            sys::poll_readable(&fds, Some(until.saturating_duration_since(now))).map_err(
                |source| Error::Io {
                    command: self.config.command.to_string(),
                    action: "waiting for".into(),
                    source,
                },
            )?;
        }
    }

    fn check_failed(&self, process: &Process, reason: String) -> Error {
        Error::CheckFailed {
            command: self.config.command.to_string(),
            check: self.check.describe(),
            reason,
            output: process.monitor().output().tail(TAIL_LINES),
        }
    }

    fn stop(&mut self, signal: Option<Signal>, expected: Option<i32>) -> Result<(), Error> {
        let Some(process) = self.process.take() else {
            return Ok(());
        };
        let signal = signal.unwrap_or(self.config.stop_signal);
        let stopping = Instant::now();
        let ended = process.terminate(signal, self.config.stop_timeout, self.config.kill_signal);
        self.check.release();
        let uptime = self.alive.take().map(|a| a.ready_at.elapsed());
        tracing::info!(
            target: "mirakuru",
            command = %self.config.command,
            stop_ms = stopping.elapsed().as_secs_f64() * 1000.0,
            ready_for_ms = uptime.map(|d| d.as_secs_f64() * 1000.0),
            graceful = ended.graceful,
            "stopped"
        );
        let Some(status) = ended.status else {
            return Ok(());
        };
        // Escalation killed it: Python mirakuru returns quietly here too.
        if !ended.graceful && status.signal().is_some() {
            return Ok(());
        }
        let expected = expected.or(self.config.expected_returncode);
        let clean = status.code() == Some(0)
            || match expected {
                Some(code) if code < 0 => status.signal() == Some(-code),
                Some(code) => status.code() == Some(code),
                None => status.signal() == Some(signal as i32),
            };
        if clean {
            return Ok(());
        }
        let expected = match expected {
            Some(code) if code < 0 => format!("death by signal {}", -code),
            Some(code) => format!("exit code {code} or 0"),
            None => format!("death by {signal} or exit code 0"),
        };
        Err(Error::ProcessFinishedWithError {
            command: self.config.command.to_string(),
            status,
            expected,
            output: self.monitor.as_ref().map(|m| m.output().tail(TAIL_LINES)).unwrap_or_default(),
        })
    }

    fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(self.config.kill_signal, Duration::from_secs(5), Signal::SIGKILL);
            self.check.release();
            self.alive = None;
            tracing::info!(target: "mirakuru", command = %self.config.command, "killed");
        }
    }
}

/// What counts as the service once it is ready: the process a check named, else the spawned
/// one, else (a launcher that exited) the tree.
fn main(process: &Process, named: Option<u32>) -> Main {
    match named {
        Some(pid) if pid != process.pid => {
            Main::Pid { pid, pidfd: sys::pidfd_open(pid), start: crate::sweep::start_time(pid) }
        }
        // Other processes of the tree, besides the leader (which may even be a zombie already):
        _ if process.leader_running() => {
            Main::Leader { others: process.tree_pids().iter().any(|&pid| pid != process.pid) }
        }
        _ => Main::Tree,
    }
}

/// Wraps an fd the check registered; it outlives the poll call it is used in.
fn unsafe_borrow<'a>(fd: std::os::fd::RawFd) -> BorrowedFd<'a> {
    // SAFETY: `Check` implementations keep the fds they register open until their next poll;
    // this borrow lives only for the poll(2) call in `wait_until_ready`.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// After a launcher exited 0: the processes it left, watched through pidfds.
#[derive(Default)]
struct Survivors {
    pidfds: Option<Vec<std::os::fd::OwnedFd>>,
}

impl Survivors {
    /// Whether some process of the tree still runs; sweeps again only once every known
    /// survivor has exited.
    fn any_alive(&mut self, process: &Process) -> bool {
        if let Some(fds) = &self.pidfds {
            let borrowed: Vec<_> = fds.iter().map(std::os::fd::AsFd::as_fd).collect();
            let exited = sys::poll_readable(&borrowed, Some(Duration::ZERO)).unwrap_or_default();
            if !fds.is_empty() && exited.iter().any(|&e| !e) {
                return true;
            }
        }
        if !cfg!(target_os = "linux") {
            return process.alive();
        }
        let fds = process.member_pidfds();
        let alive = !fds.is_empty();
        self.pidfds = Some(fds);
        alive
    }

    fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.pidfds.iter().flatten().map(std::os::fd::AsFd::as_fd)
    }
}

impl<C: Check> Drop for Inner<C> {
    /// Stops the service, gracefully, as [`Executor::stop`] would; errors are ignored.
    fn drop(&mut self) {
        let _ = self.stop(None, None);
    }
}

impl<C: Check> fmt::Debug for Executor<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Executor")
            .field("command", &inner.config.command.to_string())
            .field("waits_for", &inner.check.describe())
            .field("pid", &inner.process.as_ref().map(|p| p.pid))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ready;
    use std::sync::Mutex;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// The events of one thread, as `message field=value ...` lines.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0.insert_str(0, &format!("{value:?}"));
            } else {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
    }

    impl Subscriber for &'static Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(String::new());
            event.record(&mut line);
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn ready_and_stop_are_tracing_events_with_the_time_of_each_check() {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::with_default(recorder, || {
            let mut ex = Executor::new(
                ["sh", "-c", "echo one; echo two; exec sleep 30"],
                ready::all().with(ready::Banner::new("one")).with(ready::Banner::new("two")),
            );
            ex.start().expect("start");
            ex.stop().expect("stop");
        });
        let lines = recorder.0.lock().expect("lines").clone();
        let ready: Vec<&String> = lines.iter().filter(|l| l.starts_with("ready")).collect();
        assert_eq!(ready.len(), 3, "the whole check and each part: {lines:#?}");
        assert!(ready[0].contains("check=all of"), "{lines:#?}");
        assert!(ready[1].contains("check=the output to match \"one\""), "{lines:#?}");
        assert!(ready.iter().all(|l| l.contains("command=sh -c") && l.contains("elapsed_ms=")));
        assert!(lines.iter().any(|l| l.starts_with("stopped") && l.contains("graceful=true")));
    }

    #[test]
    fn a_failed_start_is_a_tracing_event() {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::with_default(recorder, || {
            let mut ex = Executor::new(["sh", "-c", "exit 4"], ready::Banner::new("never"));
            assert!(ex.start().is_err());
        });
        let lines = recorder.0.lock().expect("lines").clone();
        assert!(
            lines.iter().any(|l| l.starts_with("start failed") && l.contains("exit code 4")),
            "{lines:#?}"
        );
    }
}
