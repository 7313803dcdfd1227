//! Readiness beyond a connect: sd_notify, readiness fds, exec probes, Redis and PostgreSQL
//! protocol probes, combinators, custom checks with the context, file contents, captures and
//! port discovery, listener ownership, death after ready, and timings — through the generic
//! `Executor` and through the fixture attribute, with the helper service, fake servers and
//! real Redis and PostgreSQL (which print one line and return when not installed, unless
//! `MIRAKURU_REQUIRE_SERVICES=1`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirakuru::fixture::{Fixtures, Port, Spec};
use mirakuru::ready::{self, Status};
use mirakuru::{Error, Executor, Fixture, OutputExecutor, Signal, TcpExecutor};
use mirakuru_test::{
    free_port, initdb, postgres_bin, postgres_command, psql, redis_cli, require, service, temp_dir,
    wait_gone, Tag,
};

use crate::{ready as ready_helper, svc, tag_env};

/// The helper service; attribute arguments may be any expression of the right type.
const SERVICE: &str = env!("CARGO_BIN_EXE_mirakuru-test-service");

/// A loose bound that only catches hangs: timing goals live in the benchmark.
const QUICK: Duration = Duration::from_secs(10);

fn status_code(err: &Error) -> Option<i32> {
    err.exit_status().and_then(|s| s.code())
}

// ---------------------------------------------------------------------------------------------
// 1. sd_notify
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 2. Readiness fd
// ---------------------------------------------------------------------------------------------

#[test]
fn ready_fd_from_the_helper() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = Executor::new(svc(&["--delay-ms", "100", "--ready-fd", "3"]), ready::ready_fd(3))
        .env(k, v)
        .timeout(QUICK);
    ex.start().expect("a newline on fd 3");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(100));
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn ready_fd_keeps_the_line_written() {
    let mut ex =
        Executor::new(["sh", "-c", "printf ':99\\n' >&3; exec sleep 30"], ready::ready_fd(3));
    ex.start().expect("ready");
    assert_eq!(ex.captures().and_then(|c| c.get(0).map(str::to_string)).as_deref(), Some(":99"));
    ex.stop().expect("stop");
}

#[test]
fn a_readiness_fd_closed_without_a_newline_fails_at_once() {
    let mut ex = Executor::new(
        ["sh", "-c", "printf half >&3; exec 3>&-; exec sleep 30"],
        ready::ready_fd(3),
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("no newline can come any more");
    assert!(began.elapsed() < QUICK);
    assert!(
        err.to_string().contains("closed its readiness fd 3 without writing a newline"),
        "{err}"
    );
    assert!(err.to_string().contains("half"), "{err}");
}

#[test]
fn a_readiness_fd_below_three_is_refused_before_the_spawn() {
    let mut ex = Executor::new(svc(&[]), ready::ready_fd(1));
    let err = ex.start().expect_err("fd 1 is stdout");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 3. Exec probes
// ---------------------------------------------------------------------------------------------

#[test]
fn exec_probe_runs_until_it_exits_zero() {
    let dir = temp_dir();
    let flag = dir.path().join("flag.pid");
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = Executor::new(
        svc(&["--delay-ms", "200", "--pid-file", &flag.display().to_string()]),
        ready::exec(vec!["test".to_string(), "-s".into(), flag.display().to_string()]),
    )
    .env(k, v)
    .timeout(QUICK);
    ex.start().expect("the probe succeeded");
    assert!(flag.exists());
    assert!(ex.read_check(|e| e.attempts()) > 1, "the probe ran until it succeeded");
    ex.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn exec_probe_output_must_match() {
    let dir = temp_dir();
    let file = dir.path().join("state");
    let script = format!(
        "echo starting > {f}; sleep 0.2; echo accepting > {f}; exec sleep 30",
        f = file.display()
    );
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::exec(format!("cat {}", file.display())).output("^accepting$"),
    )
    .timeout(QUICK);
    ex.start().expect("the probe printed `accepting`");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(200));
    ex.stop().expect("stop");
}

#[test]
fn a_hanging_probe_is_killed_at_its_attempt_timeout() {
    let tag = Tag::new();
    let mut ex = Executor::new(
        svc(&[]),
        ready::exec("sleep 30")
            .env(Tag::VAR, tag.value())
            .attempt_timeout(Duration::from_millis(100)),
    )
    .timeout(Duration::from_millis(700));
    let err = ex.start().expect_err("the probe never finishes");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    assert!(err.to_string().contains("did not finish within 100ms and was killed"), "{err}");
    // No probe outlives its attempt.
    tag.assert_none_left();
}

#[test]
fn a_probe_that_cannot_run_fails_before_the_spawn() {
    let mut ex = Executor::new(svc(&[]), ready::exec("no-such-probe-program --x"));
    let err = ex.start().expect_err("not found");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("no-such-probe-program"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 4. Protocol probes, against fake servers (the real ones are further down)
// ---------------------------------------------------------------------------------------------

/// A fake server on `port`, listening only after `delay` (so that the executor's "already
/// running" check before the spawn finds nothing); answers each connection with the next of
/// `answers` (the last repeating) after reading `expect` bytes, `max` connections at most;
/// returns everything it read.
fn fake_server(
    port: u16,
    delay: Duration,
    answers: Vec<Vec<u8>>,
    expect: usize,
    max: usize,
) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("fake server binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let mut received = Vec::new();
        let deadline = Instant::now() + QUICK;
        let mut served = 0;
        while Instant::now() < deadline && served < max {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
                    let mut got = vec![0u8; expect];
                    if stream.read_exact(&mut got).is_err() {
                        continue;
                    }
                    let answer = &answers[served.min(answers.len() - 1)];
                    let _ = stream.write_all(answer);
                    // Whatever the client sends before closing (a Terminate).
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest);
                    got.extend(rest);
                    received.push(got);
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        received
    })
}

#[test]
fn redis_probe_waits_through_loading() {
    let port = free_port();
    let loading = b"-LOADING Redis is loading the dataset in memory\r\n".to_vec();
    let fake = fake_server(
        port,
        Duration::from_millis(150),
        vec![loading.clone(), loading, b"+PONG\r\n".to_vec()],
        b"*1\r\n$4\r\nPING\r\n".len(),
        3,
    );
    let mut ex = Executor::new(svc(&[]), ready::redis("127.0.0.1", port)).timeout(QUICK);
    ex.start().expect("PONG after two LOADING");
    assert_eq!(ex.read_check(|r| r.answer().map(str::to_string)).as_deref(), Some("+PONG"));
    ex.stop().expect("stop");
    let received = fake.join().expect("fake");
    assert!(received.len() >= 3, "asked until PONG: {}", received.len());
    assert!(received.iter().all(|r| r.starts_with(b"*1\r\n$4\r\nPING\r\n")));
}

#[test]
fn redis_probe_timeout_says_it_was_loading() {
    let port = free_port();
    let _fake = fake_server(
        port,
        Duration::from_millis(100),
        vec![b"-LOADING Redis is loading the dataset in memory\r\n".to_vec()],
        14,
        usize::MAX,
    );
    let mut ex = Executor::new(svc(&[]), ready::redis("127.0.0.1", port))
        .timeout(Duration::from_millis(600));
    let err = ex.start().expect_err("always loading");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    assert!(err.to_string().contains("-LOADING"), "the last answer is in the message: {err}");
}

fn pg_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend(((body.len() + 4) as i32).to_be_bytes());
    m.extend(body);
    m
}

#[test]
fn postgres_probe_waits_through_starting_up_and_says_goodbye() {
    let port = free_port();
    let starting = pg_message(b'E', b"SFATAL\0C57P03\0Mthe database system is starting up\0\0");
    let auth_ok = pg_message(b'R', &0i32.to_be_bytes());
    // The StartupMessage's length is its first 4 bytes; read them all.
    let startup_len = {
        let mut m = 4 + 4;
        for (k, v) in
            [("user", "postgres"), ("database", "postgres"), ("application_name", "mirakuru")]
        {
            m += k.len() + v.len() + 2;
        }
        m + 1
    };
    let fake =
        fake_server(port, Duration::from_millis(150), vec![starting, auth_ok], startup_len, 2);
    let mut ex = Executor::new(svc(&[]), ready::postgres("127.0.0.1", port)).timeout(QUICK);
    ex.start().expect("ready once authenticated");
    ex.stop().expect("stop");
    let received = fake.join().expect("fake");
    assert!(received.len() >= 2, "{received:?}");
    let last = received.last().expect("one");
    assert_eq!(&last[4..8], &196_608i32.to_be_bytes(), "protocol 3.0");
    assert!(last.ends_with(b"X\0\0\0\x04"), "a Terminate after AuthenticationOk: {last:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. Combinators
// ---------------------------------------------------------------------------------------------

#[test]
fn all_waits_for_every_part_and_records_each_time() {
    let mut ex = Executor::new(
        svc(&["--notify", "--delay-ms", "50", "--banner", "serving"]),
        ready::all().with(ready::Banner::new("serving")).with(ready::notify()),
    )
    .timeout(QUICK);
    ex.start().expect("both");
    let times = ex.readiness_times();
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(times[0].0.starts_with("all of"), "{times:?}");
    assert!(times[1].0.contains("serving") && times[2].0.contains("READY=1"), "{times:?}");
    // Each part's time is when it was seen ready; the whole is ready once the last one is.
    assert!(times.iter().all(|(_, t)| *t >= Duration::from_millis(50)), "{times:?}");
    assert!(times[0].1 >= times[1].1.max(times[2].1), "{times:?}");
    ex.stop().expect("stop");
}

#[test]
fn a_part_past_its_own_timeout_fails_all_of_them_and_is_named() {
    let mut ex = Executor::new(
        svc(&["--banner", "serving"]),
        ready::all()
            .with(ready::Banner::new("serving"))
            .with_timeout(ready::notify(), Duration::from_millis(200)),
    )
    .timeout(Duration::from_secs(60));
    let began = Instant::now();
    let err = ex.start().expect_err("the helper never notifies");
    assert!(began.elapsed() < QUICK);
    assert!(matches!(err, Error::CheckFailed { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("READY=1") && message.contains("within 200ms"), "{message}");
    assert!(message.contains("not ready within its own 200ms"), "{message}");
}

#[test]
fn any_is_ready_with_the_first_part_and_drops_failed_ones() {
    let mut ex = Executor::new(
        svc(&["--delay-ms", "300", "--banner", "serving"]),
        ready::any()
            .with_timeout(ready::notify(), Duration::from_millis(50))
            .with(ready::Banner::new("serving")),
    )
    .timeout(QUICK);
    ex.start().expect("the banner, after the notify part was dropped");
    let times = ex.readiness_times();
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(times[1].0.contains("serving"), "{times:?}");
    ex.stop().expect("stop");
}

#[test]
fn any_fails_when_every_part_failed() {
    let mut ex = Executor::new(
        svc(&[]),
        ready::any()
            .with_timeout(ready::notify(), Duration::from_millis(50))
            .with_timeout(ready::Banner::new("never"), Duration::from_millis(100)),
    )
    .timeout(Duration::from_secs(60));
    let err = ex.start().expect_err("nothing comes");
    let message = err.to_string();
    assert!(message.contains("every check failed"), "{message}");
    assert!(message.contains("READY=1") && message.contains("never"), "{message}");
}

#[test]
fn a_timeout_names_the_parts_still_pending() {
    let port = free_port();
    let mut ex = Executor::new(
        svc(&["--banner", "serving"]),
        ready::all()
            .with(ready::Banner::new("serving"))
            .with(ready::any().with(ready::notify()).with(ready::Tcp::new("127.0.0.1", port))),
    )
    .timeout(Duration::from_millis(400));
    let err = ex.start().expect_err("neither notify nor the port");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("still waiting for any of"), "nested parts are named: {message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("still waiting for the output"), "the banner was ready: {message}");
}

// ---------------------------------------------------------------------------------------------
// 6. Custom checks see the context
// ---------------------------------------------------------------------------------------------

#[test]
fn a_custom_check_sees_pid_port_output_and_listeners() {
    let port = free_port();
    let mut ex = Executor::new(
        svc(&["--tcp", &port.to_string(), "--banner", "serving"]),
        ready::all().with(ready::Tcp::new("127.0.0.1", port)).with(ready::custom(
            "the port in the context and in the listeners",
            move |cx| {
                assert!(cx.pid() > 0);
                let listens = cx.listening_ports().contains(&port);
                let printed = cx.output().stdout_lossy().contains("serving");
                match (cx.port(), listens && printed) {
                    (Some(p), true) if p == port => Status::Ready,
                    (Some(p), _) if p != port => Status::Failed(format!("wrong port {p}")),
                    _ => Status::NotYet,
                }
            },
        )),
    )
    .timeout(QUICK);
    ex.start().expect("ready");
    assert_eq!(ex.port(), Some(port));
    ex.stop().expect("stop");
}

#[test]
fn a_custom_check_can_fail_for_good() {
    let mut ex = Executor::new(
        svc(&["--banner", "FATAL: bad config"]),
        ready::custom("no fatal line", |cx| {
            if cx.output().stdout_lossy().contains("FATAL") {
                Status::Failed("the service printed FATAL".into())
            } else {
                Status::NotYet
            }
        }),
    )
    .timeout(Duration::from_secs(60));
    let err = ex.start().expect_err("failed for good");
    assert!(matches!(err, Error::CheckFailed { .. }), "{err}");
    assert!(err.to_string().contains("the service printed FATAL"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 7. Files
// ---------------------------------------------------------------------------------------------

#[test]
fn file_content_is_watched_until_it_matches() {
    let dir = temp_dir();
    let file = dir.path().join("state");
    let script = format!(
        "echo starting > {f}; sleep 0.2; echo ready > {f}; exec sleep 30",
        f = file.display()
    );
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::file(&file).matches("^ready$"),
    )
    .timeout(QUICK);
    ex.start().expect("ready");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(200));
    ex.stop().expect("stop");
}

#[test]
fn a_file_left_by_an_earlier_run_does_not_count() {
    let dir = temp_dir();
    let file = dir.path().join("state");
    std::fs::write(&file, "ready\n").expect("stale file");
    let script = format!("sleep 0.3; echo ready > {}; exec sleep 30", file.display());
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::file(&file).matches("^ready"),
    )
    .timeout(QUICK);
    ex.start().expect("ready once rewritten");
    assert!(
        ex.ready_after().expect("ready") >= Duration::from_millis(300),
        "the stale file did not count"
    );
    ex.stop().expect("stop");
}

#[test]
fn a_pid_file_line_must_match_too() {
    let dir = temp_dir();
    let pid_file = dir.path().join("server.pid");
    let script = format!(
        "printf '%s\\nstarting\\n' $$ > {f}; sleep 0.2; printf '%s\\nready\\n' $$ > {f}; exec sleep 30",
        f = pid_file.display()
    );
    let mut ex = Executor::new(
        vec!["sh".to_string(), "-c".into(), script],
        ready::PidFile::new(&pid_file).line(2).matches("^ready"),
    )
    .timeout(QUICK);
    ex.start().expect("ready");
    assert!(ex.ready_after().expect("ready") >= Duration::from_millis(200));
    ex.stop().expect("stop");
}

// ---------------------------------------------------------------------------------------------
// 8. Captures and port discovery
// ---------------------------------------------------------------------------------------------

/// The port the helper prints with `--tcp 0`.
fn printed_port(ex: &Executor<impl ready::Check>) -> u16 {
    let stderr = ex.output().stderr_lossy().into_owned();
    let line = stderr.lines().find(|l| l.starts_with("listening on port")).expect("printed");
    line.rsplit(' ').next().and_then(|p| p.parse().ok()).expect("a port")
}

#[test]
fn banner_groups_are_returned_and_a_group_named_port_is_the_port() {
    let mut ex =
        OutputExecutor::new(svc(&["--tcp", "0"]), r"listening on (?P<what>port) (?P<port>\d+)")
            .timeout(QUICK);
    ex.start().expect("ready");
    let captures = ex.captures().expect("captures");
    assert_eq!(captures.name("what"), Some("port"));
    let port: u16 = captures.get(2).and_then(|p| p.parse().ok()).expect("a port");
    assert_eq!(ex.port(), Some(port));
    TcpStream::connect(("127.0.0.1", port)).expect("the service listens there");
    ex.stop().expect("stop");
}

#[test]
fn a_service_on_port_zero_has_its_port_discovered() {
    let mut ex = Executor::new(svc(&["--tcp", "0"]), ready::listening()).timeout(QUICK);
    ex.start().expect("listening");
    let port = ex.port().expect("discovered");
    assert_eq!(port, printed_port(&ex));
    TcpStream::connect(("127.0.0.1", port)).expect("connect");
    ex.stop().expect("stop");
}

#[test]
fn a_daemon_on_port_zero_has_its_port_discovered_too() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = Executor::new(svc(&["--daemonize", "--tcp", "0"]), ready::listening())
        .env(k, v)
        .timeout(QUICK);
    ex.start().expect("listening");
    let port = ex.port().expect("discovered in the daemon");
    TcpStream::connect(("127.0.0.1", port)).expect("connect");
    ex.stop().expect("stop");
    tag.assert_none_left();
}

// ---------------------------------------------------------------------------------------------
// 9. Ownership
// ---------------------------------------------------------------------------------------------

/// The helper will listen on `port` after 600 ms; a stranger (this test) takes the port at
/// 150 ms, after the pre-start check, so the helper fails to bind and exits 3.
fn race_for(port: u16, check: ready::Tcp) -> (Result<(), Error>, TcpListener) {
    let mut ex = Executor::new(svc(&["--delay-ms", "600", "--tcp", &port.to_string()]), check)
        .timeout(QUICK);
    let stranger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        TcpListener::bind(("127.0.0.1", port)).expect("the stranger binds first")
    });
    let result = ex.start();
    let _ = ex.stop();
    (result, stranger.join().expect("stranger"))
}

#[test]
fn an_owned_tcp_check_ignores_a_foreign_listener() {
    let port = free_port();
    let (plain, stranger) = race_for(port, ready::Tcp::new("127.0.0.1", port));
    assert!(plain.is_ok(), "a plain connect takes the stranger for the service");
    drop(stranger);

    let port = free_port();
    let (owned, _stranger) = race_for(port, ready::Tcp::new("127.0.0.1", port).owned());
    let err = owned.expect_err("the stranger does not count");
    assert!(matches!(err, Error::ProcessExitedWithError { .. }), "{err}");
    assert_eq!(status_code(&err), Some(3), "{err}");
}

#[test]
fn an_owned_tcp_check_accepts_the_services_own_listener() {
    let port = free_port();
    let mut ex = Executor::new(
        svc(&["--tcp", &port.to_string()]),
        ready::Tcp::new("127.0.0.1", port).owned(),
    )
    .timeout(QUICK);
    ex.start().expect("its own listener");
    ex.stop().expect("stop");
}

// ---------------------------------------------------------------------------------------------
// 10. After ready
// ---------------------------------------------------------------------------------------------

fn wait_dead(check_alive: impl Fn() -> Result<(), Error>) -> Error {
    let deadline = Instant::now() + QUICK;
    loop {
        if let Err(err) = check_alive() {
            return err;
        }
        assert!(Instant::now() < deadline, "the service never died");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_crash_after_ready_is_reported_with_its_status_and_output() {
    let mut ex = ready_helper(&["--exit", "7", "--exit-after-ms", "100"]).timeout(QUICK);
    ex.start().expect("ready");
    ex.check_alive().expect("alive at first");
    let err = wait_dead(|| ex.check_alive());
    assert!(matches!(err, Error::ServiceDied { .. }), "{err}");
    assert_eq!(status_code(&err), Some(7));
    let message = err.to_string();
    assert!(message.contains("died during the test (exit code 7)"), "{message}");
    assert!(message.contains(crate::READY), "the output tail: {message}");
    let _ = ex.stop();
}

#[test]
fn a_kill_after_ready_is_reported_with_the_signal() {
    let mut ex = ready_helper(&[]).timeout(QUICK);
    ex.start().expect("ready");
    let pid = ex.pid().expect("pid");
    // SAFETY: kill only takes integers; the pid is our unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let err = wait_dead(|| ex.check_alive());
    assert!(err.to_string().contains("killed by signal 9"), "{err}");
    let _ = ex.stop();
}

#[test]
fn a_daemonized_service_is_watched_through_its_tree() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex =
        TcpExecutor::new(svc(&["--daemonize", "--tcp", &port.to_string()]), "127.0.0.1", port)
            .env(k, v)
            .timeout(QUICK);
    ex.start().expect("ready");
    ex.check_alive().expect("the daemon runs although the launcher exited");
    for pid in tag.pids() {
        // SAFETY: kill only takes integers; these processes carry our tag.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let err = wait_dead(|| ex.check_alive());
    assert!(matches!(err, Error::ServiceDied { .. }), "{err}");
    let _ = ex.stop();
    tag.assert_none_left();
}

#[test]
fn a_fixture_that_died_fails_the_test_that_passed() {
    let fixtures = Fixtures::try_start(vec![Spec::args(
        "crasher",
        svc(&["--banner", "up", "--exit", "5", "--exit-after-ms", "50"]),
    )
    .output("up")])
    .unwrap_or_else(|e| panic!("start: {}", e.1));
    let fixture: &Fixture = fixtures.get(0);
    let deadline = Instant::now() + QUICK;
    while fixture.check_alive().is_ok() {
        assert!(Instant::now() < deadline, "never died");
        std::thread::sleep(Duration::from_millis(5));
    }
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fixtures.finish(false)))
        .expect_err("the test fails");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("mirakuru fixture `crasher`"), "{message}");
    assert!(message.contains("died during the test (exit code 5)"), "{message}");
    assert!(message.contains("up"), "the output tail: {message}");
}

// ---------------------------------------------------------------------------------------------
// 11. Timing
// ---------------------------------------------------------------------------------------------

#[test]
fn time_to_ready_is_recorded_for_the_check_and_its_parts() {
    let mut ex = Executor::new(
        svc(&["--notify", "--delay-ms", "100", "--ready-fd", "3", "--banner", "serving"]),
        ready::all()
            .with(ready::ready_fd(3))
            .with(ready::any().with(ready::notify()).with(ready::Banner::new("never"))),
    )
    .timeout(QUICK);
    assert!(ex.readiness_times().is_empty(), "nothing before a start");
    ex.start().expect("ready");
    let times = ex.readiness_times();
    // all, ready_fd, any, notify (the winner of any)
    assert_eq!(times.len(), 4, "{times:?}");
    assert!(times[1].0.contains("readiness fd 3"), "{times:?}");
    assert!(times[2].0.starts_with("any of"), "{times:?}");
    assert!(times[3].0.contains("READY=1"), "{times:?}");
    assert!(times.iter().all(|(_, t)| *t >= Duration::from_millis(100)), "{times:?}");
    assert_eq!(Some(times[0].1), ex.ready_after());
    ex.stop().expect("stop");
}

// ---------------------------------------------------------------------------------------------
// 12. The fixture attribute
// ---------------------------------------------------------------------------------------------

#[mirakuru::fixture(ready = all, notify = true, args = [SERVICE, "--notify", "--tcp", "{port}"], tcp = auto, owned = true)]
#[test]
fn attribute_notify_and_owned_tcp(svc: &Fixture) {
    TcpStream::connect(("127.0.0.1", svc.port())).expect("listens");
    let times = svc.readiness_times();
    assert_eq!(times.len(), 4, "all, notify, tcp, ownership: {times:?}");
}

#[mirakuru::fixture(tcp = discover, args = [SERVICE, "--tcp", "0"])]
#[test]
fn attribute_discovers_the_port(svc: &Fixture) {
    TcpStream::connect(("127.0.0.1", svc.port())).expect("the discovered port");
}

#[mirakuru::fixture(output = r"listening on port (?P<port>\d+)", args = [SERVICE, "--tcp", "0"])]
#[test]
fn attribute_banner_port_and_captures(svc: &Fixture) {
    let captures = svc.captures().expect("captures");
    assert_eq!(captures.name("port").and_then(|p| p.parse().ok()), Some(svc.port()));
}

#[mirakuru::fixture(ready_fd = 3, args = [SERVICE, "--ready-fd", "3"], timeout = "10s")]
#[test]
fn attribute_ready_fd(svc: &Fixture) {
    assert!(svc.running());
}

#[mirakuru::fixture(
    args = [SERVICE, "--delay-ms", "100", "--pid-file", "{tmpdir}/up.pid"],
    ready = all,
    exec = ["test", "-s", "{tmpdir}/up.pid"],
    exec_timeout = "1s",
    file = "{tmpdir}/up.pid",
    file_matches = "^[0-9]+$",
    check = |cx| if cx.elapsed() >= std::time::Duration::from_millis(100) { Status::Ready } else { Status::NotYet },
)]
#[test]
fn attribute_exec_file_and_custom_check(svc: &Fixture) {
    assert!(svc.tmpdir().join("up.pid").exists());
    assert_eq!(svc.readiness_times().len(), 4);
}

#[mirakuru::fixture(
    args = [SERVICE, "--banner", "serving"],
    notify = true,
    output = "serving",
    ready = any,
)]
#[test]
fn attribute_any(svc: &Fixture) {
    // The helper sends nothing without --notify: the banner won.
    assert!(svc.readiness_times()[1].0.contains("serving"));
}

#[mirakuru::fixture(
    ready = all,
    redis = auto,
    notify = true,
    exec = ["redis-cli", "-p", "{port}", "ping"],
    exec_output = "^PONG",
    owned = true,
    cmd = "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {tmpdir} --supervised systemd",
    timeout = "20s"
)]
fn attribute_redis_body(redis: &Fixture) {
    assert_eq!(redis_cli(&["-p", &redis.port().to_string()], &["PING"]).as_deref(), Ok("PONG"));
}

#[test]
fn attribute_real_redis() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    attribute_redis_body();
}

// ---------------------------------------------------------------------------------------------
// Real servers: Redis and PostgreSQL
// ---------------------------------------------------------------------------------------------

fn redis_cmd(port: u16, dir: &Path, extra: &str) -> String {
    format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {} {extra}",
        dir.display()
    )
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

#[test]
fn redis_ping_probe_and_redis_cli_exec_probe() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let mut redis = Executor::new(
        redis_cmd(port, dir.path(), ""),
        ready::all()
            .with(ready::redis("127.0.0.1", port))
            .with(ready::exec(format!("redis-cli -p {port} ping")).output("^PONG")),
    )
    .env(k, v)
    .timeout(Duration::from_secs(20));
    redis.start().expect("PONG twice");
    assert_eq!(redis.readiness_times().len(), 3);
    redis.stop().expect("stop");
    tag.assert_none_left();
}

/// Redis accepts connections while it loads its dataset and answers `-LOADING`: the TCP check
/// is ready before the PING probe.
#[test]
fn redis_loading_a_dataset_accepts_connections_before_it_answers_pong() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let with_dump = "--dbfilename dump.rdb --enable-debug-command yes";
    // A dataset big enough to take a while to load.
    let mut maker = TcpExecutor::new(redis_cmd(port, dir.path(), with_dump), "127.0.0.1", port)
        .env(k, v.clone())
        .timeout(Duration::from_secs(20));
    maker.start().expect("redis");
    redis_cli(&["-p", &port.to_string()], &["DEBUG", "POPULATE", "1500000", "key", "64"])
        .expect("populate");
    redis_cli(&["-p", &port.to_string()], &["SAVE"]).expect("save");
    maker.stop().expect("stop");
    assert!(dir.path().join("dump.rdb").exists());

    let mut redis = Executor::new(
        redis_cmd(port, dir.path(), with_dump),
        ready::all().with(ready::Tcp::new("127.0.0.1", port)).with(ready::redis("127.0.0.1", port)),
    )
    .env(k, v)
    .timeout(Duration::from_secs(60));
    redis.start().expect("loaded");
    assert_eq!(redis_cli(&["-p", &port.to_string()], &["DBSIZE"]).as_deref(), Ok("1500000"));
    let times = redis.readiness_times();
    let (tcp, ping) = (times[1].1, times[2].1);
    assert!(
        ping > tcp + Duration::from_millis(20),
        "PONG came after the loading that a connect cannot see: {times:?}"
    );
    redis.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn postgres_notifies_and_passes_every_probe() {
    let (Some(postgres), Some(pg_isready), Some(_)) =
        (postgres_bin("postgres"), postgres_bin("pg_isready"), postgres_bin("psql"))
    else {
        return;
    };
    let dir = temp_dir();
    let Some((user, data)) = initdb(dir.path()) else { return };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let cmd = postgres_command(&postgres, &data, port, dir.path());
    let check = ready::all()
        .with(ready::notify())
        .with(ready::postgres("127.0.0.1", port))
        .with(ready::Postgres::unix(dir.path(), port))
        .with(ready::file(data.join("postmaster.pid")).line(8).matches("^ready"))
        .with(ready::exec(vec![
            pg_isready.display().to_string(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ]));
    let mut pg = Executor::new(cmd, check)
        .stop_signal(Signal::SIGINT)
        .timeout(Duration::from_secs(60))
        .env(k, v);
    if let Some(user) = user {
        // The notify socket is made reachable for that user.
        pg = pg.user(user);
    }
    pg.start().expect("postgres is ready by every measure");
    assert_eq!(psql(port, "select 1").as_deref(), Ok("1"));
    let times = pg.readiness_times();
    assert_eq!(times.len(), 6, "{times:?}");
    // SCM_CREDENTIALS named the postmaster: MAINPID was not needed, the leader is the server.
    assert_eq!(pg.main_pid(), pg.pid());
    mirakuru::stopped!(pg, {
        assert!(psql(port, "select 1").is_err());
    });
    assert_eq!(psql(port, "select 40 + 2").as_deref(), Ok("42"));
    pg.stop().expect("stop");
    tag.assert_none_left();
}

/// PostgreSQL as a fixture, through the `Spec` the attribute expands to (the attribute cannot
/// find Debian's PostgreSQL binaries, outside PATH, nor run as `postgres` only when root).
#[test]
fn fixture_real_postgres_by_notify_probe_and_pid_file() {
    let Some(postgres) = postgres_bin("postgres") else { return };
    let Some(bin) = postgres.parent().map(|d| d.display().to_string()) else { return };
    let tag = Tag::new();
    let script = format!(
        "{bin}/initdb -D {{tmpdir}}/data -U postgres --auth=trust --no-sync >/dev/null && \
         exec {bin}/postgres -D {{tmpdir}}/data -p {{port}} -k {{tmpdir}} \
         -c listen_addresses=127.0.0.1 -c fsync=off"
    );
    let mut spec = Spec::args("pg", ["sh", "-c", script.as_str()])
        .postgres(Port::Auto)
        .notify()
        .file("{tmpdir}/data/postmaster.pid")
        .file_line(8)
        .file_matches("^ready")
        .env(Tag::VAR, tag.value())
        .stop_signal(Signal::SIGINT)
        .timeout(Duration::from_secs(60));
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        spec = spec.user("postgres");
    }
    let fixtures = Fixtures::start(vec![spec]);
    let pg = fixtures.get(0);
    assert_eq!(psql(pg.port(), "select 1").as_deref(), Ok("1"));
    assert_eq!(pg.readiness_times().len(), 4, "{:?}", pg.readiness_times());
    fixtures.finish(false);
    tag.assert_none_left();
}

#[test]
fn a_probe_that_leaves_a_child_holding_its_pipes_is_judged_at_its_exit() {
    let tag = Tag::new();
    let mut ex = Executor::new(
        svc(&[]),
        ready::exec(["sh", "-c", "sleep 30 & echo up"]).env(Tag::VAR, tag.value()).output("^up$"),
    )
    .timeout(QUICK);
    ex.start().expect("ready at the probe's exit, not when its child closes the pipes");
    assert!(ex.ready_after().expect("ready") < Duration::from_secs(5));
    ex.stop().expect("stop");
    // What the probe left behind is killed with it.
    tag.assert_none_left();
}

#[test]
fn an_exit_with_code_zero_after_ready_is_not_a_death() {
    let mut ex = ready_helper(&["--exit", "0", "--exit-after-ms", "50"]).timeout(QUICK);
    ex.start().expect("ready");
    let pid = ex.pid().expect("pid");
    assert!(wait_gone(pid, QUICK));
    ex.check_alive().expect("a clean exit: the service finished");
    ex.stop().expect("a clean stop too");
}

#[test]
fn a_launcher_exiting_zero_after_ready_hands_over_to_what_it_started() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    // The launcher waits a little after its daemon is ready, then exits 0 (as `pg_ctl start`).
    let script = format!("\"$0\" --daemonize --tcp {port}; sleep 0.3");
    let mut ex =
        TcpExecutor::new(vec!["sh".to_string(), "-c".into(), script, service()], "127.0.0.1", port)
            .env(k, v)
            .timeout(QUICK);
    ex.start().expect("ready");
    let launcher = ex.pid().expect("pid");
    assert!(wait_gone(launcher, QUICK));
    ex.check_alive().expect("the daemon runs on");
    for pid in tag.pids() {
        // SAFETY: kill only takes integers; these processes carry our tag.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let err = wait_dead(|| ex.check_alive());
    assert!(matches!(err, Error::ServiceDied { status: None, .. }), "{err}");
    let _ = ex.stop();
    tag.assert_none_left();
}
