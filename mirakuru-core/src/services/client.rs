//! The conversations the presets have with their servers outside of a start: waiting for an
//! external service by protocol, Redis commands, and the servers' own client programs
//! (`psql`, `mariadb`) run to completion under a deadline. Every wait here is bounded.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::Endpoint;
use crate::ready::probe::Verdict;
use crate::Error;

/// How long one request (or a client program) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long preparing a data directory or loading a schema may take: a big schema's data
/// loads for minutes, but nothing here may wait for ever.
pub(crate) const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// The most a conversation here reads: every answer awaited is a few bytes or a few rows, and
/// a server that sends more without end must not fill the memory.
const MAX_ANSWER: usize = 1 << 20;

/// A blocking connection to a service, with a deadline for the whole conversation: a read
/// timeout alone would let a server that trickles a byte a second hold it for ever.
pub(crate) struct Conn {
    stream: Stream,
    deadline: Instant,
    read: usize,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// Connects to the endpoint's socket if it has one, else to its host and port; the whole
    /// conversation may take `timeout`.
    pub(crate) fn open(endpoint: &Endpoint, timeout: Duration) -> std::io::Result<Conn> {
        let deadline = Instant::now() + timeout;
        let stream = match &endpoint.socket {
            Some(path) => Stream::Unix(UnixStream::connect(path)?),
            None => {
                let mut last = std::io::Error::from(std::io::ErrorKind::AddrNotAvailable);
                let mut found = None;
                for addr in (endpoint.host.as_str(), endpoint.port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            found = Some(stream);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                Stream::Tcp(found.ok_or(last)?)
            }
        };
        match &stream {
            Stream::Tcp(s) => s.set_write_timeout(Some(timeout))?,
            Stream::Unix(s) => s.set_write_timeout(Some(timeout))?,
        }
        Ok(Conn { stream, deadline, read: 0 })
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes),
            Stream::Unix(s) => s.write_all(bytes),
        }
    }

    /// Reads more bytes into `into`; `false` at the end of the stream. Fails once the
    /// conversation's deadline has passed, or when the server has sent more than any answer
    /// awaited here holds.
    pub(crate) fn read_more(&mut self, into: &mut Vec<u8>) -> std::io::Result<bool> {
        use std::io::{Error, ErrorKind};
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(ErrorKind::TimedOut, "the server's answer took too long"));
        }
        if self.read > MAX_ANSWER {
            return Err(Error::other(format!("the server sent more than {MAX_ANSWER} bytes")));
        }
        let mut buf = [0u8; 4096];
        let read = match &mut self.stream {
            Stream::Tcp(s) => s.set_read_timeout(Some(left)).and_then(|()| s.read(&mut buf)),
            Stream::Unix(s) => s.set_read_timeout(Some(left)).and_then(|()| s.read(&mut buf)),
        };
        let n = match read {
            Ok(n) => n,
            // The read timeout: the deadline has come.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Error::new(ErrorKind::TimedOut, "the server's answer took too long"));
            }
            Err(e) => return Err(e),
        };
        self.read += n;
        into.extend_from_slice(&buf[..n]);
        Ok(n > 0)
    }
}

/// Waits up to `timeout` until the service at `endpoint` answers `request` in a way
/// `classify` calls ready. The error says what it answered last.
pub(crate) fn wait_ready(
    endpoint: &Endpoint,
    request: &[u8],
    classify: impl Fn(&[u8]) -> Verdict,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        // An attempt ends by the deadline too: 2 s at most, less when less is left.
        let limit = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(2));
        let last = match attempt(endpoint, request, &classify, limit.max(Duration::from_millis(10)))
        {
            Ok(Verdict::Ready(why, _)) => return Ok(why),
            Ok(Verdict::Failed(why)) => return Err(why),
            Ok(Verdict::NotYet(why)) => why,
            Ok(Verdict::More) => "the answer ended early".to_string(),
            Err(e) => e.to_string(),
        };
        if Instant::now() + pause > deadline {
            return Err(format!("waited {timeout:?}; the last attempt: {last}"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn attempt(
    endpoint: &Endpoint,
    request: &[u8],
    classify: &impl Fn(&[u8]) -> Verdict,
    limit: Duration,
) -> std::io::Result<Verdict> {
    let mut conn = Conn::open(endpoint, limit)?;
    conn.send(request)?;
    let mut answer = Vec::new();
    loop {
        if !conn.read_more(&mut answer)? {
            return Ok(classify(&answer));
        }
        match classify(&answer) {
            Verdict::More => {}
            verdict => return Ok(verdict),
        }
    }
}

/// Runs a client program to its end, at most [`REQUEST_TIMEOUT`]: its standard output, or an
/// error that quotes what it wrote. Its output goes to files, so that a talkative client
/// never blocks on a full pipe, and it is killed at the deadline (it is our child, not yet
/// reaped: the signal cannot reach another process).
pub(crate) fn run_client(
    command: std::process::Command,
    what: &str,
    stdin: Option<&std::path::Path>,
) -> Result<String, Error> {
    run_client_within(command, what, stdin, REQUEST_TIMEOUT)
}

/// [`run_client`] with another time limit. Messages name the program, never its arguments
/// or environment, which may hold a password.
pub(crate) fn run_client_within(
    mut command: std::process::Command,
    what: &str,
    stdin: Option<&std::path::Path>,
    limit: Duration,
) -> Result<String, Error> {
    let shown = command.get_program().to_string_lossy().into_owned();
    let io = |action: &str| {
        let action = format!("{action} ({what})");
        let shown = shown.clone();
        move |source| Error::Io { command: shown, action, source }
    };
    let out = tempfile::tempfile().map_err(io("making a file for the output of"))?;
    let err = tempfile::tempfile().map_err(io("making a file for the output of"))?;
    command
        .stdout(out.try_clone().map_err(io("running"))?)
        .stderr(err.try_clone().map_err(io("running"))?);
    command.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).map_err(io("reading"))?),
        None => Stdio::null(),
    });
    crate::process::mark_helper(&mut command);
    let mut child = command.spawn().map_err(io("starting"))?;
    // Woken by the pidfd the moment the client exits: a sleeping poll would add up to its
    // period to each of the few milliseconds a client takes.
    let pidfd = crate::platform::pidfd_open(child.id());
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(500);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for"))? {
            break Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        match &pidfd {
            Some(fd) => {
                use std::os::fd::AsFd;
                let _ = crate::platform::poll_readable(&[fd.as_fd()], Some(deadline - now));
            }
            None => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    };
    let read = |mut file: std::fs::File| {
        use std::io::Seek;
        let mut text = String::new();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut text);
        text
    };
    let (stdout, stderr) = (read(out), read(err));
    match status {
        Some(status) if status.success() => Ok(stdout),
        status => Err(Error::InvalidArgument {
            command: shown,
            problem: match status {
                Some(status) => format!("{what} failed ({status}): {}", stderr.trim()),
                None => format!("{what} took more than {limit:?}; killed"),
            },
            hint: "see the client's message above; the server's log is in the fixture's output"
                .into(),
        }),
    }
}

/// Sends one Redis command and reads its one reply: `Ok` with a status, integer or bulk
/// reply's text, `Err` with an error reply's.
pub(crate) fn redis_command(
    conn: &mut Conn,
    args: &[&str],
) -> std::io::Result<Result<String, String>> {
    conn.send(&crate::ready::redis::resp_command(args))?;
    let mut answer = Vec::new();
    loop {
        if let Some(reply) = redis_reply(&answer) {
            return Ok(reply);
        }
        if !conn.read_more(&mut answer)? {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
    }
}

/// A whole reply at the start of `answer`, or `None` while it is incomplete.
fn redis_reply(answer: &[u8]) -> Option<Result<String, String>> {
    let end = answer.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&answer[1..end]).into_owned();
    match answer.first()? {
        b'-' => Some(Err(line)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(Ok(String::new()));
            }
            let body = answer.get(end + 2..end + 2 + len as usize)?;
            Some(Ok(String::from_utf8_lossy(body).into_owned()))
        }
        _ => Some(Ok(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_replies_are_read_whole() {
        assert_eq!(redis_reply(b"+OK\r\n"), Some(Ok("OK".into())));
        assert_eq!(
            redis_reply(b"-ERR DB index is out of range\r\n"),
            Some(Err("ERR DB index is out of range".into()))
        );
        assert_eq!(redis_reply(b"$5\r\nhel"), None);
        assert_eq!(redis_reply(b"$5\r\nhello\r\n"), Some(Ok("hello".into())));
        assert_eq!(redis_reply(b":12\r\n"), Some(Ok("12".into())));
        assert_eq!(redis_reply(b"+OK"), None);
    }

    #[test]
    fn a_failing_client_program_is_an_error_that_quotes_it() {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "echo 'relation does not exist' >&2; exit 3"]);
        let err = run_client(command, "loading the schema", None).expect_err("it failed");
        let text = err.to_string();
        assert!(text.contains("loading the schema failed"), "{text}");
        assert!(text.contains("relation does not exist"), "{text}");
    }
}
