//! Ready when a command succeeds: `pg_isready`, `redis-cli ping`, `mysqladmin ping`, any
//! script (the probe testcontainers-rs users ask for, testcontainers-rs#865; Kubernetes'
//! `exec` probe). Each attempt runs the command once with a time limit of its own inside the
//! overall deadline; its exit is an event (a pidfd where the kernel has them) and its output
//! is read as it comes, so a fast probe is seen at once and a hung one is killed on time.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use regex::bytes::Regex;

use super::{Check, Context, Setup, Status};
use crate::command::{Command, Prepared};
use crate::platform;
use crate::signal::Signal;

/// How long one run of the probe may take by default. `pg_isready` gives up after 3 s on a
/// host that does not answer; on loopback the answer takes milliseconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two runs by default: a probe costs a fork and an exec, so it is
/// not repeated as often as a connect.
const INTERVAL: Duration = Duration::from_millis(50);

/// How long the output of a run that exited is still read while something it forked keeps
/// its pipes open.
const EXIT_GRACE: Duration = Duration::from_millis(20);

/// How much of a run's output is kept, for matching and for messages.
const MAX_OUTPUT: usize = 64 * 1024;

/// Ready when a command exits with code 0 (or another code, [`code`](Exec::code)) — and,
/// with [`output`](Exec::output), prints a match of a regex on stdout or stderr.
///
/// The command is given as an executor's is: a command line, split as a shell would (or run
/// by `sh -c` with [`shell`](Exec::shell)), or a list of arguments. It runs with the test's
/// environment and working directory, in a session of its own, and is killed with its
/// children when its [`attempt_timeout`](Exec::attempt_timeout) or the startup deadline
/// passes, or when the test binary dies.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
/// use std::time::Duration;
///
/// let mut redis = Executor::new(
///     "redis-server --port 6390 --save ''",
///     ready::exec("redis-cli -p 6390 ping").output("^PONG").attempt_timeout(Duration::from_secs(2)),
/// );
/// redis.start()?;
/// redis.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Exec {
    command: Command,
    prepared: Option<Prepared>,
    code: Option<i32>,
    pattern: Option<String>,
    regex: Option<Regex>,
    attempt_timeout: Duration,
    interval: Duration,
    run: Option<Run>,
    next_at: Option<Instant>,
    pause: Duration,
    attempts: u32,
    last: Option<String>,
}

/// One run of the probe.
#[derive(Debug)]
struct Run {
    child: Child,
    pidfd: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    output: Vec<u8>,
    started: Instant,
    limit: Duration,
    /// When its exit was first seen, while something it forked still holds its pipes.
    exited_at: Option<Instant>,
}

/// A check that is ready when `command` succeeds; see [`Exec`].
pub fn exec(command: impl Into<Command>) -> Exec {
    Exec {
        command: command.into(),
        prepared: None,
        code: Some(0),
        pattern: None,
        regex: None,
        attempt_timeout: ATTEMPT_TIMEOUT,
        interval: INTERVAL,
        run: None,
        next_at: None,
        pause: Duration::ZERO,
        attempts: 0,
        last: None,
    }
}

impl Exec {
    /// The exit code that means ready. Default: 0.
    pub fn code(mut self, code: i32) -> Exec {
        self.code = Some(code);
        self
    }

    /// Any exit code will do: only the [`output`](Exec::output) decides.
    pub fn any_code(mut self) -> Exec {
        self.code = None;
        self
    }

    /// Also requires the run's stdout or stderr to match `pattern`, a regex (`^` and `$`
    /// match at line ends): `"^PONG"` for `redis-cli ping`, which exits 0 on an error reply.
    pub fn output(mut self, pattern: impl Into<String>) -> Exec {
        self.pattern = Some(pattern.into());
        self
    }

    /// How long one run may take before it is killed and counts as failed. Default: 5 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Exec {
        self.attempt_timeout = timeout;
        self
    }

    /// The longest pause between runs; the first ones follow each other sooner. Default: 50 ms.
    pub fn interval(mut self, interval: Duration) -> Exec {
        self.interval = interval;
        self
    }

    /// Runs the command line through `sh -c`.
    pub fn shell(mut self, shell: bool) -> Exec {
        self.command.shell = shell;
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(
        mut self,
        key: impl Into<std::ffi::OsString>,
        value: impl Into<std::ffi::OsString>,
    ) -> Exec {
        self.command.env.push((key.into(), Some(value.into())));
        self
    }

    /// How many times the command ran during the last start.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn spawn(&self, limit: Duration) -> io::Result<Run> {
        let prepared = self.prepared.as_ref().ok_or(io::ErrorKind::InvalidInput)?;
        // Spawned like a service: a session of its own, so a timed-out probe is killed with
        // what it forked, and a marker, so the reaper finds it if the test binary dies.
        let mut cmd = crate::process::probe_command(&self.command, prepared)?;
        let mut child = cmd.spawn()?;
        let take = |fd: Option<OwnedFd>| -> Option<OwnedFd> {
            let fd = fd?;
            platform::set_nonblocking(fd.as_fd()).ok()?;
            Some(fd)
        };
        let stdout = take(child.stdout.take().map(OwnedFd::from));
        let stderr = take(child.stderr.take().map(OwnedFd::from));
        let pidfd = platform::pidfd_open(child.id());
        Ok(Run {
            child,
            pidfd,
            stdout,
            stderr,
            output: Vec::new(),
            started: Instant::now(),
            limit,
            exited_at: None,
        })
    }

    /// Kills a run still going and whatever it left in its session (`sh -c 'x &'`); reaps it.
    /// The process group outlives a reaped leader as long as a member lives, and pids are
    /// handed out in rotation: the group id cannot name a stranger's group this soon.
    fn stop_run(&mut self) {
        if let Some(mut run) = self.run.take() {
            let _ = platform::kill_group(run.child.id(), Signal::SIGKILL);
            let _ = run.child.kill();
            let _ = run.child.wait();
        }
    }

    /// Schedules the next run after a failed one.
    fn again(&mut self, cx: &mut Context<'_>, why: String) -> Status {
        self.last = Some(why);
        self.pause = if self.pause.is_zero() {
            Duration::from_millis(2).min(self.interval)
        } else {
            (self.pause * 2).min(self.interval)
        };
        let at = Instant::now() + self.pause;
        self.next_at = Some(at);
        cx.poll_again_in(self.pause);
        Status::NotYet
    }

    fn what(&self) -> String {
        let mut what = format!("`{}`", self.command);
        if let Some(code) = self.code {
            what.push_str(&format!(" to exit with code {code}"));
        }
        if let Some(pattern) = &self.pattern {
            what.push_str(&format!(
                "{} print a match of {pattern:?}",
                if self.code.is_some() { " and" } else { " to" }
            ));
        }
        what
    }
    /// Reads the current run's output and sees whether it ended; schedules the next run or
    /// the next look.
    fn follow_run(&mut self, cx: &mut Context<'_>) -> Status {
        let Some(run) = self.run.as_mut() else { return Status::NotYet };
        drain(&mut run.stdout, &mut run.output);
        drain(&mut run.stderr, &mut run.output);
        let exited = match run.child.try_wait() {
            Ok(status) => status,
            Err(e) => {
                self.stop_run();
                return self.again(cx, format!("waiting for the probe: {e}"));
            }
        };
        if exited.is_some() && run.exited_at.is_none() {
            run.exited_at = Some(Instant::now());
        }
        // Done once it has exited and its pipes are closed — or shortly after its exit, when
        // something it forked keeps them open: the output written before the exit is read.
        let pipes_done = run.stdout.is_none() && run.stderr.is_none();
        let grace_over = run.exited_at.is_some_and(|t| t.elapsed() >= EXIT_GRACE);
        let over_time = run.started.elapsed() >= run.limit;
        match exited {
            Some(status) if pipes_done || grace_over || over_time => {
                let output = std::mem::take(&mut run.output);
                self.stop_run();
                self.judge(cx, status, &output)
            }
            Some(_) => {
                for fd in [&run.stdout, &run.stderr].into_iter().flatten() {
                    cx.poll_when_readable(fd);
                }
                cx.poll_again_in(EXIT_GRACE);
                Status::NotYet
            }
            None if over_time => {
                let limit = run.limit;
                let output = std::mem::take(&mut run.output);
                self.stop_run();
                let why = format!(
                    "attempt {} did not finish within {limit:?} and was killed ({})",
                    self.attempts,
                    last_line(&output)
                );
                self.again(cx, why)
            }
            None => {
                for fd in [&run.stdout, &run.stderr, &run.pidfd].into_iter().flatten() {
                    cx.poll_when_readable(fd);
                }
                let left = run.limit.saturating_sub(run.started.elapsed());
                // Without a pidfd the exit makes no event: look again soon.
                let tick =
                    if run.pidfd.is_some() { left } else { left.min(Duration::from_millis(2)) };
                cx.poll_again_in(tick.max(Duration::from_micros(100)));
                Status::NotYet
            }
        }
    }

    /// A run ended: ready if its exit code and output are what is asked.
    fn judge(&mut self, cx: &mut Context<'_>, status: ExitStatus, output: &[u8]) -> Status {
        let code_ok = self.code.is_none_or(|c| status.code() == Some(c));
        let output_ok = self.regex.as_ref().is_none_or(|r| r.is_match(output));
        if code_ok && output_ok {
            return Status::Ready;
        }
        let why = format!(
            "attempt {} ended with {} ({})",
            self.attempts,
            crate::error::describe_status(&status),
            last_line(output)
        );
        self.again(cx, why)
    }
}

/// Reads what is available from a probe's pipe; `false` once it is closed.
fn drain(fd: &mut Option<OwnedFd>, output: &mut Vec<u8>) {
    let Some(pipe) = fd else { return };
    let mut buf = [0u8; 4096];
    loop {
        match platform::read_nonblocking(pipe.as_fd(), &mut buf) {
            Ok(Some(0)) | Err(_) => {
                *fd = None;
                return;
            }
            Ok(Some(n)) => {
                if output.len() < MAX_OUTPUT {
                    output.extend_from_slice(&buf[..n.min(MAX_OUTPUT - output.len())]);
                }
            }
            Ok(None) => return,
        }
    }
}

/// The last line of a run's output, for messages.
fn last_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.is_empty() {
        "no output".into()
    } else {
        format!("{:?}", line.chars().take(200).collect::<String>())
    }
}

impl Check for Exec {
    fn describe(&self) -> String {
        self.what()
    }

    fn prepare(&mut self, _setup: &mut Setup<'_>) -> Result<(), String> {
        self.stop_run();
        let prepared = self.command.validate().map_err(|e| match e {
            crate::Error::InvalidArgument { problem, hint, .. } => {
                format!("the probe command `{}`: {problem}; {hint}", self.command)
            }
            other => other.to_string(),
        })?;
        self.prepared = Some(prepared);
        self.regex = match &self.pattern {
            Some(p) => Some(
                super::Banner::compile(p)
                    .map_err(|e| format!("the probe's output pattern: {e}"))?,
            ),
            None => None,
        };
        if self.code.is_none() && self.regex.is_none() {
            return Err("the probe accepts any exit code and no output pattern is given, so it \
                        would be ready at once; add `.output(...)` or keep an exit code"
                .into());
        }
        if self.attempt_timeout.is_zero() {
            return Err("the probe's attempt timeout is zero; give it a positive duration".into());
        }
        self.next_at = None;
        self.pause = Duration::ZERO;
        self.attempts = 0;
        self.last = None;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        if self.run.is_none() {
            if let Some(at) = self.next_at {
                let now = Instant::now();
                if now < at {
                    cx.poll_again_in(at - now);
                    return Status::NotYet;
                }
            }
            let limit = self.attempt_timeout.min(cx.remaining()).max(Duration::from_millis(1));
            match self.spawn(limit) {
                Ok(run) => {
                    self.attempts += 1;
                    self.run = Some(run);
                }
                Err(e) => {
                    // A program that cannot be run will not become runnable.
                    return Status::Failed(format!("the probe `{}` cannot run: {e}", self.command));
                }
            }
        }
        self.follow_run(cx)
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    fn release(&mut self) {
        self.stop_run();
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        self.stop_run();
    }
}
