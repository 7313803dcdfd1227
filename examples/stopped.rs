//! `mirakuru::stopped!`: take a service down for the length of a block — to test how the code
//! under test copes with an outage — and have it back, ready, afterwards, even when the block
//! panics.
//!
//! ```sh
//! cargo run --example stopped
//! ```

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
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let me = std::env::current_exe()?.display().to_string();
    let mut service =
        TcpExecutor::new([me.as_str(), "--serve", &port.to_string()], "127.0.0.1", port);
    service.start()?;
    println!("up: {}", status(port));

    // The code under test, facing an outage.
    let began = Instant::now();
    mirakuru::stopped!(service, {
        println!("inside stopped!: running = {}, {}", service.running(), status(port));
        println!("  the client would retry, report, fall back... here it just waits 100 ms");
        std::thread::sleep(Duration::from_millis(100));
    });
    println!(
        "after stopped! ({:.1} ms): {} — same port, new pid {:?}",
        began.elapsed().as_secs_f64() * 1e3,
        status(port),
        service.pid()
    );

    // Even a panicking block gets the service back. (The default hook would print the
    // deliberate panic with a backtrace; keep the output readable.)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        println!(
            "  panic inside the block: {}",
            info.payload().downcast_ref::<&str>().unwrap_or(&"?")
        )
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mirakuru::stopped!(service, {
            panic!("an assertion failed while the service was down");
        })
    }));
    std::panic::set_hook(hook);
    println!("the block panicked ({}), and the service is {}", outcome.is_err(), status(port));

    // The guard form returns errors instead of panicking.
    let guard = service.stopped()?;
    guard.restart()?;
    println!("with the guard: {}", status(port));
    service.stop()?;
    Ok(())
}

fn status(port: u16) -> String {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(mut stream) => {
            let _ = stream.write_all(b"PING\n");
            let mut answer = String::new();
            let _ = BufReader::new(stream).read_line(&mut answer);
            format!("answers {}", answer.trim())
        }
        Err(e) => format!("unreachable ({e})"),
    }
}

fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        stream.write_all(b"PONG\n")?;
    }
    Ok(())
}
