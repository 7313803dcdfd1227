//! MariaDB through its preset: `mariadb-install-db` once (cached), the server as `mysql` when
//! root, ready when its handshake arrives, a database per test with a schema — used through
//! the `mariadb` client.
//!
//! ```sh
//! cargo run --example mariadb
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = tempfile::Builder::new().suffix(".sql").tempfile()?;
    std::fs::write(schema.path(), "CREATE TABLE fruit (name VARCHAR(20));\n")?;
    let began = Instant::now();
    let server = match mirakuru::services::mariadb()
        .load(schema.path())
        .timeout(Duration::from_secs(120))
        .start()
    {
        Ok(server) => server,
        Err(mirakuru::Error::InvalidArgument { problem, hint, .. }) => {
            println!("{problem} ({hint})");
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    println!("mariadb: {} ready in {:.0} ms", server.url(), began.elapsed().as_secs_f64() * 1e3);
    let db = server.database()?;
    println!("  a test's database: {}", db.url());
    let out = Command::new("mariadb")
        .args(["--no-defaults", "--protocol=tcp", "-N", "-B", "-u", "root"])
        .arg(format!("--port={}", db.port()))
        .env("MYSQL_PWD", db.password().unwrap_or_default())
        .arg(format!("--database={}", db.name()))
        .args(["-e", "INSERT INTO fruit VALUES ('mango'); SELECT * FROM fruit"])
        .output()?;
    println!("  SELECT * FROM fruit -> {}", String::from_utf8_lossy(&out.stdout).trim());
    mirakuru::stopped!(server, {
        println!("  stopped; running = {}", server.running());
    });
    println!("  back on {}", server.url());
    Ok(())
}
