//! Ready-made services: PostgreSQL, Redis, MariaDB, memcached and nginx, each a
//! [`Spec`] that knows its binaries, prepares its data once and reuses
//! it, runs as the service's user only when the test runs as root, waits by protocol, and
//! hands each test what it connects with — and, for the databases, a database of its own
//! ([`Fixture::database`](crate::Fixture::database)).
//!
//! ```no_run
//! let pg = mirakuru::services::postgres().start()?;
//! let db = pg.database()?;                  // a fresh database, dropped with `db`
//! assert!(db.url().starts_with("postgresql://postgres:"));
//! # Ok::<(), mirakuru::Error>(())
//! ```
//!
//! With `MIRAKURU_POSTGRES_URL` (`MIRAKURU_REDIS_URL`, `MIRAKURU_MARIADB_URL`) set, a preset
//! starts nothing: it waits for that service by protocol, and still gives each test a
//! database of its own.
//!
//! | file | what |
//! |---|---|
//! | `postgres.rs`, `redis.rs`, `mariadb.rs`, `memcached.rs`, `nginx.rs` | one preset each |
//! | `binaries.rs` | finding a service's programs, and what to install when they are missing |
//! | `data_dir.rs` | a data directory prepared once per version and options, copied for each server |
//! | `endpoint.rs` | where a service is: its URL, parsed and built |
//! | `external.rs` | a service named by an environment variable: waited for, never started |
//! | `database.rs` | [`Database`]: a test's own database, dropped after the test |
//! | `client.rs` | the one-request conversations the presets have with their servers |
//! | `pg_wire.rs` | a few PostgreSQL statements over its wire protocol, without `psql` |

mod binaries;
mod client;
mod data_dir;
mod database;
mod endpoint;
mod external;
mod mariadb;
mod memcached;
mod nginx;
mod pg_wire;
mod postgres;
mod redis;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::Command;
use crate::fixture::{Places, Spec};
use crate::Error;

pub use database::Database;
pub(crate) use endpoint::Endpoint;
pub(crate) use external::{attach, external};

/// PostgreSQL: `initdb` once per version into a cache, copied for each server; `fsync`,
/// `synchronous_commit` and `full_page_writes` off; ready as `pg_isready` decides; as the
/// `postgres` user when root. [`Fixture::url`](crate::Fixture::url) is
/// `postgresql://postgres:<password>@127.0.0.1:<port>/postgres` (a password made with the
/// cluster: over TCP, any local user could otherwise log in as the superuser; the socket, in
/// the fixture's 0700 directory, trusts its owner), the socket is in the fixture's
/// directory; [`Fixture::database`](crate::Fixture::database) creates a database per test,
/// from a template holding [`Spec::load`](crate::fixture::Spec::load)'s schema.
///
/// Binaries: `$MIRAKURU_POSTGRES_BIN`, then `PATH`, then `/usr/lib/postgresql/<newest>/bin`
/// (Debian, Ubuntu), `/usr/pgsql-<newest>/bin` (Red Hat) and Homebrew's. External:
/// `MIRAKURU_POSTGRES_URL`.
pub fn postgres() -> Spec {
    postgres::spec()
}

/// Redis: no persistence, stopped with SIGKILL (it has nothing to save, and answers SIGTERM
/// only at its next timer tick); ready when it answers `PING`; 64 databases, of which
/// [`Fixture::database`](crate::Fixture::database) gives each test one of its own, flushed.
/// [`Fixture::url`](crate::Fixture::url) is `redis://default:<password>@127.0.0.1:<port>/0`: a
/// password made at each start, in a configuration file only the server's user reads.
///
/// Binaries: `$MIRAKURU_REDIS_BIN`, then `PATH`, then `/usr/sbin`, `/usr/local/sbin`.
/// External: `MIRAKURU_REDIS_URL`.
pub fn redis() -> Spec {
    redis::spec()
}

/// MariaDB (Oracle MySQL's `mysqld --initialize` is not supported): `mariadb-install-db` once into a
/// cache, copied for each server; ready when it sends its handshake; as the `mysql` user
/// when root. [`Fixture::url`](crate::Fixture::url) is `mysql://root:<password>@127.0.0.1:<port>/`
/// (root's password made with the data directory);
/// [`Fixture::database`](crate::Fixture::database) creates a database per test (with
/// [`Spec::load`](crate::fixture::Spec::load)'s schema), through the `mariadb` client.
///
/// Binaries: `$MIRAKURU_MARIADB_BIN`, then `PATH`, then `/usr/sbin`, `/usr/local/sbin`.
/// External: `MIRAKURU_MARIADB_URL`.
pub fn mariadb() -> Spec {
    mariadb::spec()
}

/// memcached on a free port, ready when it accepts connections, as `nobody` when root
/// (memcached refuses root). Binaries: `$MIRAKURU_MEMCACHED_BIN`, then `PATH`, `/usr/bin`.
pub fn memcached() -> Spec {
    memcached::spec()
}

/// nginx serving the fixture's `{tmpdir}/html` on a free port, in the foreground, with every
/// path (pid file, logs, temporary files) in the fixture's directory; ready when `/` answers.
/// Binaries: `$MIRAKURU_NGINX_BIN`, then `PATH`, then `/usr/sbin`, `/usr/local/sbin`.
pub fn nginx() -> Spec {
    nginx::spec()
}

/// What a preset adds to a [`Spec`]: the steps of a start that only it knows.
/// Unwind-safe, so that a `Fixture` stays so (`catch_unwind(|| fixture.…)`).
pub(crate) trait Preset: fmt::Debug + Send + Sync + std::panic::RefUnwindSafe {
    /// Its name in messages: "PostgreSQL".
    fn title(&self) -> &'static str;

    /// The environment variable that names an external service, if it can use one.
    fn external_var(&self) -> Option<&'static str> {
        None
    }

    /// The port of an external service's URL that names none.
    fn default_port(&self) -> u16;

    /// Before the spawn: finds the program named first in `command`, prepares what the
    /// server needs in the fixture's directory (owned by `owner` when it runs as another
    /// user), and returns the command to run.
    fn prepare(
        &self,
        command: &Command,
        places: &Places<'_>,
        owner: Option<(u32, u32)>,
    ) -> Result<Command, Error>;

    /// Where a test finds the server this process started.
    fn endpoint(&self, host: &str, port: Option<u16>, tmpdir: &Path) -> Endpoint;

    /// Waits up to `timeout` until the service at `endpoint` answers by protocol: what it
    /// answered, or why it is not ready.
    fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<String, String>;

    /// Whether its databases start with [`Spec::load`]'s schema (PostgreSQL, MariaDB).
    fn loads_schema(&self) -> bool {
        false
    }

    /// A database of the test's own on the service at `endpoint`, holding `schema`.
    fn database(&self, endpoint: &Endpoint, schema: &[PathBuf]) -> Result<Database, Error> {
        let _ = (endpoint, schema);
        Err(Error::InvalidArgument {
            command: self.title().to_string(),
            problem: format!("{} has no databases to give a test", self.title()),
            hint: "`database()` works on the PostgreSQL, MariaDB and Redis presets".into(),
        })
    }
}

/// `spec`, run as the first of `users` that exists when the test runs as root (PostgreSQL and
/// MariaDB refuse root), as the caller otherwise — a laptop user has no right to switch users.
pub(crate) fn as_service_user(spec: Spec, users: &[&str]) -> Spec {
    if crate::platform::geteuid() != 0 {
        return spec;
    }
    match users.iter().find(|u| crate::command::lookup_user(u).is_some()) {
        Some(user) => spec.user(*user),
        None => spec,
    }
}
