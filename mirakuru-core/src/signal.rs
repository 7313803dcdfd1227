//! Signals, by their POSIX names. The type is mirakuru's own: re-exporting a system crate's
//! would make every upgrade of that crate a breaking change of ours.

use std::fmt;

macro_rules! signals {
    ($($name:ident => $rustix:ident,)*) => {
        /// A POSIX signal, for [`Executor::stop_signal`](crate::Executor::stop_signal) and
        /// [`Executor::kill_signal`](crate::Executor::kill_signal): `Signal::SIGTERM`,
        /// `Signal::SIGINT`, `Signal::SIGKILL`, …
        ///
        /// ```
        /// use mirakuru::{Signal, SimpleExecutor};
        ///
        /// // PostgreSQL's "fast shutdown" is SIGINT.
        /// let postgres = SimpleExecutor::new("postgres -D /tmp/data").stop_signal(Signal::SIGINT);
        /// assert_eq!(Signal::SIGINT.to_string(), "SIGINT");
        /// # let _ = postgres;
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(clippy::upper_case_acronyms)]
        #[non_exhaustive]
        pub enum Signal {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $name,
            )*
        }

        impl Signal {
            /// Every signal this type names.
            pub const ALL: &'static [Signal] = &[$(Signal::$name),*];

            /// The POSIX name: `"SIGTERM"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Signal::$name => stringify!($name),)*
                }
            }

            pub(crate) fn to_rustix(self) -> rustix::process::Signal {
                match self {
                    $(Signal::$name => rustix::process::Signal::$rustix,)*
                }
            }
        }
    };
}

signals! {
    SIGABRT => ABORT,
    SIGALRM => ALARM,
    SIGBUS => BUS,
    SIGCHLD => CHILD,
    SIGCONT => CONT,
    SIGFPE => FPE,
    SIGHUP => HUP,
    SIGILL => ILL,
    SIGINT => INT,
    SIGKILL => KILL,
    SIGPIPE => PIPE,
    SIGPROF => PROF,
    SIGQUIT => QUIT,
    SIGSEGV => SEGV,
    SIGSTOP => STOP,
    SIGSYS => SYS,
    SIGTERM => TERM,
    SIGTRAP => TRAP,
    SIGTSTP => TSTP,
    SIGTTIN => TTIN,
    SIGTTOU => TTOU,
    SIGURG => URG,
    SIGUSR1 => USR1,
    SIGUSR2 => USR2,
    SIGVTALRM => VTALARM,
    SIGWINCH => WINCH,
    SIGXCPU => XCPU,
    SIGXFSZ => XFSZ,
}

impl Signal {
    /// The signal's number on this operating system (they differ: `SIGUSR1` is 10 on Linux,
    /// 30 on macOS), as `ExitStatus::signal` reports it.
    pub fn as_raw(self) -> i32 {
        self.to_rustix().as_raw()
    }

    /// The signal with this number on this operating system, if this type names it.
    pub fn from_raw(number: i32) -> Option<Signal> {
        Signal::ALL.iter().copied().find(|s| s.as_raw() == number)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        for &signal in Signal::ALL {
            assert_eq!(Signal::from_raw(signal.as_raw()), Some(signal), "{signal}");
            assert!(signal.name().starts_with("SIG"));
        }
        assert_eq!(Signal::SIGKILL.as_raw(), 9);
        assert_eq!(Signal::SIGTERM.as_raw(), 15);
        assert_eq!(Signal::from_raw(0), None);
    }
}
