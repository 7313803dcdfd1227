//! The main job of mirakuru, on a machine with nothing but the Rust toolchain: start a service,
//! wait until it is really ready, use it, take it down for a moment, stop it — with timings.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! The service is this very program, started again with `--serve PORT`: a tiny TCP server that
//! takes 50 ms to "load its data", then answers `PING` with `PONG`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mirakuru::TcpExecutor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, port] = args.as_slice() {
        if flag == "--serve" {
            return serve(port.parse()?);
        }
    }

    let me = std::env::current_exe()?.display().to_string();
    let port = mirakuru::free_port()?;
    let mut service =
        TcpExecutor::new([me.as_str(), "--serve", &port.to_string()], "127.0.0.1", port)
            .timeout(Duration::from_secs(10))
            .stop_timeout(Duration::from_secs(5));

    let began = Instant::now();
    service.start()?; // blocks until the port accepts connections
    println!(
        "started `{}` in {:.1} ms (ready {:.1} ms after the spawn; it sleeps 50 ms before listening)",
        service.command(),
        ms(began.elapsed()),
        ms(service.ready_after().unwrap_or_default()),
    );
    println!("pid {}, PING -> {}", service.pid().unwrap_or(0), ping(port)?);

    let began = Instant::now();
    mirakuru::stopped!(service, {
        println!(
            "inside stopped!: running = {}, connecting: {}",
            service.running(),
            ping(port).unwrap_or_else(|e| e.to_string()),
        );
    });
    println!(
        "after stopped!: restarted and ready again in {:.1} ms, PING -> {}",
        ms(began.elapsed()),
        ping(port)?
    );

    let output = service.output();
    print!("what the service wrote:\n{}", output.stderr_lossy());

    let began = Instant::now();
    service.stop()?; // SIGTERM to the whole tree, then SIGKILL after the stop timeout
    println!("stopped in {:.2} ms; running = {}", ms(began.elapsed()), service.running());
    Ok(())
}

/// The service: listens after a simulated 50 ms start-up, answers PING with PONG.
fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    std::thread::sleep(Duration::from_millis(50));
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("service: listening on 127.0.0.1:{port}");
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        if line.trim() == "PING" {
            stream.write_all(b"PONG\n")?;
        }
    }
    Ok(())
}

fn ping(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"PING\n")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
