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
//! it. Administration goes through `psql`, the server's own client: every authentication
//! method works against an external server, and schema files may use psql's commands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::binaries::Search;
use super::client::{run_client, wait_ready, REQUEST_TIMEOUT};
use super::data_dir::Recipe;
use super::{service_user, Database, Endpoint, Preset};
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

/// initdb's options: the superuser `postgres` without a password (trust), the C locale (no
/// locale needs to be installed), 1 MB WAL segments.
const INITDB_OPTIONS: &[&str] =
    &["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"];

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
    match service_user("postgres") {
        Some(user) => spec.user(user),
        None => spec,
    }
}

impl Preset for Postgres {
    fn title(&self) -> &'static str {
        "PostgreSQL"
    }

    fn external_var(&self) -> Option<&'static str> {
        Some("MIRAKURU_POSTGRES_URL")
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
        };
        recipe.copy_to(&places.tmpdir.join("data"), |data| {
            let mut initdb = std::process::Command::new(&initdb);
            initdb.args(INITDB_OPTIONS).arg("-D").arg(data);
            // initdb refuses root; where the server runs as `postgres`, so does initdb. Its
            // working directory must be one that user may enter.
            initdb.current_dir(data);
            if let Some((uid, gid)) = owner {
                use std::os::unix::process::CommandExt;
                initdb.uid(uid).gid(gid);
            }
            run_client(initdb, "initdb", None).map(drop)
        })?;
        Ok(command.with_program(postgres.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, tmpdir: &Path) -> Endpoint {
        let port = port.unwrap_or(5432);
        Endpoint {
            scheme: "postgresql".into(),
            user: Some(SUPERUSER.into()),
            password: None,
            host: host.into(),
            port,
            path: Some("postgres".into()),
            socket: Some(tmpdir.join(format!(".s.PGSQL.{port}"))),
        }
    }

    fn probe(&self, endpoint: &Endpoint, timeout: std::time::Duration) -> Result<String, String> {
        let user = endpoint.user.as_deref().unwrap_or(SUPERUSER);
        let database = endpoint.path.as_deref().unwrap_or(user);
        let request = crate::ready::postgres::startup_message(user, database);
        wait_ready(endpoint, &request, crate::ready::postgres::classify, timeout)
    }

    fn database(&self, endpoint: &Endpoint, schema: &[PathBuf]) -> Result<Database, Error> {
        let admin = Admin { psql: psql()?, endpoint: endpoint.clone() };
        let template = match schema {
            [] => None,
            files => Some(admin.template(files)?),
        };
        let name = unique_name("mirakuru");
        admin.run(
            &format!(
                "SELECT current_setting('server_version_num')::int >= 150000 AS file_copy \\gset\n\
                 \\if :file_copy\n\
                 CREATE DATABASE \"{name}\"{template} STRATEGY FILE_COPY;\n\
                 \\else\n\
                 CREATE DATABASE \"{name}\"{template};\n\
                 \\endif\n",
                template = template.map(|t| format!(" TEMPLATE \"{t}\"")).unwrap_or_default()
            ),
            "creating the test's database",
        )?;
        let mut db_endpoint = endpoint.clone();
        db_endpoint.path = Some(name.clone());
        db_endpoint.socket = None;
        Ok(Database::new(name.clone(), db_endpoint, move || {
            admin.run(
                &format!(
                    "SELECT current_setting('server_version_num')::int >= 130000 AS force \\gset\n\
                     \\if :force\n\
                     DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE);\n\
                     \\else\n\
                     DROP DATABASE IF EXISTS \"{name}\";\n\
                     \\endif\n"
                ),
                "dropping the test's database",
            )
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

/// `psql` against the server's maintenance database.
#[derive(Debug)]
struct Admin {
    psql: PathBuf,
    endpoint: Endpoint,
}

impl Admin {
    fn psql(&self, database: Option<&str>) -> std::process::Command {
        let mut psql = std::process::Command::new(&self.psql);
        let url = match database {
            Some(db) => self.endpoint.url_with_path(Some(db)),
            None => self.endpoint.url(),
        };
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"]).arg(url);
        psql
    }

    fn run(&self, script: &str, what: &str) -> Result<(), Error> {
        let file = script_file(script).map_err(|source| Error::Io {
            command: self.psql.display().to_string(),
            action: format!("writing the script for {what}"),
            source,
        })?;
        let mut psql = self.psql(None);
        psql.args(["-f", "-"]);
        run_client(psql, what, Some(file.path())).map(drop)
    }

    /// The template holding `files`, loaded once per server and schema: by this process, or
    /// by another one that got there first (a lock orders the processes of one machine; two
    /// machines sharing an external server may both load it, and one of them keeps its own).
    fn template(&self, files: &[PathBuf]) -> Result<String, Error> {
        // Templates this process made or found: a test's database then costs one `psql`.
        static KNOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let name = format!("mirakuru_tpl_{:016x}", schema_hash(files)?);
        let key = format!("{}:{}/{name}", self.endpoint.host, self.endpoint.port);
        let known =
            |k: &str| KNOWN.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|x| x == k);
        if known(&key) {
            return Ok(name);
        }
        let name = self.make_template(files, name)?;
        KNOWN.lock().unwrap_or_else(|p| p.into_inner()).push(key);
        Ok(name)
    }

    fn make_template(&self, files: &[PathBuf], name: String) -> Result<String, Error> {
        let lock_path = user_dir()
            .map(|dir| {
                dir.join(format!(
                    "postgres-template-{}-{}-{name}.lock",
                    self.endpoint.host, self.endpoint.port
                ))
            })
            .map_err(|e| super::preset_error("psql", e, "set TMPDIR to a directory of your own"))?;
        let io = |action: &str| {
            let action = action.to_string();
            move |source| Error::Io { command: "psql".into(), action, source }
        };
        let lock = open_lock(&lock_path).map_err(io("locking the template"))?;
        lock_within(
            &lock,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
            REQUEST_TIMEOUT * 4,
        )
        .map_err(io("locking the template"))?;
        let exists = run_client(
            {
                let mut psql = self.psql(None);
                psql.args(["-At", "-c"])
                    .arg(format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"));
                psql
            },
            "looking for the template",
            None,
        )?;
        if exists.trim() == "1" {
            return Ok(name);
        }
        let building = unique_name("mirakuru_building");
        self.run(&format!("CREATE DATABASE \"{building}\";\n"), "creating the template")?;
        for file in files {
            let mut psql = self.psql(Some(&building));
            psql.arg("-f").arg(file);
            if let Err(err) = run_client(psql, &format!("loading {}", file.display()), None) {
                let _ = self.run(&format!("DROP DATABASE \"{building}\";\n"), "cleaning up");
                return Err(err);
            }
        }
        let renamed = self.run(
            &format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\";\n"),
            "publishing the template",
        );
        if renamed.is_err() {
            // Another machine published the same template first.
            let _ = self.run(&format!("DROP DATABASE \"{building}\";\n"), "cleaning up");
        }
        Ok(name)
    }
}

/// A script in a file, given to psql as its standard input.
fn script_file(script: &str) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(script.as_bytes())?;
    file.flush()?;
    Ok(file)
}

/// What the schema files hold, hashed: the same schema is the same template.
fn schema_hash(files: &[PathBuf]) -> Result<u64, Error> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        let content = std::fs::read(file).map_err(|e| Error::InvalidArgument {
            command: "psql".into(),
            problem: format!("the schema file {} cannot be read: {e}", file.display()),
            hint: "give `load` a path relative to the crate's root (where tests run) or an \
                   absolute one"
                .into(),
        })?;
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
