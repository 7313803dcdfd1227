//! What one round starts: a command line, how to know it is ready, as whom and where. The same
//! `Launch` is handed to the library (as an executor) and to the oracle (as a
//! `std::process::Command`), so both start exactly the same thing and wait for the same fact.

use std::path::PathBuf;

use tempfile::TempDir;

/// The readiness condition, shared by the library's executor and the oracle's tight loop.
#[derive(Debug, Clone)]
pub enum Ready {
    /// Ready once it runs (`SimpleExecutor`).
    Nothing,
    /// 127.0.0.1:port accepts a TCP connection.
    Tcp(u16),
    /// `HEAD http://127.0.0.1:port/` gets a 2xx answer.
    Http(u16),
    /// The unix stream socket accepts a connection.
    Unix(PathBuf),
    /// The pid file names a live process.
    Pid(PathBuf),
    /// This text appears on stdout (no regex metacharacters in it).
    Output(&'static str),
    /// The service sends `READY=1` to the `NOTIFY_SOCKET` it is given (sd_notify).
    Notify,
}

/// A user to run a service as (PostgreSQL refuses to run as root).
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One start of a service.
#[derive(Debug)]
pub struct Launch {
    pub argv: Vec<String>,
    pub ready: Ready,
    pub user: Option<RunAs>,
    pub cwd: Option<PathBuf>,
    /// The signal that takes the oracle's copy down cleanly after the round (untimed): SIGKILL
    /// for single processes, a graceful one where SIGKILL would leave children behind (nginx)
    /// or force crash recovery on the next start (PostgreSQL).
    pub shutdown: libc::c_int,
    /// Set when the launcher daemonizes: the daemon's pid is read from here for the oracle's
    /// cleanup, since it is not our child.
    pub daemon_pid_file: Option<PathBuf>,
    /// The round's scratch directory (configs, sockets, pid files), removed with the launch.
    pub scratch: Option<TempDir>,
}

impl Launch {
    /// A launch of `argv` that is ready when `ready` holds, killed with SIGKILL by the oracle.
    pub fn new(argv: Vec<String>, ready: Ready) -> Launch {
        Launch {
            argv,
            ready,
            user: None,
            cwd: None,
            shutdown: libc::SIGKILL,
            daemon_pid_file: None,
            scratch: None,
        }
    }

    /// The command line, for error messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}
