//! The oracle: the fastest anyone could know that a service is ready or gone. The process is
//! spawned with plain `std::process::Command` and the readiness condition is checked in a tight
//! loop without any sleep, so the difference between the library and the oracle is exactly
//! the library's overhead.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mirakuru_test::Tag;

use crate::launch::{Launch, Ready};

/// How long the oracle waits for readiness before it gives up on a round.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a cleanup waits for a shut-down process before it uses SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How many loop turns pass between two looks at whether the child died (a `waitpid`
/// syscall): often enough to fail fast, rarely enough not to slow the loop.
const EXIT_CHECK_EVERY: u32 = 256;

/// A process the oracle started; shut down and reaped when dropped, whatever happened.
pub struct OracleProcess {
    child: Child,
    /// The `NOTIFY_SOCKET` of a `Ready::Notify` launch, and the directory holding it.
    notify: Option<(std::os::unix::net::UnixDatagram, tempfile::TempDir)>,
    stdout: Option<ChildStdout>,
    shutdown: libc::c_int,
    daemon_pid_file: Option<std::path::PathBuf>,
    command: String,
}

/// Spawns `launch` the plain way: stdout piped only when readiness is read from it.
pub fn spawn(launch: &Launch, tag: &Tag) -> Result<OracleProcess, String> {
    let (program, args) = launch.argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args).env(Tag::VAR, tag.value()).stdin(Stdio::null()).stderr(Stdio::null());
    let reads_output = matches!(launch.ready, Ready::Output(_));
    cmd.stdout(if reads_output { Stdio::piped() } else { Stdio::null() });
    if let Some(user) = &launch.user {
        cmd.uid(user.uid).gid(user.gid);
    }
    if let Some(dir) = &launch.cwd {
        cmd.current_dir(dir);
    }
    let notify = match launch.ready {
        Ready::Notify => {
            let (socket, dir, path) = notify_socket()?;
            cmd.env("NOTIFY_SOCKET", path);
            Some((socket, dir))
        }
        _ => None,
    };
    let mut child =
        cmd.spawn().map_err(|e| format!("oracle: spawning `{}`: {e}", launch.display()))?;
    Ok(OracleProcess {
        notify,
        stdout: child.stdout.take(),
        child,
        shutdown: launch.shutdown,
        daemon_pid_file: launch.daemon_pid_file.clone(),
        command: launch.display(),
    })
}

impl OracleProcess {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Busy-waits until `ready` holds.
    pub fn wait_ready(&mut self, ready: &Ready) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        match ready {
            Ready::Nothing => Ok(()),
            Ready::Tcp(port) => self.spin(deadline, || tcp_accepts(*port)),
            Ready::Http(port) => self.spin(deadline, || http_ok(*port)),
            Ready::Unix(path) => self.spin(deadline, || UnixStream::connect(path).is_ok()),
            Ready::Pid(path) => self.spin(deadline, || pid_file_names_live_process(path)),
            Ready::Output(banner) => self.read_until(banner, deadline),
            Ready::Notify => {
                let socket = match &self.notify {
                    Some((socket, _)) => socket.try_clone().map_err(|e| e.to_string())?,
                    None => return Err("oracle: no notify socket".into()),
                };
                let mut buf = [0u8; 4096];
                self.spin(deadline, || match socket.recv(&mut buf) {
                    Ok(n) => buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1"),
                    Err(_) => false,
                })
            }
        }
    }

    /// Calls `ready` until it is true, with no sleep in between; fails if the child exits with
    /// an error (an exit with 0 is a launcher that daemonized) or the deadline passes.
    fn spin(&mut self, deadline: Instant, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let mut turns = 0u32;
        loop {
            if ready() {
                return Ok(());
            }
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(EXIT_CHECK_EVERY) {
                if let Some(status) = self.try_wait()? {
                    if !status.success() {
                        return Err(format!("oracle: `{}` exited with {status}", self.command));
                    }
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "oracle: `{}` not ready in {READY_TIMEOUT:?}",
                        self.command
                    ));
                }
            }
        }
    }

    /// Reads stdout as it comes until `banner` appears (searching across read boundaries).
    fn read_until(&mut self, banner: &str, deadline: Instant) -> Result<(), String> {
        let stdout = self.stdout.as_mut().ok_or("oracle: stdout was not piped")?;
        let needle = banner.as_bytes();
        let mut seen: Vec<u8> = Vec::with_capacity(8192);
        let mut buf = [0u8; 8192];
        loop {
            // Poll first, only to honour the deadline: it returns at once when data is there.
            let left = deadline.saturating_duration_since(Instant::now());
            if !readable_within(stdout, left) {
                return Err(format!("oracle: no `{banner}` from `{}` in time", self.command));
            }
            let n = stdout.read(&mut buf).map_err(|e| format!("oracle: reading stdout: {e}"))?;
            if n == 0 {
                return Err(format!("oracle: `{}` closed stdout before `{banner}`", self.command));
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(needle.len()).any(|w| w == needle) {
                return Ok(());
            }
            // Keep only what could still be the start of the banner.
            let keep = seen.len().saturating_sub(needle.len());
            seen.drain(..keep);
        }
    }

    /// The stop oracle: SIGTERM, then a blocking `waitpid` — the earliest the exit can be known.
    pub fn terminate_and_wait(&mut self) -> Result<ExitStatus, String> {
        signal(self.pid(), libc::SIGTERM);
        self.child.wait().map_err(|e| format!("oracle: waiting for `{}`: {e}", self.command))
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child.try_wait().map_err(|e| format!("oracle: waitpid on `{}`: {e}", self.command))
    }

    /// Takes the process (and, for a launcher that daemonized, its daemon) down and reaps it.
    fn shut_down(&mut self) {
        if let Some(daemon) = self.daemon_pid_file.as_deref().and_then(read_pid) {
            signal(daemon as i32, self.shutdown);
            if !mirakuru_test::wait_gone(daemon, SHUTDOWN_GRACE) {
                signal(daemon as i32, libc::SIGKILL);
                mirakuru_test::wait_gone(daemon, SHUTDOWN_GRACE);
            }
            // mirakuru makes this process a child subreaper: the daemon, whose launcher exited,
            // and the workers of its session it outlived, are this process's children now;
            // their zombies are ours to reap.
            reap_zombies_of(daemon);
        }
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal(self.pid(), self.shutdown);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!("note: oracle `{}` ignored its shutdown signal; killing it", self.command);
        signal(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for OracleProcess {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Reaps the zombie children of this process that are `daemon`, or were in its session or
/// process group, until none of them is left (its workers may outlive it by a moment), for
/// `SHUTDOWN_GRACE` at most.
fn reap_zombies_of(daemon: u32) {
    let me = std::process::id().to_string();
    let daemon = daemon.to_string();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    loop {
        let mut left = false;
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            // After the command name: state, ppid, process group, session.
            let fields: Vec<&str> = rest.split_whitespace().take(4).collect();
            let [state, ppid, group, session] = fields[..] else { continue };
            if !(pid.to_string() == daemon || group == daemon || session == daemon) {
                continue;
            }
            left = true;
            if state == "Z" && ppid == me {
                let mut status = 0;
                // SAFETY: waitpid only takes integers and writes the status into a local.
                unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            }
        }
        if !left || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill only takes integers. An already-gone process (ESRCH) is fine here.
    unsafe { libc::kill(pid, sig) };
}

fn tcp_accepts(port: u16) -> bool {
    TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// One minimal HEAD request; true on a 2xx status line (the library's default expectation).
fn http_ok(port: u16) -> bool {
    let attempt = || -> io::Result<bool> {
        let mut stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        stream.write_all(b"HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0u8; 64];
        let mut len = 0;
        // "HTTP/1.x 200" is 12 bytes; read until the status code is complete.
        while len < 12 {
            let n = stream.read(&mut head[len..])?;
            if n == 0 {
                return Ok(false);
            }
            len += n;
        }
        Ok(head.starts_with(b"HTTP/1.") && head[8] == b' ' && head[9] == b'2')
    };
    attempt().unwrap_or(false)
}

/// The pid file exists, holds a pid, and that process runs.
fn pid_file_names_live_process(path: &Path) -> bool {
    // SAFETY: kill with signal 0 only checks existence.
    read_pid(path).is_some_and(|pid| unsafe { libc::kill(pid as i32, 0) } == 0)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok().filter(|&pid| pid > 0)
}

/// Whether `fd` becomes readable (or hits end of file) within `timeout`.
fn readable_within(fd: &impl AsRawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return n > 0;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// A non-blocking datagram socket for `NOTIFY_SOCKET`, in a directory any user can reach (the
/// service may run as `postgres`), with the socket itself writable by all.
fn notify_socket(
) -> Result<(std::os::unix::net::UnixDatagram, tempfile::TempDir, std::path::PathBuf), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("mk-notify-")
        .permissions(std::fs::Permissions::from_mode(0o711))
        .tempdir_in("/tmp")
        .map_err(|e| format!("oracle: notify dir: {e}"))?;
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path)
        .map_err(|e| format!("oracle: binding {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| format!("oracle: chmod {}: {e}", path.display()))?;
    socket.set_nonblocking(true).map_err(|e| format!("oracle: {e}"))?;
    Ok((socket, dir, path))
}
