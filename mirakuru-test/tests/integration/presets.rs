//! The ready-made services (`mirakuru::services`): PostgreSQL, Redis, MariaDB, memcached and
//! nginx started by one call, restarted by `stopped!` without being prepared again, a
//! database of its own per test, removed after the test (also after a panic), and external
//! services named by an environment variable. The database tests run twice when the suite
//! runs as root: as root (the server runs as the service's user) and as an unprivileged
//! user (it runs as the caller).

use std::path::Path;
use std::time::Duration;

use mirakuru::{services, Database, Fixture};
use mirakuru_test::{postgres_bin, require, temp_dir};

use crate::{in_child, in_child_unprivileged};

/// `psql -d URL -tAc SQL`: the answer, or the error.
fn sql(url: &str, sql: &str) -> Result<String, String> {
    let psql = postgres_bin("psql").ok_or("no psql")?;
    let out = std::process::Command::new(psql)
        .args(["-X", "-w", "-d", url, "-tAc", sql])
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// `mariadb -e SQL` against a database.
fn mysql(db: &Database, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("mariadb")
        .args(["--no-defaults", "--protocol=tcp", "-N", "-B"])
        .arg(format!("--host={}", db.host()))
        .arg(format!("--port={}", db.port()))
        .arg(format!("--user={}", db.user().unwrap_or("root")))
        .env("MYSQL_PWD", db.password().unwrap_or(""))
        .arg(format!("--database={}", db.name()))
        .args(["-e", sql])
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

fn redis(url: &str, command: &[&str]) -> Result<String, String> {
    mirakuru_test::redis_cli(&["-u", url], command)
}

fn has_postgres() -> bool {
    postgres_bin("postgres").is_some() && postgres_bin("psql").is_some()
}

/// The databases of the server, by name.
fn databases(pg: &Fixture) -> Vec<String> {
    let all = sql(pg.url(), "SELECT datname FROM pg_database").expect("the list of databases");
    all.lines().map(str::to_string).collect()
}

fn schema_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("schema.sql");
    std::fs::write(&path, text).expect("the schema file");
    // An unprivileged child must read it.
    let _ = std::process::Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    path
}

/// Two tests' databases on one server: the same table name in each, and neither sees the
/// other's rows; the schema comes from the template; each database is gone once dropped,
/// also when its test panicked.
fn postgres_databases_are_isolated_and_dropped() {
    let dir = temp_dir();
    let schema =
        schema_file(dir.path(), "CREATE TABLE items (id serial PRIMARY KEY, name text);\n");
    let pg = services::postgres().load(&schema).start().expect("PostgreSQL starts");
    assert!(pg.url().starts_with("postgresql://postgres:"), "{}", pg.url());
    // The password guards TCP: without it, another local user is refused.
    let bare = format!("postgresql://postgres@127.0.0.1:{}/postgres", pg.port());
    assert!(sql(&bare, "SELECT 1").is_err_and(|e| e.contains("password")), "no password");
    assert_eq!(pg.user(), Some("postgres"));
    assert!(pg.socket().exists(), "the unix socket {}", pg.socket().display());
    let (a, b) = (pg.database().expect("a database"), pg.database().expect("another"));
    assert_ne!(a.name(), b.name());
    sql(a.url(), "INSERT INTO items (name) VALUES ('a1'), ('a2')").expect("insert into a");
    sql(b.url(), "INSERT INTO items (name) VALUES ('b1')").expect("insert into b");
    assert_eq!(
        sql(a.url(), "SELECT string_agg(name, ',' ORDER BY id) FROM items").as_deref(),
        Ok("a1,a2")
    );
    assert_eq!(
        sql(b.url(), "SELECT string_agg(name, ',' ORDER BY id) FROM items").as_deref(),
        Ok("b1")
    );
    let (a_name, b_name) = (a.name().to_string(), b.name().to_string());
    drop(a);
    assert!(!databases(&pg).contains(&a_name), "{a_name} was dropped with its value");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _b = b;
        panic!("the test fails");
    }));
    assert!(panicked.is_err());
    assert!(!databases(&pg).contains(&b_name), "{b_name} was dropped though its test panicked");
}

#[test]
fn postgres_preset_databases_as_root_and_as_a_user() {
    if !has_postgres() {
        return;
    }
    // As the user running the suite (root in CI: the server runs as `postgres`) …
    if !in_child("presets::postgres_preset_databases_as_root_and_as_a_user", &[]) {
        // … and as an unprivileged user, where it runs as that user.
        in_child_unprivileged("presets::postgres_preset_databases_as_root_and_as_a_user", &[]);
        return;
    }
    postgres_databases_are_isolated_and_dropped();
}

#[test]
fn stopped_restarts_postgres_without_initialising_it_again() {
    if !has_postgres() {
        return;
    }
    const NAME: &str = "presets::stopped_restarts_postgres_without_initialising_it_again";
    if !in_child(NAME, &[]) {
        in_child_unprivileged(NAME, &[]);
        return;
    }
    let pg = services::postgres().start().expect("PostgreSQL starts");
    sql(pg.url(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)").expect("a table");
    let url = pg.url().to_string();
    mirakuru::stopped!(pg, {
        assert!(sql(&url, "SELECT 1").is_err(), "down inside the block");
    });
    // The same data directory: initdb again would have lost the table.
    assert_eq!(sql(pg.url(), "SELECT x FROM kept").as_deref(), Ok("42"));
    assert_eq!(pg.url(), url, "the same port after the restart");
}

#[test]
fn the_external_mode_starts_nothing_and_still_gives_databases() {
    if !has_postgres() {
        return;
    }
    const NAME: &str = "presets::the_external_mode_starts_nothing_and_still_gives_databases";
    if std::env::var_os("MIRAKURU_POSTGRES_URL").is_none() {
        // A server started outside the fixture under test.
        let server = services::postgres().start().expect("PostgreSQL starts");
        let url = server.url().to_string();
        let pid = server.pid().unwrap_or(0).to_string();
        let env = [("MIRAKURU_POSTGRES_URL", url.as_str()), ("MIRAKURU_TEST_EXTERNAL_PID", &pid)];
        // As the user running the suite, and as an unprivileged one when that is root.
        in_child(NAME, &env);
        in_child_unprivileged(NAME, &env);
        return;
    }
    let pg = services::postgres().start().expect("the external server answers");
    assert_eq!(pg.pid(), None, "nothing was started");
    assert!(pg.stop().is_err(), "an external service is not ours to stop");
    let db = pg.database().expect("a database on the external server");
    sql(db.url(), "CREATE TABLE t (x int)").expect("a table");
    let name = db.name().to_string();
    drop(db);
    assert!(!databases(&pg).contains(&name), "dropped");
    drop(pg);
    let pid: u32 =
        std::env::var("MIRAKURU_TEST_EXTERNAL_PID").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    // /proc, not kill(0): an unprivileged child may not signal the server it is shown.
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the external server lives on");
}

#[test]
fn an_external_url_that_is_not_one_is_a_clear_error() {
    const NAME: &str = "presets::an_external_url_that_is_not_one_is_a_clear_error";
    if !in_child(NAME, &[("MIRAKURU_REDIS_URL", "localhost:6379")]) {
        return;
    }
    let err = services::redis().start().expect_err("not a URL").to_string();
    assert!(err.contains("MIRAKURU_REDIS_URL") && err.contains("scheme"), "{err}");
}

#[test]
fn redis_preset_gives_each_test_a_flushed_database_of_its_own() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    if !in_child("presets::redis_preset_gives_each_test_a_flushed_database_of_its_own", &[]) {
        in_child_unprivileged(
            "presets::redis_preset_gives_each_test_a_flushed_database_of_its_own",
            &[],
        );
        return;
    }
    let server = services::redis().start().expect("Redis starts");
    assert!(server.url().starts_with("redis://default:"), "{}", server.url());
    // The password guards the port: without it, another local user is refused.
    let bare = format!("redis://127.0.0.1:{}", server.port());
    assert!(redis(&bare, &["SET", "k", "v"]).is_ok_and(|a| a.starts_with("NOAUTH")), "no password");
    let (a, b) = (server.database().expect("a database"), server.database().expect("another"));
    assert_ne!(a.name(), b.name());
    redis(a.url(), &["SET", "k", "a"]).expect("SET");
    assert_eq!(redis(b.url(), &["GET", "k"]).as_deref(), Ok(""), "b does not see a's key");
    let index = a.name().to_string();
    drop(a);
    let again = server.database().expect("the index again");
    assert_eq!(again.name(), index, "a freed index is taken again");
    assert_eq!(redis(again.url(), &["DBSIZE"]).as_deref(), Ok("0"), "flushed");
    let url = server.url().to_string();
    mirakuru::stopped!(server, {
        assert!(redis(&url, &["PING"]).is_err(), "down inside the block");
    });
    assert_eq!(redis(server.url(), &["PING"]).as_deref(), Ok("PONG"));
}

#[test]
fn mariadb_preset_databases_are_isolated_and_dropped() {
    if !require("mariadbd") || !require("mariadb") {
        return;
    }
    if !in_child("presets::mariadb_preset_databases_are_isolated_and_dropped", &[]) {
        in_child_unprivileged("presets::mariadb_preset_databases_are_isolated_and_dropped", &[]);
        return;
    }
    let dir = temp_dir();
    let schema = schema_file(dir.path(), "CREATE TABLE items (id int PRIMARY KEY, name text);\n");
    let db = services::mariadb()
        .load(&schema)
        .timeout(Duration::from_secs(120))
        .start()
        .expect("MariaDB starts");
    assert!(db.url().starts_with("mysql://root:"), "{}", db.url());
    // The password guards the port: without it, another local user is refused.
    let refused = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "--protocol=tcp",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-e",
            "SELECT 1",
        ])
        .arg(format!("--port={}", db.port()))
        .env_remove("MYSQL_PWD")
        .output()
        .expect("mariadb runs");
    assert!(!refused.status.success(), "root without a password is refused");
    let (a, b) = (db.database().expect("a database"), db.database().expect("another"));
    mysql(&a, "INSERT INTO items VALUES (1, 'a')").expect("insert");
    assert_eq!(mysql(&b, "SELECT count(*) FROM items").as_deref(), Ok("0"));
    let name = a.name().to_string();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _a = a;
        panic!("the test fails");
    }));
    assert!(panicked.is_err());
    let left = mysql(&b, "SHOW DATABASES").expect("the list");
    assert!(!left.lines().any(|l| l == name), "{name} was dropped though its test panicked");
    mirakuru::stopped!(db, {});
    assert_eq!(mysql(&b, "SELECT count(*) FROM items").as_deref(), Ok("0"), "back, same data");
}

#[test]
fn memcached_and_nginx_presets_answer() {
    if require("memcached") {
        let mc = services::memcached().start().expect("memcached starts");
        assert!(mc.port() > 0);
    }
    if require("nginx") {
        let web = services::nginx().start().expect("nginx starts");
        std::fs::write(web.tmpdir().join("html/hello.txt"), "hi\n").expect("a file to serve");
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", web.port())).expect("connect");
        use std::io::{Read, Write};
        stream.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi\n"), "{answer}");
    }
}

#[mirakuru::fixture(service = postgres, scope = run)]
static PG: mirakuru::SharedFixture;

#[test]
fn the_attribute_gives_a_shared_preset_and_a_database_per_test() {
    if !has_postgres() {
        return;
    }
    let db = PG.database();
    sql(db.url(), "CREATE TABLE mine (x int)").expect("a table in a database of its own");
    assert_eq!(PG.get().user(), Some("postgres"));
}

#[test]
fn the_attribute_starts_a_preset_for_one_test() {
    if !require("redis-server") || !require("redis-cli") {
        return;
    }
    #[mirakuru::fixture(service = redis)]
    fn body(redis: &Fixture) {
        assert_eq!(super::presets::redis(redis.url(), &["PING"]).as_deref(), Ok("PONG"));
    }
    body();
}

/// Every protocol check has its unix-socket form: `redis`, `postgres` and `mysql` given a
/// path wait on the socket there, and the fixture's `socket()` is that path.
#[test]
fn protocol_checks_wait_on_unix_sockets() {
    if require("redis-server") && require("redis-cli") {
        #[mirakuru::fixture(
            redis = "{tmpdir}/r.sock",
            cmd = "redis-server --port 0 --save '' --unixsocket {tmpdir}/r.sock"
        )]
        fn redis_on_a_socket(redis: &Fixture) {
            let socket = redis.socket().display().to_string();
            assert!(socket.ends_with("/r.sock"), "{socket}");
            let pong = mirakuru_test::redis_cli(&["-s", &socket], &["PING"]);
            assert_eq!(pong.as_deref(), Ok("PONG"));
        }
        redis_on_a_socket();
    }
    if has_postgres() {
        let pg = services::postgres()
            .postgres_unix("{tmpdir}/.s.PGSQL.{port}")
            .start()
            .expect("PostgreSQL starts");
        assert!(
            pg.socket().ends_with(format!(".s.PGSQL.{}", pg.port())),
            "{}",
            pg.socket().display()
        );
    }
    if require("mariadbd") {
        let db = services::mariadb()
            .mysql_unix("{tmpdir}/mysql.sock")
            .timeout(Duration::from_secs(120))
            .start()
            .expect("MariaDB starts");
        assert!(db.socket().ends_with("mysql.sock"), "{}", db.socket().display());
    }
}

/// An external server that asks for a SCRAM password: the preset's own protocol client
/// speaks only trust and cleartext, so creating and dropping go through `psql`, which the
/// URL's password lets in.
#[test]
fn an_external_server_with_scram_authentication_gives_databases() {
    if !has_postgres() {
        return;
    }
    const NAME: &str = "presets::an_external_server_with_scram_authentication_gives_databases";
    if std::env::var_os("MIRAKURU_POSTGRES_URL").is_none() {
        let server = services::postgres().start().expect("PostgreSQL starts");
        sql(server.url(), "CREATE ROLE app LOGIN CREATEDB PASSWORD 'se cret'").expect("a role");
        let hba = server.tmpdir().join("data/pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        let scram = "host all app 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(&hba, format!("{scram}{rules}")).expect("pg_hba.conf rewritten");
        sql(server.url(), "SELECT pg_reload_conf()").expect("reloaded");
        let url = format!("postgresql://app:se%20cret@127.0.0.1:{}/postgres", server.port());
        in_child(NAME, &[("MIRAKURU_POSTGRES_URL", &url)]);
        return;
    }
    let pg = services::postgres().start().expect("the external server answers");
    let db = pg.database().expect("a database, made through psql");
    assert_eq!(db.user(), Some("app"));
    assert_eq!(db.password(), Some("se cret"));
    sql(db.url(), "CREATE TABLE t (x int)").expect("a table, as app");
    let name = db.name().to_string();
    drop(db);
    let left = sql(pg.url(), &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"));
    assert_eq!(left.as_deref(), Ok("0"), "dropped");
}

/// What a killed binary leaves while a preset fills its directory: nothing. With a cache of
/// its own (a TMPDIR of its own, prepared by a first run), the binary is killed while the
/// prepared cluster is copied or the server starts; the reaper removes the run directory and
/// its twin in memory, and ends the server. (Killed during `initdb` itself, the same holds,
/// but PostgreSQL 15's bootstrap leaves its dynamic shared memory in `/dev/shm`, which no
/// test can tell from another server's: not done here.)
#[test]
fn a_binary_killed_while_a_preset_prepares_leaves_nothing() {
    if !has_postgres() {
        return;
    }
    let tmp = temp_dir();
    if mirakuru_test::unprivileged_user_for(tmp.path()).is_some() {
        // Root: the data is prepared as `postgres`, which must reach this TMPDIR.
        let _ = std::process::Command::new("chmod").arg("755").arg(tmp.path()).status();
    }
    let exe = std::env::current_exe().expect("the test binary");
    let prepared = std::process::Command::new(&exe)
        .args(["presets::starts_a_preset_for_the_kill_test", "--exact", "--ignored"])
        .env("TMPDIR", tmp.path())
        .env("MIRAKURU_TEST_HOLD_MS", "0")
        .output()
        .expect("the binary runs");
    assert!(prepared.status.success(), "{}", String::from_utf8_lossy(&prepared.stderr));
    for wait in [Duration::from_millis(20), Duration::from_millis(60), Duration::from_millis(150)] {
        // Carried by the binary and whatever it starts: initdb, postgres.
        let tag = mirakuru_test::Tag::new();
        let mut child = std::process::Command::new(&exe)
            .env(mirakuru_test::Tag::VAR, tag.value())
            .args(["presets::starts_a_preset_for_the_kill_test", "--exact", "--ignored"])
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the binary runs");
        std::thread::sleep(wait);
        let _ = child.kill();
        let _ = child.wait();
        let prefix = format!("mirakuru-run-{}-", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<_> = [tmp.path(), Path::new("/tmp"), Path::new("/dev/shm")]
                .into_iter()
                .flat_map(std::fs::read_dir)
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect();
            let helpers = tag.pids();
            if left.is_empty() && helpers.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "killed after {wait:?}: left {left:?} and processes {helpers:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
#[ignore = "started and killed by a_binary_killed_while_a_preset_prepares_leaves_nothing"]
fn starts_a_preset_for_the_kill_test() {
    let _pg = services::postgres().start().expect("PostgreSQL starts");
    let hold = std::env::var("MIRAKURU_TEST_HOLD_MS").ok().and_then(|v| v.parse().ok());
    std::thread::sleep(Duration::from_millis(hold.unwrap_or(30_000)));
}

/// An external "server" that answers a byte at a time, for ever: the preset's wait is bounded
/// by its timeout all the same, and says what it waited for.
#[test]
fn an_external_server_that_trickles_is_given_up_on_in_time() {
    const NAME: &str = "presets::an_external_server_that_trickles_is_given_up_on_in_time";
    if std::env::var_os("MIRAKURU_POSTGRES_URL").is_none() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("its address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    use std::io::Write;
                    let mut stream = stream;
                    // An authentication request a mebibyte long, sent a byte at a time.
                    let _ = stream.write_all(b"R\x00\x10\x00\x00");
                    while stream.write_all(b"x").is_ok() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                });
            }
        });
        let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
        in_child(NAME, &[("MIRAKURU_POSTGRES_URL", &url)]);
        return;
    }
    let began = std::time::Instant::now();
    let err =
        services::postgres().timeout(Duration::from_secs(2)).start().expect_err("never ready");
    assert!(began.elapsed() < Duration::from_secs(10), "took {:?}", began.elapsed());
    let text = err.to_string();
    assert!(
        text.contains("MIRAKURU_POSTGRES_URL") && text.contains("external PostgreSQL"),
        "{text}"
    );
}

/// A schema that is not there, or given to a preset whose databases take none, is an error
/// of `start()`, before anything runs.
#[test]
fn a_bad_load_is_an_error_before_anything_starts() {
    let missing = services::postgres().load("no/such/schema.sql").start().expect_err("no file");
    let text = missing.to_string();
    assert!(text.contains("no/such/schema.sql") && text.contains("missing"), "{text}");
    let dir = temp_dir();
    let schema = schema_file(dir.path(), "SELECT 1;\n");
    let redis = services::redis().load(&schema).start().expect_err("Redis takes no schema");
    assert!(redis.to_string().contains("`load`"), "{redis}");
}

#[mirakuru::fixture(service = postgres, scope = run)]
static EXTERNAL_IN_RUN: mirakuru::SharedFixture;

/// A run-scoped preset pointed at an external service needs no keeper: each process uses
/// the service itself, and gets its databases there. The test runs again under a shell named
/// `cargo`, so that it is in a run as under `cargo test` (its keeper panicked before).
#[test]
fn a_run_scoped_preset_can_be_external() {
    if !has_postgres() {
        return;
    }
    const NAME: &str = "presets::a_run_scoped_preset_can_be_external";
    if std::env::var_os("MIRAKURU_POSTGRES_URL").is_none() {
        let server = services::postgres().start().expect("PostgreSQL starts");
        let dir = temp_dir();
        let cargo = dir.path().join("cargo");
        std::fs::copy("/bin/sh", &cargo).expect("a shell named cargo");
        let cargo = cargo.display().to_string();
        let wrap = [cargo.as_str(), "-c", "\"$0\" \"$@\"; exit $?"];
        crate::run_child(NAME, &[("MIRAKURU_POSTGRES_URL", server.url())], &[], &wrap);
        return;
    }
    let db = EXTERNAL_IN_RUN.database();
    sql(db.url(), "CREATE TABLE t (x int)").expect("a table");
    assert_eq!(EXTERNAL_IN_RUN.get().pid(), None, "nothing started");
}

/// Redis and MariaDB in external mode: a server started outside the fixture under test is
/// used as it is — nothing started, not ours to stop — and still gives each test a database
/// of its own, gone (flushed) after a test that panicked. As root and as a user.
#[test]
fn redis_and_mariadb_external_modes_give_databases() {
    const NAME: &str = "presets::redis_and_mariadb_external_modes_give_databases";
    let redis_ok = require("redis-server") && require("redis-cli");
    let maria_ok = require("mariadbd") && require("mariadb");
    if std::env::var_os("MIRAKURU_TEST_EXTERNAL").is_none() {
        let redis = redis_ok.then(|| services::redis().start().expect("Redis starts"));
        let maria = maria_ok.then(|| {
            services::mariadb().timeout(Duration::from_secs(120)).start().expect("MariaDB starts")
        });
        let mut env = vec![("MIRAKURU_TEST_EXTERNAL", "1")];
        if let Some(redis) = &redis {
            env.push(("MIRAKURU_REDIS_URL", redis.url()));
        }
        if let Some(maria) = &maria {
            env.push(("MIRAKURU_MARIADB_URL", maria.url()));
        }
        in_child(NAME, &env);
        in_child_unprivileged(NAME, &env);
        return;
    }
    if redis_ok {
        let server = services::redis().start().expect("the external Redis answers");
        assert_eq!(server.pid(), None, "nothing started");
        assert!(server.stop().is_err(), "not ours to stop");
        let url = std::panic::catch_unwind(|| {
            let db = server.database().expect("an index");
            redis_cli_set(db.url());
            let url = db.url().to_string();
            std::panic::panic_any(url);
        });
        let url = url.expect_err("it panicked").downcast::<String>().expect("the URL");
        assert_eq!(redis(&url, &["DBSIZE"]).as_deref(), Ok("0"), "flushed after the panic");
    }
    if maria_ok {
        let maria = services::mariadb().start().expect("the external MariaDB answers");
        assert_eq!(maria.pid(), None, "nothing started");
        let (a, b) = (maria.database().expect("a database"), maria.database().expect("another"));
        mysql(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").expect("a table in a");
        assert!(mysql(&b, "SELECT * FROM t").is_err(), "b has no table t");
        let name = a.name().to_string();
        drop(a);
        let left = mysql(&b, "SHOW DATABASES").expect("the list");
        assert!(!left.lines().any(|l| l == name), "{name} dropped");
    }
}

fn redis_cli_set(url: &str) {
    assert_eq!(redis(url, &["SET", "k", "v"]).as_deref(), Ok("OK"));
}

/// A preset's server takes options of its own, as pytest-postgresql's `postgres_options`.
#[test]
fn a_preset_takes_the_servers_own_options() {
    if !has_postgres() {
        return;
    }
    let pg = services::postgres().arg("-c").arg("max_connections=42").start().expect("starts");
    assert_eq!(sql(pg.url(), "SHOW max_connections").as_deref(), Ok("42"));
}
