//! The named executors (`TcpExecutor`, `HttpExecutor`, …) are one `Executor` each, with the
//! check fixed: this macro writes the thin wrapper, so that there is one implementation and
//! every setter returns the named type.

/// Declares a named executor: a thin wrapper over `Executor<$check>` that returns itself from
/// every setter and derefs to the `Executor` for everything else.
macro_rules! named_executor {
    ($(#[$meta:meta])* $name:ident($check:ty)) => {
        $(#[$meta])*
        pub struct $name(pub(crate) $crate::Executor<$check>);

        impl $name {
            /// See [`Executor::timeout`](crate::Executor::timeout).
            pub fn timeout(self, timeout: std::time::Duration) -> Self { Self(self.0.timeout(timeout)) }
            /// See [`Executor::stop_timeout`](crate::Executor::stop_timeout).
            pub fn stop_timeout(self, timeout: std::time::Duration) -> Self { Self(self.0.stop_timeout(timeout)) }
            /// See [`Executor::shell`](crate::Executor::shell).
            pub fn shell(self, shell: bool) -> Self { Self(self.0.shell(shell)) }
            /// See [`Executor::cwd`](crate::Executor::cwd).
            pub fn cwd(self, dir: impl Into<std::path::PathBuf>) -> Self { Self(self.0.cwd(dir)) }
            /// See [`Executor::env`](crate::Executor::env).
            pub fn env(self, key: impl Into<std::ffi::OsString>, value: impl Into<std::ffi::OsString>) -> Self {
                Self(self.0.env(key, value))
            }
            /// See [`Executor::envs`](crate::Executor::envs).
            pub fn envs<K: Into<std::ffi::OsString>, V: Into<std::ffi::OsString>>(
                self,
                vars: impl IntoIterator<Item = (K, V)>,
            ) -> Self {
                Self(self.0.envs(vars))
            }
            /// See [`Executor::env_remove`](crate::Executor::env_remove).
            pub fn env_remove(self, key: impl Into<std::ffi::OsString>) -> Self { Self(self.0.env_remove(key)) }
            /// See [`Executor::env_clear`](crate::Executor::env_clear).
            pub fn env_clear(self) -> Self { Self(self.0.env_clear()) }
            /// See [`Executor::stop_signal`](crate::Executor::stop_signal).
            pub fn stop_signal(self, signal: $crate::Signal) -> Self { Self(self.0.stop_signal(signal)) }
            /// See [`Executor::kill_signal`](crate::Executor::kill_signal).
            pub fn kill_signal(self, signal: $crate::Signal) -> Self { Self(self.0.kill_signal(signal)) }
            /// See [`Executor::expected_returncode`](crate::Executor::expected_returncode).
            pub fn expected_returncode(self, code: i32) -> Self { Self(self.0.expected_returncode(code)) }
            /// See [`Executor::user`](crate::Executor::user).
            pub fn user(self, user: impl Into<String>) -> Self { Self(self.0.user(user)) }
            /// See [`Executor::stdin`](crate::Executor::stdin).
            pub fn stdin(self, stdin: $crate::Stdin) -> Self { Self(self.0.stdin(stdin)) }
            /// See [`Executor::stdout`](crate::Executor::stdout).
            pub fn stdout(self, to: $crate::Redirect) -> Self { Self(self.0.stdout(to)) }
            /// See [`Executor::stderr`](crate::Executor::stderr).
            pub fn stderr(self, to: $crate::Redirect) -> Self { Self(self.0.stderr(to)) }
            /// See [`Executor::output_limit`](crate::Executor::output_limit).
            pub fn output_limit(self, bytes: usize) -> Self { Self(self.0.output_limit(bytes)) }
            /// The generic executor this one wraps.
            pub fn into_inner(self) -> $crate::Executor<$check> { self.0 }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::Executor<$check>;
            fn deref(&self) -> &Self::Target { &self.0 }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target { &mut self.0 }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<$name> for $crate::Executor<$check> {
            fn from(named: $name) -> Self { named.0 }
        }
    };
}
pub(crate) use named_executor;
