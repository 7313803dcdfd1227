//! A shared fixture: one service for many users, declared once as a static, started by the
//! first user, exactly once however many ask at the same moment, and stopped when the program
//! exits — Rust never drops statics, an exit hook does it.
//!
//! ```sh
//! cargo run --example shared
//! ```
//!
//! In a test binary the users are `#[test]` functions; here they are threads. The service is
//! this program again, started with `--serve PORT`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Barrier;
use std::time::Instant;

use mirakuru::SharedFixture;

fn me() -> String {
    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()
}

#[mirakuru::fixture(tcp = auto, args = [me(), "--serve", "{port}"], timeout = "10s")]
static ECHO: SharedFixture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, port] = args.as_slice() {
        if flag == "--serve" {
            return serve(port.parse()?);
        }
    }

    let began = Instant::now();
    let barrier = Barrier::new(8);
    std::thread::scope(|scope| {
        for user in 0..8 {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait(); // all eight ask at the same moment
                let echo = ECHO.get(); // the first starts it; the others wait for it
                let answer = ask(echo.port(), &format!("hello from user {user}"));
                println!("user {user}: pid {:?} answered {answer:?}", echo.pid());
            });
        }
    });
    let echo = ECHO.get();
    println!(
        "8 users, 1 service (pid {:?}), in {:.1} ms",
        echo.pid(),
        began.elapsed().as_secs_f64() * 1e3
    );

    mirakuru::stopped!(echo, {
        // Waits until no other user holds the service; they would wait while it is down.
        println!("inside stopped!: running = {}", echo.running());
    });
    println!("after stopped!: answered {:?}", ask(echo.port(), "still there?"));
    println!("exiting: the exit hook stops the service");
    Ok(())
}

fn ask(port: u16, line: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return "no answer".into() };
    let _ = stream.write_all(format!("{line}\n").as_bytes());
    let mut answer = String::new();
    let _ = BufReader::new(stream).read_line(&mut answer);
    answer.trim().to_string()
}

/// The service: echoes one line per connection.
fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        stream.write_all(line.as_bytes())?;
    }
    Ok(())
}
