//! The keeper's socket: what tests ask of a service another process keeps. One request a
//! line, one reply a line, JSON; `stopped!` holds its connection from the stop to the
//! restart, so that a test process that dies in between does not leave the service down.
//!
//! The socket is abstract (Linux): no path in `TMPDIR` to outgrow `sun_path`'s 107 bytes or
//! to be replaced; its random name is in the private state file, and the keeper answers only
//! connections from its own user (`SO_PEERCRED`).

use std::io::{self, BufRead, BufReader, Write};
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::ExitStatus;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::Seen;
use crate::{Error, Output};

/// What a test asks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Output,
    Report,
    Alive,
    Running,
    /// Stop until `Start` comes on the same connection, or it closes.
    Stop,
    Start,
}

/// What the keeper answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Output { stdout: Vec<u8>, stderr: Vec<u8>, stdout_dropped: u64, stderr_dropped: u64 },
    Report(String),
    Alive(Result<(), Died>),
    Running(bool),
    Stopped(Result<(), String>),
    Started(Result<Box<Seen>, String>),
}

/// [`Error::ServiceDied`], carried across.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Died {
    command: String,
    pid: u32,
    status: Option<i32>,
    status_taken: bool,
    after_micros: u64,
    output: String,
}

impl Died {
    /// The death in `err`, or `err`'s message for any other error.
    pub(crate) fn of(err: &Error) -> Died {
        use std::os::unix::process::ExitStatusExt;
        match err {
            Error::ServiceDied { command, pid, status, status_taken, after, output, .. } => Died {
                command: command.clone(),
                pid: *pid,
                status: status.map(|s| s.into_raw()),
                status_taken: *status_taken,
                after_micros: after.as_micros().min(u64::MAX as u128) as u64,
                output: output.clone(),
            },
            other => Died { output: other.to_string(), ..Died::default() },
        }
    }

    pub(crate) fn into_error(self) -> Error {
        use std::os::unix::process::ExitStatusExt;
        Error::ServiceDied {
            command: self.command,
            pid: self.pid,
            status: self.status.map(ExitStatus::from_raw),
            status_taken: self.status_taken,
            after: Duration::from_micros(self.after_micros),
            output: self.output,
        }
    }
}

impl Reply {
    pub(crate) fn output(output: Output) -> Reply {
        Reply::Output {
            stdout: output.stdout,
            stderr: output.stderr,
            stdout_dropped: output.stdout_dropped,
            stderr_dropped: output.stderr_dropped,
        }
    }
}

/// A new abstract socket name, unguessable.
pub(crate) fn new_name() -> io::Result<String> {
    let mut bytes = [0u8; 12];
    crate::platform::random_bytes(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("mirakuru-keeper-{}-{hex}", crate::platform::geteuid()))
}

pub(crate) fn listen(name: &str) -> io::Result<UnixListener> {
    UnixListener::bind_addr(&address(name)?)
}

/// The abstract address `name`. Elsewhere than on Linux, there are none — nor runs: a
/// run-scoped fixture is one per process there (no `/proc` to tell the runner by).
fn address(name: &str) -> io::Result<SocketAddr> {
    #[cfg(target_os = "linux")]
    return SocketAddr::from_abstract_name(name.as_bytes());
    #[cfg(not(target_os = "linux"))]
    return Err(io::Error::new(io::ErrorKind::Unsupported, format!("abstract socket {name}")));
}

/// Whether the other end of `stream` is process `pid` of this user.
fn is_peer(stream: &UnixStream, pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        getsockopt(stream, PeerCredentials).is_ok_and(|c| {
            c.uid() == crate::platform::geteuid() && u32::try_from(c.pid()).ok() == Some(pid)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, pid);
        false
    }
}

/// Whether `stream` comes from a process of this user.
pub(crate) fn from_this_user(stream: &UnixStream) -> bool {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        getsockopt(stream, PeerCredentials).is_ok_and(|c| c.uid() == crate::platform::geteuid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = stream;
        false
    }
}

/// A connection to the keeper listening on `name`.
#[derive(Debug)]
pub(crate) struct Connection {
    reader: BufReader<UnixStream>,
}

impl Connection {
    /// Connects to the keeper listening on `name`, which must be process `keeper` of this
    /// user: an abstract name can be read in `/proc/net/unix` and bound by anyone once the
    /// keeper is gone.
    pub(crate) fn open(name: &str, keeper: u32) -> io::Result<Connection> {
        let stream = UnixStream::connect_addr(&address(name)?)?;
        if !is_peer(&stream, keeper) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the socket {name} is not the keeper's (process {keeper}): it is gone"),
            ));
        }
        Ok(Connection { reader: BufReader::new(stream) })
    }

    /// Sends `request` and waits for the reply, however long the keeper takes (a stop waits
    /// out the service's grace period).
    pub(crate) fn ask(&mut self, request: &Request) -> io::Result<Reply> {
        send(self.reader.get_mut(), request)?;
        receive(&mut self.reader)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the keeper closed the connection")
        })
    }
}

/// Writes one message, a line.
pub(crate) fn send(stream: &mut UnixStream, message: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// Reads one message; `None` at the end of the stream.
pub(crate) fn receive<T: for<'de> Deserialize<'de>>(
    reader: &mut BufReader<UnixStream>,
) -> io::Result<Option<T>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_refused_unless_the_keeper_named_in_the_state_answers() {
        let name = new_name().expect("a name");
        let _listener = listen(&name).expect("bound");
        let me = std::process::id();
        // Bound by this process: another pid in the state is a keeper that is gone, and
        // whoever holds its name now is not to be believed.
        let err = Connection::open(&name, me + 1).expect_err("not the keeper");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        Connection::open(&name, me).expect("the keeper itself");
    }
}
