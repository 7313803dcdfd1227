//! Integration tests of mirakuru: real processes (the `mirakuru-test-service` helper, and real
//! servers where installed), started, waited for and stopped through the public API.
//!
//! One test binary for the whole package keeps builds lean. Where a test goes: the file of the
//! behaviour it exercises, whatever API it uses (a named executor, `Executor::new`, the fixture
//! attribute) and whatever made us write it (a feature, a Python mirakuru defect, a bad input).
//!
//! - `ready/<kind>.rs`: one readiness kind each, as in `mirakuru-core/src/ready/`: `tcp`, `http`,
//!   `unix`, `pidfile`, `output` (banners), `notify`, `ready_fd`, `exec`, `redis`, `postgres`,
//!   `file`, `listeners` (port discovery, ownership), `combinators`, `custom`; real servers
//!   probed by that kind included.
//! - `command.rs`: what is run and how: program, arguments, environment, cwd, user, stdin.
//! - `lifecycle.rs`: start, stop, kill, restart, `stopped!`, Drop, timeouts, signals, exit codes.
//! - `liveness.rs`: after ready: `running()`, `check_alive()`, `ServiceDied`.
//! - `output.rs`: captured output; `floods.rs`: huge and odd output.
//! - `trees.rs`: process trees, sweeps, the reaper; `orphans.rs`: every way a test binary ends.
//! - `fixtures.rs`: the attribute, shared fixtures, ports. `services.rs`: real servers used
//!   through their clients. `security.rs`, `stress.rs`.
//!
//! An entry of the bad-input catalogue (README, "Reliability and security") goes in the
//! `bad_input` module of its behaviour's file, marked `// bad-input catalogue #N`; all of them
//! run with `cargo test -p mirakuru-test --test integration bad_input`.
//!
//! Defects of Python mirakuru 3.1.0 that this library fixes (numbered as in docs/design.md §2;
//! the tests' doc comments name them too), and where each is shown gone:
//! - §2.3 `running()` saw the launcher only: `liveness::running_follows_the_daemon_of_a_launcher`.
//! - §2.14 an early exit ignored until the timeout: `ready::output::an_output_executor_whose_*`;
//!   TimeoutExpired said only "timed out": `lifecycle::timeouts_explain_themselves`.
//! - §2.15 substring marker matching: `trees::a_process_with_a_similar_marker_is_never_touched`,
//!   `trees::the_reaper_spares_processes_of_other_owners`; no cleanup when Python is killed by
//!   a signal: `trees::pdeathsig_kills_*`, `trees::the_reaper_kills_daemons_when_*`;
//!   `timeout=None` failing after the spawn: `lifecycle::bad_input::zero_timeout`.
//! - §2.16.1 stdout never drained: `output::fifty_mib_after_ready_never_block_the_writer`;
//!   stdin a pipe held open: `command::stdin_is_not_a_pipe_held_open`.
//! - §2.16.2 one timeout for start and stop: `lifecycle::stop_has_its_own_timeout_*`.
//! - §2.16.3 no HTTP request timeout: `ready::http::a_hung_http_endpoint_cannot_overrun_*`.
//! - §2.16.4 a prefix match of the status: `ready::http::http_status_pattern_must_match_*`;
//!   IPv4 only: `ready::http::http_works_over_ipv6`, `ready::tcp::tcp_readiness_works_over_ipv6`;
//!   https checked as plain HTTP: `ready::http::bad_input::https_url`; query string dropped:
//!   `ready::http::http_sends_method_query_params_headers_and_payload`.
//! - §2.16.5 a stale pid file taken for a running service: `ready::pidfile::bad_input::*`.
//! - §2.16.7 `stopped()` not restarting on an exception, raising when not running:
//!   `lifecycle::stopped_scope_restarts_even_when_its_block_panics`,
//!   `lifecycle::stopped_scope_works_when_the_service_is_not_running`.
//! - §2.16.8 unbounded `kill()`: `lifecycle::kill_is_bounded_even_with_an_ignored_kill_signal`.
//! - §2.16.9 exit codes on SIGTERM: `lifecycle::a_non_posix_exit_on_stop_can_be_expected`.
//! - §2.16.11 not thread-safe: `lifecycle::executors_are_send_and_sync`,
//!   `lifecycle::an_executor_outlives_the_thread_that_started_it`.

mod command;
mod fixtures;
mod floods;
mod lifecycle;
mod liveness;
mod orphans;
mod output;
mod presets;
mod ready;
mod run_scope;
mod security;
mod services;
mod stress;
mod trees;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirakuru::ready::Check;
use mirakuru::{Error, Executor};
use mirakuru_test::{service, temp_dir, wait_gone, Tag};

/// Runs the test `name` (its full path, `module::test`) again in a child process with `env`
/// set, so that it may change what is the process's (its file limit, `TMPDIR`) without
/// touching the tests that run beside it. True in the child, where the test does its work;
/// in the parent, asserts that the child passed.
pub fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    in_child_with(name, env);
    false
}

const CHILD: &str = "MIRAKURU_TEST_CHILD";

/// Runs the test `name` again in a child process with `env` set, and asserts that it passed
/// there (the test tells the parent from the child by the variables it gets).
pub fn in_child_with(name: &str, env: &[(&str, &str)]) {
    run_child(name, env, &[], &[]);
}

/// [`in_child`] for a test of a binary started with `ignored` signals ignored, as some CI
/// runners start their jobs (ignored dispositions survive exec).
pub fn in_child_ignoring(name: &str, ignored: &'static [i32]) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    run_child(name, &[], ignored, &[]);
    false
}

/// [`in_child`] for a test of a binary whose session leader lives outside its pid namespace,
/// as in a container whose init started the job: `getsid` answers 0 there, and `/proc` shows
/// 0 as the session of every process of it. The binary runs under a shell that is the
/// namespace's init, with a `/proc` of its own. False, with one line said, where no pid
/// namespace can be made (a container without `CAP_SYS_ADMIN` and no user namespaces).
pub fn in_child_outside_its_session(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let namespace = ["unshare", "--pid", "--fork", "--mount-proc"];
    let as_user = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"];
    let works = |wrap: &[&str]| {
        let probe = std::process::Command::new(wrap[0]).args(&wrap[1..]).arg("true").output();
        probe.is_ok_and(|out| out.status.success())
    };
    let Some(wrap) = [&namespace[..], &as_user[..]].into_iter().find(|w| works(w)) else {
        println!("skipped {name}: no pid namespace can be made here");
        return false;
    };
    // The shell stays the namespace's init (`exit` keeps it from exec'ing the binary), so
    // the binary is not pid 1, whose signals the kernel treats apart.
    let mut shell = wrap.to_vec();
    shell.extend(["sh", "-c", "\"$0\" \"$@\"; exit $?"]);
    run_child(name, &[], &[], &shell);
    false
}

fn run_child(name: &str, env: &[(&str, &str)], ignored: &'static [i32], wrap: &[&str]) {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    };
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(env.iter().copied());
    // SAFETY: between fork and exec only signal(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for &signal in ignored {
                libc::signal(signal, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("the test binary runs again");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed in its child process:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run in its child process:\n{text}");
}

/// The helper's argv with `args`, as a `Vec` an executor takes.
pub fn svc(args: &[&str]) -> Vec<String> {
    std::iter::once(service()).chain(args.iter().map(|a| a.to_string())).collect()
}

/// The banner [`ready`] waits for.
pub const READY: &str = "mirakuru-test-service is ready";

/// The helper with `args`, ready once it prints its banner, which comes after it has set up
/// its signal handlers, sockets and children (a `SimpleExecutor` would return before).
pub fn ready(args: &[&str]) -> mirakuru::OutputExecutor {
    let mut argv = svc(args);
    argv.extend(["--banner".to_string(), READY.to_string()]);
    mirakuru::OutputExecutor::new(argv, regex_escape(READY))
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_alphanumeric() || c == ' ' { vec![c] } else { vec!['\\', c] })
        .collect()
}

/// The helper's argv with a tag in its environment is not possible through argv; executors
/// get the tag through `.env(Tag::VAR, tag.value())`. This names the pair once.
pub fn tag_env(tag: &Tag) -> (&'static str, String) {
    (Tag::VAR, tag.value().to_string())
}

/// The helper service; attribute arguments may be any expression of the right type.
const SERVICE: &str = env!("CARGO_BIN_EXE_mirakuru-test-service");

/// A loose bound that only catches hangs: timing goals live in the benchmark.
const QUICK: Duration = Duration::from_secs(10);

fn status_code(err: &Error) -> Option<i32> {
    err.exit_status().and_then(|s| s.code())
}

fn assert_stopped_and_gone(pid: u32, tag: &Tag) {
    assert!(wait_gone(pid, Duration::from_secs(5)), "pid {pid} still runs after stop");
    tag.assert_none_left();
}

// The bad-input catalogue: invalid input is refused by `start()` before anything is spawned,
// with an error that says what was wrong and what to do (or, for the deliberate no-ops,
// `Ok(())`). Where the command can carry it, the command is the helper with `--count-file`,
// which appends its pid to a file the moment it runs, and the file must not exist afterwards.
// Services that misbehave (an HTTP endpoint that resets, answers garbage, never finishes) are
// spawned; they must time out with the reason and leave nothing behind.

/// The helper, told to leave a trace the moment it runs.
struct Probe {
    dir: tempfile::TempDir,
    count: PathBuf,
}

impl Probe {
    fn new() -> Probe {
        let dir = temp_dir();
        let count = dir.path().join("spawned");
        Probe { dir, count }
    }

    fn argv(&self) -> Vec<String> {
        svc(&["--count-file", &self.count.display().to_string()])
    }

    /// The same as a command line.
    fn line(&self) -> String {
        shell_join(&self.argv())
    }

    fn spawned(&self) -> usize {
        std::fs::read_to_string(&self.count).map_or(0, |s| s.lines().count())
    }

    fn assert_nothing_spawned(&self) {
        // A process that was spawned writes its trace within milliseconds.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(self.spawned(), 0, "something was spawned for invalid input");
    }
}

fn shell_join(args: &[String]) -> String {
    args.iter().map(|a| format!("'{}'", a.replace('\'', r"'\''"))).collect::<Vec<_>>().join(" ")
}

/// `start()` fails with `InvalidArgument` whose message names the problem and what to do.
fn refused<C: Check>(mut ex: Executor<C>, problem: &str, what_to_do: &str) -> String {
    let err = ex.start().expect_err(problem);
    let message = err.to_string();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{message}");
    assert!(message.contains(problem), "the problem {problem:?} is not in: {message}");
    assert!(message.contains(what_to_do), "what to do {what_to_do:?} is not in: {message}");
    assert!(!ex.running() && ex.pid().is_none(), "{message}");
    message
}

/// A fake server on `port`, listening only after `delay` (so that the executor's "already
/// running" check before the spawn finds nothing); answers each connection with the next of
/// `answers` (the last repeating) after reading `expect` bytes, `max` connections at most;
/// returns everything it read.
fn fake_server(
    port: u16,
    delay: Duration,
    answers: Vec<Vec<u8>>,
    expect: usize,
    max: usize,
) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("fake server binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let mut received = Vec::new();
        let deadline = Instant::now() + QUICK;
        let mut served = 0;
        while Instant::now() < deadline && served < max {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
                    let mut got = vec![0u8; expect];
                    if stream.read_exact(&mut got).is_err() {
                        continue;
                    }
                    let answer = &answers[served.min(answers.len() - 1)];
                    let _ = stream.write_all(answer);
                    // Whatever the client sends before closing (a Terminate).
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest);
                    got.extend(rest);
                    received.push(got);
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        received
    })
}

fn redis_cmd(port: u16, dir: &Path, extra: &str) -> String {
    format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {} {extra}",
        dir.display()
    )
}

/// [`in_child`] as an unprivileged user when the tests run as root: the user
/// `mirakuru-tester`, made if missing (`useradd`), with a `TMPDIR` of its own, so that what
/// a preset does differently for root (run the server as the service's user) and for
/// anyone else (run it as the caller) are both tested. Not root: runs the test here.
pub fn in_child_unprivileged(name: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var_os(CHILD).is_some() || !is_root() {
        return true;
    }
    const USER: &str = "mirakuru-tester";
    let exists = |u: &str| {
        std::process::Command::new("id").arg(u).output().is_ok_and(|o| o.status.success())
    };
    if !exists(USER) {
        let made = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER])
            .status();
        assert!(made.is_ok_and(|s| s.success()) || exists(USER), "useradd {USER}");
    }
    let tmp = temp_dir();
    let chown = std::process::Command::new("chown").arg(USER).arg(tmp.path()).status();
    assert!(chown.is_ok_and(|s| s.success()), "chown {USER}");
    let tmpdir = tmp.path().display().to_string();
    let wrap = ["setpriv", "--reuid", USER, "--regid", USER, "--clear-groups", "--"];
    let mut env = env.to_vec();
    env.push(("TMPDIR", &tmpdir));
    run_child(name, &env, &[], &wrap);
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
