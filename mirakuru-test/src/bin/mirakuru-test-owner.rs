//! A program that owns a service, for tests that end it the hard way and then look for what
//! is left. `mirakuru-test-owner MODE -- COMMAND...` starts COMMAND with a `SimpleExecutor`,
//! prints `service <pid>` on stdout, and then, by MODE:
//!
//! - `hold`: waits forever (the test kills this program);
//! - `leak`: forgets the executor (as a never-dropped static would be) and exits normally, so
//!   only the exit hook can stop the service;
//! - `leak:N`: starts N services, prints `started N` once all run, forgets them all and exits
//!   normally: the exit hook stops N trees at once;
//! - `panic-abort`: aborts the process, as a panic does under `panic = "abort"`;
//! - `thread-hold`: starts the service from a thread that then exits, and waits forever: the
//!   service must outlive the thread.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, command) = match args.iter().position(|a| a == "--") {
        Some(i) if i == 1 && i + 1 < args.len() => (args[0].clone(), args[i + 1..].to_vec()),
        _ => {
            eprintln!(
                "usage: mirakuru-test-owner hold|leak|leak:N|panic-abort|thread-hold -- COMMAND..."
            );
            std::process::exit(2);
        }
    };
    let start = move || {
        let mut service = mirakuru::SimpleExecutor::new(command.clone());
        if let Err(err) = service.start() {
            eprintln!("mirakuru-test-owner: {err}");
            std::process::exit(3);
        }
        service
    };
    let service = if mode == "thread-hold" {
        std::thread::spawn(start.clone()).join().expect("the starting thread")
    } else {
        start()
    };
    let more = match mode.strip_prefix("leak:").map(str::parse::<usize>) {
        Some(Ok(n)) => n.saturating_sub(1),
        Some(Err(_)) => {
            eprintln!("mirakuru-test-owner: leak:N takes a number");
            std::process::exit(2);
        }
        None => 0,
    };
    let pid = service.pid().expect("a started service has a pid");
    println!("service {pid}");
    std::io::stdout().flush().expect("stdout");
    match mode.as_str() {
        "hold" | "thread-hold" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "leak" => {
            std::mem::forget(service);
        }
        leak_many if leak_many.starts_with("leak:") => {
            let others: Vec<_> = (0..more).map(|_| start()).collect();
            println!("started {}", others.len() + 1);
            std::io::stdout().flush().expect("stdout");
            std::mem::forget(service);
            std::mem::forget(others);
        }
        "panic-abort" => std::process::abort(),
        other => {
            eprintln!("mirakuru-test-owner: unknown mode {other}");
            std::process::exit(2);
        }
    }
}
