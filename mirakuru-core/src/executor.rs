//! The executor: a command, a readiness check and deadlines. `start` blocks until the service
//! is ready, `stop` takes its whole tree down, `Drop` stops it if the test did not.

use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::command::{Command, Prepared};
use crate::error::Error;
use crate::events;
use crate::output::Output;
use crate::platform;
use crate::process::{far_future, Extras, Liveness, Monitor, Process, StopPlan, Survivors};
use crate::ready::{Captures, Check, Context, Setup, Status};
use crate::settings::{settings_setters, Settings};
use crate::signal::Signal;
use crate::stopped::Stopped;

/// How many lines of output an error message carries.
pub(crate) const TAIL_LINES: usize = 20;

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
    settings: Settings,
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

impl<C: Check> Executor<C> {
    /// An executor for `command` (a command line or a list of arguments, see
    /// [`Command`]) that is ready when `check` says so. Never fails: arguments are checked by
    /// [`start`](Executor::start), before anything is spawned.
    pub fn new(command: impl Into<Command>, check: C) -> Executor<C> {
        Executor::with_settings(Settings::new(command.into()), check)
    }

    pub(crate) fn with_settings(settings: Settings, check: C) -> Executor<C> {
        let inner = Inner {
            settings,
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

    pub(crate) fn configure(self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.lock().settings);
        self
    }

    pub(crate) fn configure_check(self, f: impl FnOnce(&mut C)) -> Self {
        f(&mut self.lock().check);
        self
    }

    settings_setters!();

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

    /// The command, as given.
    pub fn command(&self) -> Command {
        self.lock().settings.command.clone()
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
    pub fn stopped(&mut self) -> Result<Stopped, Error>
    where
        C: 'static,
    {
        self.stopped_shared()
    }

    /// [`Executor::stopped`] through a shared reference, for fixtures handed to tests as `&`.
    pub(crate) fn stopped_shared(&self) -> Result<Stopped, Error>
    where
        C: 'static,
    {
        let was_started = {
            let mut inner = self.lock();
            let was_started = inner.process.is_some();
            inner.stop(None, None)?;
            was_started
        };
        let inner = Arc::clone(&self.inner);
        let restart = move || inner.lock().unwrap_or_else(|p| p.into_inner()).start();
        Ok(Stopped::new(was_started.then(|| Box::new(restart) as _)))
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
        Some(inner.alive.as_ref().map_or(process.pid, |alive| alive.main_pid(process)))
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
    fn command_text(&self) -> String {
        self.settings.command.to_string()
    }

    pub(crate) fn start(&mut self) -> Result<(), Error> {
        let command = self.command_text();
        let (prepared, monitor, extras) = self.prepare(&command)?;
        let plan = StopPlan {
            stop_signal: self.settings.stop_signal,
            kill_signal: self.settings.kill_signal,
            stop_timeout: self.settings.stop_timeout,
        };
        let deadline = Instant::now().checked_add(self.settings.timeout).unwrap_or_else(far_future);
        let spawned =
            Process::spawn(&self.settings.command, &prepared, &extras, Arc::clone(&monitor), plan);
        // The service has its copies now. Ours must go: a readiness pipe only reports
        // "closed" once every write end is.
        drop(extras);
        let process = match spawned {
            Ok(process) => process,
            Err(source) => {
                self.check.release();
                return Err(Error::Spawn { command, source });
            }
        };
        self.monitor = Some(Arc::clone(&monitor));
        let waited = self.wait_until_ready(&process, deadline);
        // Banners are searched no more: the output is only drained from here on.
        monitor.end_watches();
        match waited {
            Ok(main_pid) => {
                self.on_ready(&process);
                self.alive = Some(Liveness::new(&process, main_pid));
                self.process = Some(process);
                Ok(())
            }
            Err(err) => {
                // Nothing of a failed start survives it.
                process.terminate(self.settings.kill_signal, Duration::ZERO, Signal::SIGKILL);
                self.check.release();
                events::start_failed(&command, &err);
                Err(err)
            }
        }
    }

    /// Everything before the spawn: the arguments checked, the check prepared, and nothing
    /// answering already where the service will.
    fn prepare(&mut self, command: &str) -> Result<(Prepared, Arc<Monitor>, Extras), Error> {
        if self.process.is_some() {
            return Err(Error::AlreadyRunning {
                command: command.into(),
                reason:
                    "this executor has already started it; call stop() before starting it again"
                        .into(),
            });
        }
        if self.settings.timeout.is_zero() {
            return Err(Error::InvalidArgument {
                command: command.into(),
                problem: "the startup timeout is zero".into(),
                hint: "give `.timeout(...)` a positive duration".into(),
            });
        }
        let prepared = self.settings.command.validate()?;
        let monitor = Monitor::new(self.settings.output_limit).map_err(|source| Error::Io {
            command: command.into(),
            action: "preparing to start".into(),
            source,
        })?;
        self.times.clear();
        self.alive = None;
        let mut setup = Setup {
            command: &self.settings.command,
            monitor: &monitor,
            extras: Extras::default(),
            user: prepared.user,
        };
        let checked = self.check.prepare(&mut setup).map_err(|problem| Error::InvalidArgument {
            command: command.into(),
            problem,
            hint: "fix the readiness check's arguments".into(),
        });
        let err = match checked.and_then(|()| self.check.already_running(&setup)) {
            Ok(None) => return Ok((prepared, Arc::clone(&monitor), setup.extras)),
            Ok(Some(reason)) => Error::AlreadyRunning { command: command.into(), reason },
            Err(err) => err,
        };
        self.check.release();
        Err(err)
    }

    /// Records how long the start took, in total and for each part of the check. A launcher
    /// that daemonizes (`redis-server --daemonize yes`) may have left a daemon that escaped
    /// its session — and the launcher may still be running, on its way out: the listener on
    /// the check's port is adopted if it is one of this binary's orphans, so that `running()`,
    /// `stop()` and the reaper find it. (A service that listens itself is asked first, at the
    /// cost of reading its descriptors.)
    fn on_ready(&mut self, process: &Process) {
        if let Some(port) = self.check.port() {
            process.port_owner(port);
        }
        let after = process.spawned_at.elapsed();
        self.ready_after = Some(after);
        self.times = std::iter::once((self.check.describe(), after))
            .chain(self.check.ready_times())
            .collect();
        events::ready(&self.command_text(), &self.times);
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        let (Some(process), Some(alive)) = (&self.process, &self.alive) else {
            return Ok(());
        };
        let Some(death) = alive.death(process) else {
            return Ok(());
        };
        let err = Error::ServiceDied {
            command: self.command_text(),
            pid: death.pid,
            status: death.status,
            status_taken: death.status_taken,
            after: alive.ready_at.elapsed(),
            output: process.monitor().output().tail(TAIL_LINES),
        };
        events::died(&self.command_text(), &err);
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
            cx.reset();
            cx.port = self.check.port();
            let status = self.check.poll(&mut cx);
            // Read after the check: an exit in the same pass as its answer counts.
            let exit = monitor.exit().map(|s| s.unwrap_or_else(|| ExitStatus::from_raw(0)));
            match (exit, status) {
                (Some(exit), _) if !exit.success() => return Err(self.exited_early(process, exit)),
                (_, Status::Ready) => return Ok(cx.main_pid),
                (Some(exit), Status::Failed(_)) => return Err(self.exited_early(process, exit)),
                (None, Status::Failed(reason)) => return Err(self.failed(process, reason)),
                // A launcher that exits 0 may have left a daemon behind (`pg_ctl start`):
                // wait on, as long as some process of the tree lives.
                (Some(exit), _) if !survivors.any_alive(process) => {
                    return Err(self.exited_early(process, exit))
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= cx.deadline {
                return Err(self.timed_out(process));
            }
            let until = cx.wake_at.map_or(cx.deadline, |t| t.min(cx.deadline));
            let fds: Vec<_> = std::iter::once(monitor.wake_fd())
                .chain(cx.wake_fds.iter().map(AsFd::as_fd))
                .chain(survivors.fds())
                .collect();
            platform::poll_readable(&fds, Some(until.saturating_duration_since(now))).map_err(
                |source| Error::Io {
                    command: self.command_text(),
                    action: "waiting for".into(),
                    source,
                },
            )?;
        }
    }

    fn exited_early(&self, process: &Process, status: ExitStatus) -> Error {
        Error::ProcessExitedWithError {
            command: self.command_text(),
            status,
            waited_for: self.check.describe(),
            after: process.spawned_at.elapsed(),
            output: process.monitor().output().tail(TAIL_LINES),
        }
    }

    /// The check failed for good. It often fails because the process is exiting (its output
    /// closed first): its exit status, once published, is the better explanation.
    fn failed(&self, process: &Process, reason: String) -> Error {
        let monitor = process.monitor();
        if monitor.wait_exit_until(Instant::now() + EXIT_GRACE) {
            if let Some(status) = monitor.exit().flatten() {
                if !status.success() {
                    return self.exited_early(process, status);
                }
            }
        }
        Error::CheckFailed {
            command: self.command_text(),
            check: self.check.describe(),
            reason,
            output: monitor.output().tail(TAIL_LINES),
        }
    }

    fn timed_out(&self, process: &Process) -> Error {
        // A check that ran past the deadline (a slow custom check) makes the wait longer than
        // the timeout: the message says how long it really was.
        let waited = process.spawned_at.elapsed();
        let overran = waited.saturating_sub(self.settings.timeout) >= Duration::from_millis(100);
        let last_attempt = match (self.check.last_attempt(), overran) {
            (last, false) => last,
            (last, true) => Some(format!(
                "{}the wait was given up after {waited:?}, a check having run past the timeout",
                last.map(|l| format!("{l}; ")).unwrap_or_default()
            )),
        };
        Error::TimeoutExpired {
            command: self.command_text(),
            waited_for: self.check.describe(),
            timeout: self.settings.timeout,
            last_attempt,
            output: process.monitor().output().tail(TAIL_LINES),
        }
    }

    fn stop(&mut self, signal: Option<Signal>, expected: Option<i32>) -> Result<(), Error> {
        let Some(process) = self.process.take() else {
            return Ok(());
        };
        let signal = signal.unwrap_or(self.settings.stop_signal);
        let stopping = Instant::now();
        let ended =
            process.terminate(signal, self.settings.stop_timeout, self.settings.kill_signal);
        self.check.release();
        let uptime = self.alive.take().map(|a| a.ready_at.elapsed());
        events::stopped(&self.command_text(), stopping.elapsed(), uptime, ended.graceful);
        let Some(status) = ended.status else {
            return Ok(());
        };
        // Escalation killed it: Python mirakuru returns quietly here too.
        if !ended.graceful && status.signal().is_some() {
            return Ok(());
        }
        let expected = expected.or(self.settings.expected_returncode);
        let clean = status.code() == Some(0)
            || match expected {
                Some(code) if code < 0 => status.signal() == Some(-code),
                Some(code) => status.code() == Some(code),
                None => status.signal() == Some(signal.as_raw()),
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
            command: self.command_text(),
            status,
            expected,
            output: self.monitor.as_ref().map(|m| m.output().tail(TAIL_LINES)).unwrap_or_default(),
        })
    }

    fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(self.settings.kill_signal, Duration::ZERO, Signal::SIGKILL);
            self.check.release();
            self.alive = None;
            events::killed(&self.command_text());
        }
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
            .field("command", &inner.command_text())
            .field("waits_for", &inner.check.describe())
            .field("pid", &inner.process.as_ref().map(|p| p.pid))
            .finish()
    }
}
