//! Each of the seven executors starts a real process, waits for it, and stops it.

use std::time::Duration;

use mirakuru::ready::{self, Status};
use mirakuru::{
    Executor, HttpExecutor, OutputExecutor, PidExecutor, SimpleExecutor, TcpExecutor,
    UnixSocketExecutor,
};
use mirakuru_test::{free_port, is_alive, temp_dir, wait_gone, Tag};

use crate::{svc, tag_env};

fn assert_stopped_and_gone(pid: u32, tag: &Tag) {
    assert!(wait_gone(pid, Duration::from_secs(5)), "pid {pid} still runs after stop");
    tag.assert_none_left();
}

#[test]
fn simple_executor_starts_and_stops() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = SimpleExecutor::new(svc(&[])).env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    assert!(ex.running());
    assert!(is_alive(pid));
    ex.stop().expect("stop");
    assert!(!ex.running());
    assert_eq!(ex.pid(), None);
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn output_executor_waits_for_its_banner() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex =
        OutputExecutor::new(svc(&["--delay-ms", "30", "--banner", "service is ready"]), "is ready")
            .env(k, v);
    ex.start().expect("start");
    assert!(ex.output().stdout_lossy().contains("service is ready"));
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
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
fn http_executor_waits_for_a_2xx() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/health");
    let mut ex =
        HttpExecutor::new(svc(&["--delay-ms", "30", "--tcp", &port.to_string(), "--http"]), &url)
            .env(k, v);
    assert_eq!(ex.port(), port);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn pid_executor_waits_for_the_pid_file() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let pid_file = dir.path().join("service.pid");
    let arg = pid_file.display().to_string();
    let mut ex =
        PidExecutor::new(svc(&["--delay-ms", "30", "--pid-file", &arg]), &pid_file).env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    let written: u32 =
        std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("a pid");
    assert_eq!(written, pid);
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn generic_executor_takes_a_closure() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let flag = dir.path().join("flag");
    let seen = flag.clone();
    let mut ex = Executor::new(
        vec![
            "sh".to_string(),
            "-c".into(),
            format!("sleep 0.05; touch {}; exec sleep 300", flag.display()),
        ],
        ready::custom("the flag file", move |cx| {
            assert!(cx.pid() > 0);
            if seen.exists() {
                Status::Ready
            } else {
                Status::NotYet
            }
        }),
    )
    .env(k, v);
    ex.start().expect("start");
    assert!(flag.exists());
    let pid = ex.pid().expect("pid");
    ex.stop().expect("stop");
    assert_stopped_and_gone(pid, &tag);
}

#[test]
fn generic_executor_takes_a_boxed_check() {
    let port = free_port();
    let check: Box<dyn ready::Check> = Box::new(ready::Tcp::new("localhost", port));
    let mut ex = Executor::new(svc(&["--tcp", &port.to_string()]), check);
    ex.start().expect("start");
    ex.stop().expect("stop");
}
