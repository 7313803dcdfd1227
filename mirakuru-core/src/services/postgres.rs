//! PostgreSQL: a cluster made by `initdb` once per version (with `--wal-segsize=1`, so a copy
//! moves 28 MB, not 40), copied for each server; durability off, since a test's data does not
//! outlive the test (`fsync`, `synchronous_commit`, `full_page_writes`, as PostgreSQL's docs
//! advise for throwaway data, "Non-Durable Settings"); trust authentication on loopback and
//! the socket in the fixture's private directory.
//!
//! A database per test is created from a template that holds the schema, loaded once per
//! server and schema: `CREATE DATABASE … STRATEGY FILE_COPY` copies the template's files
//! (10-20 ms here with fsync off), where the default `WAL_LOG` strategy writes each block to
//! the WAL (30-90 ms). Dropped `WITH (FORCE)`: a connection the test left open does not keep
//! it. Creating and dropping take one round trip each over the wire protocol (`pg_wire.rs`);
//! a server that asks for md5 or SCRAM (an external one) gets `psql`, the server's own client,
//! which speaks every method. Schema files always go through `psql`, so that they may use its
//! commands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::binaries::Search;
use super::client::{run_client, run_client_within, wait_ready, LOAD_TIMEOUT, REQUEST_TIMEOUT};
use super::data_dir::{keep_secret, kept_secret, Recipe};
use super::pg_wire::{self, Failure};
use super::{as_service_user, Database, Endpoint, Preset};
use crate::command::Command;
use crate::fixture::{lock_within, open_lock, user_dir, Places, Port, Spec};
use crate::{Error, Signal};

const SEARCH: Search = Search {
    title: "PostgreSQL",
    env: "MIRAKURU_POSTGRES_BIN",
    dirs: &[
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/usr/local/pgsql/bin",
        "/opt/homebrew/bin",
        "/usr/local/opt/postgresql/bin",
    ],
    install: "Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; \
              macOS: brew install postgresql",
};

/// initdb's options: the superuser `postgres`, trusted on the unix socket (in the fixture's
/// 0700 directory: its owner only) and asked for its password over TCP, where any local user
/// could otherwise become the superuser and run programs as the server's user (`COPY … TO
/// PROGRAM`); the C locale (no locale needs to be installed).
const INITDB_OPTIONS: &[&str] = &[
    "-U",
    "postgres",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
];

/// The superuser that initdb made.
const SUPERUSER: &str = "postgres";

#[derive(Debug)]
pub(crate) struct Postgres;

pub(crate) fn spec() -> Spec {
    let cmd = [
        "postgres",
        "-D",
        "{tmpdir}/data",
        "-p",
        "{port}",
        "-k",
        "{tmpdir}",
        "-c",
        "listen_addresses={host}",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        // WAL segments are made as the server writes, 1 MB each (see INITDB_OPTIONS): made
        // sparse, not zero-filled, a CREATE DATABASE takes 20 ms instead of 130.
        "-c",
        "wal_init_zero=off",
        "-c",
        "unix_socket_permissions=0700",
        // Dynamic shared memory as files in the data directory, not in /dev/shm, where a
        // killed server would leave its segments behind.
        "-c",
        "dynamic_shared_memory_type=mmap",
    ];
    let spec = Spec::args("postgres", cmd)
        .postgres(Port::Auto)
        // Fast shutdown: sessions ended, a checkpoint (cheap with fsync off), no recovery at
        // the next start (`stopped!`).
        .stop_signal(Signal::SIGINT)
        .preset(Arc::new(Postgres));
    as_service_user(spec, &["postgres"])
}

impl Preset for Postgres {
    fn title(&self) -> &'static str {
        "PostgreSQL"
    }

    fn external_var(&self) -> Option<&'static str> {
        Some("MIRAKURU_POSTGRES_URL")
    }

    fn loads_schema(&self) -> bool {
        true
    }

    fn default_port(&self) -> u16 {
        5432
    }

    fn prepare(
        &self,
        command: &Command,
        places: &Places<'_>,
        owner: Option<(u32, u32)>,
    ) -> Result<Command, Error> {
        let postgres = SEARCH.find(&["postgres"])?;
        let initdb = SEARCH.beside(&postgres, "initdb")?;
        let recipe = Recipe {
            name: "postgres",
            programs: &[&postgres, &initdb],
            options: INITDB_OPTIONS,
            owner,
            secret: true,
        };
        // initdb refuses root: where the server runs as `postgres`, so does initdb.
        let password = recipe.copy_to(&places.tmpdir.join("data"), |data, secret| {
            let mut initdb = std::process::Command::new(&initdb);
            initdb.args(INITDB_OPTIONS).arg("-D").arg(data);
            if let Some(file) = secret {
                initdb.arg(format!("--pwfile={}", file.display()));
            }
            initdb
        })?;
        // Kept beside the server for `endpoint`, in the fixture's private directory.
        if let Some(password) = password {
            keep_secret(places.tmpdir, &password, owner).map_err(|source| Error::Io {
                command: "postgres".into(),
                action: format!("keeping its password in {}", places.tmpdir.display()),
                source,
            })?;
        }
        Ok(command.with_program(postgres.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, tmpdir: &Path) -> Endpoint {
        let port = port.unwrap_or(5432);
        Endpoint {
            scheme: "postgresql".into(),
            user: Some(SUPERUSER.into()),
            password: kept_secret(tmpdir),
            host: host.into(),
            port,
            path: Some("postgres".into()),
            socket: Some(tmpdir.join(format!(".s.PGSQL.{port}"))),
            query: None,
        }
    }

    fn probe(&self, endpoint: &Endpoint, timeout: std::time::Duration) -> Result<String, String> {
        let user = endpoint.user.as_deref().unwrap_or(SUPERUSER);
        let database = endpoint.path.as_deref().unwrap_or(user);
        let request = crate::ready::postgres::startup_message(user, database);
        wait_ready(endpoint, &request, crate::ready::postgres::classify, timeout)
    }

    fn database(&self, endpoint: &Endpoint, schema: &[PathBuf]) -> Result<Database, Error> {
        let admin = Admin::new(endpoint.clone());
        let template = match schema {
            [] => None,
            files => Some(format!("mirakuru_tpl_{:016x}", schema_hash(files)?)),
        };
        let name = unique_name("mirakuru");
        let create = |version: u32| {
            let template =
                template.as_ref().map(|t| format!(" TEMPLATE \"{t}\"")).unwrap_or_default();
            // FILE_COPY (15+) copies the template's files; the default writes each block to the WAL.
            let strategy = if version >= 150_000 { " STRATEGY FILE_COPY" } else { "" };
            format!("CREATE DATABASE \"{name}\"{template}{strategy}")
        };
        // The template is made the first time a database is asked for with it: found missing
        // (SQLSTATE 3D000), not looked for each time.
        match (admin.execute(&create, "creating the test's database"), &template) {
            (Err(Refused { missing: true, .. }), Some(template)) => {
                admin.make_template(schema, template)?;
                admin.execute(&create, "creating the test's database").map_err(|r| r.error)?;
            }
            (result, _) => result.map_err(|r| r.error)?,
        }
        let mut db_endpoint = endpoint.clone();
        db_endpoint.path = Some(name.clone());
        db_endpoint.socket = None;
        Ok(Database::new(name.clone(), db_endpoint, move || {
            let drop = |version: u32| match version >= 130_000 {
                // FORCE (13+): a connection the test left open does not keep it.
                true => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                false => format!("DROP DATABASE IF EXISTS \"{name}\""),
            };
            admin.execute(&drop, "dropping the test's database").map_err(|r| r.error)
        }))
    }
}

/// `psql`: the one beside the server where there is one. Debian's `/usr/bin/psql` is a Perl
/// wrapper (pg_wrapper) that picks a version and then runs the real one: 20-150 ms a call.
fn psql() -> Result<PathBuf, Error> {
    match SEARCH.find(&["postgres"]) {
        Ok(server) => SEARCH.beside(&server, "psql"),
        // A machine with the client only, for an external server.
        Err(_) => SEARCH.find(&["psql"]),
    }
}

/// A statement the server refused, and whether it was for a missing database (3D000).
struct Refused {
    missing: bool,
    error: Error,
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused { missing: false, error }
    }
}

/// Administration of the server, through its maintenance database: over the wire protocol
/// where the server lets this client in (trust, a cleartext password), else through `psql`.
#[derive(Debug)]
struct Admin {
    endpoint: Endpoint,
    /// The server's `server_version_num`, once `psql` asked for it.
    version: std::sync::OnceLock<u32>,
}

impl Admin {
    fn new(endpoint: Endpoint) -> Admin {
        Admin { endpoint, version: std::sync::OnceLock::new() }
    }

    /// Runs the statement `sql` makes for the server's version.
    fn execute(&self, sql: &dyn Fn(u32) -> String, what: &str) -> Result<(), Refused> {
        let shown = || super::external::shown(&self.endpoint);
        let refused = |code: String, message: String| Refused {
            missing: code == "3D000",
            error: Error::InvalidArgument {
                command: shown(),
                problem: format!("{what} failed: PostgreSQL answered {code} {message}"),
                hint: "see the server's message; its log is in the fixture's output".into(),
            },
        };
        let io =
            |source| Refused::from(Error::Io { command: shown(), action: what.into(), source });
        // Options in the URL (`sslmode`, …) are psql's to apply.
        if self.endpoint.query.is_some() {
            return self.execute_psql(sql, what);
        }
        let mut session = match pg_wire::Session::open(&self.endpoint, REQUEST_TIMEOUT * 4) {
            Ok(session) => session,
            Err(Failure::Unsupported) => return self.execute_psql(sql, what),
            Err(Failure::Server(code, message)) => return Err(refused(code, message)),
            Err(Failure::Io(e)) => return Err(io(e)),
        };
        let version = match session.query("SHOW server_version_num") {
            Ok(rows) => rows.first().cloned().flatten().and_then(|v| v.parse().ok()).unwrap_or(0),
            Err(Failure::Io(e)) => return Err(io(e)),
            Err(_) => 0,
        };
        match session.query(&sql(version)) {
            Ok(_) => Ok(()),
            Err(Failure::Server(code, message)) => Err(refused(code, message)),
            Err(Failure::Io(e)) => Err(io(e)),
            Err(Failure::Unsupported) => Err(io(std::io::Error::other("unexpected"))),
        }
    }

    /// [`execute`](Admin::execute) through `psql`, for a server that asks for md5 or SCRAM.
    fn execute_psql(&self, sql: &dyn Fn(u32) -> String, what: &str) -> Result<(), Refused> {
        let version = match self.version.get() {
            Some(v) => *v,
            None => {
                let mut ask = self.psql(None)?;
                ask.args(["-At", "-c", "SHOW server_version_num"]);
                let v = run_client(ask, "asking the server's version", None)?;
                *self.version.get_or_init(|| v.trim().parse().unwrap_or(0))
            }
        };
        let statement = sql(version);
        let mut psql = self.psql(None)?;
        psql.arg("-c").arg(&statement);
        run_client(psql, what, None).map(drop).map_err(|error| Refused {
            missing: error.to_string().contains("does not exist")
                && statement.contains(" TEMPLATE "),
            error,
        })
    }

    /// `psql` on `database` (default: the URL's): never asking for a password (`-w`: it would
    /// ask on the terminal and wait there), the password in `PGPASSWORD`, out of the process
    /// list.
    fn psql(&self, database: Option<&str>) -> Result<std::process::Command, Error> {
        let mut psql = std::process::Command::new(psql()?);
        let mut endpoint = self.endpoint.clone();
        match endpoint.password.take() {
            Some(password) => psql.env("PGPASSWORD", password),
            None => psql.env_remove("PGPASSWORD"),
        };
        let url = match database {
            Some(db) => endpoint.url_with_path(Some(db)),
            None => endpoint.url(),
        };
        psql.args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d"]).arg(url);
        Ok(psql)
    }

    fn run(&self, sql: &str, what: &str) -> Result<(), Error> {
        let statement = sql.to_string();
        self.execute(&move |_| statement.clone(), what).map_err(|r| r.error)
    }

    /// Makes the template `name` holding `files`, unless another process did first: a lock
    /// orders the processes of one machine; two machines sharing an external server may both
    /// load it, and the one that publishes second drops its own. The files are run by `psql`,
    /// so that their `\copy` and other commands work.
    fn make_template(&self, files: &[PathBuf], name: &str) -> Result<(), Error> {
        let lock_path = user_dir()
            .map(|dir| {
                dir.join(format!(
                    "postgres-template-{}-{}-{name}.lock",
                    self.endpoint.file_key(),
                    self.endpoint.port
                ))
            })
            .map_err(|problem| Error::InvalidArgument {
                command: "psql".into(),
                problem,
                hint: "set TMPDIR to a directory of your own".into(),
            })?;
        let io = |action: &str| {
            let action = action.to_string();
            move |source| Error::Io { command: "psql".into(), action, source }
        };
        let lock = open_lock(&lock_path).map_err(io("locking the template"))?;
        let exclusive = rustix::fs::FlockOperation::NonBlockingLockExclusive;
        let locked =
            lock_within(&lock, exclusive, LOAD_TIMEOUT).map_err(io("locking the template"))?;
        if !locked {
            // Another process has been loading it for as long as a load may take.
            let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
            return Err(io("waiting for another process loading the template")(timed_out));
        }
        let mut exists = self.psql(None)?;
        exists
            .args(["-At", "-c"])
            .arg(format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"));
        if run_client(exists, "looking for the template", None)?.trim() == "1" {
            return Ok(());
        }
        let building = unique_name("mirakuru_building");
        self.run(&format!("CREATE DATABASE \"{building}\""), "creating the template")?;
        for file in files {
            let mut psql = self.psql(Some(&building))?;
            psql.arg("-f").arg(file);
            let what = format!("loading {}", file.display());
            if let Err(err) = run_client_within(psql, &what, None, LOAD_TIMEOUT) {
                let _ = self.run(&format!("DROP DATABASE \"{building}\""), "cleaning up");
                return Err(err);
            }
        }
        let renamed = self.run(
            &format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
            "publishing the template",
        );
        if renamed.is_err() {
            // Another machine published the same template first.
            let _ = self.run(&format!("DROP DATABASE \"{building}\""), "cleaning up");
        }
        Ok(())
    }
}

/// What the schema files hold, hashed: the same schema is the same template.
fn schema_hash(files: &[PathBuf]) -> Result<u64, Error> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        let unreadable = |e: String| Error::InvalidArgument {
            command: "psql".into(),
            problem: format!("the schema file {} cannot be read: {e}", file.display()),
            hint: "give `load` a path relative to the crate's root (where tests run) or an \
                   absolute one, of a regular file"
                .into(),
        };
        // A FIFO or a device would block the read, or never end it.
        let meta = std::fs::metadata(file).map_err(|e| unreadable(e.to_string()))?;
        if !meta.is_file() {
            return Err(unreadable("it is not a regular file".into()));
        }
        let content = std::fs::read(file).map_err(|e| unreadable(e.to_string()))?;
        content.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// A database name no other test of any process or machine picks: the pid, a counter and the
/// clock, in characters that need no quoting.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}_{nanos:08x}", std::process::id())
}
