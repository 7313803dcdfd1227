//! The one long-lived thread that spawns every service and then watches it: it drains stdout
//! and stderr as bytes arrive and sees each exit through a pidfd, all in one poll(2) loop.
//!
//! Why one thread spawns everything: `PR_SET_PDEATHSIG` fires when the *thread* that forked the
//! child exits, not the process (prctl(2)). libtest runs every test on its own thread and
//! tokio retires idle blocking threads, so a service spawned from a test thread would be killed
//! as soon as that thread ends — shared fixtures included. Spawned from this thread, which
//! lives as long as the process, the signal means exactly "the test binary died".
//!
//! Why it also watches: draining a pipe must never wait for a test to ask for output (a full
//! pipe blocks the service; mirakuru #98, #1115), and waiting for an exit must not cost a thread
//! per service. So an executor costs no thread at all.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::process::ChildStdin;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::event::{PollFd, PollFlags};

use super::leaders;
use super::monitor::Monitor;
use super::reaper::Reaper;
use super::sweep::MARKER_VAR;
use crate::output::Stream;
use crate::platform::{self, WakePipe};

/// Reads per stream per wake-up before the loop serves the others (16 × 64 KiB): a service
/// flooding its stdout cannot starve the rest.
const READS_PER_ROUND: usize = 16;

/// A spawned process, as the supervisor reports it.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    pub(crate) stdin: Option<ChildStdin>,
}

enum Request {
    Spawn(Box<std::process::Command>, Arc<Monitor>, SyncSender<io::Result<Spawned>>),
    Drain(u64, SyncSender<()>),
    Release(u64),
    /// Fork the reaper now if there is none: a preset is about to run helpers of its own.
    Reaper(SyncSender<()>),
}

/// Handle to the supervisor thread.
pub(crate) struct Supervisor {
    requests: Mutex<Sender<Request>>,
    wake: Arc<WakePipe>,
    reaper: Arc<Mutex<Option<Reaper>>>,
}

static SUPERVISOR: OnceLock<Supervisor> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());

/// The supervisor, started on first use. A failure to start it is not remembered: it is
/// usually a passing lack of resources (EMFILE), and the next start tries again.
pub(crate) fn get() -> io::Result<&'static Supervisor> {
    if let Some(supervisor) = SUPERVISOR.get() {
        return Ok(supervisor);
    }
    let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(supervisor) = SUPERVISOR.get() {
        return Ok(supervisor);
    }
    let supervisor = Supervisor::start().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot start the mirakuru supervisor thread: {e}"))
    })?;
    Ok(SUPERVISOR.get_or_init(|| supervisor))
}

impl Supervisor {
    fn start() -> io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let wake = Arc::new(WakePipe::new()?);
        let thread_wake = Arc::clone(&wake);
        let reaper = Arc::new(Mutex::new(None));
        let thread_reaper = Arc::clone(&reaper);
        // Orphans of the services — daemons whose launcher exited — come to this binary
        // instead of init, and stay recognisable as ours (`sweep::orphans`). Where the OS
        // has no such thing, they are found by their owner marker only.
        let _ = platform::make_child_subreaper();
        // Every verdict on a launcher ("exited 0", "killed by ...") needs its exit status.
        platform::keep_exit_statuses()?;
        platform::raise_open_files_limit();
        std::thread::Builder::new()
            .name("mirakuru-supervisor".into())
            // The loop keeps its 64 KiB read buffer on the heap; the stack is sized for the
            // reaper, a fork of this thread, whose buffers live on it (~100 KiB).
            .stack_size(512 * 1024)
            .spawn(move || run(rx, thread_wake, thread_reaper))?;
        Ok(Supervisor { requests: Mutex::new(tx), wake, reaper })
    }

    /// Spawns `cmd` from the supervisor thread and starts watching it.
    pub(crate) fn spawn(
        &self,
        cmd: std::process::Command,
        monitor: Arc<Monitor>,
    ) -> io::Result<Spawned> {
        let (reply, answer) = mpsc::sync_channel(1);
        monitor.served_by(Arc::clone(&self.wake));
        self.send(Request::Spawn(Box::new(cmd), monitor, reply))?;
        answer.recv().map_err(|_| io::Error::other("the mirakuru supervisor thread is gone"))?
    }

    /// Reads now what the process has written so far and is still in its pipes, so that an
    /// `output()` that follows sees everything written before it was called — a readiness
    /// check can succeed before the supervisor's next turn reads the service's last words.
    /// Waits at most 100 ms, in case the loop is busy with a flood.
    pub(crate) fn drain(&self, id: u64) {
        let (reply, done) = mpsc::sync_channel(1);
        if self.send(Request::Drain(id, reply)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_millis(100));
        }
    }

    /// Forks the reaper now if there is none (it is forked before the first spawn anyway), so
    /// that what a preset runs before its server (`initdb`, `psql`, carrying the binary's
    /// marker) and the run directories it fills go with the binary if it is killed then.
    pub(crate) fn ensure_reaper(&self) {
        let (reply, done) = mpsc::sync_channel(1);
        if self.send(Request::Reaper(reply)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(10));
        }
    }

    /// Stops watching a process: its pipes are closed. Called once its tree is gone.
    pub(crate) fn release(&self, id: u64) {
        let _ = self.send(Request::Release(id));
    }

    /// The reaper's pid, if it runs.
    pub(crate) fn reaper_pid(&self) -> Option<u32> {
        self.reaper.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(Reaper::pid)
    }

    /// Tells the reaper, if there is one, something it must know (see `Reaper`). There is
    /// none only while forking it fails; the exit hook and PDEATHSIG still work then.
    pub(crate) fn tell_reaper(&self, tell: impl FnOnce(&Reaper)) {
        if let Some(reaper) = &*self.reaper.lock().unwrap_or_else(|p| p.into_inner()) {
            tell(reaper);
        }
    }

    fn send(&self, request: Request) -> io::Result<()> {
        let sent = self.requests.lock().unwrap_or_else(|p| p.into_inner()).send(request);
        sent.map_err(|_| io::Error::other("the mirakuru supervisor thread is gone"))?;
        self.wake.wake();
        Ok(())
    }
}

/// One watched process.
struct Entry {
    id: u64,
    pid: u32,
    monitor: Arc<Monitor>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// `None` once the exit has been seen, or where the OS has no pidfds.
    pidfd: Option<OwnedFd>,
    exited: bool,
}

impl Entry {
    fn finished(&self) -> bool {
        self.exited && self.stdout.is_none() && self.stderr.is_none()
    }
}

fn run(rx: Receiver<Request>, wake: Arc<WakePipe>, reaper: Arc<Mutex<Option<Reaper>>>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut next_id = 1u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A bug here must not end the thread: its death would SIGKILL every service.
        let round = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let state = State { rx: &rx, wake: &wake, reaper: &reaper };
            serve_round(&state, &mut entries, &mut next_id, &mut buf)
        }));
        if round.is_err() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[derive(Clone, Copy)]
enum Source {
    Out(Stream),
    Exit,
}

/// What the loop serves with.
struct State<'a> {
    rx: &'a Receiver<Request>,
    wake: &'a WakePipe,
    reaper: &'a Mutex<Option<Reaper>>,
}

/// Forks the reaper if there is none yet — before a spawn, so that no service can fork a
/// daemon unseen. Done again at the next spawn if it fails (a passing lack of resources).
fn ensure_reaper(reaper: &Mutex<Option<Reaper>>) {
    let mut reaper = reaper.lock().unwrap_or_else(|p| p.into_inner());
    if reaper.is_none() {
        let prefix = format!("{MARKER_VAR}={}:", std::process::id());
        let run_dir = super::run_dir::run_dir().ok();
        let ram_dir = super::run_dir::ram_dir();
        let dirs: Vec<&std::path::Path> =
            run_dir.iter().chain(ram_dir.iter()).map(|d| d.as_path()).collect();
        let pid_max = usize::try_from(super::sweep::pid_max()).unwrap_or(usize::MAX);
        *reaper = Reaper::start(prefix.as_bytes(), &dirs, pid_max).ok();
    }
}

fn serve_round(state: &State<'_>, entries: &mut Vec<Entry>, next_id: &mut u64, buf: &mut [u8]) {
    let State { rx, wake, .. } = *state;
    let mut sources: Vec<(usize, Source)> = Vec::with_capacity(entries.len() * 3);
    let mut needs_tick = false;
    let ready: Vec<bool> = {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(1 + entries.len() * 3);
        fds.push(PollFd::from_borrowed_fd(wake.fd(), PollFlags::IN));
        for (i, e) in entries.iter().enumerate() {
            for (fd, source) in [
                (&e.stdout, Source::Out(Stream::Stdout)),
                (&e.stderr, Source::Out(Stream::Stderr)),
                (&e.pidfd, Source::Exit),
            ] {
                // A stream whose banner watch has not searched what it was given waits.
                let waits = match source {
                    Source::Out(stream) => e.monitor.lock().capture(stream).room() == 0,
                    Source::Exit => false,
                };
                if let (Some(fd), false) = (fd, waits) {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                    sources.push((i, source));
                }
            }
            needs_tick |= e.pidfd.is_none() && !e.exited;
        }
        // Without pidfds (macOS, Linux < 5.3) an exit is only seen by asking; 2 ms keeps that
        // prompt at a negligible cost.
        let timeout = needs_tick.then(|| std::time::Duration::from_millis(2));
        if platform::poll(&mut fds, timeout).is_err() {
            return;
        }
        fds.iter().map(|p| !p.revents().is_empty()).collect()
    };
    for (k, &(i, source)) in sources.iter().enumerate() {
        if !ready[k + 1] {
            continue;
        }
        match source {
            Source::Out(stream) => drain(&mut entries[i], stream, buf, READS_PER_ROUND),
            Source::Exit => on_exit(&mut entries[i], buf, state.reaper),
        }
    }
    if needs_tick {
        for e in entries.iter_mut().filter(|e| e.pidfd.is_none() && !e.exited) {
            if !matches!(platform::exit_status_nowait(e.pid, None), Ok(None)) {
                on_exit(e, buf, state.reaper);
            }
        }
    }
    if ready[0] {
        wake.drain();
    }
    while let Ok(request) = rx.try_recv() {
        match request {
            Request::Spawn(cmd, monitor, reply) => {
                ensure_reaper(state.reaper);
                let spawned = spawn(*cmd, monitor, *next_id).map(|(entry, stdin)| {
                    let spawned = Spawned { id: entry.id, pid: entry.pid, stdin };
                    entries.push(entry);
                    spawned
                });
                *next_id += 1;
                let _ = reply.send(spawned);
            }
            Request::Drain(id, reply) => {
                if let Some(entry) = entries.iter_mut().find(|e| e.id == id) {
                    drain(entry, Stream::Stdout, buf, 64);
                    drain(entry, Stream::Stderr, buf, 64);
                }
                let _ = reply.send(());
            }
            Request::Release(id) => entries.retain(|e| e.id != id),
            Request::Reaper(reply) => {
                ensure_reaper(state.reaper);
                let _ = reply.send(());
            }
        }
    }
    entries.retain(|e| !e.finished());
    let running = entries.iter().filter(|e| !e.exited);
    leaders::keep(running.clone().count(), running.map(|e| e.pid));
}

fn spawn(
    mut cmd: std::process::Command,
    monitor: Arc<Monitor>,
    id: u64,
) -> io::Result<(Entry, Option<ChildStdin>)> {
    let mut child = {
        let spawning = leaders::spawning();
        let child = cmd.spawn()?;
        spawning.add(child.id());
        child
    };
    let pid = child.id();
    let take = |fd: Option<OwnedFd>| -> Option<OwnedFd> {
        let fd = fd?;
        platform::set_nonblocking(fd.as_fd()).ok()?;
        Some(fd)
    };
    let stdout = take(child.stdout.take().map(OwnedFd::from));
    let stderr = take(child.stderr.take().map(OwnedFd::from));
    {
        let mut state = monitor.lock();
        if stdout.is_none() {
            state.stdout.close();
        }
        if stderr.is_none() {
            state.stderr.close();
        }
    }
    let entry =
        Entry { id, pid, monitor, stdout, stderr, pidfd: platform::pidfd_open(pid), exited: false };
    // std's Child has no Drop behaviour: dropping it neither kills nor reaps. The process is
    // reaped by its executor once the whole tree is down.
    Ok((entry, child.stdin.take()))
}

/// Reads what is available (at most `rounds` buffers) into the stream's capture.
fn drain(entry: &mut Entry, stream: Stream, buf: &mut [u8], rounds: usize) {
    let slot = match stream {
        Stream::Stdout => &mut entry.stdout,
        Stream::Stderr => &mut entry.stderr,
    };
    let Some(fd) = slot.as_ref() else { return };
    let mut changed = false;
    let mut closed = false;
    for _ in 0..rounds {
        let room = entry.monitor.lock().capture(stream).room();
        if room == 0 {
            break;
        }
        let len = room.min(buf.len());
        match platform::read_nonblocking(fd.as_fd(), &mut buf[..len]) {
            Ok(Some(0)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(Some(n)) => {
                entry.monitor.lock().capture(stream).feed(&buf[..n]);
                changed = true;
                if n < len {
                    break;
                }
            }
            Ok(None) => break,
        }
    }
    if closed {
        *slot = None;
        entry.monitor.lock().capture(stream).close();
    }
    if changed || closed {
        entry.monitor.notify();
    }
}

/// The leader exited: first take everything it wrote (it is all in the pipes now), then
/// publish the exit, so a waiter never sees "exited" before the output that preceded it.
/// Bounded, because a surviving descendant may keep the pipe busy forever.
fn on_exit(entry: &mut Entry, buf: &mut [u8], reaper: &Mutex<Option<Reaper>>) {
    drain(entry, Stream::Stdout, buf, 256);
    drain(entry, Stream::Stderr, buf, 256);
    // Through the pidfd: if something else reaped the leader and its pid now names another
    // child of ours, asking by pid would see that one running and spin on this wake-up.
    let pidfd = entry.pidfd.as_ref().map(AsFd::as_fd);
    let status = match platform::exit_status_nowait(entry.pid, pidfd) {
        Ok(None) => return, // spurious wake-up
        Ok(Some(status)) => Some(status),
        // Somebody else reaped our child (a `waitpid(-1)` elsewhere in the program): the exit
        // happened, its status is lost — and its pid, so its session and group number, may
        // be given to a stranger: the reaper must not kill by that number any more.
        Err(_) => {
            if let Some(reaper) = &*reaper.lock().unwrap_or_else(|p| p.into_inner()) {
                reaper.forget_session(entry.pid);
            }
            None
        }
    };
    entry.exited = true;
    entry.pidfd = None;
    entry.monitor.set_exit(status);
}
