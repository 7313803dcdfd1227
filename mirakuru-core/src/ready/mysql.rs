//! Ready when MariaDB or MySQL sends its handshake. The server speaks first: on connect it
//! sends a HandshakeV10 packet (protocol version 10, then its version string) — or an ERR
//! packet when it will not serve this client (too many connections, a blocked host), which
//! still means it is up, as `mysqladmin ping` decides ("mysqld is alive" on an access
//! error). MariaDB opens its port only once its storage engines are ready, so the handshake
//! is the moment clients can log in.

use std::path::PathBuf;
use std::time::Duration;

use super::probe::{Prober, Step, Target, Verdict};
use super::{Check, Context, Setup, Status};
use crate::error::Error;

/// Ready when MariaDB or MySQL sends its handshake (over TCP or a unix socket); an error
/// packet means the server is up too, as `mysqladmin ping` decides. Sends nothing and needs
/// no password.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// let mut db = Executor::new("mariadbd --datadir=/tmp/db --port=3307", ready::mysql("127.0.0.1", 3307));
/// db.start()?; // the handshake received
/// db.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Mysql {
    prober: Prober,
    answer: Option<String>,
}

/// A check that is ready when MariaDB or MySQL at `host:port` sends its handshake; see
/// [`Mysql`].
pub fn mysql(host: impl Into<String>, port: u16) -> Mysql {
    Mysql::new(Target::tcp(host, port))
}

impl Mysql {
    fn new(target: Target) -> Mysql {
        Mysql { prober: Prober::new(target), answer: None }
    }

    /// The server listening on the unix socket at `path` (`--socket`).
    pub fn unix(path: impl Into<PathBuf>) -> Mysql {
        Mysql::new(Target::unix(path))
    }

    /// Counts only an answer from a listener of the service's own process tree (see
    /// [`Tcp::owned`](super::Tcp::owned)). Linux only.
    pub fn owned(mut self) -> Mysql {
        self.prober.owner.required = true;
        self
    }

    pub(crate) fn fail_when_taken(mut self) -> Mysql {
        self.prober.owner.fail_when_taken = true;
        self
    }

    /// How long one attempt may take, connect to answer. Default: 1 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Mysql {
        self.prober.attempt_timeout = timeout;
        self
    }

    /// What the server sent when it was found ready: its version, or its error.
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }
}

/// Reads the server's first packet: a 3-byte little-endian length, a sequence number, then
/// the payload.
pub(crate) fn classify(answer: &[u8]) -> Verdict {
    if answer.len() < 5 {
        return Verdict::More;
    }
    let len = usize::from(answer[0]) | usize::from(answer[1]) << 8 | usize::from(answer[2]) << 16;
    if len == 0 {
        return not_mysql(answer);
    }
    if answer.len() < 4 + len {
        return Verdict::More;
    }
    let payload = &answer[4..4 + len];
    match payload[0] {
        10 => {
            let version = payload[1..].split(|&b| b == 0).next().unwrap_or_default();
            Verdict::Ready(format!("handshake from {}", String::from_utf8_lossy(version)), None)
        }
        0xff if payload.len() >= 3 => {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            // A 4.1 error carries `#` and a 5-byte SQLSTATE before the message.
            let text = match payload.get(3) {
                Some(b'#') => payload.get(9..).unwrap_or_default(),
                _ => &payload[3..],
            };
            Verdict::Ready(
                format!("error {code} {} (the server is up)", String::from_utf8_lossy(text)),
                None,
            )
        }
        _ => not_mysql(answer),
    }
}

fn not_mysql(answer: &[u8]) -> Verdict {
    let shown: String = String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned();
    Verdict::NotYet(format!("the answer {shown:?} is not a MySQL handshake"))
}

impl Check for Mysql {
    fn describe(&self) -> String {
        format!("MariaDB/MySQL at {} to send its handshake", self.prober.target)
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        self.prober.target.prepare(setup)?;
        self.prober.reset();
        self.answer = None;
        Ok(())
    }

    fn already_running(&mut self, _setup: &Setup<'_>) -> Result<Option<String>, Error> {
        Ok(self.prober.target.answers())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        match self.prober.poll(cx, b"", classify) {
            Step::Ready(answer) => {
                self.answer = Some(answer);
                Status::Ready
            }
            Step::NotYet => Status::NotYet,
            Step::Failed(why) => Status::Failed(why),
        }
    }

    fn last_attempt(&self) -> Option<String> {
        self.prober.last_attempt()
    }

    fn port(&self) -> Option<u16> {
        self.prober.target.port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(0);
        p.extend(payload);
        p
    }

    #[test]
    fn a_handshake_is_ready_and_names_the_version() {
        let hello = packet(b"\x0a10.11.6-MariaDB\0\x01\x00\x00\x00abcdefgh\0");
        assert!(matches!(classify(&hello), Verdict::Ready(why, None) if why.contains("10.11.6")));
        assert_eq!(classify(&hello[..6]), Verdict::More);
    }

    #[test]
    fn an_error_packet_means_the_server_is_up() {
        let err = packet(b"\xff\x10\x04#08004Too many connections");
        assert!(
            matches!(classify(&err), Verdict::Ready(why, None) if why == "error 1040 Too many connections (the server is up)")
        );
    }

    #[test]
    fn another_server_is_not_mysql() {
        // Other protocols' first bytes read as a long length: never ready, cut by the
        // attempt's timeout; a whole packet of another kind is not a handshake.
        for answer in [&b"+PONG\r\n"[..], b"HTTP/1.1 400 Bad Request\r\n"] {
            assert!(!matches!(classify(answer), Verdict::Ready(..)), "{answer:?}");
        }
        assert!(matches!(classify(&packet(b"\x01garbage")), Verdict::NotYet(_)));
    }
}
