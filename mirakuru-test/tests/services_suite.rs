//! The suite of `mirakuru-bench services`, written as a user moving from pytest-postgresql and
//! pytest-redis writes it: 20 PostgreSQL tests, each with a clean database made from a
//! template holding `services_suite.sql`, and 10 Redis tests, each with a database index of
//! its own, one of them through an outage. One PostgreSQL and one Redis serve the whole run
//! (`scope = run`), under `cargo test` and `cargo nextest run` alike.
//!
//! The clients are `psql` and `redis-cli`, so that the suite needs no client crate: each
//! query pays a process start that an in-process client would not.
//!
//! With `MIRAKURU_BENCH_DB_TIMES` set, each PostgreSQL test appends how long its clean
//! database took, in microseconds, to that file.

use std::io::Write;
use std::time::Instant;

use mirakuru::{Database, SharedFixture};
use mirakuru_test::{postgres_bin, redis_cli, require};

#[mirakuru::fixture(service = postgres, load = "tests/services_suite.sql", scope = run)]
static PG: SharedFixture;

#[mirakuru::fixture(service = redis, scope = run)]
static REDIS: SharedFixture;

/// A clean PostgreSQL database, its time recorded.
fn clean_database() -> Database {
    let began = Instant::now();
    let db = PG.database();
    if let Some(path) = std::env::var_os("MIRAKURU_BENCH_DB_TIMES") {
        let line = format!("{}\n", began.elapsed().as_micros());
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }
    db
}

fn psql(url: &str, sql: &str) -> String {
    let psql = postgres_bin("psql").expect("psql");
    let out = std::process::Command::new(psql)
        .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-tA", "-d", url, "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Inserts `rows` items named after the test, tags each, and checks that the database holds
/// those and nothing else.
fn items(test: u32, rows: u32) {
    if postgres_bin("postgres").is_none() || postgres_bin("psql").is_none() {
        return;
    }
    let db = clean_database();
    let values: Vec<String> = (0..rows).map(|n| format!("('t{test}-{n}')")).collect();
    let sql = format!(
        "INSERT INTO items (name) VALUES {}; \
         INSERT INTO tags SELECT id, 'test-{test}' FROM items; \
         SELECT count(*) FROM items JOIN tags ON tags.item_id = items.id",
        values.join(", ")
    );
    assert_eq!(psql(db.url(), &sql), rows.to_string(), "only this test's rows");
}

macro_rules! postgres_tests {
    ($($name:ident: $test:expr, $rows:expr;)*) => {$(
        #[test]
        fn $name() {
            items($test, $rows);
        }
    )*};
}

postgres_tests! {
    pg_01: 1, 1; pg_02: 2, 2; pg_03: 3, 3; pg_04: 4, 4; pg_05: 5, 5;
    pg_06: 6, 1; pg_07: 7, 2; pg_08: 8, 3; pg_09: 9, 4; pg_10: 10, 5;
    pg_11: 11, 1; pg_12: 12, 2; pg_13: 13, 3; pg_14: 14, 4; pg_15: 15, 5;
    pg_16: 16, 1; pg_17: 17, 2; pg_18: 18, 3; pg_19: 19, 4; pg_20: 20, 5;
}

fn redis(url: &str, command: &[&str]) -> String {
    redis_cli(&["-u", url], command).expect("redis-cli")
}

fn has_redis() -> bool {
    require("redis-server") && require("redis-cli")
}

/// Values written and read back, in a database no other test sees: one `redis-cli` for
/// all the commands, as a client keeps one connection.
fn key_value(test: u32) {
    if !has_redis() {
        return;
    }
    let db = REDIS.database();
    let value = format!("value-{test}");
    let commands = format!(
        "DBSIZE\nSET key {value}\nGET key\nINCRBY counter {test}\nRPUSH list a b c\nLLEN list\n"
    );
    let replies = redis_batch(db.url(), &commands);
    let want = ["0", "OK", value.as_str(), &test.to_string(), "3", "3"];
    assert_eq!(replies, want, "a clean database, then each command's reply");
}

/// `redis-cli -u URL` reading `commands` from its standard input: one reply a line.
fn redis_batch(url: &str, commands: &str) -> Vec<String> {
    use std::process::{Command, Stdio};
    let mut cli = Command::new("redis-cli")
        .args(["-u", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    cli.stdin.take().expect("its stdin").write_all(commands.as_bytes()).expect("commands sent");
    let out = cli.wait_with_output().expect("redis-cli ends");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

macro_rules! redis_tests {
    ($($name:ident: $test:expr;)*) => {$(
        #[test]
        fn $name() {
            key_value($test);
        }
    )*};
}

redis_tests! {
    redis_01: 1; redis_02: 2; redis_03: 3; redis_04: 4; redis_05: 5;
    redis_06: 6; redis_07: 7; redis_08: 8; redis_09: 9;
}

/// The tenth Redis test: the server goes away and comes back, on the same port.
#[test]
fn redis_10_outage() {
    if !has_redis() {
        return;
    }
    let url = REDIS.get().url().to_string();
    mirakuru::stopped!(REDIS, {
        assert!(redis_cli(&["-u", &url], &["PING"]).is_err(), "down inside the block");
    });
    assert_eq!(redis(&url, &["PING"]), "PONG", "back after the block");
}
