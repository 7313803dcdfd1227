//! Redis: no persistence (`--save ''`, no append-only file), so it has nothing to save and is
//! stopped with SIGKILL — with SIGTERM it exits only at its next timer tick, ~100 ms per
//! server (redis-rs's own suite ran 2.5× slower with it). Its socket is in the fixture's
//! directory, removed with it.
//!
//! A database per test is an index of its own, taken by a lock file per index (released by
//! the kernel when a test process dies) and flushed when taken and when given back. Index 0
//! is the fixture's own ([`Fixture::url`](crate::Fixture::url)).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use super::binaries::Search;
use super::client::{redis_command, wait_ready, Conn, REQUEST_TIMEOUT};
use super::data_dir::{keep_secret, kept_secret, new_secret, own};
use super::{as_service_user, Database, Endpoint, Preset};
use crate::command::Command;
use crate::fixture::{lock_within, open_lock, user_dir, Places, Port, Spec};
use crate::{Error, Signal};

const SEARCH: Search = Search {
    title: "Redis",
    env: "MIRAKURU_REDIS_BIN",
    dirs: &["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin"],
    install: "Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis",
};

/// The databases a preset's server has: one per test running at once, and index 0.
const DATABASES: &str = "64";

#[derive(Debug)]
pub(crate) struct Redis;

pub(crate) fn spec() -> Spec {
    let cmd = [
        "redis-server",
        // First: its password, out of the process list (see `prepare`).
        "{tmpdir}/redis.conf",
        "--port",
        "{port}",
        "--bind",
        "{host}",
        "--save",
        "",
        "--appendonly",
        "no",
        "--databases",
        DATABASES,
        "--dir",
        "{tmpdir}",
        "--unixsocket",
        "{tmpdir}/redis.sock",
        "--unixsocketperm",
        "700",
    ];
    let spec = Spec::args("redis", cmd)
        .redis(Port::Auto)
        .stop_signal(Signal::SIGKILL)
        .preset(Arc::new(Redis));
    as_service_user(spec, &["redis"])
}

impl Preset for Redis {
    fn title(&self) -> &'static str {
        "Redis"
    }

    fn external_var(&self) -> Option<&'static str> {
        Some("MIRAKURU_REDIS_URL")
    }

    fn default_port(&self) -> u16 {
        6379
    }

    /// A password of its own (`requirepass`, in a configuration file only the server's user
    /// reads): on 127.0.0.1 without one, any local user could use it, and with `CONFIG SET
    /// dir` write files as its user.
    fn prepare(
        &self,
        command: &Command,
        places: &Places<'_>,
        owner: Option<(u32, u32)>,
    ) -> Result<Command, Error> {
        let server = SEARCH.find(&["redis-server"])?;
        let io = |source| Error::Io {
            command: server.display().to_string(),
            action: format!("writing its configuration into {}", places.tmpdir.display()),
            source,
        };
        let password = new_secret().map_err(io)?;
        let conf = places.tmpdir.join("redis.conf");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut options = std::fs::OpenOptions::new();
            let mut file =
                options.write(true).create_new(true).mode(0o600).open(&conf).map_err(io)?;
            file.write_all(format!("requirepass {password}\n").as_bytes()).map_err(io)?;
        }
        own(&conf, owner).map_err(io)?;
        keep_secret(places.tmpdir, &password, owner).map_err(io)?;
        Ok(command.with_program(server.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, tmpdir: &Path) -> Endpoint {
        let password = kept_secret(tmpdir);
        Endpoint {
            scheme: "redis".into(),
            // `requirepass` is the password of the user `default` (Redis 6+): named, since
            // redis-cli sends an empty user name for `redis://:password@…`, and fails.
            user: password.as_ref().map(|_| "default".into()),
            password,
            host: host.into(),
            port: port.unwrap_or(6379),
            path: Some("0".into()),
            socket: Some(tmpdir.join("redis.sock")),
            query: None,
        }
    }

    fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<String, String> {
        let mut request = Vec::new();
        if let Some(auth) = auth(endpoint) {
            request.extend(crate::ready::redis::resp_command(&auth));
        }
        request.extend(crate::ready::redis::resp_command(&["PING"]));
        let authenticated = endpoint.password.is_some();
        wait_ready(endpoint, &request, |a| crate::ready::redis::classify(a, authenticated), timeout)
    }

    fn database(
        &self,
        endpoint: &Endpoint,
        _schema: &[std::path::PathBuf],
    ) -> Result<Database, Error> {
        let io = |action: &str| {
            let action = action.to_string();
            let command = super::external::shown(endpoint);
            move |source| Error::Io { command, action, source }
        };
        let dir =
            user_dir().map_err(|e| io("finding the lock directory")(std::io::Error::other(e)))?;
        // One server named two ways (`localhost`, `127.0.0.1`) is one set of indices.
        let server = resolved(endpoint);
        let deadline = Instant::now() + REQUEST_TIMEOUT * 4;
        loop {
            for index in 1u32.. {
                let path = dir.join(format!("redis-{server}-{index}.lock"));
                let lock = open_lock(&path).map_err(io("locking a database index"))?;
                if !lock_within(&lock, FlockOperation::NonBlockingLockExclusive, Duration::ZERO)
                    .map_err(io("locking a database index"))?
                {
                    continue;
                }
                let mut conn = connect(endpoint).map_err(io("connecting"))?;
                match redis_command(&mut conn, &["SELECT", &index.to_string()])
                    .map_err(io("selecting a database"))?
                {
                    Ok(_) => {}
                    // The server has no database but 0: nothing to wait for.
                    Err(e) if e.contains("out of range") && index == 1 => {
                        return Err(refused(endpoint, "SELECT 1", e));
                    }
                    // Every index is taken by a test running now: wait for one to end.
                    Err(e) if e.contains("out of range") => break,
                    Err(e) => return Err(refused(endpoint, "SELECT", e)),
                }
                redis_command(&mut conn, &["FLUSHDB"])
                    .map_err(io("flushing a database"))?
                    .map_err(|e| refused(endpoint, "FLUSHDB", e))?;
                let mut db_endpoint = endpoint.clone();
                db_endpoint.path = Some(index.to_string());
                db_endpoint.socket = None;
                let flush = endpoint.clone();
                return Ok(Database::new(index.to_string(), db_endpoint, move || {
                    let result = flush_index(&flush, index);
                    drop(lock);
                    result
                }));
            }
            if Instant::now() > deadline {
                return Err(refused(
                    endpoint,
                    "SELECT",
                    "every database index is held by a running test".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The server's address as a part of a file name: its host resolved, so that two names of
/// one server share their locks; made of plain characters only.
fn resolved(endpoint: &Endpoint) -> String {
    use std::net::ToSocketAddrs;
    let addrs = (endpoint.host.as_str(), endpoint.port).to_socket_addrs();
    match addrs.ok().and_then(|mut a| a.next()) {
        Some(addr) => super::endpoint::plain(&addr.to_string()),
        None => format!("{}:{}", endpoint.file_key(), endpoint.port),
    }
}

/// `AUTH [user] password`, when the URL has a password.
fn auth(endpoint: &Endpoint) -> Option<Vec<&str>> {
    let password = endpoint.password.as_deref()?;
    Some(["AUTH"].into_iter().chain(endpoint.user.as_deref()).chain([password]).collect())
}

/// A connection, authenticated if the URL has a password.
fn connect(endpoint: &Endpoint) -> std::io::Result<Conn> {
    let mut conn = Conn::open(endpoint, REQUEST_TIMEOUT)?;
    if let Some(auth) = auth(endpoint) {
        if let Err(e) = redis_command(&mut conn, &auth)? {
            return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e));
        }
    }
    Ok(conn)
}

fn flush_index(endpoint: &Endpoint, index: u32) -> Result<(), Error> {
    let io = |source| Error::Io {
        command: super::external::shown(endpoint),
        action: format!("flushing database {index}"),
        source,
    };
    let mut conn = connect(endpoint).map_err(io)?;
    redis_command(&mut conn, &["SELECT", &index.to_string()])
        .map_err(io)?
        .map_err(|e| refused(endpoint, "SELECT", e))?;
    redis_command(&mut conn, &["FLUSHDB"])
        .map_err(io)?
        .map_err(|e| refused(endpoint, "FLUSHDB", e))?;
    Ok(())
}

fn refused(endpoint: &Endpoint, command: &str, answer: String) -> Error {
    Error::InvalidArgument {
        command: super::external::shown(endpoint),
        problem: format!("Redis answered {command} with: {answer}"),
        hint: "a test database needs SELECT and FLUSHDB; with more tests at once than the \
               server has databases, raise its `databases` setting"
            .into(),
    }
}
