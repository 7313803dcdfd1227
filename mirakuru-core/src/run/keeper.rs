//! The keeper: the test binary run again, on the hidden test the attribute writes beside a
//! run-scoped static, to own that fixture's service for the whole run. It starts the service
//! as a shared fixture of its own (so its tree, `PR_SET_PDEATHSIG` and reaper tie the service
//! to the keeper: a keeper that dies takes its service with it), writes what the tests see,
//! answers them on its socket, and when the runner exits — normally, on Ctrl-C or killed —
//! stops the service (tree, grace, kill) and removes the run's files.

use std::io::BufReader;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::FlockOperation;

use super::control::{self, Died, Reply, Request};
use super::place::{open_lock, Place};
use super::runner::Runner;
use super::state::{Seen, State};
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
    let state = match shared.start_here() {
        Ok(fixture) => State::Ready(Box::new(Seen { keeper: name, ..Seen::of(fixture) })),
        Err(message) => State::Failed(message),
    };
    state.write(&place.state()).map_err(|e| format!("its state: {e}"))?;
    let keeper = Keeper { shared, place: &place, runner, runner_fd: runner_fd.as_ref() };
    keeper.answer_until_the_run_ends(&listener);
    shared.shut_down_here();
    place.remove();
    Ok(())
}

struct Keeper<'a> {
    shared: &'static SharedFixture,
    place: &'a Place,
    runner: Runner,
    runner_fd: Option<&'a std::os::fd::OwnedFd>,
}

impl Keeper<'_> {
    fn answer_until_the_run_ends(&self, listener: &UnixListener) {
        while self.wait_for(listener.as_fd()) {
            while let Ok((stream, _)) = listener.accept() {
                if control::from_this_user(&stream) {
                    self.answer(stream);
                }
            }
        }
    }

    /// Waits until `fd` is readable (true) or the runner is gone (false).
    fn wait_for(&self, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        loop {
            let mut fds = vec![PollFd::new(&fd, PollFlags::IN)];
            if let Some(runner) = self.runner_fd {
                fds.push(PollFd::new(runner, PollFlags::IN));
            }
            let timeout = rustix::event::Timespec::try_from(RUNNER_TICK).ok();
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            let runner_gone = fds.get(1).is_some_and(|f| !f.revents().is_empty());
            let readable = !fds[0].revents().is_empty();
            if runner_gone || !self.runner.alive() {
                return false;
            }
            if readable {
                return true;
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
        // A test that stopped the service holds its connection until it asks for the restart.
        let _ = reader.get_ref().set_read_timeout(Some(Duration::from_secs(10)));
        while let Ok(Some(request)) = control::receive::<Request>(&mut reader) {
            let reply = match request {
                Request::Output => Reply::output(fixture.output()),
                Request::Report => Reply::Report(fixture.report()),
                Request::Alive => Reply::Alive(fixture.check_alive().map_err(|e| Died::of(&e))),
                Request::Running => Reply::Running(fixture.running()),
                Request::Stop => {
                    self.stop_until_asked(fixture, &mut reader, &mut writer);
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
    /// process is gone (its connection closed) or the run ends.
    fn stop_until_asked(
        &self,
        fixture: &Fixture,
        reader: &mut BufReader<UnixStream>,
        writer: &mut UnixStream,
    ) {
        let stopped = match fixture.stopped() {
            Ok(stopped) => stopped,
            Err(err) => {
                let _ = control::send(writer, &Reply::Stopped(Err(err.to_string())));
                return;
            }
        };
        if control::send(writer, &Reply::Stopped(Ok(()))).is_err() {
            let _ = self.restart(fixture, stopped);
            return;
        }
        let _ = reader.get_ref().set_read_timeout(None);
        if reader.buffer().is_empty() && !self.wait_for(reader.get_ref().as_fd()) {
            // The run ended while the service was stopped: it stays stopped.
            std::mem::forget(stopped);
            return;
        }
        let asked = control::receive::<Request>(reader);
        let started = self.restart(fixture, stopped);
        if matches!(asked, Ok(Some(Request::Start))) {
            let _ = control::send(writer, &Reply::Started(started));
        }
    }

    fn restart(&self, fixture: &Fixture, stopped: crate::Stopped) -> Result<Box<Seen>, String> {
        stopped.restart().map_err(|e| e.to_string())?;
        let seen = self.seen(fixture);
        let _ = State::Ready(seen.clone()).write(&self.place.state());
        Ok(seen)
    }

    fn seen(&self, fixture: &Fixture) -> Box<Seen> {
        let keeper = match State::read(&self.place.state()) {
            Some(State::Ready(seen)) => seen.keeper,
            _ => String::new(),
        };
        Box::new(Seen { keeper, ..Seen::of(fixture) })
    }
}
