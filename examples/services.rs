//! Every ready-made service, one function each: PostgreSQL and MariaDB with a database per
//! test, Redis with an index per test, memcached and nginx. A service that is not installed
//! is skipped with one line saying what to install.
//!
//! ```sh
//! cargo run --example services
//! ```

use std::time::Instant;

use mirakuru::services;

fn main() {
    for (name, run) in [
        ("postgres", postgres as fn() -> Result<(), mirakuru::Error>),
        ("redis", redis),
        ("mariadb", mariadb),
        ("memcached", memcached),
        ("nginx", nginx),
    ] {
        match run() {
            Ok(()) => {}
            Err(mirakuru::Error::InvalidArgument { problem, hint, .. })
                if problem.contains("is not installed") =>
            {
                println!("{name}: skipped: {problem} ({hint})");
            }
            Err(err) => {
                eprintln!("{name}: {err}");
                std::process::exit(1);
            }
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A server, a database of its own for each of two tests, and an outage.
fn postgres() -> Result<(), mirakuru::Error> {
    let began = Instant::now();
    let pg = services::postgres().start()?;
    println!("postgres: {} ready in {:.0} ms", pg.url(), ms(began));
    for _ in 0..2 {
        let began = Instant::now();
        let db = pg.database()?;
        println!("  a test's database {} in {:.1} ms", db.url(), ms(began));
    }
    mirakuru::stopped!(pg, {
        println!("  stopped; running = {}", pg.running());
    });
    println!("  back on {}", pg.url());
    Ok(())
}

fn redis() -> Result<(), mirakuru::Error> {
    let redis = services::redis().start()?;
    let db = redis.database()?;
    println!("redis: {}; a test's database: {}", redis.url(), db.url());
    Ok(())
}

fn mariadb() -> Result<(), mirakuru::Error> {
    let began = Instant::now();
    let db = services::mariadb().start()?;
    println!("mariadb: {} ready in {:.0} ms", db.url(), ms(began));
    let mine = db.database()?;
    println!("  a test's database: {}", mine.url());
    Ok(())
}

fn memcached() -> Result<(), mirakuru::Error> {
    let cache = services::memcached().start()?;
    println!("memcached: on port {}", cache.port());
    Ok(())
}

fn nginx() -> Result<(), mirakuru::Error> {
    let web = services::nginx().start()?;
    println!("nginx: {} serving {}", web.url(), web.tmpdir().join("html").display());
    Ok(())
}
