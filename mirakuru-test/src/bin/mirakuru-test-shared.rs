//! A program with a shared fixture, for tests that look at it from outside: how many times the
//! service started when many threads asked at once, and whether it is gone once the program
//! has exited.
//!
//! `mirakuru-test-shared THREADS COUNT_FILE [fail]`: THREADS threads call `get()` on the same
//! shared fixture at the same moment; each prints `port <P> pid <PID>` (or `error <message>`
//! on one line); then the program exits normally. With `fail`, the service cannot start.
//!
//! `mirakuru-test-shared fixed PORT COUNT_FILE`: a shared fixture on the fixed port PORT, as
//! in two nextest test processes at once: prints `port <P> pid <PID> running <bool>` after
//! holding it 300 ms.

use std::sync::Barrier;

use mirakuru::fixture::{Port, Spec};
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

/// The fixed port's fixture, written by hand: its port comes from the command line.
static FIXED: SharedFixture = SharedFixture::new(|| {
    let port: u16 = std::env::args().nth(2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let count = std::env::args().nth(3).unwrap_or_else(|| "/dev/null".into());
    Spec::args("fixed", [service(), "--count-file".into(), count, "--tcp".into(), port.to_string()])
        .tcp(Port::Fixed(port))
        .timeout(std::time::Duration::from_secs(10))
});

fn main() {
    if std::env::args().nth(1).as_deref() == Some("fixed") {
        let svc = FIXED.get();
        std::thread::sleep(std::time::Duration::from_millis(300));
        println!("port {} pid {} running {}", svc.port(), svc.pid().unwrap_or(0), svc.running());
        return;
    }
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
