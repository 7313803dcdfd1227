//! Ready when the service writes a newline to a file descriptor it was given: s6's readiness
//! notification (`notification-fd`; skarnet.org, s6-supervise), also how Xvfb's
//! `-displayfd N` and dbus-daemon's `--print-address=N` say they are ready. The service
//! inherits the write end of a pipe as fd N; the read end is one more fd in the wait's poll
//! set, so the newline is seen when it is written — "polling is evil" (s6 documentation).

use std::os::fd::{AsFd, OwnedFd};

use super::{Captures, Check, Context, Setup, Status};

/// Ready at the first newline the service writes to its fd N, the write end of a pipe it
/// inherits (s6's `notification-fd`; Xvfb's `-displayfd N`). What it wrote before the newline
/// (Xvfb's display number, dbus's address) is kept: see [`line`](ReadyFd::line), and
/// [`Check::captures`] (group 0). Every writer closing the pipe without a newline fails the
/// start at once.
///
/// ```
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// // The service says it is ready by writing a line to fd 3.
/// let mut ex = Executor::new(["sh", "-c", "echo ready-on-7000 >&3; exec sleep 30"], ready::ready_fd(3));
/// ex.start()?;
/// assert_eq!(ex.captures().unwrap().get(0), Some("ready-on-7000"));
/// ex.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReadyFd {
    fd: i32,
    pipe: Option<OwnedFd>,
    line: Vec<u8>,
    done: bool,
}

/// A check that is ready when the service writes a newline to its fd `fd` (3 or more); see
/// [`ReadyFd`].
pub fn ready_fd(fd: i32) -> ReadyFd {
    ReadyFd { fd, pipe: None, line: Vec::new(), done: false }
}

impl ReadyFd {
    /// The fd number the service writes to.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// What the service wrote before the newline, once ready.
    pub fn line(&self) -> Option<String> {
        self.done.then(|| String::from_utf8_lossy(&self.line).into_owned())
    }
}

impl Check for ReadyFd {
    fn describe(&self) -> String {
        format!("a newline on its readiness fd {}", self.fd)
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.fd < 3 {
            return Err(format!(
                "fd {} is stdin, stdout or stderr; give the readiness fd a number of 3 or more \
                 (s6's usual choice is 3)",
                self.fd
            ));
        }
        if setup.passed_fds().contains(&self.fd) {
            return Err(format!(
                "fd {} is already given to the service by another check; use another number",
                self.fd
            ));
        }
        // Close-on-exec on both ends: the spawn moves the write end to fd N without the flag,
        // and nothing else inherits either.
        let (read, write) =
            std::io::pipe().map_err(|e| format!("cannot create the readiness pipe: {e}"))?;
        let (read, write) = (OwnedFd::from(read), OwnedFd::from(write));
        crate::platform::set_nonblocking(read.as_fd())
            .map_err(|e| format!("cannot create the readiness pipe: {e}"))?;
        setup.pass_fd(write, self.fd);
        self.pipe = Some(read);
        self.line.clear();
        self.done = false;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let Some(pipe) = &self.pipe else {
            return Status::Failed("the readiness pipe was not set up".into());
        };
        let mut buf = [0u8; 512];
        loop {
            match crate::platform::read_nonblocking(pipe.as_fd(), &mut buf) {
                Ok(Some(0)) => {
                    // Every writer closed it: the service (and anything it forked) cannot
                    // write the newline any more.
                    return Status::Failed(format!(
                        "the service closed its readiness fd {} without writing a newline{}",
                        self.fd,
                        if self.line.is_empty() {
                            String::new()
                        } else {
                            format!(" (it wrote {:?})", String::from_utf8_lossy(&self.line))
                        }
                    ));
                }
                Ok(Some(n)) => {
                    if let Some(nl) = buf[..n].iter().position(|&b| b == b'\n') {
                        self.line.extend_from_slice(&buf[..nl]);
                        self.done = true;
                        // s6 reads up to the first newline and closes the pipe.
                        self.pipe = None;
                        return Status::Ready;
                    }
                    if self.line.len() < 4096 {
                        self.line.extend_from_slice(&buf[..n]);
                    }
                }
                Ok(None) => break,
                Err(e) => return Status::Failed(format!("reading the readiness fd: {e}")),
            }
        }
        cx.poll_when_readable(pipe);
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        Some(if self.line.is_empty() {
            "nothing written to it yet".into()
        } else {
            format!("it wrote {:?} but no newline yet", String::from_utf8_lossy(&self.line))
        })
    }

    fn captures(&self) -> Option<Captures> {
        self.line().map(|line| Captures::new(vec![Some(line)], vec![None]))
    }

    fn release(&mut self) {
        self.pipe = None;
    }
}
