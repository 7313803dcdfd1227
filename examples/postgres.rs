//! PostgreSQL: `initdb` into a temporary directory, then the server, used through
//! `psql -c 'select 1'` — once started directly (`postgres -D ... -p PORT`), once through
//! `pg_ctl start`, a launcher that exits while the server lives on (as pytest-postgresql does)
//! — and then all of it in one call, the preset `mirakuru::services::postgres()`, with a
//! database of a test's own.
//!
//! PostgreSQL refuses to run as root: when this runs as root, the server runs as the
//! `postgres` user (`.user("postgres")`); otherwise as you.
//!
//! ```sh
//! cargo run --example postgres
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mirakuru::{ready, Executor, Signal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(bin) = postgres_bin_dir() else {
        println!("PostgreSQL is not installed (Debian: apt-get install postgresql)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let user = if is_root() { Some("postgres") } else { None };
    let data = initdb(&bin, dir.path(), user)?;

    // 1. The server itself: ready when it accepts a login, as pg_isready decides (its port
    //    accepts connections earlier, and answers "the database system is starting up").
    let port = mirakuru::free_port()?;
    let server = [
        bin.join("postgres").display().to_string(),
        "-D".into(),
        data.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        dir.path().display().to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
    ];
    let mut pg = Executor::new(server, ready::postgres("127.0.0.1", port))
        .stop_signal(Signal::SIGINT) // PostgreSQL's fast shutdown
        .timeout(Duration::from_secs(60));
    if let Some(user) = user {
        pg = pg.user(user);
    }
    let began = Instant::now();
    pg.start()?;
    println!("postgres ready in {:.1} ms", began.elapsed().as_secs_f64() * 1e3);
    println!("  select 1 -> {}", psql(&bin, port, "select 1")?);
    pg.stop()?;

    // 2. Through pg_ctl, which exits 0 once the server it started is up.
    let port = mirakuru::free_port()?;
    let launcher = [
        bin.join("pg_ctl").display().to_string(),
        "start".into(),
        "-D".into(),
        data.display().to_string(),
        "-l".into(),
        dir.path().join("server.log").display().to_string(),
        "-o".into(),
        format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.path().display()),
    ];
    let mut pg = Executor::new(launcher, ready::postgres("127.0.0.1", port))
        .stop_signal(Signal::SIGINT)
        .timeout(Duration::from_secs(60));
    if let Some(user) = user {
        pg = pg.user(user);
    }
    let began = Instant::now();
    pg.start()?;
    println!(
        "pg_ctl start: ready in {:.1} ms; running = {} though pg_ctl has exited",
        began.elapsed().as_secs_f64() * 1e3,
        pg.running()
    );
    println!("  select version() -> {}", psql(&bin, port, "select version()")?);
    pg.stop()?;
    println!("stopped; running = {}", pg.running());

    // 3. The preset does all of the above: binaries found, initdb once (cached), the user when
    //    root, readiness as pg_isready decides; and a database per test, from a template.
    let began = Instant::now();
    let preset = mirakuru::services::postgres().start()?;
    println!("preset: {} ready in {:.1} ms", preset.url(), began.elapsed().as_secs_f64() * 1e3);
    let began = Instant::now();
    let db = preset.database()?;
    println!("  a test's database {} in {:.1} ms", db.url(), began.elapsed().as_secs_f64() * 1e3);
    Ok(())
}

fn initdb(
    bin: &Path,
    dir: &Path,
    user: Option<&str>,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let data = dir.join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--no-sync"]);
    if let Some(user) = user {
        use std::os::unix::process::CommandExt;
        let (uid, gid) = (id(user, "-u")?, id(user, "-g")?);
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(data)
}

fn psql(bin: &Path, port: u16, sql: &str) -> Result<String, String> {
    // psql (the client) may live apart from the server programs.
    let psql = if bin.join("psql").is_file() { bin.join("psql") } else { PathBuf::from("psql") };
    let out = Command::new(psql)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-tAc", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Debian keeps the server programs in /usr/lib/postgresql/<version>/bin.
fn postgres_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    });
    on_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|d| d.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

fn id(user: &str, flag: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let out = Command::new("id").args([flag, user]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
