//! Ready when the service says so over systemd's notification protocol (sd_notify(3)): a unix
//! datagram socket whose path the service finds in `NOTIFY_SOCKET`, each datagram a list of
//! `KEY=VALUE` lines. PostgreSQL (built `--with-systemd`, as Debian's is) sends `READY=1` by
//! itself when the variable is set; Redis does with `--supervised systemd`; so do MariaDB,
//! HAProxy (`-Ws`), PgBouncer and others (docs/design.md §4). No polling, no guessing: the
//! server announces the moment it is ready.
//!
//! The receiver follows docs/design.md §4, validated against redis and PostgreSQL:
//! the socket lives in a private (0700) directory; `SO_PASSCRED` makes the kernel attach the
//! sender's pid to each datagram, and only processes of the service's tree are listened to
//! (any of them: `systemd-notify` reports on behalf of its parent, a server may notify from a
//! worker); file descriptors sent along (`BARRIER=1`, `FDSTORE=1`) are closed at once, as the
//! sender of a barrier waits for that.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Check, Context, Setup, Status};
use crate::platform::{self, MAX_SOCKET_PATH};

/// The largest datagram read whole; systemd reads at most this much too (`NOTIFY_BUFFER_MAX`).
const MAX_DATAGRAM: usize = 4096;

/// Ready when a process of the service's tree sends `READY=1` to the socket named in its
/// `NOTIFY_SOCKET` environment variable (the systemd `Type=notify` protocol).
///
/// What the messages mean (systemd's sd_notify(3)):
///
/// - `READY=1`: ready.
/// - `STATUS=…`: kept; the last one is in [`status`](Notify::status) and in error messages.
/// - `ERRNO=n`, or `STOPPING=1` before `READY=1`: the start fails at once, with the status.
/// - `MAINPID=n`: process `n` (of the tree) becomes the service's main process: stopped with
///   it, and its death is the service's death for
///   [`check_alive`](crate::Executor::check_alive).
/// - `EXTEND_TIMEOUT_USEC=n`: the startup deadline moves to at least `n` µs from now (a slow
///   recovery reporting progress).
/// - Anything else is ignored; file descriptors sent along are closed.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// let mut redis = Executor::new(
///     "redis-server --port 6390 --save '' --supervised systemd",
///     ready::notify(),
/// );
/// redis.start()?; // Redis sent READY=1
/// redis.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Notify {
    socket: Option<UnixDatagram>,
    dir: Option<tempfile::TempDir>,
    /// Pids known to be of the service's tree (so the tree is scanned once per new sender).
    members: HashSet<u32>,
    ready: bool,
    status: Option<String>,
    main_pid: Option<u32>,
    ignored: Option<String>,
}

/// A check that is ready when the service sends `READY=1` over `NOTIFY_SOCKET`; see [`Notify`].
pub fn notify() -> Notify {
    Notify::default()
}

impl Notify {
    /// The last `STATUS=` the service sent.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The pid the service named with `MAINPID=`, if it did.
    pub fn main_pid(&self) -> Option<u32> {
        self.main_pid
    }

    /// The socket path, while the service may use it.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("notify"))
    }

    fn bind(user: Option<(u32, u32)>) -> std::io::Result<(tempfile::TempDir, UnixDatagram)> {
        // In the binary's run directory: removed with it, also when the binary is killed.
        let dir = crate::process::private_dir("notify-")?;
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path)?;
        socket.set_nonblocking(true)?;
        platform::receive_credentials(socket.as_fd())?;
        if let Some((uid, gid)) = user {
            // The service's user must reach the socket: the directory and the socket are
            // theirs (the directory stays 0700, so nobody else can).
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        Ok((dir, socket))
    }

    /// Whether the sender of a datagram is a process of the service's tree.
    fn sent_by_the_service(&mut self, pid: u32, cx: &Context<'_>) -> bool {
        if pid == cx.pid() || self.members.contains(&pid) {
            return true;
        }
        let tree = cx.tree_pids();
        if tree.contains(&pid) {
            self.members.extend(tree);
            return true;
        }
        match sender_state(pid) {
            // Gone already (`systemd-notify` exits right after sending): it cannot be checked,
            // and only the service's user (and root) can reach the private socket.
            Sender::Gone => true,
            // A zombie, not yet reaped by its parent: judged by its family.
            Sender::Zombie { ppid, pgid, sid } => {
                let leader = cx.pid();
                sid == leader || pgid == leader || ppid == leader || tree.contains(&ppid)
            }
            Sender::Alive => false,
        }
    }

    /// Reads every pending datagram; `Some` once the outcome is decided.
    fn receive(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        loop {
            let socket = self.socket.as_ref()?;
            let mut buf = [0u8; MAX_DATAGRAM];
            let (len, sender) = match platform::recv_datagram(socket.as_fd(), &mut buf) {
                Ok(Some(received)) => received,
                Ok(None) => return None,
                Err(e) => return Some(Status::Failed(format!("reading the notify socket: {e}"))),
            };
            let text = String::from_utf8_lossy(&buf[..len.min(MAX_DATAGRAM)]).into_owned();
            match sender {
                Some(pid) if !self.sent_by_the_service(pid, cx) => {
                    self.ignored = Some(format!(
                        "ignored {:?} from process {pid}, which is not part of the service",
                        text.trim_end()
                    ));
                    continue;
                }
                _ => {}
            }
            if let Some(outcome) = self.handle(&text, cx) {
                return Some(outcome);
            }
        }
    }

    /// Applies one datagram; `Some` once the outcome is decided.
    fn handle(&mut self, message: &str, cx: &mut Context<'_>) -> Option<Status> {
        let mut errno = None;
        let mut stopping = false;
        for line in message.lines() {
            let Some((key, value)) = line.split_once('=') else { continue };
            match key {
                "READY" if value == "1" => self.ready = true,
                "STATUS" => self.status = Some(value.to_string()),
                "ERRNO" => errno = Some(value.trim().to_string()),
                "STOPPING" if value == "1" => stopping = true,
                "MAINPID" => match value.trim().parse::<u32>().map_err(|e| e.to_string()) {
                    Ok(pid) => match cx.try_set_main_pid(pid) {
                        Ok(()) => self.main_pid = Some(pid),
                        Err(why) => self.ignored = Some(format!("ignored MAINPID={pid}: {why}")),
                    },
                    Err(why) => self.ignored = Some(format!("ignored MAINPID={value}: {why}")),
                },
                "EXTEND_TIMEOUT_USEC" => {
                    if let Ok(usec) = value.trim().parse::<u64>() {
                        cx.extend_deadline(Duration::from_micros(usec));
                    }
                }
                _ => {}
            }
        }
        let with_status = |what: String| match &self.status {
            Some(status) => format!("{what} (its last status: {status:?})"),
            None => what,
        };
        if let Some(errno) = errno {
            let what = match errno.parse::<i32>() {
                Ok(n) => format!(
                    "the service reported ERRNO={n}: {}",
                    std::io::Error::from_raw_os_error(n)
                ),
                Err(_) => format!("the service reported ERRNO={errno}"),
            };
            return Some(Status::Failed(with_status(what)));
        }
        if stopping && !self.ready {
            return Some(Status::Failed(with_status(
                "the service reported STOPPING=1 before READY=1: it is shutting down".into(),
            )));
        }
        self.ready.then_some(Status::Ready)
    }
}

/// What `/proc` says about a sender that is not (or no longer) in the tree.
enum Sender {
    Gone,
    Zombie { ppid: u32, pgid: u32, sid: u32 },
    Alive,
}

fn sender_state(pid: u32) -> Sender {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return if Path::new("/proc/self").exists() { Sender::Gone } else { Sender::Alive };
    };
    // After the command name, which ends at the last ')': state, ppid, pgrp, session.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else { return Sender::Alive };
    let fields: Vec<&[u8]> =
        stat[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty()).take(4).collect();
    let number =
        |i: usize| -> Option<u32> { std::str::from_utf8(fields.get(i)?).ok()?.parse().ok() };
    match (fields.first(), number(1), number(2), number(3)) {
        (Some(&b"Z" | &b"X"), Some(ppid), Some(pgid), Some(sid)) => {
            Sender::Zombie { ppid, pgid, sid }
        }
        _ => Sender::Alive,
    }
}

impl Check for Notify {
    fn describe(&self) -> String {
        "READY=1 on its NOTIFY_SOCKET (sd_notify)".into()
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        self.release();
        self.members.clear();
        self.ready = false;
        self.status = None;
        self.main_pid = None;
        self.ignored = None;
        let (dir, socket) = Notify::bind(setup.user()).map_err(|e| {
            format!(
                "cannot create the notify socket in the temporary directory ({e}); check that \
                 TMPDIR (or /tmp) is writable"
            )
        })?;
        let path = dir.path().join("notify");
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "the notify socket path {} is too long for a unix socket; set TMPDIR to a \
                 shorter directory",
                path.display()
            ));
        }
        setup.set_env("NOTIFY_SOCKET", path.as_os_str());
        self.socket = Some(socket);
        self.dir = Some(dir);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        if let Some(outcome) = self.receive(cx) {
            return outcome;
        }
        if let Some(socket) = &self.socket {
            cx.poll_when_readable(socket);
        }
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        let mut parts = Vec::new();
        match &self.status {
            Some(status) => parts.push(format!("its last STATUS={status}")),
            None => parts.push("no READY=1 nor STATUS= received".to_string()),
        }
        if let Some(ignored) = &self.ignored {
            parts.push(ignored.clone());
        }
        Some(parts.join("; "))
    }

    /// Closes the socket and removes its directory. The service may still try to send (Redis
    /// sends `STOPPING=1` on shutdown): sd_notify ignores a socket that is gone.
    fn release(&mut self) {
        self.socket = None;
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
