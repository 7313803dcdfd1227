//! Unix socket readiness (`ready::Unix`, `UnixSocketExecutor`): a socket that accepts
//! connections, not merely one that exists; relative paths; a socket already taken.

use std::time::{Duration, Instant};

use mirakuru::{Error, UnixSocketExecutor};
use mirakuru_test::{temp_dir, Tag};

use crate::{assert_stopped_and_gone, svc, tag_env};

#[test]
fn unix_socket_executor_waits_for_the_socket() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let socket = dir.path().join("s.sock");
    let socket_arg = socket.display().to_string();
    let mut ex =
        UnixSocketExecutor::new(svc(&["--delay-ms", "30", "--unix", &socket_arg]), &socket)
            .env(k, v);
    ex.start().expect("start");
    std::os::unix::net::UnixStream::connect(&socket)
        .expect("the socket accepts connections once started");
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn unix_socket_already_running_is_refused() {
    let dir = temp_dir();
    let socket = dir.path().join("taken.sock");
    let _squatter = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let mut ex = UnixSocketExecutor::new(svc(&[]), &socket);
    let err = ex.start().expect_err("taken");
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
}

#[test]
fn unix_socket_bound_before_listening_is_not_ready_until_it_listens() {
    let dir = temp_dir();
    let socket = dir.path().join("late.sock");
    let mut ex = UnixSocketExecutor::new(
        svc(&["--unix", &socket.display().to_string(), "--bind-before-listen-ms", "150"]),
        &socket,
    );
    let began = Instant::now();
    ex.start().expect("start");
    assert!(began.elapsed() >= Duration::from_millis(150));
    ex.stop().expect("stop");
}

#[test]
fn unix_socket_paths_are_relative_to_cwd() {
    let dir = temp_dir();
    let mut ex = UnixSocketExecutor::new(svc(&["--unix", "rel.sock"]), "rel.sock").cwd(dir.path());
    ex.start().expect("the relative socket is found in cwd");
    ex.stop().expect("stop");
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // bad-input catalogue #33
    #[test]
    fn unix_socket_path_too_long() {
        let probe = Probe::new();
        let long = format!("/tmp/{}/s.sock", "d".repeat(120));
        refused(
            UnixSocketExecutor::new(probe.argv(), long).into_inner(),
            "bytes long, more than the",
            "use a shorter directory",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #34
    #[test]
    fn empty_unix_socket_path() {
        let probe = Probe::new();
        refused(
            UnixSocketExecutor::new(probe.argv(), "").into_inner(),
            "the unix socket path is empty",
            "give the path the service will listen on",
        );
        probe.assert_nothing_spawned();
    }
}
