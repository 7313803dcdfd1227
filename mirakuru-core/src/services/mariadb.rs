//! MariaDB (`mysqld` and `mysql_install_db` are its older names; Oracle MySQL, which initialises
//! with `mysqld --initialize`, is not supported): `mariadb-install-db` once per version into a
//! cache (with a 4 MB redo log, so a copy moves 22 MB, not 114), copied for each server;
//! `root` without a password on loopback; the redo log flushed once a second instead of at
//! each commit, and no binary log — durability a test does not need.
//!
//! A database per test is created, and the schema files run into it, by the `mariadb`
//! client (MariaDB has no template databases).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::binaries::Search;
use super::client::{run_client, run_client_within, wait_ready, LOAD_TIMEOUT};
use super::data_dir::{keep_secret, kept_secret, Recipe};
use super::postgres::unique_name;
use super::{as_service_user, Database, Endpoint, Preset};
use crate::command::Command;
use crate::fixture::{Places, Port, Spec};
use crate::Error;

const SEARCH: Search = Search {
    title: "MariaDB",
    env: "MIRAKURU_MARIADB_BIN",
    dirs: &["/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/opt/homebrew/bin"],
    install: "Debian/Ubuntu: apt-get install mariadb-server; macOS: brew install mariadb",
};

/// Options the data directory is made with and the server runs with.
const DATA_OPTIONS: &[&str] = &["--innodb-log-file-size=4M"];

#[derive(Debug)]
pub(crate) struct Mariadb;

pub(crate) fn spec() -> Spec {
    let cmd = [
        "mariadbd",
        // Before anything else: no my.cnf of the machine's changes the server.
        "--no-defaults",
        "--datadir={tmpdir}/data",
        "--port={port}",
        "--bind-address={host}",
        "--socket={tmpdir}/mysql.sock",
        "--pid-file={tmpdir}/mysql.pid",
        // Its temporary files in the fixture's directory: as root it runs as `mysql`, which
        // may not write to the caller's TMPDIR.
        "--tmpdir={tmpdir}",
        "--skip-name-resolve",
        "--innodb-log-file-size=4M",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-buffer-pool-size=32M",
        "--skip-log-bin",
    ];
    let spec = Spec::args("mariadb", cmd).mysql(Port::Auto).preset(Arc::new(Mariadb));
    as_service_user(spec, &["mysql"])
}

impl Preset for Mariadb {
    fn title(&self) -> &'static str {
        "MariaDB"
    }

    fn external_var(&self) -> Option<&'static str> {
        Some("MIRAKURU_MARIADB_URL")
    }

    fn loads_schema(&self) -> bool {
        true
    }

    fn default_port(&self) -> u16 {
        3306
    }

    fn prepare(
        &self,
        command: &Command,
        places: &Places<'_>,
        owner: Option<(u32, u32)>,
    ) -> Result<Command, Error> {
        let server = SEARCH.find(&["mariadbd", "mysqld"])?;
        let install = SEARCH.find(&["mariadb-install-db", "mysql_install_db"])?;
        let recipe = Recipe {
            name: "mariadb",
            programs: &[&server, &install],
            options: DATA_OPTIONS,
            owner,
            secret: true,
        };
        // mariadb-install-db leaves root without a password: on 127.0.0.1, any local user
        // could be it. The server in bootstrap mode then gives root the recipe's password.
        let password = recipe.copy_to(&places.tmpdir.join("data"), |data, secret| {
            let mut init = std::process::Command::new("sh");
            // Positional parameters, never pasted into the script: the programs, the data
            // directory, the password's file, then the options.
            let script = r#"install=$0 server=$1 data=$2 secret=$3; shift 3
"$install" --no-defaults --datadir="$data" --tmpdir="$data" \
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve "$@" || exit
pw=$(cat "$secret") || exit
{
    echo "FLUSH PRIVILEGES;" # bootstrap mode starts without the grant tables
    for host in localhost 127.0.0.1 ::1; do
        printf "ALTER USER 'root'@'%s' IDENTIFIED BY '%s';\n" "$host" "$pw"
    done
} | "$server" --no-defaults --datadir="$data" --tmpdir="$data" "$@" --bootstrap"#;
            init.arg("-c")
                .arg(script)
                .arg(&install)
                .arg(&server)
                .arg(data)
                .arg(secret.unwrap_or(Path::new("/dev/null")))
                .args(DATA_OPTIONS);
            init
        })?;
        if let Some(password) = password {
            keep_secret(places.tmpdir, &password, owner).map_err(|source| Error::Io {
                command: "mariadbd".into(),
                action: format!("keeping its password in {}", places.tmpdir.display()),
                source,
            })?;
        }
        Ok(command.with_program(server.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, tmpdir: &Path) -> Endpoint {
        Endpoint {
            scheme: "mysql".into(),
            user: Some("root".into()),
            password: kept_secret(tmpdir),
            host: host.into(),
            port: port.unwrap_or(3306),
            path: None,
            socket: Some(tmpdir.join("mysql.sock")),
            query: None,
        }
    }

    fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<String, String> {
        wait_ready(endpoint, b"", crate::ready::mysql::classify, timeout)
    }

    fn database(&self, endpoint: &Endpoint, schema: &[PathBuf]) -> Result<Database, Error> {
        let client =
            Client { program: SEARCH.find(&["mariadb", "mysql"])?, endpoint: endpoint.clone() };
        let name = unique_name("mirakuru");
        client.run(None, &format!("CREATE DATABASE `{name}`"), "creating the test's database")?;
        for file in schema {
            if let Err(err) = client.load(&name, file) {
                let _ = client.run(None, &format!("DROP DATABASE `{name}`"), "cleaning up");
                return Err(err);
            }
        }
        let mut db_endpoint = endpoint.clone();
        db_endpoint.path = Some(name.clone());
        db_endpoint.socket = None;
        Ok(Database::new(name.clone(), db_endpoint, move || {
            client.run(
                None,
                &format!("DROP DATABASE IF EXISTS `{name}`"),
                "dropping the test's database",
            )
        }))
    }
}

/// The `mariadb` client, over TCP to the endpoint; the password, if any, in `MYSQL_PWD`, out
/// of the process list.
#[derive(Debug)]
struct Client {
    program: PathBuf,
    endpoint: Endpoint,
}

impl Client {
    fn command(&self, database: Option<&str>) -> std::process::Command {
        let mut client = std::process::Command::new(&self.program);
        client
            .arg("--no-defaults")
            .arg("--protocol=tcp")
            .arg(format!("--host={}", self.endpoint.host))
            .arg(format!("--port={}", self.endpoint.port));
        if let Some(user) = &self.endpoint.user {
            client.arg(format!("--user={user}"));
        }
        match &self.endpoint.password {
            Some(password) => client.env("MYSQL_PWD", password),
            None => client.env_remove("MYSQL_PWD"),
        };
        if let Some(database) = database {
            client.arg(format!("--database={database}"));
        }
        client
    }

    fn run(&self, database: Option<&str>, sql: &str, what: &str) -> Result<(), Error> {
        let mut client = self.command(database);
        client.arg("-e").arg(sql);
        run_client(client, what, None).map(drop)
    }

    fn load(&self, database: &str, file: &Path) -> Result<(), Error> {
        if let Err(e) = std::fs::metadata(file) {
            return Err(Error::InvalidArgument {
                command: self.program.display().to_string(),
                problem: format!("the schema file {} cannot be read: {e}", file.display()),
                hint: "give `load` a path relative to the crate's root (where tests run) or an \
                       absolute one"
                    .into(),
            });
        }
        if !std::fs::metadata(file).is_ok_and(|m| m.is_file()) {
            return Err(Error::InvalidArgument {
                command: self.program.display().to_string(),
                problem: format!("the schema file {} is not a regular file", file.display()),
                hint: "give `load` the path of an SQL file".into(),
            });
        }
        let what = format!("loading {}", file.display());
        run_client_within(self.command(Some(database)), &what, Some(file), LOAD_TIMEOUT).map(drop)
    }
}
