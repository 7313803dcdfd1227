//! The one error type. Every message names the command, says what happened and what was
//! waited for and for how long, gives the exit status where there is one and the last lines
//! the process wrote — Python mirakuru's `TimeoutExpired` said only "timed out after N
//! seconds", which made a slow start and a crash look alike (huggingface/dataset-viewer#3093).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong when starting or stopping a service.
///
/// The variant names follow Python mirakuru's exceptions (`TimeoutExpired`, `AlreadyRunning`,
/// `ProcessExitedWithError`, `ProcessFinishedWithError`). Messages end with the tail of the
/// process's captured output.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The executor was given something it cannot run; found before anything was spawned.
    #[non_exhaustive]
    InvalidArgument {
        /// The command as given.
        command: String,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        hint: String,
    },
    /// The operating system refused to start the process.
    #[non_exhaustive]
    Spawn {
        /// The command as given.
        command: String,
        /// The error from the operating system.
        source: io::Error,
    },
    /// Something already answers where the service should (its port, socket or pid file), or
    /// this executor has already started it. Nothing was spawned.
    #[non_exhaustive]
    AlreadyRunning {
        /// The command as given.
        command: String,
        /// What answered, e.g. "127.0.0.1:6379 accepts connections".
        reason: String,
    },
    /// A pid file left by an earlier run names a process that no longer exists, or holds no
    /// pid at all. Nothing was spawned.
    #[non_exhaustive]
    StalePidFile {
        /// The command as given.
        command: String,
        /// The pid file.
        path: PathBuf,
        /// What the file holds (its first line).
        content: String,
    },
    /// The service was not ready before the startup timeout; it has been killed.
    #[non_exhaustive]
    TimeoutExpired {
        /// The command as given.
        command: String,
        /// What readiness meant, e.g. "TCP 127.0.0.1:6379 to accept connections".
        waited_for: String,
        /// The startup timeout.
        timeout: Duration,
        /// The outcome of the last readiness attempt, if the check reports one.
        last_attempt: Option<String>,
        /// The last lines the process wrote.
        output: String,
    },
    /// The process exited before it was ready; the rest of its tree has been killed.
    #[non_exhaustive]
    ProcessExitedWithError {
        /// The command as given.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What readiness meant.
        waited_for: String,
        /// How long after the spawn the exit was seen.
        after: Duration,
        /// The last lines the process wrote.
        output: String,
    },
    /// On stop, the process ended in another way than expected (by default: by the stop
    /// signal, or with exit code 0).
    #[non_exhaustive]
    ProcessFinishedWithError {
        /// The command as given.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What was expected instead.
        expected: String,
        /// The last lines the process wrote.
        output: String,
    },
    /// A readiness check decided the service can never become ready (a custom check said
    /// so, the service's output closed before its banner, …); the service has been killed.
    #[non_exhaustive]
    CheckFailed {
        /// The command as given.
        command: String,
        /// The check.
        check: String,
        /// Why it failed.
        reason: String,
        /// The last lines the process wrote.
        output: String,
    },
    /// The service died after it was ready, while the test was using it: it crashed or
    /// was killed by something else than mirakuru. Reported by
    /// [`Executor::check_alive`](crate::Executor::check_alive), and by fixtures when the test
    /// ends.
    #[non_exhaustive]
    ServiceDied {
        /// The command as given.
        command: String,
        /// The process that died: the spawned one, or the main process the service named.
        pid: u32,
        /// How it ended, when known (it is for the spawned process, not for a daemon).
        status: Option<ExitStatus>,
        /// Whether mirakuru spawned it and its status was taken by something else in the test
        /// binary that reaped it.
        status_taken: bool,
        /// How long after it became ready its death was noticed.
        after: Duration,
        /// The last lines the process wrote.
        output: String,
    },
    /// The operating system failed us while controlling the process.
    #[non_exhaustive]
    Io {
        /// The command as given.
        command: String,
        /// What we were doing.
        action: String,
        /// The error from the operating system.
        source: io::Error,
    },
}

impl Error {
    /// The exit status of the process, for the variants that have one.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match self {
            Error::ProcessExitedWithError { status, .. }
            | Error::ProcessFinishedWithError { status, .. } => Some(*status),
            Error::ServiceDied { status, .. } => *status,
            _ => None,
        }
    }

    /// The last lines the process wrote, for the variants raised after it was spawned.
    pub fn output(&self) -> Option<&str> {
        match self {
            Error::TimeoutExpired { output, .. }
            | Error::ProcessExitedWithError { output, .. }
            | Error::ProcessFinishedWithError { output, .. }
            | Error::CheckFailed { output, .. }
            | Error::ServiceDied { output, .. } => Some(output),
            _ => None,
        }
    }

    /// The command the error is about.
    pub fn command(&self) -> &str {
        match self {
            Error::InvalidArgument { command, .. }
            | Error::Spawn { command, .. }
            | Error::AlreadyRunning { command, .. }
            | Error::StalePidFile { command, .. }
            | Error::TimeoutExpired { command, .. }
            | Error::ProcessExitedWithError { command, .. }
            | Error::ProcessFinishedWithError { command, .. }
            | Error::CheckFailed { command, .. }
            | Error::ServiceDied { command, .. }
            | Error::Io { command, .. } => command,
        }
    }
}

fn with_output(f: &mut fmt::Formatter<'_>, output: &str) -> fmt::Result {
    if output.is_empty() {
        write!(f, "\n(the process wrote nothing that was captured)")
    } else {
        write!(f, "\n{}", output.trim_end())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { command, problem, hint } => {
                write!(f, "cannot start `{command}`: {problem}; {hint}")
            }
            Error::Spawn { command, source } => {
                write!(f, "cannot start `{command}`: {source}; {}", spawn_hint(source))
            }
            Error::AlreadyRunning { command, reason } => write!(
                f,
                "`{command}` seems to be already running: {reason}. An earlier process may not \
                 have been stopped, or another service uses the same address; stop it or \
                 choose another port, socket or pid file"
            ),
            Error::StalePidFile { command, path, content } => write!(
                f,
                "cannot start `{command}`: the pid file {} is left from an earlier run ({content}); \
                 delete it, or point the executor at another pid file",
                path.display()
            ),
            Error::TimeoutExpired { .. } => self.fmt_timeout(f),
            Error::ProcessExitedWithError { command, status, waited_for, after, output } => {
                if status.success() {
                    write!(
                        f,
                        "`{command}` exited with code 0 after {after:?}, before it was ready \
                         (waited for {waited_for}), and left no process that could become ready"
                    )?;
                } else {
                    let status = describe_status(status);
                    write!(
                        f,
                        "`{command}` exited before it was ready ({status}, after {after:?}; \
                         waited for {waited_for})"
                    )?;
                }
                with_output(f, output)
            }
            Error::ProcessFinishedWithError { command, status, expected, output } => {
                write!(
                    f,
                    "`{command}` ended with {} when stopped, expected {expected}; set the expected \
                     exit code with `.expected_returncode(...)` if this is how the program stops",
                    describe_status(status)
                )?;
                with_output(f, output)
            }
            Error::CheckFailed { command, check, reason, output } => {
                write!(
                    f,
                    "`{command}` can never become ready: {check} failed: {reason}; the process \
                     was killed"
                )?;
                with_output(f, output)
            }
            Error::ServiceDied { .. } => self.fmt_died(f),
            Error::Io { command, action, source } => {
                write!(f, "error while {action} `{command}`: {source}")?;
                if source.raw_os_error().is_some_and(|e| {
                    [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE]
                        .contains(&rustix::io::Errno::from_raw_os_error(e))
                }) {
                    write!(f, "; {RUN_OUT_OF_FILES}")?;
                }
                Ok(())
            }
        }
    }
}

/// What to do when the process runs out of file descriptors (EMFILE, ENFILE).
const RUN_OUT_OF_FILES: &str = "the test binary ran out of file descriptors: raise the limit \
    (`ulimit -n`), or look for descriptors the tests leave open; the next start tries again";

/// Why an exec failed, when the program was found and is executable (checked before): a
/// missing interpreter or library, the wrong architecture.
fn spawn_hint(source: &io::Error) -> &'static str {
    use rustix::io::Errno;
    match source.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOENT) => "its interpreter (#! line) or dynamic loader is missing",
        Some(Errno::NOEXEC) => "it is not a program for this system",
        Some(Errno::ACCESS | Errno::PERM) => {
            "it may not be run (permissions, a noexec mount, or the user it runs as)"
        }
        Some(Errno::MFILE | Errno::NFILE) => RUN_OUT_OF_FILES,
        _ => "check that the program runs by hand",
    }
}

impl Error {
    fn fmt_timeout(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Error::TimeoutExpired { command, waited_for, timeout, last_attempt, output } = self
        else {
            return Ok(());
        };
        write!(f, "`{command}` was not ready after {timeout:?}: waited for {waited_for}")?;
        if let Some(last) = last_attempt {
            write!(f, " (last attempt: {last})")?;
        }
        write!(
            f,
            "; the process was killed. If the service is only slow, raise the startup timeout \
             with `.timeout(...)`"
        )?;
        with_output(f, output)
    }

    fn fmt_died(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Error::ServiceDied { command, pid, status, status_taken, after, output } = self else {
            return Ok(());
        };
        let how = match status {
            Some(status) => describe_status(status),
            None if *status_taken => format!(
                "process {pid} is gone; its exit status is unknown: something else in the test \
                 binary reaped it (a `wait()`, or SIGCHLD set to be ignored)"
            ),
            None => format!(
                "process {pid} is gone; its exit status is unknown, as mirakuru did not spawn \
                 it itself (the service named it, or a launcher left it)"
            ),
        };
        write!(
            f,
            "`{command}` died during the test ({how}), noticed {after:?} after it was ready; \
             mirakuru did not stop it: it crashed or something else killed it. Its last lines \
             may say why"
        )?;
        with_output(f, output)
    }
}

/// "exit code 1" / "killed by signal 9 (SIGKILL)".
pub(crate) fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => match crate::Signal::from_raw(sig) {
            Some(name) => format!("killed by signal {sig} ({name})"),
            None => format!("killed by signal {sig}"),
        },
        None => status.to_string(),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::InvalidArgument { .. } => io::ErrorKind::InvalidInput,
            Error::TimeoutExpired { .. } => io::ErrorKind::TimedOut,
            Error::AlreadyRunning { .. } => io::ErrorKind::AddrInUse,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
