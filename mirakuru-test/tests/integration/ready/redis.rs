//! The Redis probe (`ready::redis`): `PING` until `PONG`, through `-LOADING`; against a fake
//! server and against real Redis, by hand and through the attribute.

use std::time::Duration;

use mirakuru::ready;
use mirakuru::{Error, Executor, Fixture, TcpExecutor};
use mirakuru_test::{free_port, redis_cli, require, temp_dir, Tag};

use crate::{fake_server, redis_cmd, svc, tag_env, QUICK};

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

/// An attempt cut short by the end of the start heard nothing, and says nothing: the message
/// keeps what the attempts before it heard. (Under load, a start's last attempt often began
/// with a millisecond left, and "no complete answer within 1ms" hid the `-LOADING`.)
#[test]
fn an_attempt_cut_short_by_the_start_timeout_does_not_hide_the_last_answer() {
    use std::io::{Read, Write};
    let port = free_port();
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        // Listening after the executor's "already running" check.
        std::thread::sleep(Duration::from_millis(100));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let (mut first, _) = listener.accept().expect("the first attempt");
        let mut ping = [0u8; 14];
        first.read_exact(&mut ping).expect("PING");
        first.write_all(b"-LOADING Redis is loading the dataset in memory\r\n").expect("answer");
        // Later attempts are connected by the kernel, and hear nothing.
        let _ = done.recv_timeout(QUICK);
    });
    let mut ex = Executor::new(svc(&[]), ready::redis("127.0.0.1", port))
        .timeout(Duration::from_millis(600));
    let err = ex.start().expect_err("never ready");
    let _ = done_tx.send(());
    server.join().expect("server");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err}");
    assert!(err.to_string().contains("-LOADING"), "the last answer is in the message: {err}");
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
