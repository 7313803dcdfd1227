//! A few PostgreSQL statements over the wire protocol (version 3.0, "Message Flow" in
//! PostgreSQL's docs): a session, simple queries, their first column or their error. Enough to
//! create and drop a test's database in one round trip each, without starting `psql` (5-10
//! ms a time). Authentication: trust and cleartext passwords only; a server that asks for
//! another method (md5, SCRAM) gets [`Session::open`]'s `Unsupported`, and the caller uses
//! `psql`, which speaks every method.

use std::time::Duration;

use super::client::Conn;
use super::Endpoint;
use crate::ready::postgres::startup_message;

/// How a statement failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server asked for an authentication method this client does not speak.
    Unsupported,
    /// The server's ErrorResponse: SQLSTATE and message.
    Server(String, String),
    /// The connection failed or the server's answer made no sense.
    Io(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Io(e)
    }
}

/// One authenticated session.
pub(crate) struct Session {
    conn: Conn,
    buf: Vec<u8>,
}

impl Session {
    /// Connects to the endpoint's database (`path`, else `postgres`) as its user.
    pub(crate) fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Session, Failure> {
        let user = endpoint.user.as_deref().unwrap_or("postgres");
        let database = endpoint.path.as_deref().unwrap_or("postgres");
        let mut session = Session { conn: Conn::open(endpoint, timeout)?, buf: Vec::new() };
        session.conn.send(&startup_message(user, database))?;
        loop {
            let (kind, body) = session.message()?;
            match kind {
                b'R' => match body.get(..4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])) {
                    Some(0) => {}
                    Some(3) => match &endpoint.password {
                        Some(password) => session.password(password)?,
                        None => return Err(Failure::Unsupported),
                    },
                    _ => return Err(Failure::Unsupported),
                },
                b'E' => return Err(error(&body)),
                b'Z' => return Ok(session),
                // ParameterStatus, BackendKeyData, NoticeResponse.
                _ => {}
            }
        }
    }

    fn password(&mut self, password: &str) -> Result<(), Failure> {
        let mut message = vec![b'p'];
        message.extend(((password.len() + 5) as i32).to_be_bytes());
        message.extend(password.as_bytes());
        message.push(0);
        self.conn.send(&message)?;
        Ok(())
    }

    /// Runs `sql` (one statement, or several separated by `;`): the first column of the rows
    /// it returned.
    pub(crate) fn query(&mut self, sql: &str) -> Result<Vec<Option<String>>, Failure> {
        if sql.contains('\0') {
            return Err(Failure::Io(std::io::Error::other("a NUL byte in a statement")));
        }
        let mut message = vec![b'Q'];
        message.extend(((sql.len() + 5) as i32).to_be_bytes());
        message.extend(sql.as_bytes());
        message.push(0);
        self.conn.send(&message)?;
        let (mut rows, mut failed) = (Vec::new(), None);
        loop {
            let (kind, body) = self.message()?;
            match kind {
                b'D' => rows.push(first_column(&body)),
                b'E' => failed = Some(error(&body)),
                b'Z' => return failed.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    /// The next message: its type and body.
    fn message(&mut self) -> Result<(u8, Vec<u8>), Failure> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let len = usize::try_from(len).ok().filter(|l| (4..1 << 30).contains(l));
                let Some(len) = len else {
                    return Err(Failure::Io(std::io::Error::other("not a PostgreSQL message")));
                };
                if self.buf.len() > len {
                    let body = self.buf[5..1 + len].to_vec();
                    let kind = self.buf[0];
                    self.buf.drain(..1 + len);
                    return Ok((kind, body));
                }
            }
            if !self.conn.read_more(&mut self.buf)? {
                let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Err(Failure::Io(e));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Terminate: the polite end, so that the server logs no broken connection.
        let _ = self.conn.send(b"X\x00\x00\x00\x04");
    }
}

/// A DataRow's first column: `int16` column count, then `int32` length (-1: NULL) and bytes.
fn first_column(body: &[u8]) -> Option<String> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    Some(String::from_utf8_lossy(body.get(6..6 + len)?).into_owned())
}

/// An ErrorResponse's SQLSTATE and message, as the readiness check reads them.
fn error(body: &[u8]) -> Failure {
    let (code, message) = crate::ready::postgres::error_fields(body);
    let message = message.unwrap_or_else(|| "an error without a message".into());
    Failure::Server(code.unwrap_or_else(|| "?????".into()), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_errors_are_read() {
        let row = b"\x00\x01\x00\x00\x00\x06150004";
        assert_eq!(first_column(row).as_deref(), Some("150004"));
        assert_eq!(first_column(b"\x00\x01\xff\xff\xff\xff"), None, "NULL");
        let Failure::Server(code, message) = error(b"SERROR\0C3D000\0Mno such template\0\0") else {
            panic!("an error response");
        };
        assert_eq!((code.as_str(), message.as_str()), ("3D000", "no such template"));
    }
}
