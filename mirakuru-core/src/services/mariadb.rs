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
use super::data_dir::Recipe;
use super::postgres::unique_name;
use super::{service_user, Database, Endpoint, Preset};
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
    match service_user("mysql") {
        Some(user) => spec.user(user),
        None => spec,
    }
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
            secret: false,
        };
        recipe.copy_to(&places.tmpdir.join("data"), |data, _| {
            let mut install_db = std::process::Command::new(&install);
            install_db
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .arg("--skip-name-resolve")
                .arg(format!("--tmpdir={}", data.display()))
                .args(DATA_OPTIONS);
            install_db
        })?;
        Ok(command.with_program(server.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, tmpdir: &Path) -> Endpoint {
        Endpoint {
            scheme: "mysql".into(),
            user: Some("root".into()),
            password: None,
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
