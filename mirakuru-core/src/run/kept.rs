//! A test's side of a run-scoped fixture: finding the run's keeper (starting it, exactly once
//! however many processes ask at the same moment), what the test sees of the service it
//! keeps, and the leases through which `stopped!` waits for every process using it.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use super::control::{Connection, Reply, Request};
use super::keeper::{KEEP, KEEP_DIR, KEEP_RUNNER};
use super::place::Place;
use super::runner::Run;
use super::state::{Seen, State};
use crate::fixture::{lock_within, open_checked, open_lock};
use crate::{Error, Output};

/// How long a test waits for another process's keeper to start the service, or for a lock
/// (another process's `stopped!`), before it gives up with a message.
const WAIT: Duration = Duration::from_secs(600);

/// A service kept by the run's keeper, as a test sees it.
#[derive(Debug)]
pub(crate) struct Kept {
    place: Place,
    /// The fixture's `{tmpdir}`: the keeper's, the same across restarts.
    tmpdir: std::path::PathBuf,
    seen: Mutex<Seen>,
    lease: Mutex<Lease>,
}

/// This process's share of the service: one shared lock however many tests of it use it.
#[derive(Debug, Default)]
struct Lease {
    users: usize,
    file: Option<File>,
    /// This process holds the service stopped (`stopped!`): its tests neither wait for
    /// the turnstile it holds nor take a share of the lease it holds exclusively.
    stopped_here: bool,
}

/// The keeper's service for the fixture at `path` (its path in the test crate), the keeper
/// started if no process of the run did; `None` when this process is in no run.
pub(crate) fn attach(
    path: &str,
    fingerprint: u64,
    keeper_test: &str,
) -> Option<Result<Kept, String>> {
    // The keeper runs the fixture itself.
    if std::env::var_os(KEEP).is_some() {
        return None;
    }
    let run = super::runner::current()?;
    Some(attach_in(&run, path, fingerprint, keeper_test))
}

fn attach_in(run: &Run, path: &str, fingerprint: u64, keeper_test: &str) -> Result<Kept, String> {
    let place = Place::of(run, path, fingerprint)?;
    let start_lock = open_lock(&place.start_lock()).map_err(|e| e.to_string())?;
    lock(&start_lock, FlockOperation::NonBlockingLockExclusive, "start the service")?;
    let state = match State::read(&place.state()) {
        Some(state) if place.keeper_alive() => state,
        // A keeper that died left its state: never reused.
        _ => {
            let _ = std::fs::remove_file(place.state());
            start_keeper(&place, run, path, keeper_test)?
        }
    };
    drop(start_lock);
    match state {
        State::Ready(seen) => {
            let tmpdir = seen.tmpdir.clone();
            Ok(Kept { place, tmpdir, seen: Mutex::new(*seen), lease: Mutex::new(Lease::default()) })
        }
        State::Failed(message) => Err(message),
    }
}

/// Runs the test binary again on `keeper_test`, in a session of its own with its output in
/// the place's log, and waits for the state it writes.
fn start_keeper(place: &Place, run: &Run, path: &str, keeper_test: &str) -> Result<State, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test binary: {e}"))?;
    // Appended to: a keeper that replaces a dead one keeps what the dead one said.
    let log = open_checked(&place.log(), std::fs::OpenOptions::new().create(true).append(true))
        .map_err(|e| format!("the keeper's log: {e}"))?;
    let logged_before = log.metadata().map_or(0, |m| m.len());
    let mut command = std::process::Command::new(exe);
    command
        .args([keeper_test, "--exact", "--ignored", "--test-threads=1", "--nocapture"])
        .env(KEEP, path)
        .env(KEEP_DIR, &place.dir)
        .env(KEEP_RUNNER, run.runner.to_arg())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe. A session of its own: the runner's signals to
    // this test's process group (a timeout, Ctrl-C) are not the keeper's.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
    }
    let mut keeper = command.spawn().map_err(|e| format!("the keeper cannot start: {e}"))?;
    crate::process::disown(keeper.id());
    let began = Instant::now();
    let mut pause = Duration::from_millis(1);
    let state = loop {
        if let Some(state) = State::read(&place.state()) {
            break Ok(state);
        }
        if let Ok(Some(status)) = keeper.try_wait() {
            if !run.runner.alive() {
                break Err(format!(
                    "the run ended (its runner, process {}, exited) before `{path}` started",
                    run.runner.pid
                ));
            }
            let log = std::fs::read(place.log()).unwrap_or_default();
            let log = String::from_utf8_lossy(log.get(logged_before as usize..).unwrap_or(&[]));
            let log = log.trim();
            let log = if log.is_empty() {
                format!(
                    "it found no test `{keeper_test}` to run: run-scoped fixtures are statics \
                     at module level of a test target with the standard harness (not \
                     `harness = false`), declared with `#[mirakuru::fixture(scope = run, ...)]`"
                )
            } else {
                log.to_string()
            };
            break Err(format!("the keeper of `{path}` ended ({status}) before it started: {log}"));
        }
        if began.elapsed() > WAIT {
            let _ = keeper.kill();
            break Err(format!("the keeper of `{path}` did not start it in {WAIT:?}"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    // Reaped when it ends, if this process still runs then.
    std::thread::spawn(move || keeper.wait());
    state
}

/// Takes `operation` on `file`, waiting at most [`WAIT`] for whoever holds it.
fn lock(file: &File, operation: FlockOperation, to: &str) -> Result<(), String> {
    match lock_within(file, operation, WAIT) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "waited {WAIT:?} for another test process to {to}: a test that holds a \
             run-scoped fixture stopped (`stopped!`) while it waits for something else \
             blocks every other user"
        )),
        Err(e) => Err(format!("a lock to {to}: {e}")),
    }
}

impl Kept {
    pub(crate) fn tmpdir(&self) -> &std::path::Path {
        &self.tmpdir
    }

    /// What the keeper last wrote: read again each time, since a `stopped!` of another
    /// process restarts the service with another pid.
    pub(crate) fn seen(&self) -> Seen {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(State::Ready(now)) = State::read(&self.place.state()) {
            *seen = *now;
        }
        seen.clone()
    }

    fn ask(&self, request: &Request) -> io::Result<Reply> {
        let seen = self.seen();
        Connection::open(&seen.keeper, seen.keeper_pid)?.ask(request)
    }

    pub(crate) fn output(&self) -> Output {
        match self.ask(&Request::Output) {
            Ok(Reply::Output { stdout, stderr, stdout_dropped, stderr_dropped }) => {
                Output { stdout, stderr, stdout_dropped, stderr_dropped }
            }
            _ => Output::default(),
        }
    }

    pub(crate) fn report(&self) -> String {
        match self.ask(&Request::Report) {
            Ok(Reply::Report(report)) => report,
            _ => format!(
                "--- mirakuru fixture `{}`: its keeper is gone (its log: {}) ---\n",
                self.seen().name,
                self.place.log().display()
            ),
        }
    }

    pub(crate) fn check_alive(&self) -> Result<(), Error> {
        match self.ask(&Request::Alive) {
            Ok(Reply::Alive(alive)) => alive.map_err(|died| died.into_error()),
            Ok(_) => Err(self.keeper_gone(io::Error::other("an unexpected reply"))),
            Err(e) => Err(self.keeper_gone(e)),
        }
    }

    pub(crate) fn running(&self) -> bool {
        matches!(self.ask(&Request::Running), Ok(Reply::Running(true)))
    }

    fn keeper_gone(&self, source: io::Error) -> Error {
        let seen = self.seen();
        Error::Io {
            command: seen.command,
            action: format!(
                "asking the keeper of the run-scoped fixture `{}` (its log: {})",
                seen.name,
                self.place.log().display()
            ),
            source,
        }
    }

    /// A test of this process starts using the service: the first takes the process's
    /// shared lease, after any `stopped!` of another process.
    /// A restart that failed is every later test's error.
    pub(crate) fn enter(&self) -> Result<(), String> {
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        if lease.users == 0 && !lease.stopped_here {
            lease.file = Some(self.take_shared()?);
        }
        lease.users += 1;
        if let Some(State::Failed(message)) = State::read(&self.place.state()) {
            lease.users -= 1;
            if lease.users == 0 {
                lease.file = None;
            }
            return Err(message);
        }
        Ok(())
    }

    /// A use ends; the last lets go of the lease.
    pub(crate) fn leave(&self) {
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        lease.users = lease.users.saturating_sub(1);
        if lease.users == 0 {
            lease.file = None;
        }
    }

    /// Through the turnstile (where a `stopped!` waits first), then the shared lease.
    fn take_shared(&self) -> Result<File, String> {
        let turnstile = open_lock(&self.place.turnstile()).map_err(|e| e.to_string())?;
        lock(&turnstile, FlockOperation::NonBlockingLockShared, "restart the service")?;
        let down = open_lock(&self.place.down()).map_err(|e| e.to_string())?;
        lock(&down, FlockOperation::NonBlockingLockShared, "restart the service")?;
        let lease = open_lock(&self.place.lease()).map_err(|e| e.to_string())?;
        lock(&lease, FlockOperation::NonBlockingLockShared, "restart the service")?;
        Ok(lease)
    }

    /// `stopped!`: once every other process let go of the service, has the keeper stop it.
    /// The caller's own threads were already kept out; its own uses do not count.
    pub(crate) fn stop(&'static self) -> Result<KeptStopped, Error> {
        let failed = |e: String| self.keeper_gone(io::Error::other(e));
        // This process's own lease would block its exclusive one.
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        lease.file = None;
        lease.stopped_here = true;
        drop(lease);
        let turnstile = open_lock(&self.place.turnstile()).map_err(|e| failed(e.to_string()))?;
        let lease = open_lock(&self.place.lease()).map_err(|e| failed(e.to_string()))?;
        let taken = lock(&turnstile, FlockOperation::NonBlockingLockExclusive, "stop it")
            .and_then(|()| lock(&lease, FlockOperation::NonBlockingLockExclusive, "stop it"));
        let stopped = taken.map_err(failed).and_then(|()| {
            let seen = self.seen();
            let mut connection =
                Connection::open(&seen.keeper, seen.keeper_pid).map_err(|e| self.keeper_gone(e))?;
            match connection.ask(&Request::Stop) {
                Ok(Reply::Stopped(Ok(()))) => Ok(connection),
                Ok(Reply::Stopped(Err(message))) => Err(failed(message)),
                Ok(_) => Err(failed("an unexpected reply".into())),
                Err(e) => Err(self.keeper_gone(e)),
            }
        });
        match stopped {
            Ok(connection) => Ok(KeptStopped {
                kept: self,
                connection: Some(connection),
                locks: Some((turnstile, lease)),
            }),
            Err(err) => {
                drop((turnstile, lease));
                self.retake();
                Err(err)
            }
        }
    }

    /// After a `stopped!`: this process's tests that still use the service hold it again.
    fn retake(&self) {
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        lease.stopped_here = false;
        if lease.users > 0 && lease.file.is_none() {
            lease.file = self.take_shared().ok();
        }
    }
}

/// A run-scoped service stopped by this process; started again by [`KeptStopped::restart`].
#[derive(Debug)]
pub(crate) struct KeptStopped {
    kept: &'static Kept,
    connection: Option<Connection>,
    /// The turnstile and the lease, exclusive: released after the restart.
    locks: Option<(File, File)>,
}

impl KeptStopped {
    /// Has the keeper start the service again (on the same port) and waits until it is ready.
    pub(crate) fn restart(mut self) -> Result<(), Error> {
        self.start()
    }

    fn start(&mut self) -> Result<(), Error> {
        let Some(mut connection) = self.connection.take() else { return Ok(()) };
        match connection.ask(&Request::Start) {
            Ok(Reply::Started(Ok(seen))) => {
                *self.kept.seen.lock().unwrap_or_else(|p| p.into_inner()) = *seen;
                Ok(())
            }
            Ok(Reply::Started(Err(message))) => {
                Err(self.kept.keeper_gone(io::Error::other(message)))
            }
            Ok(_) => Err(self.kept.keeper_gone(io::Error::other("an unexpected reply"))),
            Err(e) => Err(self.kept.keeper_gone(e)),
        }
    }
}

impl Drop for KeptStopped {
    fn drop(&mut self) {
        if let Err(err) = self.start() {
            if std::thread::panicking() {
                eprintln!("mirakuru: the run-scoped service could not start again: {err}");
            } else {
                panic!("mirakuru: the run-scoped service could not start again: {err}");
            }
        }
        // The exclusive locks go with this guard (after the restart): then this process's own
        // users take their shared lease again.
        drop(self.locks.take());
        self.kept.retake();
    }
}
