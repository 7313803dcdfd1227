//! Redis three ways — ready when its TCP port accepts connections, when it prints its banner,
//! when its unix socket accepts connections — used through `redis-cli`; then the preset
//! `mirakuru::services::redis()`.
//!
//! ```sh
//! cargo run --example redis
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use mirakuru::{OutputExecutor, TcpExecutor, UnixSocketExecutor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !installed("redis-server") || !installed("redis-cli") {
        println!(
            "redis-server or redis-cli is not installed (Debian: apt-get install redis-server)"
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let base = format!(
        "redis-server --bind 127.0.0.1 --save '' --appendonly no --dir {}",
        dir.path().display()
    );

    // 1. TCP: start() returns once the port accepts connections.
    let port = mirakuru::free_port()?;
    let mut redis = TcpExecutor::new(format!("{base} --port {port}"), "127.0.0.1", port)
        .timeout(Duration::from_secs(10));
    let began = Instant::now();
    redis.start()?;
    println!("tcp:    ready in {:.1} ms", began.elapsed().as_secs_f64() * 1e3);
    let p = port.to_string();
    println!("        PING -> {}", cli(&["-p", &p, "PING"])?);
    println!("        SET fruit mango -> {}", cli(&["-p", &p, "SET", "fruit", "mango"])?);
    println!("        GET fruit -> {}", cli(&["-p", &p, "GET", "fruit"])?);
    mirakuru::stopped!(redis, {
        println!(
            "        inside stopped!: PING -> {}",
            cli(&["-p", &p, "PING"]).unwrap_or_else(|e| e)
        );
    });
    println!("        after stopped!: PING -> {}", cli(&["-p", &p, "PING"])?);
    redis.stop()?;

    // 2. Banner: ready when the log says so.
    let port = mirakuru::free_port()?;
    let mut redis =
        OutputExecutor::new(format!("{base} --port {port}"), "Ready to accept connections");
    let began = Instant::now();
    redis.start()?;
    println!("banner: ready in {:.1} ms", began.elapsed().as_secs_f64() * 1e3);
    println!("        PING -> {}", cli(&["-p", &port.to_string(), "PING"])?);
    redis.stop()?;

    // 3. Unix socket, no TCP port at all.
    let socket = dir.path().join("redis.sock");
    let mut redis = UnixSocketExecutor::new(
        format!("{base} --port 0 --unixsocket {}", socket.display()),
        &socket,
    );
    let began = Instant::now();
    redis.start()?;
    println!("unix:   ready in {:.1} ms", began.elapsed().as_secs_f64() * 1e3);
    println!("        PING -> {}", cli(&["-s", &socket.display().to_string(), "PING"])?);
    redis.stop()?;

    // 4. The preset: found, configured (no persistence) and waited for by PING, with a
    //    database index of the test's own, flushed.
    let preset = mirakuru::services::redis().start()?;
    let db = preset.database()?;
    println!("preset: {}; a test's database {}", preset.url(), db.url());
    Ok(())
}

fn cli(args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli").args(args).output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !text.is_empty() {
        Ok(text)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
