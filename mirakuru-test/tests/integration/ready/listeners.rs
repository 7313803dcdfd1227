//! Listeners of the service's own tree (`ready::listening()`, `Tcp::owned()`): the port of a
//! service started on port 0 discovered; a foreign listener on the service's port ignored.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use mirakuru::ready;
use mirakuru::{Error, Executor, Fixture};
use mirakuru_test::{free_port, Tag};

use crate::{status_code, svc, tag_env, QUICK, SERVICE};

/// The port the helper prints with `--tcp 0`.
fn printed_port(ex: &Executor<impl ready::Check>) -> u16 {
    let stderr = ex.output().stderr_lossy().into_owned();
    let line = stderr.lines().find(|l| l.starts_with("listening on port")).expect("printed");
    line.rsplit(' ').next().and_then(|p| p.parse().ok()).expect("a port")
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

#[mirakuru::fixture(tcp = discover, args = [SERVICE, "--tcp", "0"])]
#[test]
fn attribute_discovers_the_port(svc: &Fixture) {
    TcpStream::connect(("127.0.0.1", svc.port())).expect("the discovered port");
}

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

/// While other services are being spawned, an owned check still ignores a stranger: between
/// fork and exec each of them is a copy of the test binary holding the stranger's socket, and
/// looks like an orphan of the binary, a daemon this service might have left. (Such a child
/// was adopted: the check took the stranger for the service, and a stop would have killed
/// another test's service.)
#[test]
fn an_owned_tcp_check_ignores_a_stranger_while_other_services_are_spawned() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // The stranger binds after the start's check that nothing serves there yet.
    let port = free_port();
    let stranger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        TcpListener::bind(("127.0.0.1", port)).expect("the stranger binds")
    });
    let done = Arc::new(AtomicBool::new(false));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut spawned = 0;
                while !done.load(Ordering::Relaxed) {
                    let mut other = mirakuru::SimpleExecutor::new(svc(&[]));
                    other.start().expect("another service starts");
                    other.stop().expect("and stops");
                    spawned += 1;
                }
                spawned
            })
        })
        .collect();
    let mut ex = Executor::new(svc(&[]), ready::Tcp::new("127.0.0.1", port).owned())
        .timeout(Duration::from_millis(1500));
    let result = ex.start();
    let _ = ex.stop();
    done.store(true, Ordering::Relaxed);
    let spawned: u32 = spawners.into_iter().map(|s| s.join().expect("spawner")).sum();
    assert!(spawned > 0, "other services were spawned meanwhile");
    drop(stranger.join().expect("the stranger"));
    let err = result.expect_err("the stranger's socket is not the service's");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
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
