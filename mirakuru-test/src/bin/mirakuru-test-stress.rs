//! Start/stop cycles in bulk, measured from inside, for `tests/integration/stress.rs`. A program
//! of its own so that nothing else running in the process (other tests) moves its figures.
//!
//! - `mirakuru-test-stress cycles N`: N cycles, one after another, of a new `OutputExecutor`
//!   running `mirakuru-test-service`: start, wait for its banner, then end it — by `stop()`,
//!   `kill()` or `Drop`, in turn. Measured after a warm-up: open file descriptors, zombie
//!   children, resident memory.
//! - `mirakuru-test-stress parallel THREADS N`: THREADS threads run N cycles each at the same
//!   time, every cycle a `#[mirakuru::fixture(tcp = auto)]` with a port chosen automatically
//!   (every other thread's service daemonizes first); two services listening on one port at
//!   the same moment count as a failure.
//!
//! Prints `key=value` lines (`cycles`, `seconds`, `fds_before`, `fds_after`, `zombies`,
//! `rss_before_kib`, `rss_after_kib`, `failures`) and the first failures as `failure: ...`.
//! Exits 0 if it could run, whatever it measured: the test judges the figures.

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mirakuru::{Fixture, OutputExecutor};

const BANNER: &str = "stress-service-ready";

fn service() -> String {
    mirakuru_test::bin_path("mirakuru-test-service").display().to_string()
}

/// Open file descriptors of this process.
fn fds() -> usize {
    fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Children of this process that have exited and were never reaped; each is described on a
/// `zombie: ` line of stderr (its `/proc/<pid>/stat`), to tell which process it was.
fn zombies() -> usize {
    let me = std::process::id().to_string();
    let Ok(dir) = fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command name: state, ppid, ...
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next();
            let zombie = state == Some("Z") && ppid == Some(me.as_str());
            if zombie {
                eprintln!("zombie: {}", stat.trim());
            }
            zombie
        })
        .count()
}

/// Descriptors are closed by the supervisor thread a moment after a stop returns (it lets go
/// of the pipes once the tree is gone): the lowest count seen over 200 ms.
fn quiet_fds() -> usize {
    let mut lowest = fds();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(10));
        lowest = lowest.min(fds());
    }
    lowest
}

/// [`quiet_fds`] for after the run: waits until the count is back to `baseline` (or 2 s).
fn settled_fds(baseline: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = fds();
        if now <= baseline || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One cycle: start, ready, end — the end varying with `i` so that every way out is counted.
fn cycle(service: &str, i: usize) -> Result<(), String> {
    let mut ex = OutputExecutor::new([service, "--banner", BANNER], BANNER)
        .timeout(Duration::from_secs(30))
        .stop_timeout(Duration::from_secs(5));
    ex.start().map_err(|e| format!("cycle {i}: start: {e}"))?;
    match i % 3 {
        0 => ex.stop().map_err(|e| format!("cycle {i}: stop: {e}"))?,
        1 => ex.kill().map_err(|e| format!("cycle {i}: kill: {e}"))?,
        _ => drop(ex),
    }
    Ok(())
}

fn cycles(n: usize) {
    let service = service();
    // One-time costs (the supervisor thread and its reaper, allocator arenas, the regex and
    // buffers of a first start) are paid before measuring.
    let warm_up = 100;
    for i in 0..warm_up {
        if let Err(e) = cycle(&service, i) {
            println!("failure: warm-up {e}");
            println!("failures=1");
            return;
        }
    }
    let fds_before = quiet_fds();
    let rss_before = rss_kib();
    let began = Instant::now();
    let mut failures = Vec::new();
    for i in 0..n {
        if let Err(e) = cycle(&service, i) {
            failures.push(e);
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    let fds_after = settled_fds(fds_before);
    println!("cycles={n}");
    println!("seconds={seconds:.2}");
    println!("fds_before={fds_before}");
    println!("fds_after={fds_after}");
    println!("zombies={}", zombies());
    println!("rss_before_kib={rss_before}");
    println!("rss_after_kib={}", rss_kib());
    report_failures(&failures);
}

fn report_failures(failures: &[String]) {
    println!("failures={}", failures.len());
    for f in failures.iter().take(10) {
        println!("failure: {}", f.replace('\n', " | "));
    }
}

/// Ports of the services running right now, to catch two of them on one port.
static ACTIVE: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static PORT_CLASHES: AtomicUsize = AtomicUsize::new(0);

#[mirakuru::fixture(tcp = auto, timeout = "60s", args = [service(), "--tcp", "{port}"])]
fn one_fixture(svc: &Fixture) {
    check_port(svc);
}

/// The same behind a launcher that daemonizes (double fork, new session, the launcher exits
/// 0): the start must follow the daemon, and the stop must find it.
#[mirakuru::fixture(tcp = auto, timeout = "60s", args = [service(), "--daemonize", "--tcp", "{port}"])]
fn one_daemon_fixture(svc: &Fixture) {
    check_port(svc);
}

fn check_port(svc: &Fixture) {
    let port = svc.port();
    let fresh =
        ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_default().insert(port);
    if !fresh {
        PORT_CLASHES.fetch_add(1, Ordering::SeqCst);
    }
    let connected = std::net::TcpStream::connect(("127.0.0.1", port));
    if fresh {
        ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_default().remove(&port);
    }
    assert!(fresh, "port {port} was handed to two running fixtures");
    connected.unwrap_or_else(|e| panic!("the fixture on port {port} does not listen: {e}"));
}

fn parallel(threads: usize, n: usize) {
    // Panics are how a fixture reports a failed start; they are counted, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let failures = Mutex::new(Vec::new());
    let barrier = std::sync::Barrier::new(threads);
    let began = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (failures, barrier) = (&failures, &barrier);
            scope.spawn(move || {
                barrier.wait();
                let fixture = if t % 2 == 0 { one_fixture } else { one_daemon_fixture };
                for i in 0..n {
                    if let Err(panic) = std::panic::catch_unwind(fixture) {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        let mut failures = failures.lock().unwrap_or_else(|p| p.into_inner());
                        failures.push(format!("thread {t} cycle {i}: {message}"));
                    }
                }
            });
        }
    });
    let _ = std::panic::take_hook();
    println!("cycles={}", threads * n);
    println!("seconds={:.2}", began.elapsed().as_secs_f64());
    println!("port_clashes={}", PORT_CLASHES.load(Ordering::SeqCst));
    println!("zombies={}", zombies());
    report_failures(&failures.into_inner().unwrap_or_else(|p| p.into_inner()));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> usize {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: mirakuru-test-stress cycles N | parallel THREADS N");
            std::process::exit(2)
        })
    };
    match args.first().map(String::as_str) {
        Some("cycles") => cycles(number(1)),
        Some("parallel") => parallel(number(1), number(2)),
        _ => {
            eprintln!("usage: mirakuru-test-stress cycles N | parallel THREADS N");
            std::process::exit(2)
        }
    }
}
