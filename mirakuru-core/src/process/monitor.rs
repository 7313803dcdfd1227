//! What the supervisor observed about one process: its output and its exit. Shared between
//! the supervisor thread, which writes it, and the executor, which waits on it.

use std::io;
use std::os::fd::BorrowedFd;
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::output::{Capture, Output, Stream, Unsearched};
use crate::platform::WakePipe;

#[derive(Debug)]
pub(crate) struct Monitor {
    state: Mutex<State>,
    changed: Condvar,
    wake: WakePipe,
    /// Wakes the supervisor's loop, which reads the process's streams: set when the process
    /// is handed to it.
    supervisor: OnceLock<Arc<WakePipe>>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    exited: bool,
    status: Option<ExitStatus>,
}

impl State {
    pub(crate) fn capture(&mut self, stream: Stream) -> &mut Capture {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// `Some(status)` once the leader has exited; the inner `None` if its status was lost
    /// because something else reaped it.
    pub(crate) fn exit(&self) -> Option<Option<ExitStatus>> {
        self.exited.then_some(self.status)
    }
}

impl Monitor {
    pub(crate) fn new(output_limit: usize) -> io::Result<Arc<Monitor>> {
        Ok(Arc::new(Monitor {
            state: Mutex::new(State {
                stdout: Capture::new(output_limit),
                stderr: Capture::new(output_limit),
                exited: false,
                status: None,
            }),
            changed: Condvar::new(),
            wake: WakePipe::new()?,
            supervisor: OnceLock::new(),
        }))
    }

    /// The supervisor whose loop `wake` wakes takes the process on.
    pub(crate) fn served_by(&self, wake: Arc<WakePipe>) {
        let _ = self.supervisor.set(wake);
    }

    /// Tells the supervisor to read the streams again: a stream it stopped reading (its
    /// queue was full) may be read again.
    fn wake_supervisor(&self) {
        if let Some(wake) = self.supervisor.get() {
            wake.wake();
        }
    }

    /// The state, also after a panic elsewhere: it holds plain data that stays consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Something changed: wake the executor's readiness wait and any thread waiting for exit.
    pub(crate) fn notify(&self) {
        self.wake.wake();
        self.changed.notify_all();
    }

    pub(crate) fn set_exit(&self, status: Option<ExitStatus>) {
        {
            let mut state = self.lock();
            state.exited = true;
            state.status = status;
        }
        self.notify();
    }

    pub(crate) fn exit(&self) -> Option<Option<ExitStatus>> {
        self.lock().exit()
    }

    /// Waits until the leader has exited or `deadline` passes; true if it exited.
    pub(crate) fn wait_exit_until(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        loop {
            if state.exited {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }

    pub(crate) fn output(&self) -> Output {
        let state = self.lock();
        let (stdout, stdout_dropped) = state.stdout.kept();
        let (stderr, stderr_dropped) = state.stderr.kept();
        Output { stdout, stderr, stdout_dropped, stderr_dropped }
    }

    /// Starts queueing `stream` for a banner watch; its id.
    pub(crate) fn add_watch(&self, stream: Stream) -> usize {
        self.lock().capture(stream).add_watch()
    }

    /// What watch `id` of `stream` has not searched yet. A full queue had stopped the
    /// supervisor from reading the stream: it is told to read again.
    pub(crate) fn take_unsearched(&self, stream: Stream, id: usize, max: usize) -> Unsearched {
        let got = self.lock().capture(stream).take_unsearched(id, max);
        if got.was_full {
            self.wake_supervisor();
        }
        got
    }

    /// Queues nothing more for watch `id` of `stream` (it found its banner).
    pub(crate) fn end_watch(&self, stream: Stream, id: usize) {
        self.lock().capture(stream).end_watch(id);
        self.wake_supervisor();
    }

    /// Queues nothing more for any watch: the start is over, the output is only drained.
    pub(crate) fn end_watches(&self) {
        {
            let mut state = self.lock();
            state.stdout.end_watches();
            state.stderr.end_watches();
        }
        self.wake_supervisor();
    }

    /// Readable when something changed since the last [`Monitor::clear_wake`].
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.fd()
    }

    pub(crate) fn clear_wake(&self) {
        self.wake.drain();
    }
}
