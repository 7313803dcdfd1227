//! The PostgreSQL probe (`ready::postgres`): a StartupMessage answered, through "the database
//! system is starting up", then a Terminate; real PostgreSQL by every check at once.

use std::time::Duration;

use mirakuru::fixture::{Fixtures, Port, Spec};
use mirakuru::ready;
use mirakuru::{Executor, Signal};
use mirakuru_test::{free_port, initdb, postgres_bin, postgres_command, psql, temp_dir, Tag};

use crate::{fake_server, svc, tag_env, QUICK};

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
