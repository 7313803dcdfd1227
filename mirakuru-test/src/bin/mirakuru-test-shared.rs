//! A program with a shared fixture, for tests that look at it from outside: how many times the
//! service started when many threads asked at once, and whether it is gone once the program
//! has exited.
//!
//! `mirakuru-test-shared THREADS COUNT_FILE [fail]`: THREADS threads call `get()` on the same
//! shared fixture at the same moment; each prints `port <P> pid <PID>` (or `error <message>`
//! on one line); then the program exits normally. With `fail`, the service cannot start.

use std::sync::Barrier;

use mirakuru::SharedFixture;

fn service() -> String {
    mirakuru_test::bin_path("mirakuru-test-service").display().to_string()
}

fn count_file() -> String {
    std::env::args().nth(2).unwrap_or_else(|| "/dev/null".into())
}

fn failing() -> bool {
    std::env::args().nth(3).as_deref() == Some("fail")
}

/// What the service does: listen on the chosen port, or fail at once.
fn mode() -> [&'static str; 2] {
    if failing() {
        ["--exit", "7"]
    } else {
        ["--tcp", "{port}"]
    }
}

// Attribute arguments may be expressions; placeholders in them are filled in too.
#[mirakuru::fixture(
    tcp = auto,
    timeout = "10s",
    args = [service(), "--count-file", count_file(), "--delay-ms", "50", mode()[0], mode()[1]]
)]
static SHARED: SharedFixture;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(32);
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                match SHARED.try_get() {
                    Ok(svc) => println!("port {} pid {}", svc.port(), svc.pid().unwrap_or(0)),
                    Err(message) => println!("error {}", message.replace('\n', " | ")),
                }
            });
        }
    });
}
