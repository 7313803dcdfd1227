//! sd_notify readiness (`ready::notify()`): `READY=1`, `STATUS=`, `ERRNO=`, `STOPPING=1`,
//! `EXTEND_TIMEOUT_USEC=`, `MAINPID=`; messages from outside the service's tree; real Redis
//! (`--supervised systemd`). PostgreSQL's notification is in `postgres.rs`.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirakuru::ready;
use mirakuru::{Error, Executor};
use mirakuru_test::{free_port, redis_cli, require, service, temp_dir, wait_gone, Tag};

use crate::{redis_cmd, svc, tag_env, QUICK};

#[test]
fn notify_ready_from_the_helper() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex =
        Executor::new(svc(&["--notify", "--notify-message", "STATUS=warming up"]), ready::notify())
            .env(k, v)
            .timeout(QUICK);
    ex.start().expect("READY=1 received");
    // The helper sends STATUS=ready with READY=1; the earlier status was seen too.
    assert_eq!(ex.read_check(|n| n.status().map(str::to_string)).as_deref(), Some("ready"));
    let socket =
        ex.read_check(|n| n.socket_path()).expect("the socket lives while the service runs");
    assert!(socket.exists());
    let dir = socket.parent().expect("dir").to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the socket's directory is private");
    ex.stop().expect("stop");
    assert!(!dir.exists(), "the socket and its directory are removed at stop");
    tag.assert_none_left();
}

#[test]
fn notify_errno_fails_at_once_with_the_status() {
    let mut ex = Executor::new(
        svc(&[
            "--notify",
            "--notify-message",
            "STATUS=cannot open the configuration",
            "--notify-message",
            "ERRNO=2",
            "--notify-no-ready",
        ]),
        ready::notify(),
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("ERRNO= fails the start");
    assert!(began.elapsed() < QUICK, "did not wait for the timeout");
    assert!(matches!(err, Error::CheckFailed { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("ERRNO=2"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(message.contains("cannot open the configuration"), "the STATUS is kept: {message}");
    assert!(!ex.running());
}

#[test]
fn notify_stopping_before_ready_fails() {
    let mut ex = Executor::new(
        svc(&["--notify", "--notify-message", "STOPPING=1", "--notify-no-ready"]),
        ready::notify(),
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("STOPPING=1 before READY=1");
    assert!(began.elapsed() < QUICK);
    assert!(err.to_string().contains("STOPPING=1 before READY=1"), "{err}");
}

#[test]
fn notify_extend_timeout_usec_pushes_the_deadline() {
    let slow = |extend: bool| {
        let mut args = vec!["--notify", "--notify-ready-after-ms", "900"];
        if extend {
            args.extend(["--notify-message", "EXTEND_TIMEOUT_USEC=10000000"]);
        }
        Executor::new(svc(&args), ready::notify()).timeout(Duration::from_millis(400))
    };
    let mut extended = slow(true);
    extended.start().expect("the service asked for more time");
    assert!(extended.ready_after().expect("ready") >= Duration::from_millis(800));
    extended.stop().expect("stop");

    let mut plain = slow(false);
    let err = plain.start().expect_err("no extension: the 400 ms timeout holds");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
}

#[test]
fn notify_mainpid_switches_tracking_to_the_daemon() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    // The launcher exits 0 at once; the daemon it leaves names itself with MAINPID=.
    let mut ex =
        Executor::new(svc(&["--daemonize", "--notify", "--notify-mainpid"]), ready::notify())
            .env(k, v)
            .timeout(QUICK);
    ex.start().expect("ready");
    let launcher = ex.pid().expect("pid");
    let daemon = ex.main_pid().expect("main pid");
    assert_ne!(daemon, launcher, "tracking switched to the daemon");
    assert_eq!(ex.read_check(|n| n.main_pid()), Some(daemon));
    ex.check_alive().expect("the daemon runs");
    // SAFETY: kill only takes integers; the daemon is ours.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    assert!(wait_gone(daemon, QUICK));
    let err = ex.check_alive().expect_err("the main process died");
    assert!(matches!(err, Error::ServiceDied { pid, .. } if pid == daemon), "{err}");
    let _ = ex.stop();
    tag.assert_none_left();
}

/// The path in a process's `NOTIFY_SOCKET`.
fn notify_socket_of(pid: u32) -> Option<PathBuf> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|entry| {
        let value = entry.strip_prefix(b"NOTIFY_SOCKET=")?;
        Some(PathBuf::from(String::from_utf8_lossy(value).into_owned()))
    })
}

/// Sends `message` to the unix datagram socket at `path` with `fd` attached (SCM_RIGHTS).
fn send_with_fd(path: &Path, message: &[u8], fd: RawFd) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
    // SAFETY: plain data structures for sendmsg(2), filled in before the call; the control
    // buffer is sized with CMSG_SPACE for one int.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in addr.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
            *dst = src as libc::c_char;
        }
        let mut iov = libc::iovec { iov_base: message.as_ptr() as *mut _, iov_len: message.len() };
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut addr as *mut libc::sockaddr_un).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
        if libc::sendmsg(socket.as_raw_fd(), &msg, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn notify_ignores_messages_from_outside_the_tree_and_closes_the_fds_they_carry() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex =
        Executor::new(svc(&["--notify", "--notify-ready-after-ms", "1500"]), ready::notify())
            .env(k, v)
            .timeout(QUICK);
    let began = Instant::now();
    let start = std::thread::spawn(move || {
        let result = ex.start();
        (result, ex)
    });
    // The helper's socket, from its environment.
    let deadline = Instant::now() + QUICK;
    let socket = loop {
        if let Some(path) = tag.pids().into_iter().find_map(notify_socket_of) {
            break path;
        }
        assert!(Instant::now() < deadline, "the helper never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    // A stranger (this test process) claims readiness, passing a pipe along.
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just created and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    send_with_fd(&socket, b"READY=1\nSTATUS=fake", write_end.as_raw_fd()).expect("send");
    drop(write_end);
    // The receiver closes the fd it got: the pipe reports end of file.
    let mut pipe = std::fs::File::from(read_end);
    let mut buf = [0u8; 1];
    assert_eq!(pipe.read(&mut buf).expect("read"), 0, "the received fd was closed");
    let (result, mut ex) = start.join().expect("start thread");
    result.expect("ready from the real READY=1");
    assert!(
        began.elapsed() >= Duration::from_millis(1400),
        "the stranger's READY=1 was ignored: ready after {:?}",
        began.elapsed()
    );
    assert_eq!(ex.read_check(|n| n.status().map(str::to_string)).as_deref(), Some("ready"));
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn notify_from_a_descendant_that_has_exited_counts() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    // The helper notifies, then exits; the shell lives on.
    let script = format!("{} --notify --exit 0; exec sleep 30", service());
    let mut ex = Executor::new(["sh".to_string(), "-c".into(), script], ready::notify())
        .env(k, v)
        .timeout(QUICK);
    ex.start().expect("READY=1 from a child of the service");
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn redis_supervised_systemd_notifies_ready() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let mut redis =
        Executor::new(redis_cmd(port, dir.path(), "--supervised systemd"), ready::notify())
            .env(k, v)
            .timeout(Duration::from_secs(20));
    redis.start().expect("redis sends READY=1");
    let status = redis.read_check(|n| n.status().map(str::to_string)).unwrap_or_default();
    assert!(status.contains("Ready to accept connections"), "{status:?}");
    assert_eq!(redis_cli(&["-p", &port.to_string()], &["PING"]).as_deref(), Ok("PONG"));
    mirakuru::stopped!(redis, {
        assert!(redis_cli(&["-p", &port.to_string()], &["PING"]).is_err());
    });
    assert_eq!(
        redis_cli(&["-p", &port.to_string()], &["PING"]).as_deref(),
        Ok("PONG"),
        "notified again after the restart"
    );
    redis.stop().expect("stop");
    tag.assert_none_left();
}
