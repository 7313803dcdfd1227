//! nginx with a generated configuration in a temporary directory: once ready by an HTTP status
//! (`daemon off;`), once by its pid file (`daemon on;`: the launcher exits at once and the
//! daemon it leaves writes the pid file).
//!
//! ```sh
//! cargo run --example nginx
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mirakuru::{HttpExecutor, PidExecutor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).is_file());
    let Some(nginx) = nginx else {
        println!("nginx is not installed (Debian: apt-get install nginx-light)");
        return Ok(());
    };

    // 1. In the foreground, ready when GET / answers 200.
    let dir = tempfile::tempdir()?;
    let port = mirakuru::free_port()?;
    let mut web = HttpExecutor::new(
        command(nginx, dir.path(), port, false)?,
        format!("http://127.0.0.1:{port}/"),
    )
    .method("GET")
    .status(200);
    let began = Instant::now();
    web.start()?;
    println!("nginx (http) ready in {:.1} ms: {}", ms(began), get(port)?);
    mirakuru::stopped!(web, {
        println!("  inside stopped!: {}", get(port).unwrap_or_else(|e| e.to_string()));
    });
    println!("  after stopped!: {}", get(port)?);
    web.stop()?;

    // 2. As a daemon, ready when it has written its pid file; stopped through that pid.
    let dir = tempfile::tempdir()?;
    let port = mirakuru::free_port()?;
    let mut daemon =
        PidExecutor::new(command(nginx, dir.path(), port, true)?, dir.path().join("nginx.pid"))
            .timeout(Duration::from_secs(10));
    let began = Instant::now();
    daemon.start()?;
    let pid = std::fs::read_to_string(dir.path().join("nginx.pid"))?;
    println!("nginx (pid file) ready in {:.1} ms: master pid {}", ms(began), pid.trim());
    println!("  running = {} though the launcher exited", daemon.running());
    daemon.stop()?;
    println!("stopped; running = {}", daemon.running());

    // The preset writes such a configuration itself and serves the fixture's `html/`.
    let web = mirakuru::services::nginx().start()?;
    std::fs::write(web.tmpdir().join("html/hello.txt"), "hello\n")?;
    println!("preset: {}hello.txt is served from {}", web.url(), web.tmpdir().display());
    Ok(())
}

/// Writes nginx.conf into `dir` and returns the command line that runs it.
fn command(nginx: &str, dir: &Path, port: u16, daemon: bool) -> std::io::Result<Vec<String>> {
    let d = dir.display();
    let conf = format!(
        "daemon {on}; master_process on; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  \
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hello from nginx\\n\"; }} }}\n}}\n",
        on = if daemon { "on" } else { "off" }
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    Ok(vec![
        nginx.to_string(),
        "-p".into(),
        d.to_string(),
        "-c".into(),
        format!("{d}/nginx.conf"),
        "-e".into(),
        format!("{d}/error.log"),
    ])
}

fn get(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_string()
        + " / "
        + response.lines().last().unwrap_or_default())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
