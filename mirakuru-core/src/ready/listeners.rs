//! Ready when the service's own processes listen on a TCP port, found in `/proc` without
//! connecting (`process/sockets.rs`). It discovers the port of a service started on port 0 —
//! so no test has to guess a free port and race others for it — and tells a listener of the
//! service from a foreign process answering on the same port (docker-proxy, moby#16976; an
//! earlier run that was not stopped; another test that took the port).

use std::time::{Duration, Instant};

use super::{Check, Context, Setup, Status};
use crate::process::{listeners_of, PortOwner};

/// What a port check that requires the service's own listener fails with when another process
/// holds the port: the fixture then starts again on another port.
pub(crate) const PORT_TAKEN: &str = "the port is taken by another process";

/// How long a foreign listener must hold the port before the port counts as taken: a process
/// of the service that is not visible in `/proc` yet (it was just forked) looks foreign for a
/// moment.
const TAKEN_AFTER: Duration = Duration::from_millis(100);

/// The pids to look at: the leader at every attempt (servers listen in their main process),
/// the whole tree — a scan of `/proc` — at most every 20 ms, for servers that listen in a
/// worker or a daemon they forked.
#[derive(Debug, Default, Clone)]
pub(crate) struct TreeCache {
    pids: Vec<u32>,
    scanned: Option<Instant>,
}

impl TreeCache {
    pub(crate) fn pids(&mut self, cx: &Context<'_>) -> Vec<u32> {
        let stale = self.scanned.is_none_or(|t| t.elapsed() >= Duration::from_millis(20));
        if stale {
            self.pids = cx.tree_pids();
            self.scanned = Some(Instant::now());
        }
        let mut pids = self.pids.clone();
        for pid in [Some(cx.pid()), cx.main_pid].into_iter().flatten() {
            if !pids.contains(&pid) {
                pids.insert(0, pid);
            }
        }
        pids
    }
}

/// Ready when a process of the service's tree listens on a TCP port — any port, or the one
/// given with [`port`](Listening::port). Found in `/proc`, without connecting; the port found
/// is the service's [`port`](Check::port), so a service told to listen on port 0 reports the
/// port the kernel gave it. Linux only (elsewhere it never becomes ready).
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// // Port 0: the kernel picks a free port; nobody has to guess one.
/// let mut web = Executor::new("python3 -m http.server 0 --bind 127.0.0.1", ready::listening());
/// web.start()?;
/// let port = web.port().expect("discovered");
/// assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
/// web.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Listening {
    port: Option<u16>,
    found: Option<u16>,
    tree: TreeCache,
    owner: Owner,
    next: Duration,
    last: Option<String>,
}

/// Whether a port check requires a listener of the service's own on its port: after the port
/// answered, the answer counts only if it is the service's. A foreign process holding the
/// port keeps the check waiting (the service will fail to bind, and its exit says why) — or,
/// for ports chosen automatically, fails it at once, so that another port is tried.
#[derive(Debug, Default, Clone)]
pub(crate) struct Owner {
    pub(crate) required: bool,
    pub(crate) fail_when_taken: bool,
    seen: Ownership,
}

/// What [`Owner::confirm`] says of an answer on the port.
#[derive(Debug)]
pub(crate) enum Confirmed {
    /// It counts.
    Yes,
    /// Not yet the service's; why.
    NotYet(String),
    /// Another process holds the port, for good; why.
    Taken(String),
}

impl Owner {
    /// Forgets what was seen (a new start).
    pub(crate) fn reset(&mut self) {
        self.seen = Ownership::default();
    }

    /// Whether the answer on `port` counts.
    pub(crate) fn confirm(&mut self, cx: &Context<'_>, port: u16) -> Confirmed {
        if !self.required {
            return Confirmed::Yes;
        }
        match self.seen.observe(cx.port_owner(port)) {
            Owned::Ours => Confirmed::Yes,
            Owned::Taken(why) if self.fail_when_taken => Confirmed::Taken(why),
            Owned::Taken(why) | Owned::NotYet(why) => Confirmed::NotYet(why),
        }
    }

    /// `/proc` is needed to tell a listener's owner.
    pub(crate) fn prepare(&mut self) -> Result<(), String> {
        self.reset();
        if self.required && !crate::platform::HAS_PROCFS {
            return Err("telling the service's listeners from others needs Linux's /proc; \
                        drop `owned()`"
                .into());
        }
        Ok(())
    }
}

/// Who holds a port, followed over time: a foreign listener counts once it held the port for
/// a moment ([`TAKEN_AFTER`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Ownership {
    foreign_since: Option<Instant>,
}

/// What [`Ownership::observe`] concludes.
#[derive(Debug)]
pub(crate) enum Owned {
    Ours,
    Taken(String),
    NotYet(String),
}

impl Ownership {
    pub(crate) fn observe(&mut self, owner: PortOwner) -> Owned {
        match owner {
            PortOwner::Service => Owned::Ours,
            PortOwner::Nobody(port) => {
                self.foreign_since = None;
                Owned::NotYet(format!("nothing listens on TCP port {port} yet"))
            }
            PortOwner::Foreign(port) => {
                let since = *self.foreign_since.get_or_insert_with(Instant::now);
                let why =
                    format!("{PORT_TAKEN}: no process of the service listens on TCP port {port}");
                if since.elapsed() >= TAKEN_AFTER {
                    Owned::Taken(why)
                } else {
                    Owned::NotYet(why)
                }
            }
        }
    }
}

/// A check that is ready when the service listens on a TCP port; see [`Listening`].
pub fn listening() -> Listening {
    Listening::default()
}

impl Listening {
    /// Only this port counts (ownership: a foreign process listening on it does not).
    pub fn port(mut self, port: u16) -> Listening {
        self.port = Some(port);
        self.owner.required = true;
        self
    }

    /// A foreign process holding the port fails the check at once (see `Tcp::fail_when_taken`).
    pub(crate) fn fail_when_taken(mut self) -> Listening {
        self.owner.fail_when_taken = true;
        self
    }

    /// The port found listening, once ready.
    pub fn found(&self) -> Option<u16> {
        self.found
    }
}

impl Check for Listening {
    fn describe(&self) -> String {
        match self.port {
            Some(port) => format!("a process of the service to listen on TCP port {port}"),
            None => "the service to listen on a TCP port".into(),
        }
    }

    fn prepare(&mut self, _setup: &mut Setup<'_>) -> Result<(), String> {
        if self.port == Some(0) {
            return Err("port 0 cannot be listened on; leave the port out to wait for any port, \
                        and read the one found with `port()`"
                .into());
        }
        if !crate::platform::HAS_PROCFS {
            return Err("finding the ports a service listens on needs Linux's /proc; wait for a \
                        known port with a TCP check instead"
                .into());
        }
        self.found = None;
        self.tree = TreeCache::default();
        self.owner.reset();
        self.next = Duration::from_micros(500);
        self.last = None;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        if let Some(port) = self.port {
            match self.owner.confirm(cx, port) {
                Confirmed::Yes => {
                    self.found = Some(port);
                    return Status::Ready;
                }
                Confirmed::Taken(why) => return Status::Failed(why),
                Confirmed::NotYet(why) => self.last = Some(why),
            }
        } else {
            let pids = self.tree.pids(cx);
            let listeners = listeners_of(&pids);
            if let Some(l) = listeners.first() {
                self.found = Some(l.port);
                return Status::Ready;
            }
            self.last =
                Some(format!("no process of the service ({} seen) listens on TCP", pids.len()));
        }
        // No event says "listen(2) was called": poll, cheaply at first (the leader's fds), and
        // back off; output (servers print "listening on ...") wakes the wait sooner.
        cx.poll_again_in(self.next);
        let cap = if cx.elapsed() < Duration::from_secs(1) { 5 } else { 20 };
        self.next = (self.next * 3 / 2).min(Duration::from_millis(cap));
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    fn port(&self) -> Option<u16> {
        self.found.or(self.port)
    }
}
