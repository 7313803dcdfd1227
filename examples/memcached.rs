//! memcached, ready when its TCP port accepts connections, then a `set` and a `get` over its
//! text protocol.
//!
//! ```sh
//! cargo run --example memcached
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

use mirakuru::TcpExecutor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let installed = std::process::Command::new("sh")
        .args(["-c", "command -v memcached"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("memcached is not installed (Debian: apt-get install memcached)");
        return Ok(());
    }
    let port = mirakuru::free_port()?;
    // memcached refuses to run as root unless told which user to become.
    let as_user = if is_root() { " -u nobody" } else { "" };
    let mut cache = TcpExecutor::new(
        format!("memcached -p {port} -l 127.0.0.1 -U 0{as_user}"),
        "127.0.0.1",
        port,
    );
    let began = Instant::now();
    cache.start()?;
    println!("memcached ready in {:.1} ms on port {port}", began.elapsed().as_secs_f64() * 1e3);

    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"set fruit 0 0 5\r\nmango\r\nget fruit\r\n")?;
    let mut reader = BufReader::new(stream);
    for _ in 0..4 {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        print!("< {line}");
    }
    cache.stop()?;
    println!("stopped");

    // The preset: a free port, UDP off, the right user when root.
    let preset = mirakuru::services::memcached().start()?;
    println!("preset: memcached on port {}", preset.port());
    Ok(())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
