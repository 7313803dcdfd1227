//! Turning a checked command into a spawn: the one place that configures a process between
//! fork and exec, for services and readiness probes alike.
//!
//! Every process mirakuru starts gets:
//! - a session of its own (setsid): its own process group to signal as one, and no
//!   controlling terminal, so a Ctrl-C meant for the test binary does not reach it half-way
//!   and a program cannot block on a terminal prompt;
//! - `PR_SET_PDEATHSIG(SIGKILL)` where the OS has it (prctl(2)), so it dies with the thread
//!   that forked it — the supervisor, or the test thread waiting for a probe;
//! - an owner marker in its environment (`MIRAKURU_OWNER=<binary pid>:<128 random bits>`),
//!   inherited by everything it starts, by which the sweep and the reaper find its tree;
//! - none of the variables that tell a process how to talk to *its* supervisor.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use super::sweep::MARKER_VAR;
use crate::command::{Command, Prepared, Redirect, Stdin};
use crate::platform;

/// Variables that tell a process how to talk to its supervisor. Inherited from a test binary
/// that runs under systemd, they would make PostgreSQL or Redis notify the wrong manager.
const SUPERVISOR_VARS: [&str; 4] = ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// What a spawn adds to the command: variables and file descriptors a readiness check set up
/// for the service, and its owner marker.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) env: Vec<(OsString, OsString)>,
    /// File descriptors the process inherits: ours, and the number it gets there.
    pub(crate) fds: Vec<(OwnedFd, RawFd)>,
}

/// `<owner pid>:<128 random bits>`: the owner part lets the reaper find everything of this
/// binary; the random part makes one tree unguessable and distinct from all others.
pub(crate) fn new_marker() -> io::Result<String> {
    let mut random = [0u8; 16];
    platform::random_bytes(&mut random)?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}:{hex}", std::process::id()))
}

/// The `std::process::Command` that runs `prepared` as `command` describes, marked `marker`.
pub(crate) fn build(
    command: &Command,
    prepared: &Prepared,
    extras: &Extras,
    marker: &str,
) -> io::Result<std::process::Command> {
    let argv = &prepared.argv;
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some((uid, gid)) = prepared.user {
        // std drops the supplementary groups when root switches user without setting them.
        cmd.uid(uid).gid(gid);
    }
    if command.env_clear {
        cmd.env_clear();
    }
    for var in SUPERVISOR_VARS {
        cmd.env_remove(var);
    }
    for (key, value) in &command.env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    for (key, value) in &extras.env {
        cmd.env(key, value);
    }
    cmd.env(MARKER_VAR, marker);
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(match command.stdin {
        Stdin::Null => Stdio::null(),
        Stdin::Inherit => Stdio::inherit(),
        Stdin::Open => Stdio::piped(),
    });
    cmd.stdout(redirect(command, &command.stdout)?);
    cmd.stderr(redirect(command, &command.stderr)?);
    let parent = std::process::id();
    let fds: Vec<(RawFd, RawFd)> =
        extras.fds.iter().map(|(fd, target)| (fd.as_raw_fd(), *target)).collect();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls may be made. It makes raw system calls on integers and on the
    // fd list moved into it; it allocates nothing and takes no lock. dup2 to a number the
    // child does not own yet is the one call that neither nix nor rustix offers safely.
    unsafe {
        cmd.pre_exec(move || {
            // Passed fds land on their numbers without close-on-exec; ours close at exec.
            for &(fd, target) in &fds {
                if fd == target {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(fd, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            rustix::process::setsid()?;
            platform::reset_ignored_signals();
            platform::restore_open_files_limit();
            platform::in_spawned_child(parent)
        });
    }
    Ok(cmd)
}

fn redirect(command: &Command, to: &Redirect) -> io::Result<Stdio> {
    Ok(match to {
        Redirect::Capture => Stdio::piped(),
        Redirect::Inherit => Stdio::inherit(),
        Redirect::Null => Stdio::null(),
        Redirect::File(path) => Stdio::from(open_output(&command.resolve(path))?),
    })
}

/// Opens an output file for appending without ever blocking: opening a FIFO for writing
/// waits until a reader comes, possibly forever. Non-blocking, such an open fails at once
/// (ENXIO) when nobody reads; the service then gets a blocking descriptor, as usual.
fn open_output(path: &std::path::Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::NXIO.raw_os_error() => io::Error::new(
                e.kind(),
                format!(
                    "{} is a FIFO that nobody reads; open its reading end first",
                    path.display()
                ),
            ),
            _ => e,
        })?;
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}
