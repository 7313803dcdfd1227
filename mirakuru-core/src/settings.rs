//! How a service is run, apart from what it waits for: the command and its environment, the
//! deadlines, the signals. One definition of each option — the field here, and its setter in
//! [`settings_setters!`], which writes the same setters into every type configured with them
//! ([`Executor`](crate::Executor), the named executors, [`fixture::Spec`](crate::fixture::Spec)).

use std::time::Duration;

use crate::command::Command;
use crate::output::DEFAULT_OUTPUT_LIMIT;
use crate::signal::Signal;

/// Everything an executor is configured with besides its readiness check.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) command: Command,
    pub(crate) timeout: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) stop_signal: Signal,
    pub(crate) kill_signal: Signal,
    pub(crate) expected_returncode: Option<i32>,
    pub(crate) output_limit: usize,
}

impl Settings {
    /// The defaults, as the setters document them.
    pub(crate) fn new(command: Command) -> Settings {
        Settings {
            command,
            timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            stop_signal: Signal::SIGTERM,
            kill_signal: Signal::SIGKILL,
            expected_returncode: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }
}

/// The setters of [`Settings`], expanded inside an `impl` block of a type that has
/// `fn configure(self, f: impl FnOnce(&mut Settings)) -> Self`. Each takes and returns the
/// value, so they chain.
macro_rules! settings_setters {
    () => {
        /// How long `start()` waits for readiness before it kills the process and fails with
        /// [`Error::TimeoutExpired`](crate::Error::TimeoutExpired). Default: 60 s (Python
        /// mirakuru: 3600 s). [`Duration::MAX`](std::time::Duration::MAX) means no limit.
        pub fn timeout(self, timeout: ::std::time::Duration) -> Self {
            self.configure(|s| s.timeout = timeout)
        }

        /// How long `stop()` waits after the stop signal before it sends the kill signal.
        /// Separate from the startup timeout, unlike in Python mirakuru (#252). Default: 10 s.
        pub fn stop_timeout(self, timeout: ::std::time::Duration) -> Self {
            self.configure(|s| s.stop_timeout = timeout)
        }

        /// Runs the command through `sh -c` (for pipes, redirections, `$VARS`). Default: false,
        /// the command is split like a shell would and executed directly.
        pub fn shell(self, shell: bool) -> Self {
            self.configure(|s| s.command.shell = shell)
        }

        /// The working directory of the process; relative pid-file and socket paths are
        /// resolved against it too. Default: the test's working directory.
        pub fn cwd(self, dir: impl Into<::std::path::PathBuf>) -> Self {
            let dir = dir.into();
            self.configure(|s| s.command.cwd = Some(dir))
        }

        /// Sets an environment variable for the process (the rest of the test's environment
        /// is inherited, unless `env_clear`).
        pub fn env(
            self,
            key: impl Into<::std::ffi::OsString>,
            value: impl Into<::std::ffi::OsString>,
        ) -> Self {
            let var = (key.into(), Some(value.into()));
            self.configure(|s| s.command.env.push(var))
        }

        /// Sets several environment variables.
        pub fn envs<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Self
        where
            K: Into<::std::ffi::OsString>,
            V: Into<::std::ffi::OsString>,
        {
            let vars: Vec<_> = vars.into_iter().map(|(k, v)| (k.into(), Some(v.into()))).collect();
            self.configure(|s| s.command.env.extend(vars))
        }

        /// Removes an inherited environment variable.
        pub fn env_remove(self, key: impl Into<::std::ffi::OsString>) -> Self {
            let var = (key.into(), None);
            self.configure(|s| s.command.env.push(var))
        }

        /// Starts from an empty environment: only the variables set with `env` are passed.
        pub fn env_clear(self) -> Self {
            self.configure(|s| {
                s.command.env_clear = true;
                s.command.env.clear();
            })
        }

        /// The signal `stop()` sends first. Default: SIGTERM.
        pub fn stop_signal(self, signal: $crate::Signal) -> Self {
            self.configure(|s| s.stop_signal = signal)
        }

        /// The signal sent when the stop timeout expires, and by `kill()`. A signal other than
        /// SIGKILL is given 100 ms, then SIGKILL follows. Default: SIGKILL.
        pub fn kill_signal(self, signal: $crate::Signal) -> Self {
            self.configure(|s| s.kill_signal = signal)
        }

        /// The exit that counts as a clean stop, as Python's returncode: `143` for a JVM
        /// (mirakuru #388), `1` for Click programs (#457), `-15` for "killed by SIGTERM". Exit
        /// code 0 is always clean. Default: killed by the stop signal, or exit code 0.
        pub fn expected_returncode(self, code: i32) -> Self {
            self.configure(|s| s.expected_returncode = Some(code))
        }

        /// Runs the command as another user — a name, a uid or `uid:gid` — with that user's uid
        /// and primary group and no supplementary groups. PostgreSQL, for one, refuses to run
        /// as root. Only root can switch users; `start()` says so otherwise. Default: the
        /// test's user.
        pub fn user(self, user: impl Into<String>) -> Self {
            let user = user.into();
            self.configure(|s| s.command.user = Some(user))
        }

        /// Where stdin comes from. Default: [`Stdin::Null`](crate::Stdin::Null).
        pub fn stdin(self, stdin: $crate::Stdin) -> Self {
            self.configure(|s| s.command.stdin = stdin)
        }

        /// Where stdout goes. Default: [`Redirect::Capture`](crate::Redirect::Capture).
        pub fn stdout(self, to: $crate::Redirect) -> Self {
            self.configure(|s| s.command.stdout = to)
        }

        /// Where stderr goes. Default: [`Redirect::Capture`](crate::Redirect::Capture).
        pub fn stderr(self, to: $crate::Redirect) -> Self {
            self.configure(|s| s.command.stderr = to)
        }

        /// How many of the last bytes of each captured stream are kept. Default: 64 KiB.
        pub fn output_limit(self, bytes: usize) -> Self {
            self.configure(|s| s.output_limit = bytes.max(1))
        }
    };
}
pub(crate) use settings_setters;
