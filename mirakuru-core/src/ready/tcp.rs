//! Ready when a TCP port accepts connections. IPv4, IPv6 and host names; every address the
//! host resolves to is tried (Python mirakuru was IPv4-only).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Backoff, Check, Context, Setup, Status};
use crate::command::Command;
use crate::error::Error;
use crate::executor::{named_executor, Executor};

/// How long one connect attempt may take. Loopback answers in microseconds; the limit only
/// matters for a host that drops packets.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when `host:port` accepts a TCP connection.
#[derive(Debug, Clone)]
pub struct Tcp {
    host: String,
    port: u16,
    addrs: Vec<SocketAddr>,
    backoff: Backoff,
    last: Option<String>,
}

impl Tcp {
    /// Waits for `host:port`. `host` may be an IPv4 or IPv6 literal (with or without
    /// brackets) or a name.
    pub fn new(host: impl Into<String>, port: u16) -> Tcp {
        Tcp { host: host.into(), port, addrs: Vec::new(), backoff: Backoff::new(), last: None }
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

    /// Tries every address once; `Ok` if one accepts.
    pub(crate) fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(addr, timeout.max(Duration::from_millis(1))) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    }
}

impl Check for Tcp {
    fn describe(&self) -> String {
        format!("TCP {}:{} to accept connections", self.host, self.port)
    }

    fn prepare(&mut self, _setup: &mut Setup<'_>) -> Result<(), String> {
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
        match Tcp::connect(&self.addrs, cx.remaining().min(ATTEMPT_TIMEOUT)) {
            Ok(_) => Status::Ready,
            Err(e) => {
                self.last = Some(e);
                cx.poll_again_in(self.backoff.next_delay());
                Status::NotYet
            }
        }
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }
}

named_executor! {
    /// Ready when a TCP port accepts connections (Python mirakuru's `TCPExecutor`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::TcpExecutor;
    /// use std::time::Duration;
    ///
    /// let mut redis = TcpExecutor::new("redis-server --port 6390 --save ''", "127.0.0.1", 6390)
    ///     .timeout(Duration::from_secs(10));
    /// redis.start()?; // returns once the port accepts connections
    /// assert!(redis.running());
    /// redis.stop()?;
    /// # Ok(()) }
    /// ```
    TcpExecutor(Tcp)
}

impl TcpExecutor {
    /// Runs `command` and waits until `host:port` accepts connections.
    pub fn new(command: impl Into<Command>, host: impl Into<String>, port: u16) -> TcpExecutor {
        TcpExecutor(Executor::new(command, Tcp::new(host, port)))
    }

    /// The host, as given.
    pub fn host(&self) -> String {
        self.0.read_check(|c| c.host.clone())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0.read_check(|c| c.port)
    }
}
