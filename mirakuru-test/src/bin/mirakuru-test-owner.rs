//! A program that owns services, for tests that end it the hard way and then look for what is
//! left. `mirakuru-test-owner MODE[:N] -- COMMAND...` starts N (default 1) services running
//! COMMAND, each with a `SimpleExecutor`, prints `service <pid>` for the first and
//! `started <N>` once all run, and then, by MODE:
//!
//! - `hold`: waits forever (the test kills this program);
//! - `leak`: forgets the executors (as never-dropped statics would be) and exits normally, so
//!   only the exit hook can stop the services;
//! - `panic-abort`: aborts the process, as a panic does under `panic = "abort"`;
//! - `thread-hold`: starts the services from a thread that then exits, and waits forever: the
//!   services must outlive the thread.

use std::io::Write;

const USAGE: &str =
    "usage: mirakuru-test-owner hold|leak|panic-abort|thread-hold[:N] -- COMMAND...";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, command) = match args.iter().position(|a| a == "--") {
        Some(1) if args.len() > 2 => (args[0].clone(), args[2..].to_vec()),
        _ => fail(USAGE),
    };
    let (mode, count) = match mode.split_once(':') {
        None => (mode.as_str(), 1),
        Some((mode, n)) => (mode, n.parse::<usize>().unwrap_or_else(|_| fail(USAGE)).max(1)),
    };
    let start = move || -> Vec<mirakuru::SimpleExecutor> {
        (0..count)
            .map(|_| {
                let mut service = mirakuru::SimpleExecutor::new(command.clone());
                if let Err(err) = service.start() {
                    eprintln!("mirakuru-test-owner: {err}");
                    std::process::exit(3);
                }
                service
            })
            .collect()
    };
    let services = match mode {
        "thread-hold" => std::thread::spawn(start).join().expect("the starting thread"),
        "hold" | "leak" | "panic-abort" => start(),
        _ => fail(USAGE),
    };
    let pid = services[0].pid().expect("a started service has a pid");
    println!("service {pid}");
    println!("started {}", services.len());
    std::io::stdout().flush().expect("stdout");
    match mode {
        "leak" => std::mem::forget(services),
        "panic-abort" => std::process::abort(),
        _ => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}
