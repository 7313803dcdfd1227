//! Readiness checks: what "the service is ready" means, one kind per file.
//!
//! A check is polled by [`Executor::start`](crate::Executor::start) right after the spawn and
//! again whenever something it cares about may have changed: the process wrote output or
//! exited, a file descriptor it registered became readable (inotify, a notify socket, a
//! readiness pipe, a probe's pipes), or the time it asked for came. Output, pid files, unix
//! sockets, sd_notify messages and exits are therefore seen as they happen; only network
//! probes poll, starting at 100 µs and backing off (see [`Backoff`]).
//!
//! | check | ready when |
//! |---|---|
//! | [`Nothing`] | the program runs |
//! | [`Banner`] | a line of output matches a regex; its groups are kept ([`Captures`]) |
//! | [`Tcp`] | a TCP port accepts connections ([`Tcp::owned`]: a listener of the service's own tree) |
//! | [`Listening`] | the service's tree listens on a TCP port, found in `/proc` (port discovery for `--port 0`) |
//! | [`UnixSocket`] | a unix socket accepts connections |
//! | [`Http`] | an HTTP request gets an expected status |
//! | [`PidFile`] | a pid file names a running process (and its content matches, if asked) |
//! | [`FileContent`] | a file's content matches a regex (PostgreSQL's `postmaster.pid` says `ready`) |
//! | [`Notify`] | the service sends `READY=1` over systemd's `NOTIFY_SOCKET` protocol |
//! | [`ReadyFd`] | the service writes a newline to a pipe passed as fd N (s6 style) |
//! | [`Exec`] | a command (`pg_isready`, `redis-cli ping`) exits 0 or prints a match |
//! | [`Redis`] | Redis answers `PING` with `+PONG` (`-LOADING` is not ready) |
//! | [`Postgres`] | PostgreSQL accepts a connection, as `pg_isready` decides it |
//! | [`All`], [`Any`] | all, or any, of several checks; [`with_timeout`] gives one its own time limit |
//! | [`custom`] | a closure says so |

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::command::{Command, Redirect};
use crate::error::Error;
use crate::output::{Output, Stream};
use crate::process::{far_future, listeners_of, Extras, Monitor, PortOwner, Process};

mod combinators;
mod custom;
mod exec;
mod file;
mod http;
mod listeners;
pub(crate) mod mysql;
mod nothing;
mod notify;
mod output;
mod pidfile;
pub(crate) mod postgres;
pub(crate) mod probe;
mod ready_fd;
pub(crate) mod redis;
mod tcp;
mod unix;

pub use combinators::{all, any, with_timeout, All, Any, Timed};
pub use custom::{custom, Custom};
pub use exec::{exec, Exec};
pub use file::{file, FileContent};
pub use http::{Http, StatusPattern};
pub(crate) use listeners::PORT_TAKEN;
pub use listeners::{listening, Listening};
pub use mysql::{mysql, Mysql};
pub use nothing::Nothing;
pub use notify::{notify, Notify};
pub use output::Banner;
pub use pidfile::PidFile;
pub use postgres::{postgres, Postgres};
pub use ready_fd::{ready_fd, ReadyFd};
pub use redis::{redis, Redis};
pub use tcp::Tcp;
pub use unix::UnixSocket;

/// What a check says each time it is polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The service is ready.
    Ready,
    /// Not yet; poll again on the next event or at the time asked with
    /// [`Context::poll_again_in`].
    NotYet,
    /// The service can never become ready; `start()` kills it and fails with
    /// [`Error::CheckFailed`] carrying this reason.
    Failed(String),
}

/// A readiness check. The executors of this crate are [`Executor`](crate::Executor)s with one
/// of the checks of this module; any other type implementing `Check` (or a closure, through
/// [`custom`]) makes another.
pub trait Check: Send {
    /// What readiness means, completing "waited for …": `"TCP 127.0.0.1:6379 to accept
    /// connections"`.
    fn describe(&self) -> String;

    /// Called by `start()` before anything is spawned, to validate the check's arguments and
    /// to register what it needs (output watches, environment variables). An `Err` is
    /// reported as [`Error::InvalidArgument`] with this text as the problem.
    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        let _ = setup;
        Ok(())
    }

    /// Python mirakuru's `pre_start_check`: whether something already answers where the
    /// service will, described (`Some("127.0.0.1:6379 accepts connections")`). `start()` then
    /// fails with [`Error::AlreadyRunning`] without spawning.
    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        let _ = setup;
        Ok(None)
    }

    /// Is the service ready? Called right after the spawn, then on every event.
    fn poll(&mut self, cx: &mut Context<'_>) -> Status;

    /// The outcome of the last attempt ("connection refused", "HTTP 503"), for the timeout
    /// message.
    fn last_attempt(&self) -> Option<String> {
        None
    }

    /// The TCP port the check waits on, or the one it found the service listening on
    /// ([`Listening`], a banner group named `port`). Custom checks see it as
    /// [`Context::port`]; executors and fixtures report it.
    fn port(&self) -> Option<u16> {
        None
    }

    /// What the check captured when it became ready: the groups of a banner or file regex,
    /// the line written to a readiness fd.
    fn captures(&self) -> Option<Captures> {
        None
    }

    /// For checks made of others ([`All`], [`Any`]): how long after the spawn each part
    /// became ready, described. The executor records the whole check's time itself.
    fn ready_times(&self) -> Vec<(String, Duration)> {
        Vec::new()
    }

    /// Called once the service is stopped, or its start failed: releases what
    /// [`prepare`](Check::prepare) set up for it (a notify socket and its directory, a probe
    /// still running). Dropping the check does it too.
    fn release(&mut self) {}
}

impl Check for Box<dyn Check> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        (**self).prepare(setup)
    }
    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        (**self).already_running(setup)
    }
    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        (**self).poll(cx)
    }
    fn last_attempt(&self) -> Option<String> {
        (**self).last_attempt()
    }
    fn port(&self) -> Option<u16> {
        (**self).port()
    }
    fn captures(&self) -> Option<Captures> {
        (**self).captures()
    }
    fn ready_times(&self) -> Vec<(String, Duration)> {
        (**self).ready_times()
    }
    fn release(&mut self) {
        (**self).release()
    }
}

/// The capture groups of a match: index 0 is the whole match, then each group in order;
/// groups that did not take part are `None`. Named groups (`(?P<port>\d+)`) are also found by
/// name.
///
/// ```
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::OutputExecutor;
///
/// let mut ex = OutputExecutor::new(
///     ["sh", "-c", "echo 'listening on 127.0.0.1 port 7000'; exec sleep 30"],
///     r"listening on (?P<host>\S+) port (?P<port>\d+)",
/// );
/// ex.start()?;
/// let caps = ex.captures().expect("matched");
/// assert_eq!(caps.name("host"), Some("127.0.0.1"));
/// assert_eq!(caps.get(2), Some("7000"));
/// assert_eq!(caps[2].as_deref(), Some("7000"));
/// assert_eq!(ex.port(), Some(7000)); // a group named `port` is the service's port
/// ex.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    groups: Vec<Option<String>>,
    names: Vec<Option<String>>,
}

impl Captures {
    /// Groups (index 0 the whole match) and their names (`None` for unnamed ones).
    pub(crate) fn new(groups: Vec<Option<String>>, names: Vec<Option<String>>) -> Captures {
        Captures { groups, names }
    }

    /// The groups and their names, as [`Captures::new`] takes them.
    pub(crate) fn parts(&self) -> (&[Option<String>], &[Option<String>]) {
        (&self.groups, &self.names)
    }

    /// The text of group `i`, if it took part in the match.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.groups.get(i).and_then(|g| g.as_deref())
    }

    /// The text of the group called `name`, if it exists and took part in the match.
    pub fn name(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        self.get(i)
    }

    /// How many groups there are, the whole match included.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups at all.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups in order, index 0 first.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        self.groups.iter().map(|g| g.as_deref())
    }

    /// A group named `port` holding a port number: the port the service says it listens on.
    pub(crate) fn port(&self) -> Option<u16> {
        self.name("port").and_then(|p| p.trim().parse().ok()).filter(|&p| p != 0)
    }
}

impl std::ops::Index<usize> for Captures {
    type Output = Option<String>;

    /// Group `i`, as `captures[1].as_deref()`.
    ///
    /// # Panics
    ///
    /// If there is no group `i`, as a slice would.
    fn index(&self, i: usize) -> &Option<String> {
        &self.groups[i]
    }
}

/// What a check sees before the spawn.
#[derive(Debug)]
pub struct Setup<'a> {
    pub(crate) command: &'a Command,
    pub(crate) monitor: &'a Monitor,
    /// What the checks add to the spawn: variables and file descriptors.
    pub(crate) extras: Extras,
    /// `(uid, gid)` the service runs as, when it is another user than the test's.
    pub(crate) user: Option<(u32, u32)>,
}

impl Setup<'_> {
    /// The command, as given.
    pub fn command(&self) -> String {
        self.command.to_string()
    }

    /// A path as the service will see it: relative paths are relative to its working
    /// directory. (Python mirakuru resolved them against the test's directory instead.)
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.command.resolve(path)
    }

    /// Sets an environment variable for the service (e.g. `NOTIFY_SOCKET`).
    pub fn set_env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        self.extras.env.push((key.into(), value.into()));
    }

    /// Gives the service `fd` as its file descriptor number `target` (3 or more; s6-style
    /// readiness pipes, `--print-address=FD`). Ours is closed once the service is spawned.
    pub fn pass_fd(&mut self, fd: OwnedFd, target: i32) {
        self.extras.fds.push((fd, target));
    }

    /// The file descriptor numbers already given to the service with
    /// [`pass_fd`](Setup::pass_fd), so that two checks do not claim the same one.
    pub fn passed_fds(&self) -> Vec<i32> {
        self.extras.fds.iter().map(|(_, target)| *target).collect()
    }

    /// `(uid, gid)` the service runs as when it runs as another user
    /// ([`Executor::user`](crate::Executor::user)): what a check creates for the service to
    /// use (a notify socket) must be reachable by that user.
    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// Whether a stream is captured (and so can carry a banner).
    pub fn captures(&self, stream: Stream) -> bool {
        let redirect = match stream {
            Stream::Stdout => &self.command.stdout,
            Stream::Stderr => &self.command.stderr,
        };
        matches!(redirect, Redirect::Capture)
    }

    /// Starts queueing the captured streams for a banner search; every byte is seen, even if
    /// the service writes gigabytes before the banner.
    pub(crate) fn watch_output(&self) -> [Option<usize>; 2] {
        [Stream::Stdout, Stream::Stderr]
            .map(|stream| self.captures(stream).then(|| self.monitor.add_watch(stream)))
    }
}

/// Refuses a path the operating system cannot take: one with a NUL byte would only fail at the
/// first attempt, after the spawn, and then at every attempt until the timeout.
pub(crate) fn check_path(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(format!(
            "the {what} {:?} contains a NUL byte, which no path can hold; remove it",
            path.as_os_str()
        ));
    }
    Ok(())
}

/// What a check sees while the service starts.
#[derive(Debug)]
pub struct Context<'a> {
    pub(crate) process: &'a Process,
    pub(crate) deadline: Instant,
    pub(crate) wake_at: Option<Instant>,
    /// Copies of the fds the check asked to be woken by: a check keeps its own, but it cannot
    /// lend them past its `poll`, and the wait that follows needs them.
    pub(crate) wake_fds: Vec<OwnedFd>,
    /// The port of the check being polled, or of the checks polled before it in a combinator.
    pub(crate) port: Option<u16>,
    /// The service's main process, when a check learnt it (sd_notify `MAINPID=`, a pid file).
    pub(crate) main_pid: Option<u32>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(process: &'a Process, deadline: Instant) -> Context<'a> {
        Context {
            process,
            deadline,
            wake_at: None,
            wake_fds: Vec::new(),
            port: None,
            main_pid: None,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.wake_at = None;
        self.wake_fds.clear();
    }

    /// The pid of the spawned process.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Time since the spawn.
    pub fn elapsed(&self) -> Duration {
        self.process.spawned_at.elapsed()
    }

    /// Time left before the startup timeout.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Pushes the startup deadline to `by` from now at the latest, if that is later (the
    /// service reported progress, as sd_notify's `EXTEND_TIMEOUT_USEC=` does).
    pub fn extend_deadline(&mut self, by: Duration) {
        let by = Instant::now().checked_add(by).unwrap_or_else(far_future);
        self.deadline = self.deadline.max(by);
    }

    /// Counts `pid` as part of the service's tree (a daemon it reported, sd_notify's
    /// `MAINPID=`), so it is stopped with it. False if `pid` cannot belong to the tree (see
    /// [`try_adopt`](Context::try_adopt)).
    pub fn adopt(&mut self, pid: u32) -> bool {
        self.process.adopt(pid)
    }

    /// [`adopt`](Context::adopt), with why not: only a process of the service's tree, or one
    /// of the service's own user started after it, is adopted — a service that runs as another
    /// user must not make the test signal a process that user could not.
    ///
    /// # Errors
    ///
    /// Why `pid` cannot be the service's.
    pub fn try_adopt(&mut self, pid: u32) -> Result<(), String> {
        self.process.try_adopt(pid)
    }

    /// Makes `pid` the service's main process: it is [adopted](Context::adopt), and once the
    /// service is ready its death is the service's death
    /// ([`Executor::check_alive`](crate::Executor::check_alive)), whatever the spawned
    /// process does (systemd's `MAINPID=`, a forking daemon's pid file). False, and nothing
    /// changes, if `pid` cannot belong to the tree.
    pub fn set_main_pid(&mut self, pid: u32) -> bool {
        self.try_set_main_pid(pid).is_ok()
    }

    /// [`set_main_pid`](Context::set_main_pid), with why not.
    ///
    /// # Errors
    ///
    /// Why `pid` cannot be the service's (see [`try_adopt`](Context::try_adopt)).
    pub fn try_set_main_pid(&mut self, pid: u32) -> Result<(), String> {
        if pid != self.process.pid {
            self.process.try_adopt(pid)?;
        }
        self.main_pid = Some(pid);
        Ok(())
    }

    /// The TCP port the executor's check waits on, or found the service listening on: the
    /// port of this check, or in a combinator of one polled before it. `None` when no check
    /// knows one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The TCP ports the processes of the service's tree listen on now, found in `/proc`
    /// without connecting (empty where `/proc` is not available). Sorted, without duplicates.
    pub fn listening_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> =
            listeners_of(&self.tree_pids()).into_iter().map(|l| l.port).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Who holds TCP `port` now: a process of the service's tree (a daemon the service left
    /// behind is adopted then), a foreign process, or nobody.
    pub(crate) fn port_owner(&self, port: u16) -> PortOwner {
        self.process.port_owner(port)
    }

    /// The pids of every process of the service's tree that runs now.
    pub fn tree_pids(&self) -> Vec<u32> {
        self.process.tree_pids()
    }

    /// What the process wrote so far (the captured part).
    pub fn output(&self) -> Output {
        self.process.monitor().output()
    }

    /// How the process exited, if it has (it may have daemonized).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.process.monitor().exit().flatten()
    }

    /// Asks to be polled again after `delay` at the latest (events may come sooner).
    pub fn poll_again_in(&mut self, delay: Duration) {
        let at = Instant::now().checked_add(delay).unwrap_or_else(far_future);
        self.wake_at = Some(self.wake_at.map_or(at, |t| t.min(at)));
    }

    /// Asks to be polled again when `fd` becomes readable.
    pub fn poll_when_readable(&mut self, fd: &impl AsFd) {
        match fd.as_fd().try_clone_to_owned() {
            Ok(copy) => self.wake_fds.push(copy),
            // Out of file descriptors: look again soon rather than miss the event.
            Err(_) => self.poll_again_in(Duration::from_millis(1)),
        }
    }

    pub(crate) fn monitor(&self) -> &Monitor {
        self.process.monitor()
    }
}

/// The schedule of a probe that has no event to wait for (a TCP connect, an HTTP request, a
/// custom closure): first after 100 µs, then 1.5 times longer each time, at most 1 ms apart
/// during the first second — most services are ready within it and a refused loopback connect
/// costs ~30 µs (docs/design.md §5) — and at most 10 ms apart after that.
#[derive(Debug, Clone)]
pub struct Backoff {
    started: Instant,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// A schedule starting now.
    pub fn new() -> Backoff {
        Backoff { started: Instant::now(), next: Duration::from_micros(100) }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let cap = if self.started.elapsed() < Duration::from_secs(1) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        let delay = self.next.min(cap);
        self.next = (self.next * 3 / 2).min(cap);
        delay
    }

    /// Starts over from the shortest delay (something happened that makes readiness likely
    /// soon, such as the socket file appearing).
    pub fn reset(&mut self) {
        self.next = Duration::from_micros(100);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_below_a_millisecond_and_is_capped() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first < Duration::from_millis(1));
        let delays: Vec<_> = (0..50).map(|_| b.next_delay()).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().expect("some"), Duration::from_millis(1));
        b.started -= Duration::from_secs(2);
        let later: Vec<_> = (0..50).map(|_| b.next_delay()).collect();
        assert_eq!(*later.last().expect("some"), Duration::from_millis(10));
    }
}
