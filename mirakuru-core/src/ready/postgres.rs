//! Ready when PostgreSQL accepts a connection, decided as `pg_isready` decides it, without a
//! client library: send a protocol 3.0 StartupMessage and read the first answer, like libpq's
//! `internal_ping` (`PQpingParams`) reads it (docs/design.md §4):
//!
//! - an AuthenticationRequest (`R`), whatever the method, or any other sign of a live server:
//!   ready (PQPING_OK) — a server that asks for a password is up;
//! - an ErrorResponse with SQLSTATE `57P03` (cannot_connect_now: "the database system is
//!   starting up", in recovery, shutting down): not yet (PQPING_REJECT);
//! - an ErrorResponse with any other SQLSTATE (unknown role or database, too many
//!   connections): ready, the server is up (PQPING_OK);
//! - refused, reset, closed, or no answer in time: not yet (PQPING_NO_RESPONSE).
//!
//! A TCP connect alone is premature: the postmaster accepts connections while it replays
//! its WAL, and answers each with 57P03.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::probe::{Prober, Step, Target, Verdict};
use super::{Check, Context, Setup, Status};
use crate::error::Error;

/// Protocol version 3.0, the StartupMessage's second field.
const PROTOCOL_3_0: i32 = 196_608;

/// Terminate (`X`): the polite end of a session that was authenticated.
const TERMINATE: &[u8] = b"X\x00\x00\x00\x04";

/// SQLSTATE cannot_connect_now.
const CANNOT_CONNECT_NOW: &str = "57P03";

/// Ready when PostgreSQL accepts a connection, with `pg_isready`'s meaning: the server asking
/// for authentication is ready, "the database system is starting up" (SQLSTATE 57P03) is
/// not. Over TCP, or over the unix socket in a directory ([`Postgres::unix`], the `-k`
/// directory). Sends no password and needs none: the first answer decides.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor, Signal};
///
/// let mut pg = Executor::new("postgres -D /tmp/data -p 5433 -k /tmp", ready::postgres("127.0.0.1", 5433))
///     .stop_signal(Signal::SIGINT)
///     .user("postgres");
/// pg.start()?;
/// pg.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Postgres {
    prober: Prober,
    user: String,
    database: String,
    answer: Option<String>,
}

/// A check that is ready when PostgreSQL at `host:port` accepts connections; see [`Postgres`].
pub fn postgres(host: impl Into<String>, port: u16) -> Postgres {
    Postgres::new(Target::tcp(host, port))
}

impl Postgres {
    fn new(target: Target) -> Postgres {
        Postgres {
            prober: Prober::new(target),
            user: "postgres".into(),
            database: "postgres".into(),
            answer: None,
        }
    }

    /// PostgreSQL listening on its unix socket in `dir` (the `-k` / `unix_socket_directories`
    /// directory) for `port`: the socket `dir/.s.PGSQL.<port>`.
    pub fn unix(dir: impl AsRef<Path>, port: u16) -> Postgres {
        let path: PathBuf = dir.as_ref().join(format!(".s.PGSQL.{port}"));
        Postgres::new(Target::unix(path))
    }

    /// PostgreSQL listening on the unix socket at `path`, the socket file itself.
    pub fn socket(path: impl Into<PathBuf>) -> Postgres {
        Postgres::new(Target::unix(path.into()))
    }

    /// The role named in the StartupMessage. Default: `postgres`. An unknown role is still
    /// "up" (as for `pg_isready`); it only shows in the server's log.
    pub fn user(mut self, user: impl Into<String>) -> Postgres {
        self.user = user.into();
        self
    }

    /// The database named in the StartupMessage. Default: `postgres`.
    pub fn database(mut self, database: impl Into<String>) -> Postgres {
        self.database = database.into();
        self
    }

    /// How long one attempt may take, connect to answer. Default: 1 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Postgres {
        self.prober.attempt_timeout = timeout;
        self
    }

    /// Counts only an answer from a listener of the service's own process tree (see
    /// [`Tcp::owned`](super::Tcp::owned)): a foreign server on the port does not make the
    /// service ready. Linux only.
    pub fn owned(mut self) -> Postgres {
        self.prober.owner.required = true;
        self
    }

    pub(crate) fn fail_when_taken(mut self) -> Postgres {
        self.prober.owner.fail_when_taken = true;
        self
    }

    /// What the server answered when it was found ready.
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }
}

/// The StartupMessage: length, protocol 3.0, then `name\0value\0` pairs and a final `\0`
/// (PostgreSQL docs, "Message Formats"). No SSLRequest first: the check needs no TLS, and a
/// server that requires it still answers with an error, which means "up".
pub(crate) fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (name, value) in [("user", user), ("database", database), ("application_name", "mirakuru")]
    {
        body.extend(name.as_bytes());
        body.push(0);
        body.extend(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend(body);
    message
}

/// Reads the server's first message.
pub(crate) fn classify(answer: &[u8]) -> Verdict {
    if answer.len() < 5 {
        return Verdict::More;
    }
    let kind = answer[0];
    let len = i32::from_be_bytes([answer[1], answer[2], answer[3], answer[4]]);
    if !(4..=1 << 20).contains(&len) {
        return not_postgres(answer);
    }
    let total = 1 + len as usize;
    if answer.len() < total {
        return Verdict::More;
    }
    let body = &answer[5..total];
    match kind {
        b'R' => {
            let code = body.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match code {
                // AuthenticationOk (trust): end the session properly.
                Some(0) => Verdict::Ready("authenticated".into(), Some(TERMINATE.to_vec())),
                Some(method) => Verdict::Ready(
                    format!("the server asks for authentication (method {method})"),
                    None,
                ),
                None => not_postgres(answer),
            }
        }
        b'E' => {
            let (code, message) = error_fields(body);
            let text =
                format!("{} {}", code.as_deref().unwrap_or("?????"), message.unwrap_or_default());
            if code.as_deref() == Some(CANNOT_CONNECT_NOW) {
                Verdict::NotYet(format!("PostgreSQL answered {text}"))
            } else {
                Verdict::Ready(format!("{text} (the server is up)"), None)
            }
        }
        // NegotiateProtocolVersion: a newer server, up.
        b'v' => Verdict::Ready("the server negotiates the protocol version".into(), None),
        _ => not_postgres(answer),
    }
}

/// SQLSTATE (`C`) and message (`M`) of an ErrorResponse body: `(type byte, text\0)*` then `\0`.
pub(crate) fn error_fields(mut body: &[u8]) -> (Option<String>, Option<String>) {
    let (mut code, mut message) = (None, None);
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            break;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        match field {
            b'C' => code = Some(text),
            b'M' => message = Some(text),
            _ => {}
        }
        body = rest.get(end + 1..).unwrap_or_default();
    }
    (code, message)
}

fn not_postgres(answer: &[u8]) -> Verdict {
    let shown: String = String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned();
    Verdict::NotYet(format!("the answer {shown:?} is not PostgreSQL's"))
}

impl Check for Postgres {
    fn describe(&self) -> String {
        format!("PostgreSQL at {} to accept connections", self.prober.target)
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.user.is_empty() || self.user.contains('\0') {
            return Err("the PostgreSQL user is empty or holds a NUL byte; give a role name such \
                        as \"postgres\""
                .into());
        }
        if self.database.contains('\0') {
            return Err("the PostgreSQL database name holds a NUL byte".into());
        }
        self.prober.target.prepare(setup)?;
        self.prober.reset();
        self.answer = None;
        Ok(())
    }

    fn already_running(&mut self, _setup: &Setup<'_>) -> Result<Option<String>, Error> {
        Ok(self.prober.target.answers())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let request = startup_message(&self.user, &self.database);
        match self.prober.poll(cx, &request, classify) {
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

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend(((body.len() + 4) as i32).to_be_bytes());
        m.extend(body);
        m
    }

    fn error(code: &str, text: &str) -> Vec<u8> {
        let body = format!("SFATAL\0C{code}\0M{text}\0\0");
        message(b'E', body.as_bytes())
    }

    #[test]
    fn the_startup_message_is_protocol_3() {
        let m = startup_message("postgres", "db");
        assert_eq!(i32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize, m.len());
        assert_eq!(&m[4..8], &PROTOCOL_3_0.to_be_bytes());
        assert_eq!(&m[8..], b"user\0postgres\0database\0db\0application_name\0mirakuru\0\0");
    }

    #[test]
    fn authentication_is_ready() {
        let ok = message(b'R', &0i32.to_be_bytes());
        assert_eq!(classify(&ok), Verdict::Ready("authenticated".into(), Some(TERMINATE.to_vec())));
        let scram = message(b'R', b"\x00\x00\x00\x0aSCRAM-SHA-256\0\0");
        assert!(matches!(classify(&scram), Verdict::Ready(why, None) if why.contains("method 10")));
    }

    #[test]
    fn starting_up_is_not_ready() {
        let e = error("57P03", "the database system is starting up");
        assert_eq!(
            classify(&e),
            Verdict::NotYet("PostgreSQL answered 57P03 the database system is starting up".into())
        );
    }

    #[test]
    fn other_errors_mean_the_server_is_up() {
        let e = error("28000", "role \"nobody\" does not exist");
        assert!(matches!(classify(&e), Verdict::Ready(why, None) if why.starts_with("28000 role")));
        assert!(matches!(classify(&error("53300", "too many")), Verdict::Ready(..)));
    }

    #[test]
    fn an_incomplete_message_waits_for_more() {
        let e = error("57P03", "starting");
        assert_eq!(classify(&e[..3]), Verdict::More);
        assert_eq!(classify(&e[..e.len() - 1]), Verdict::More);
        // AuthenticationOk followed by more messages: the first one decides.
        let mut ok = message(b'R', &0i32.to_be_bytes());
        ok.extend(message(b'S', b"server_version\x0016\0"));
        assert!(matches!(classify(&ok), Verdict::Ready(..)));
    }

    #[test]
    fn another_server_is_not_postgres() {
        assert!(
            matches!(classify(b"HTTP/1.1 400 Bad"), Verdict::NotYet(why) if why.contains("not PostgreSQL"))
        );
        assert!(matches!(classify(b"+PONG\r\n"), Verdict::NotYet(_)));
    }

    #[test]
    fn the_unix_socket_is_named_after_the_port() {
        let pg = Postgres::unix("/tmp/x", 5433);
        assert_eq!(pg.describe(), "PostgreSQL at /tmp/x/.s.PGSQL.5433 to accept connections");
    }
}
