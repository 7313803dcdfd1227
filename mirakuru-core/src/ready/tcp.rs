//! Ready when a TCP port accepts connections. IPv4, IPv6 and host names; every address the
//! host resolves to is tried (Python mirakuru was IPv4-only). Optionally, only a listener of
//! the service's own process tree counts ([`Tcp::owned`]): a connect alone cannot tell the
//! service from a foreign process on the same port (docker-proxy, moby#16976; a leftover
//! server of an earlier run; a port taken between the choice and the bind).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::listeners::{Confirmed, Owner};
use super::{Backoff, Check, Context, Setup, Status};
use crate::error::Error;

/// How long one connect attempt may take. Loopback answers in microseconds; the limit only
/// matters for a host that drops packets.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when `host:port` accepts a TCP connection — with [`owned`](Tcp::owned), a
/// connection to a listener of the service's own process tree.
#[derive(Debug, Clone)]
pub struct Tcp {
    host: String,
    port: u16,
    owner: Owner,
    addrs: Vec<SocketAddr>,
    backoff: Backoff,
    last: Option<String>,
}

impl Tcp {
    /// Waits for `host:port`. `host` may be an IPv4 or IPv6 literal (with or without
    /// brackets) or a name.
    pub fn new(host: impl Into<String>, port: u16) -> Tcp {
        Tcp {
            host: host.into(),
            port,
            owner: Owner::default(),
            addrs: Vec::new(),
            backoff: Backoff::new(),
            last: None,
        }
    }

    /// Counts only a listener owned by a process of the service's tree, found in `/proc`
    /// (Linux): a foreign process answering on the port does not make the service ready.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::{ready, Executor};
    ///
    /// let mut redis = Executor::new(
    ///     "redis-server --port 6390 --save ''",
    ///     ready::Tcp::new("127.0.0.1", 6390).owned(),
    /// );
    /// redis.start()?;
    /// redis.stop()?;
    /// # Ok(()) }
    /// ```
    pub fn owned(mut self) -> Tcp {
        self.owner.required = true;
        self
    }

    /// With [`owned`](Tcp::owned): a foreign process holding the port fails the check at once
    /// instead of waiting for the service to give up (fixtures on an automatic port then try
    /// another port).
    pub(crate) fn fail_when_taken(mut self) -> Tcp {
        self.owner.fail_when_taken = true;
        self
    }

    /// The host, as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the host: an error names the host and says what to do.
    pub(crate) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if port == 0 {
            return Err("port 0 cannot be waited for: it means \"any port\" to the service; give \
                        the port it will listen on"
                .into());
        }
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if bare.is_empty() {
            return Err("the host is empty; give a host name or address such as 127.0.0.1".into());
        }
        let addrs: Vec<SocketAddr> = (bare, port)
            .to_socket_addrs()
            .map_err(|e| format!("the host {host:?} does not resolve ({e}); check its spelling or use an IP address"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("the host {host:?} resolves to no address; use an IP address"));
        }
        Ok(addrs)
    }

    /// Tries every address once; `Ok` if one accepts — a listener, never the probe itself.
    pub(crate) fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(addr, timeout.max(Duration::from_millis(1))) {
                Ok(stream) => match not_itself(stream) {
                    Ok(stream) => return Ok(stream),
                    Err(why) => last = format!("{addr}: {why}"),
                },
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    }
}

/// Refuses a TCP self-connect. A connect to a port of the ephemeral range where nothing listens
/// can be given that very port as its source port; the two ends then meet ("simultaneous
/// open", RFC 793) and the connect succeeds with nobody on the other side — a silent service
/// would pass for ready.
fn not_itself(stream: TcpStream) -> Result<TcpStream, String> {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) if local == peer => {
            Err("the probe connected to itself (a TCP self-connect): nothing listens".into())
        }
        _ => Ok(stream),
    }
}

impl Check for Tcp {
    fn describe(&self) -> String {
        if self.owner.required {
            format!(
                "TCP {}:{} to accept connections on a listener of the service",
                self.host, self.port
            )
        } else {
            format!("TCP {}:{} to accept connections", self.host, self.port)
        }
    }

    fn prepare(&mut self, _setup: &mut Setup<'_>) -> Result<(), String> {
        self.owner.prepare()?;
        self.addrs = Tcp::resolve(&self.host, self.port)?;
        self.backoff = Backoff::new();
        self.last = None;
        Ok(())
    }

    fn already_running(&mut self, _setup: &Setup<'_>) -> Result<Option<String>, Error> {
        Ok(Tcp::connect(&self.addrs, Duration::from_millis(500))
            .ok()
            .map(|_| format!("{}:{} accepts connections", self.host, self.port)))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let why = match Tcp::connect(&self.addrs, cx.remaining().min(ATTEMPT_TIMEOUT)) {
            Ok(_) => match self.owner.confirm(cx, self.port) {
                Confirmed::Yes => return Status::Ready,
                Confirmed::Taken(why) => return Status::Failed(why),
                Confirmed::NotYet(why) => {
                    format!("{}:{} accepts connections, but {why}", self.host, self.port)
                }
            },
            Err(e) => e,
        };
        self.last = Some(why);
        cx.poll_again_in(self.backoff.next_delay());
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    fn port(&self) -> Option<u16> {
        Some(self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket bound to a port and connected to that same port is connected to itself; the
    /// probe must not take it for a listener.
    #[test]
    fn a_self_connect_is_not_a_listener() {
        use rustix::net::{AddressFamily, SocketType};
        let port = crate::free_port().expect("a free port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let fd =
            rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
        rustix::net::bind(&fd, &addr).expect("bind");
        rustix::net::connect(&fd, &addr).expect("a self-connect succeeds");
        let stream = TcpStream::from(fd);
        assert_eq!(stream.local_addr().ok(), stream.peer_addr().ok());
        let why = not_itself(stream).expect_err("refused");
        assert!(why.contains("self-connect"), "{why}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let to_listener =
            TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        assert!(not_itself(to_listener).is_ok(), "a real listener is accepted");
    }
}
