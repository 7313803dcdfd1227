//! A short request/answer conversation with the service over TCP or a unix socket, without
//! blocking the wait: connect (refused at once on loopback), send the request, then wait for
//! the answer as an event (the socket becoming readable) with a time limit per attempt. Shared
//! by the protocol probes ([`Redis`](super::Redis), [`Postgres`](super::Postgres)); each only
//! says what to send and how to read the answer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::listeners::{Confirmed, Owner};
use super::tcp::Tcp;
use super::{Backoff, Context, Setup};
use crate::platform::{self, MAX_SOCKET_PATH};

/// How long one attempt may take, from connect to the answer, by default. Loopback answers in
/// microseconds; a server that accepts but does not answer for this long is not ready.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest answer read before giving up on a peer that is not the expected server.
const MAX_ANSWER: usize = 64 * 1024;

/// Where the service is reached.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Tcp { host: String, port: u16, addrs: Vec<SocketAddr> },
    Unix { path: PathBuf, resolved: PathBuf },
}

impl Target {
    pub(crate) fn tcp(host: impl Into<String>, port: u16) -> Target {
        Target::Tcp { host: host.into(), port, addrs: Vec::new() }
    }

    pub(crate) fn unix(path: impl Into<PathBuf>) -> Target {
        let path = path.into();
        Target::Unix { resolved: path.clone(), path }
    }

    /// Resolves the host or the path; an error says what is wrong.
    pub(crate) fn prepare(&mut self, setup: &Setup<'_>) -> Result<(), String> {
        match self {
            Target::Tcp { host, port, addrs } => *addrs = Tcp::resolve(host, *port)?,
            Target::Unix { path, resolved } => {
                if path.as_os_str().is_empty() {
                    return Err("the unix socket path is empty; give the socket the service \
                                listens on"
                        .into());
                }
                super::check_path(path, "unix socket path")?;
                *resolved = setup.resolve(path);
                let len = resolved.as_os_str().len();
                if len > MAX_SOCKET_PATH {
                    return Err(format!(
                        "the unix socket path {} is {len} bytes long, more than the \
                         {MAX_SOCKET_PATH} the operating system allows; use a shorter directory",
                        resolved.display()
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn port(&self) -> Option<u16> {
        match self {
            Target::Tcp { port, .. } => Some(*port),
            Target::Unix { .. } => None,
        }
    }

    fn connect(&self, timeout: Duration) -> Result<Conn, String> {
        match self {
            Target::Tcp { addrs, .. } => Tcp::connect(addrs, timeout).map(Conn::Tcp),
            Target::Unix { resolved, .. } => connect_unix(resolved)
                .map(Conn::Unix)
                .map_err(|e| format!("{}: {e}", resolved.display())),
        }
    }

    /// Whether something accepts connections there already (before the spawn).
    pub(crate) fn answers(&self) -> Option<String> {
        match self {
            Target::Tcp { host, port, addrs } => Tcp::connect(addrs, Duration::from_millis(500))
                .ok()
                .map(|_| format!("{host}:{port} accepts connections")),
            Target::Unix { resolved, .. } => super::unix::probe(resolved)
                .ok()
                .map(|()| format!("unix socket {} accepts connections", resolved.display())),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port, .. } if host.contains(':') && !host.starts_with('[') => {
                write!(f, "[{host}]:{port}")
            }
            Target::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
            Target::Unix { resolved, .. } => write!(f, "{}", resolved.display()),
        }
    }
}

/// A unix stream connect that never blocks: a listener whose backlog is full answers EAGAIN,
/// which is "not accepting yet" here (the conversation needs an accepted connection).
fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    platform::connect_unix_nonblocking(path).map(UnixStream::from)
}

#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_nonblocking(true),
            Conn::Unix(s) => s.set_nonblocking(true),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }
}

/// What the answer so far says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Incomplete: wait for more bytes.
    More,
    /// Ready (the text says why); the bytes, if any, are sent before closing (a polite goodbye).
    Ready(String, Option<Vec<u8>>),
    /// Up but not ready yet, or not answering properly: try again later.
    NotYet(String),
    /// It will never be ready (a wrong password).
    Failed(String),
}

/// What one poll of a [`Prober`] found.
#[derive(Debug)]
pub(crate) enum Step {
    Ready(String),
    NotYet,
    Failed(String),
}

/// Attempts conversations with the service on the probe schedule.
#[derive(Debug)]
pub(crate) struct Prober {
    pub(crate) target: Target,
    pub(crate) attempt_timeout: Duration,
    /// Whether only the service's own listener counts.
    pub(crate) owner: Owner,
    backoff: Backoff,
    current: Option<(Conn, Instant, Vec<u8>)>,
    last: Option<String>,
}

impl Prober {
    pub(crate) fn new(target: Target) -> Prober {
        Prober {
            target,
            attempt_timeout: ATTEMPT_TIMEOUT,
            owner: Owner::default(),
            backoff: Backoff::new(),
            current: None,
            last: None,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.owner.reset();
        self.backoff = Backoff::new();
        self.current = None;
        self.last = None;
    }

    pub(crate) fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    /// The answer says ready; so is the service, unless its port is held by another process.
    fn confirm(&mut self, cx: &mut Context<'_>, why: String) -> Step {
        match self.target.port().map(|port| self.owner.confirm(cx, port)) {
            None | Some(Confirmed::Yes) => Step::Ready(why),
            Some(Confirmed::Taken(why)) => {
                self.last = Some(why.clone());
                Step::Failed(why)
            }
            Some(Confirmed::NotYet(not_yet)) => self.again(cx, format!("{why}, but {not_yet}")),
        }
    }

    /// One step: starts a conversation if none runs, reads what arrived, and asks to be
    /// woken for the rest or for the next attempt.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        request: &[u8],
        classify: impl Fn(&[u8]) -> Verdict,
    ) -> Step {
        let limit = self.attempt_timeout.min(cx.remaining()).max(Duration::from_millis(1));
        if self.current.is_none() {
            match self.target.connect(limit).and_then(|mut conn| {
                conn.set_nonblocking().map_err(|e| e.to_string())?;
                // A request is a few dozen bytes: an empty socket buffer takes it whole.
                conn.write_all(request).map_err(|e| format!("{}: sending: {e}", self.target))?;
                Ok(conn)
            }) {
                Ok(conn) => self.current = Some((conn, Instant::now(), Vec::new())),
                Err(e) => return self.again(cx, e),
            }
        }
        let Some((conn, started, answer)) = self.current.as_mut() else {
            return Step::NotYet;
        };
        let closed = match read_available(conn, answer) {
            Ok(closed) => closed,
            Err(e) => {
                let e = format!("{}: {e}", self.target);
                self.current = None;
                return self.again(cx, e);
            }
        };
        let verdict = if answer.is_empty() { Verdict::More } else { classify(answer) };
        match verdict {
            Verdict::Ready(why, goodbye) => {
                if let Some(bytes) = goodbye {
                    let _ = conn.write_all(&bytes);
                }
                self.current = None;
                self.confirm(cx, why)
            }
            Verdict::Failed(why) => {
                self.current = None;
                self.last = Some(why.clone());
                Step::Failed(why)
            }
            Verdict::NotYet(why) => {
                self.current = None;
                self.again(cx, why)
            }
            Verdict::More if closed => {
                let why = if answer.is_empty() {
                    format!("{}: the connection was closed without an answer", self.target)
                } else {
                    format!("{}: the connection was closed in the middle of an answer", self.target)
                };
                self.current = None;
                self.again(cx, why)
            }
            Verdict::More if answer.len() > MAX_ANSWER => {
                let why = format!("{}: an endless answer, not the expected server", self.target);
                self.current = None;
                self.again(cx, why)
            }
            Verdict::More => {
                let waited = started.elapsed();
                if waited >= limit {
                    self.current = None;
                    // Cut short by the end of the start rather than by its own timeout: what
                    // the attempts before it heard ("-LOADING …") says more than its silence.
                    if limit < self.attempt_timeout && self.last.is_some() {
                        cx.poll_again_in(self.backoff.next_delay());
                        return Step::NotYet;
                    }
                    let why = format!("{}: no complete answer within {limit:?}", self.target);
                    return self.again(cx, why);
                }
                cx.poll_when_readable(conn);
                cx.poll_again_in(limit - waited);
                Step::NotYet
            }
        }
    }

    fn again(&mut self, cx: &mut Context<'_>, why: String) -> Step {
        self.last = Some(why);
        cx.poll_again_in(self.backoff.next_delay());
        Step::NotYet
    }
}

/// Reads what has arrived, without blocking, into `answer` (at most a little past
/// `MAX_ANSWER`); true if the peer closed the connection.
fn read_available(conn: &mut Conn, answer: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > MAX_ANSWER {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
