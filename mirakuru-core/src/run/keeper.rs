//! The keeper: the test binary run again, on the hidden test the attribute writes beside a
//! run-scoped static, to own that fixture's service for the whole run. It starts the service
//! as a shared fixture of its own (so its tree, `PR_SET_PDEATHSIG` and reaper tie the service
//! to the keeper: a keeper that dies takes its service with it), writes what the tests see,
//! answers them on its socket, and when the runner exits — normally, on Ctrl-C or killed —
//! stops the service (tree, grace, kill) and removes the run's files.

use std::io::BufReader;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::FlockOperation;

use super::control::{self, Died, Reply, Request};
use super::place::Place;
use super::runner::Runner;
use super::state::{Seen, State};
use crate::fixture::open_lock;
use crate::fixture::Fixture;
use crate::SharedFixture;

/// The fixture the keeper keeps: its path in the test crate. Only a keeper has it in its
/// environment, which is how sweeps tell a keeper from a service's daemon.
pub(crate) const KEEP: &str = "MIRAKURU_KEEP";
/// Its place (directory).
pub(crate) const KEEP_DIR: &str = "MIRAKURU_KEEP_DIR";
/// The runner: `pid start`.
pub(crate) const KEEP_RUNNER: &str = "MIRAKURU_KEEP_RUNNER";

/// How often the keeper looks at its runner where it has no pidfd to wait on.
const RUNNER_TICK: Duration = Duration::from_millis(100);

/// The hidden test's body: keeps `shared` when this process was started as its keeper, and
/// never returns then; does nothing otherwise (the test passes).
pub(crate) fn keep(shared: &'static SharedFixture, path: &str) {
    if std::env::var_os(KEEP).is_none_or(|p| p != path) {
        return;
    }
    let code = match serve(shared) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("mirakuru keeper of `{path}`: {message}");
            1
        }
    };
    std::process::exit(code);
}

fn serve(shared: &'static SharedFixture) -> Result<(), String> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let place = Place::at(var(KEEP_DIR)?.into());
    let runner = Runner::from_arg(&var(KEEP_RUNNER)?).ok_or("a bad runner")?;
    let lock = open_lock(&place.keeper_lock()).map_err(|e| e.to_string())?;
    if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err("another keeper keeps this fixture".into());
    }
    // Opened before the check, so that the pidfd cannot name a recycled pid.
    let runner_fd = crate::platform::pidfd_open(runner.pid);
    if !runner.alive() {
        place.remove();
        return Ok(());
    }
    let name = control::new_name().map_err(|e| e.to_string())?;
    let listener = control::listen(&name).map_err(|e| format!("its socket: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let starting = watch_runner_while_starting(runner, place.clone());
    let state = match shared.start_here() {
        Ok(fixture) => State::Ready(Box::new(Seen { keeper: name.clone(), ..Seen::of(fixture) })),
        Err(message) => State::Failed(message),
    };
    state.write(&place.state()).map_err(|e| format!("its state: {e}"))?;
    starting.store(false, std::sync::atomic::Ordering::SeqCst);
    let keeper = Keeper {
        shared,
        place: &place,
        runner,
        runner_fd: runner_fd.as_ref(),
        listener: &listener,
        name,
    };
    keeper.answer_until_the_run_ends();
    shared.shut_down();
    place.remove();
    Ok(())
}

/// A start can take as long as its timeout: meanwhile, a thread ends the keeper if the run
/// ends (the exit stops what was spawned; the keeper's reaper kills the rest).
fn watch_runner_while_starting(
    runner: Runner,
    place: Place,
) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let starting = std::sync::Arc::new(AtomicBool::new(true));
    let watching = starting.clone();
    let _ = std::thread::Builder::new().name("mirakuru-keeper-watch".into()).spawn(move || {
        while watching.load(Ordering::SeqCst) {
            if !runner.alive() {
                place.remove();
                std::process::exit(0);
            }
            std::thread::sleep(RUNNER_TICK);
        }
    });
    starting
}

struct Keeper<'a> {
    shared: &'static SharedFixture,
    place: &'a Place,
    runner: Runner,
    runner_fd: Option<&'a std::os::fd::OwnedFd>,
    listener: &'a UnixListener,
    /// The listener's abstract name, which the state gives the tests.
    name: String,
}

/// What woke the keeper.
enum Woken {
    /// A connection waits on the listener.
    Listener,
    /// The stream it also waited on is readable.
    Stream,
    /// The runner is gone: the run ended.
    RunEnded,
}

impl Keeper<'_> {
    fn answer_until_the_run_ends(&self) {
        loop {
            match self.wait(None) {
                Woken::RunEnded => return,
                Woken::Listener | Woken::Stream => self.answer_waiting(),
            }
        }
    }

    /// Waits for a connection, for `stream` to be readable, or for the runner's end.
    fn wait(&self, stream: Option<&UnixStream>) -> Woken {
        loop {
            let mut fds = vec![PollFd::new(self.listener, PollFlags::IN)];
            if let Some(stream) = stream {
                fds.push(PollFd::new(stream, PollFlags::IN));
            }
            if let Some(runner) = self.runner_fd {
                fds.push(PollFd::new(runner, PollFlags::IN));
            }
            let timeout = rustix::event::Timespec::try_from(RUNNER_TICK).ok();
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            let woken = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
            let runner_at = if stream.is_some() { 2 } else { 1 };
            if (self.runner_fd.is_some() && woken(runner_at)) || !self.runner.alive() {
                return Woken::RunEnded;
            }
            if stream.is_some() && woken(1) {
                return Woken::Stream;
            }
            if woken(0) {
                return Woken::Listener;
            }
        }
    }

    /// Answers the connections waiting on the listener, one after another.
    fn answer_waiting(&self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if control::from_this_user(&stream) {
                self.answer(stream);
            }
        }
    }

    /// Answers the requests of one connection.
    fn answer(&self, stream: UnixStream) {
        let Ok(fixture) = self.shared.start_here() else { return };
        let _ = stream.set_nonblocking(false);
        let Ok(writer) = stream.try_clone() else { return };
        let mut writer = writer;
        let mut reader = BufReader::new(stream);
        // Requests come at once; a connection that sends nothing does not hold the keeper.
        let _ = reader.get_ref().set_read_timeout(Some(Duration::from_secs(10)));
        while let Ok(Some(request)) = control::receive::<Request>(&mut reader) {
            let reply = match request {
                Request::Output => Reply::output(fixture.output()),
                Request::Report => Reply::Report(fixture.report()),
                Request::Alive => Reply::Alive(fixture.check_alive().map_err(|e| Died::of(&e))),
                Request::Running => Reply::Running(fixture.running()),
                Request::Stop => {
                    self.stop_until_asked(fixture, reader, writer);
                    return;
                }
                Request::Start => Reply::Started(Ok(self.seen(fixture))),
            };
            if control::send(&mut writer, &reply).is_err() {
                return;
            }
        }
    }

    /// `stopped!`: stops the service, and starts it again when asked — or when the test
    /// process is gone (its connection closed) or the run ends. Meanwhile the keeper answers
    /// the others (a test that panics in the block asks for the service's last lines before
    /// it lets go of the stop).
    fn stop_until_asked(
        &self,
        fixture: &Fixture,
        mut reader: BufReader<UnixStream>,
        mut writer: UnixStream,
    ) {
        // Tests that come in wait on it until the service is back, whatever becomes of the
        // test that stopped it.
        let down = open_lock(&self.place.down());
        if let Ok(down) = &down {
            let _ = rustix::fs::flock(down, FlockOperation::LockExclusive);
        }
        let stopped = match fixture.stopped() {
            Ok(stopped) => stopped,
            Err(err) => {
                let _ = control::send(&mut writer, &Reply::Stopped(Err(err.to_string())));
                return;
            }
        };
        if control::send(&mut writer, &Reply::Stopped(Ok(()))).is_err() {
            let _ = self.restart(fixture, stopped);
            return;
        }
        let _ = reader.get_ref().set_read_timeout(None);
        while reader.buffer().is_empty() {
            match self.wait(Some(reader.get_ref())) {
                Woken::Stream => break,
                Woken::Listener => self.answer_waiting(),
                Woken::RunEnded => {
                    // The run ended while the service was stopped: it stays stopped.
                    std::mem::forget(stopped);
                    return;
                }
            }
        }
        let asked = control::receive::<Request>(&mut reader);
        let started = self.restart(fixture, stopped);
        if matches!(asked, Ok(Some(Request::Start))) {
            let _ = control::send(&mut writer, &Reply::Started(started));
        }
    }

    /// Starts the service again; what tests see next is written either way: its new pid, or
    /// the error every later test gets.
    fn restart(&self, fixture: &Fixture, stopped: crate::Stopped) -> Result<Box<Seen>, String> {
        if let Err(err) = stopped.restart() {
            let message = format!(
                "the run-scoped mirakuru fixture `{}` could not start again after a \
                 `stopped!`: {err}",
                fixture.name()
            );
            let _ = State::Failed(message.clone()).write(&self.place.state());
            return Err(message);
        }
        let seen = self.seen(fixture);
        let _ = State::Ready(seen.clone()).write(&self.place.state());
        Ok(seen)
    }

    fn seen(&self, fixture: &Fixture) -> Box<Seen> {
        Box::new(Seen { keeper: self.name.clone(), ..Seen::of(fixture) })
    }
}
