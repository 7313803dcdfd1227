//! TCP readiness (`ready::Tcp`, `TcpExecutor`): a port that accepts connections, over IPv4,
//! IPv6 and host names; a port already taken before the spawn.

use std::time::{Duration, Instant};

use mirakuru::{Error, TcpExecutor};
use mirakuru_test::{free_port, temp_dir, Tag};

use crate::{assert_stopped_and_gone, svc, tag_env};

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn tcp_executor_waits_for_the_port() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex =
        TcpExecutor::new(svc(&["--delay-ms", "50", "--tcp", &port.to_string()]), "127.0.0.1", port)
            .env(k, v);
    assert_eq!((ex.host(), ex.port()), ("127.0.0.1".to_string(), port));
    ex.start().expect("start");
    std::net::TcpStream::connect(("127.0.0.1", port))
        .expect("the port accepts connections once started");
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn tcp_already_running_is_refused_before_spawning() {
    let dir = temp_dir();
    let count = dir.path().join("starts");
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = squatter.local_addr().expect("addr").port();
    let mut ex = TcpExecutor::new(
        svc(&["--count-file", &count.display().to_string(), "--tcp", &port.to_string()]),
        "127.0.0.1",
        port,
    );
    let err = ex.start().expect_err("the port is taken");
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count_lines(&count), 0, "nothing was spawned");
}

#[test]
fn tcp_readiness_works_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--host", "::1", "--tcp", &port.to_string()]), "::1", port);
    ex.start().expect("start over IPv6");
    ex.stop().expect("stop");
    let mut bracketed =
        TcpExecutor::new(svc(&["--host", "::1", "--tcp", &port.to_string()]), "[::1]", port);
    bracketed.start().expect("bracketed literal");
    bracketed.stop().expect("stop");
}

#[test]
fn tcp_readiness_resolves_host_names() {
    let port = free_port();
    let mut ex = TcpExecutor::new(svc(&["--tcp", &port.to_string()]), "localhost", port);
    ex.start().expect("localhost resolves");
    ex.stop().expect("stop");
}

#[test]
fn a_bound_but_not_listening_port_is_not_ready() {
    let port = free_port();
    let mut ex = TcpExecutor::new(
        svc(&["--tcp", &port.to_string(), "--bind-before-listen-ms", "200"]),
        "127.0.0.1",
        port,
    );
    let began = Instant::now();
    ex.start().expect("start");
    assert!(began.elapsed() >= Duration::from_millis(200), "ready only once listening");
    ex.stop().expect("stop");
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #27
    #[test]
    fn tcp_port_0() {
        let probe = Probe::new();
        refused(
            TcpExecutor::new(probe.argv(), "127.0.0.1", 0).into_inner(),
            "port 0 cannot be waited for",
            "give the port it will listen on",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #29
    #[test]
    fn empty_tcp_host() {
        let probe = Probe::new();
        refused(
            TcpExecutor::new(probe.argv(), "", 80).into_inner(),
            "the host is empty",
            "such as 127.0.0.1",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #30
    #[test]
    fn host_name_that_does_not_resolve() {
        let probe = Probe::new();
        refused(
            TcpExecutor::new(probe.argv(), "no-such-host.invalid", 80).into_inner(),
            "the host \"no-such-host.invalid\" does not resolve",
            "check its spelling or use an IP address",
        );
        probe.assert_nothing_spawned();
    }
}
