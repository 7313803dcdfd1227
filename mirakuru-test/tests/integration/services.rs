//! Real servers, used through their real clients: Redis, PostgreSQL, nginx, memcached. Each
//! test prints one line and returns when its server is not installed, and fails instead with
//! `MIRAKURU_REQUIRE_SERVICES=1` (set by `.ci/run`, which installs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use mirakuru::{
    Executor, HttpExecutor, OutputExecutor, PidExecutor, Signal, TcpExecutor, UnixSocketExecutor,
};
use mirakuru_test::{
    free_port, initdb, postgres_bin, postgres_command, psql, redis_cli, require, temp_dir, Tag,
};

use crate::tag_env;

fn assert_gone(dir: &Path) {
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

#[test]
fn redis_over_tcp_with_redis_cli() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let cmd = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {}",
        dir.path().display()
    );
    let mut redis =
        TcpExecutor::new(cmd, "127.0.0.1", port).timeout(Duration::from_secs(20)).env(k, v);
    redis.start().expect("redis starts");
    let target = ["-p", &port.to_string()];
    let target: Vec<&str> = target.to_vec();
    assert_eq!(redis_cli(&target, &["PING"]).expect("ping"), "PONG");
    assert_eq!(redis_cli(&target, &["SET", "fruit", "mango"]).expect("set"), "OK");
    assert_eq!(redis_cli(&target, &["GET", "fruit"]).expect("get"), "mango");
    mirakuru::stopped!(redis, {
        assert!(redis_cli(&target, &["PING"]).is_err(), "redis is down inside stopped!");
    });
    assert_eq!(redis_cli(&target, &["PING"]).expect("ping after restart"), "PONG");
    redis.stop().expect("redis stops cleanly");
    tag.assert_none_left();
    let path = dir.path().to_path_buf();
    drop(dir);
    assert_gone(&path);
}

#[test]
fn redis_by_banner_and_by_unix_socket() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let socket = dir.path().join("redis.sock");
    let port = free_port();
    let base = format!(
        "redis-server --bind 127.0.0.1 --save '' --appendonly no --dir {}",
        dir.path().display()
    );

    let mut by_banner =
        OutputExecutor::new(format!("{base} --port {port}"), "Ready to accept connections")
            .env(k, v.clone());
    by_banner.start().expect("banner");
    assert_eq!(redis_cli(&["-p", &port.to_string()], &["PING"]).expect("ping"), "PONG");
    by_banner.stop().expect("stop");

    let mut by_socket = UnixSocketExecutor::new(
        format!("{base} --port 0 --unixsocket {}", socket.display()),
        &socket,
    )
    .env(k, v);
    by_socket.start().expect("socket");
    let socket_arg = socket.display().to_string();
    assert_eq!(redis_cli(&["-s", &socket_arg], &["PING"]).expect("ping"), "PONG");
    mirakuru::stopped!(by_socket, {
        assert!(redis_cli(&["-s", &socket_arg], &["PING"]).is_err());
    });
    assert_eq!(redis_cli(&["-s", &socket_arg], &["PING"]).expect("ping"), "PONG");
    by_socket.stop().expect("stop");
    tag.assert_none_left();
}

#[test]
fn postgres_started_directly_used_with_psql() {
    let (Some(postgres), Some(_)) = (postgres_bin("postgres"), postgres_bin("psql")) else {
        return;
    };
    let dir = temp_dir();
    let Some((user, data)) = initdb(dir.path()) else { return };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let cmd = postgres_command(&postgres, &data, port, dir.path());
    // SIGINT is PostgreSQL's "fast shutdown"; SIGTERM would wait for clients to leave. Ready
    // as pg_isready decides: a TCP connect succeeds while it still answers 57P03.
    let mut pg = Executor::new(cmd, mirakuru::ready::postgres("127.0.0.1", port))
        .stop_signal(Signal::SIGINT)
        .timeout(Duration::from_secs(60))
        .env(k, v);
    if let Some(user) = user {
        pg = pg.user(user);
    }
    pg.start().expect("postgres starts");
    assert_eq!(psql(port, "select 1").expect("select 1"), "1");
    mirakuru::stopped!(pg, {
        assert!(psql(port, "select 1").is_err(), "postgres is down inside stopped!");
    });
    assert_eq!(psql(port, "select 40 + 2").expect("select after restart"), "42");
    pg.stop().expect("postgres stops cleanly");
    tag.assert_none_left();
}

#[test]
fn postgres_through_pg_ctl_a_launcher_that_exits_while_the_server_lives_on() {
    let (Some(pg_ctl), Some(_)) = (postgres_bin("pg_ctl"), postgres_bin("psql")) else { return };
    let dir = temp_dir();
    let Some((user, data)) = initdb(dir.path()) else { return };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let options =
        format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.path().display());
    let cmd = vec![
        pg_ctl.display().to_string(),
        "start".into(),
        "-D".into(),
        data.display().to_string(),
        "-o".into(),
        options,
        "-l".into(),
        dir.path().join("postgres.log").display().to_string(),
    ];
    // pg_ctl exits 0 once the server it started is up: the executor follows the server.
    let mut pg = Executor::new(cmd, mirakuru::ready::postgres("127.0.0.1", port))
        .stop_signal(Signal::SIGINT)
        .timeout(Duration::from_secs(60))
        .env(k, v);
    if let Some(user) = user {
        pg = pg.user(user);
    }
    pg.start().expect("pg_ctl start");
    assert!(pg.running(), "the server runs though pg_ctl exited");
    assert_eq!(psql(port, "select 1").expect("select 1"), "1");
    mirakuru::stopped!(pg, {
        assert!(psql(port, "select 1").is_err());
    });
    assert_eq!(psql(port, "select 1").expect("select after restart"), "1");
    pg.stop().expect("stop");
    tag.assert_none_left();
}

/// The command line of an nginx whose configuration, logs and pid file are all in `dir`.
fn nginx_command(nginx: String, dir: &Path, port: u16, daemon: bool) -> Vec<String> {
    let conf = nginx_config(dir, port, daemon);
    let d = dir.display();
    let error_log = format!("{d}/error.log");
    vec![
        nginx,
        "-p".into(),
        d.to_string(),
        "-c".into(),
        conf.display().to_string(),
        "-e".into(),
        error_log,
    ]
}

/// A minimal nginx configuration inside `dir`.
fn nginx_config(dir: &Path, port: u16, daemon: bool) -> std::path::PathBuf {
    let d = dir.display();
    let conf = format!(
        "daemon {}; master_process on; worker_processes 1; pid {d}/nginx.pid;\n\
         error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hello from nginx\\n\"; }} }} }}\n",
        if daemon { "on" } else { "off" }
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    path
}

fn http_get(port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    Ok(response)
}

fn nginx() -> Option<String> {
    if Path::new("/usr/sbin/nginx").is_file() {
        return Some("/usr/sbin/nginx".into());
    }
    require("nginx").then(|| "nginx".into())
}

#[test]
fn nginx_by_http_status() {
    let Some(nginx) = nginx() else { return };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let cmd = nginx_command(nginx, dir.path(), port, false);
    let mut web = HttpExecutor::new(cmd, format!("http://127.0.0.1:{port}/"))
        .method("GET")
        .status(200)
        .env(k, v);
    web.start().expect("nginx starts");
    assert!(http_get(port).expect("get").contains("hello from nginx"));
    mirakuru::stopped!(web, {
        assert!(http_get(port).is_err());
    });
    assert!(http_get(port).expect("get after restart").contains("hello from nginx"));
    web.stop().expect("nginx stops cleanly");
    tag.assert_none_left();
}

#[test]
fn nginx_daemon_by_its_pid_file() {
    let Some(nginx) = nginx() else { return };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let cmd = nginx_command(nginx, dir.path(), port, true);
    // `daemon on`: the launcher exits at once; the master it leaves writes the pid file.
    let mut web = PidExecutor::new(cmd, dir.path().join("nginx.pid")).env(k, v);
    web.start().expect("nginx starts");
    assert!(web.running(), "the daemon runs though the launcher exited");
    // The pid file can come before the socket; wait for the port the way a client would.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        match http_get(port) {
            Ok(body) => break body,
            Err(e) if std::time::Instant::now() > deadline => panic!("nginx never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    assert!(body.contains("hello from nginx"));
    web.stop().expect("nginx stops");
    tag.assert_none_left();
}

/// nginx blocks its signals until its master process is set up: a SIGTERM that arrives in
/// that moment is lost, and a stop right after the start used to sit out the whole stop
/// timeout (10 s) in most rounds. A stop signal the service did not act on is sent again.
#[test]
fn a_daemonized_nginx_stopped_right_after_it_started_stops_at_once() {
    let Some(nginx) = nginx() else { return };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let dir = temp_dir();
    let port = free_port();
    let cmd = nginx_command(nginx, dir.path(), port, true);
    let mut slowest = Duration::ZERO;
    for round in 0..100 {
        let mut web = PidExecutor::new(cmd.clone(), dir.path().join("nginx.pid"))
            .env(k, v.clone())
            .timeout(Duration::from_secs(30));
        web.start().unwrap_or_else(|e| panic!("round {round}: {e}"));
        // nginx overwrites its environment with its process title: the tag does not find it.
        let pid_file = std::fs::read_to_string(dir.path().join("nginx.pid")).expect("pid file");
        let master: u32 = pid_file.trim().parse().expect("a pid");
        let began = std::time::Instant::now();
        web.stop().unwrap_or_else(|e| panic!("round {round}: {e}"));
        let took = began.elapsed();
        assert!(!mirakuru_test::is_alive(master), "round {round}: the master outlived stop()");
        // The master deletes its pid file as it exits, after its workers: it ended on its own.
        assert!(!dir.path().join("nginx.pid").exists(), "round {round}: nginx was killed");
        tag.assert_none_left();
        // Loose (the goal is 100 ms): a lost SIGTERM costs the whole stop timeout, 10 s.
        assert!(took < Duration::from_secs(5), "round {round}: the stop took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("slowest of 100 stops of a daemonized nginx: {slowest:?}");
}

#[test]
fn memcached_set_and_get_over_its_text_protocol() {
    if !require("memcached") {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    // SAFETY: geteuid cannot fail.
    let user: &[&str] = if unsafe { libc::geteuid() } == 0 { &["-u", "nobody"] } else { &[] };
    let mut cmd = vec![
        "memcached".to_string(),
        "-p".into(),
        port.to_string(),
        "-l".into(),
        "127.0.0.1".into(),
        "-U".into(),
        "0".into(),
    ];
    cmd.extend(user.iter().map(|s| s.to_string()));
    let mut cache = Executor::new(cmd, mirakuru::ready::Tcp::new("127.0.0.1", port)).env(k, v);
    cache.start().expect("memcached starts");
    let talk = |request: &str| -> Result<String, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                break;
            }
            let end = matches!(line.trim(), "END" | "STORED" | "ERROR");
            answer.push_str(&line);
            if end {
                break;
            }
        }
        Ok(answer)
    };
    assert_eq!(talk("set fruit 0 0 5\r\nmango\r\n").expect("set"), "STORED\r\n");
    assert_eq!(talk("get fruit\r\n").expect("get"), "VALUE fruit 0 5\r\nmango\r\nEND\r\n");
    mirakuru::stopped!(cache, {
        assert!(talk("get fruit\r\n").is_err());
    });
    assert_eq!(talk("get fruit\r\n").expect("get after restart"), "END\r\n", "a fresh memcached");
    cache.stop().expect("memcached stops");
    tag.assert_none_left();
}

/// `redis-server --daemonize yes` with a TCP check: the daemon escapes its session and
/// overwrites its environment, but it is reparented to the test binary (a subreaper) and
/// found as the owner of the port: `running()` follows it and `stop()` stops it. (`start()`
/// used to succeed, `running()` be false at once, and Redis keep serving after `stop()`.)
#[test]
fn redis_daemonize_yes_is_followed_and_stopped() {
    if !require("redis-server") {
        return;
    }
    let dir = temp_dir();
    let port = free_port();
    let pid_file = dir.path().join("redis.pid");
    let cmd = format!(
        "redis-server --port {port} --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
         --dir {} --pidfile {}",
        dir.path().display(),
        pid_file.display()
    );
    let mut redis = TcpExecutor::new(cmd, "127.0.0.1", port).timeout(Duration::from_secs(20));
    redis.start().expect("start");
    // Redis writes its pid file after it listens: wait for it.
    let daemon = mirakuru_test::pid_from_file(&pid_file, Duration::from_secs(5))
        .expect("Redis writes its pid file");
    let running = redis.running();
    let stopped = redis.stop();
    let gone = mirakuru_test::gone_or_killed(daemon, Duration::from_secs(2));
    assert!(running, "running() follows the daemon");
    stopped.expect("stop");
    assert!(gone, "the daemon is stopped");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing serves any more");
}
