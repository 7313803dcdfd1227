//! The bad input catalogue: one test per entry. Each asserts the answer — an error that says
//! what was wrong and what to do, or, for the deliberate no-ops, `Ok(())` — and that nothing
//! was spawned where the input is invalid, or nothing left running where it is not.
//!
//! Invalid input is refused by `start()` before anything is spawned: where the command can
//! carry it, the command is the helper with `--count-file`, which appends its pid to a file the
//! moment it runs, and the file must not exist afterwards. Services that misbehave (an HTTP
//! endpoint that resets, answers garbage, never finishes) are spawned; they must time out with
//! the reason and leave nothing behind. The catalogue is listed in the README (Reliability and security).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mirakuru::fixture::{Fixtures, Port, Spec};
use mirakuru::ready::Check;
use mirakuru::{
    Error, Executor, HttpExecutor, OutputExecutor, PidExecutor, Redirect, SimpleExecutor,
    TcpExecutor, UnixSocketExecutor,
};
use mirakuru_test::{free_port, temp_dir, Tag};

use crate::{svc, tag_env};

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

// --- the command ---

#[test]
fn nonexistent_program() {
    refused(
        SimpleExecutor::new("no-such-program-anywhere --flag").into_inner(),
        "`no-such-program-anywhere` was not found in PATH",
        "give its full path",
    );
}

#[test]
fn nonexistent_program_path() {
    refused(
        SimpleExecutor::new("/no/such/dir/program").into_inner(),
        "/no/such/dir/program does not exist",
        "check the path",
    );
}

#[test]
fn non_executable_file() {
    let probe = Probe::new();
    // Run by anything (a shell fallback), it would leave the trace.
    let script = probe.dir.path().join("not-executable");
    std::fs::write(&script, format!("#!/bin/sh\n{}\n", probe.line())).expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    refused(
        SimpleExecutor::new(script.display().to_string()).into_inner(),
        "is not executable",
        "chmod +x",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn directory_as_program() {
    refused(SimpleExecutor::new("/tmp").into_inner(), "/tmp is a directory", "executable file");
}

#[test]
fn empty_command() {
    refused(SimpleExecutor::new("").into_inner(), "the command is empty", "program to run");
}

#[test]
fn blank_command() {
    refused(SimpleExecutor::new(" \t ").into_inner(), "the command is empty", "program to run");
}

#[test]
fn empty_argument_list() {
    refused(
        SimpleExecutor::new(Vec::<String>::new()).into_inner(),
        "the command is empty",
        "program to run",
    );
}

#[test]
fn empty_command_for_the_shell() {
    refused(
        SimpleExecutor::new("  ").shell(true).into_inner(),
        "the command is empty",
        "program to run",
    );
}

#[test]
fn unbalanced_quotes() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(format!("{} --banner 'unbalanced", probe.line())).into_inner(),
        "cannot be split into arguments",
        "close the quote",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn nul_in_an_argument() {
    let probe = Probe::new();
    let mut argv = probe.argv();
    argv.extend(["--banner".into(), "nul\0byte".into()]);
    refused(SimpleExecutor::new(argv).into_inner(), "contains a NUL byte", "remove the NUL byte");
    probe.assert_nothing_spawned();
}

#[test]
fn script_with_a_missing_interpreter() {
    // Executable, but its interpreter does not exist: only execve(2) can tell, so this one is
    // a spawn error of the operating system, with the program's path.
    let dir = temp_dir();
    let fake = dir.path().join("fake");
    std::fs::write(&fake, b"#!/no/such/interpreter\n").expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut ex = SimpleExecutor::new(fake.display().to_string());
    let err = ex.start().expect_err("exec fails");
    let message = err.to_string();
    assert!(matches!(err, Error::Spawn { .. }), "{message}");
    assert!(message.contains(&fake.display().to_string()), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(!ex.running());
}

// --- the environment ---

#[test]
fn equals_sign_in_an_env_name() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv()).env("A=B", "x").into_inner(),
        "environment variable name \"A=B\" is not valid",
        "without `=` or NUL bytes",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn nul_in_an_env_name() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv()).env("A\0B", "x").into_inner(),
        "is not valid",
        "without `=` or NUL bytes",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn empty_env_name() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv()).env("", "x").into_inner(),
        "environment variable name \"\" is not valid",
        "use a non-empty name",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn nul_in_an_env_value() {
    let probe = Probe::new();
    let message = refused(
        SimpleExecutor::new(probe.argv()).env("PASSWORD", "s3cret\0").into_inner(),
        "the value of environment variable \"PASSWORD\" contains a NUL byte",
        "remove the NUL byte from the value",
    );
    assert!(!message.contains("s3cret"), "the value is never shown: {message}");
    probe.assert_nothing_spawned();
}

// --- other settings ---

#[test]
fn nonexistent_cwd() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv()).cwd("/no/such/dir").into_inner(),
        "the working directory /no/such/dir does not exist",
        "create it first",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn cwd_that_is_a_file() {
    let probe = Probe::new();
    let file = probe.dir.path().join("file");
    std::fs::write(&file, "").expect("write");
    refused(
        SimpleExecutor::new(probe.argv()).cwd(&file).into_inner(),
        "is not a directory",
        "fix the `cwd` path",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn zero_timeout() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv()).timeout(Duration::ZERO).into_inner(),
        "the startup timeout is zero",
        "positive duration",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn output_file_in_a_missing_directory() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv())
            .stdout(Redirect::File("/no/such/dir/log".into()))
            .into_inner(),
        "is in a directory that does not exist",
        "create the directory first",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn unknown_user() {
    let probe = Probe::new();
    refused(
        SimpleExecutor::new(probe.argv()).user("no-such-user-mirakuru").into_inner(),
        "the user \"no-such-user-mirakuru\" does not exist",
        "give an existing user name",
    );
    probe.assert_nothing_spawned();
}

// --- readiness checks ---

#[test]
fn bad_banner_regex() {
    let probe = Probe::new();
    refused(
        OutputExecutor::new(probe.argv(), "unclosed (group").into_inner(),
        "is not a valid regular expression",
        "escape special characters",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn banner_without_captured_output() {
    let probe = Probe::new();
    refused(
        OutputExecutor::new(probe.argv(), "ready")
            .stdout(Redirect::Null)
            .stderr(Redirect::Inherit)
            .into_inner(),
        "a banner can only be seen in captured output",
        "keep one of them Redirect::Capture",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn bad_url() {
    let probe = Probe::new();
    refused(
        HttpExecutor::new(probe.argv(), "not a url").into_inner(),
        "\"not a url\" is not a URL",
        "write it as http://host:port/path",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn https_url() {
    let probe = Probe::new();
    refused(
        HttpExecutor::new(probe.argv(), "https://127.0.0.1:8443/").into_inner(),
        "is an https URL, and the HTTP check speaks plain HTTP only",
        "use an http:// URL, or wait for the port with a TCP check",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn url_without_host() {
    let probe = Probe::new();
    refused(
        HttpExecutor::new(probe.argv(), "http:///status").into_inner(),
        "has no host",
        "write it as http://host:port/path",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn url_with_port_0() {
    let probe = Probe::new();
    refused(
        HttpExecutor::new(probe.argv(), "http://127.0.0.1:0/").into_inner(),
        "has the port \"0\"",
        "give a port between 1 and 65535",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn tcp_port_0() {
    let probe = Probe::new();
    refused(
        TcpExecutor::new(probe.argv(), "127.0.0.1", 0).into_inner(),
        "port 0 cannot be waited for",
        "give the port it will listen on",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn fixture_with_fixed_port_0() {
    // `tcp = 0` is a compile error in the attribute; written by hand, start() refuses it.
    let probe = Probe::new();
    let spec = Spec::args("zero", probe.argv()).tcp(Port::Fixed(0));
    let failed = Fixtures::try_start(vec![spec]).expect_err("port 0");
    let (name, err) = *failed;
    assert_eq!(name, "zero");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("port 0 cannot be waited for"), "{err}");
    probe.assert_nothing_spawned();
}

#[test]
fn empty_tcp_host() {
    let probe = Probe::new();
    refused(
        TcpExecutor::new(probe.argv(), "", 80).into_inner(),
        "the host is empty",
        "such as 127.0.0.1",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn host_name_that_does_not_resolve() {
    let probe = Probe::new();
    refused(
        TcpExecutor::new(probe.argv(), "no-such-host.invalid", 80).into_inner(),
        "the host \"no-such-host.invalid\" does not resolve",
        "check its spelling or use an IP address",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn bad_status_regex() {
    let probe = Probe::new();
    refused(
        HttpExecutor::new(probe.argv(), "http://127.0.0.1:1/").status("5(").into_inner(),
        "the status pattern \"5(\" is not a valid regular expression",
        "fix the readiness check's arguments",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn bad_http_method() {
    let probe = Probe::new();
    refused(
        HttpExecutor::new(probe.argv(), "http://127.0.0.1:1/").method("GE T").into_inner(),
        "\"GE T\" is not an HTTP method",
        "use one such as HEAD, GET or POST",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn unix_socket_path_too_long() {
    let probe = Probe::new();
    let long = format!("/tmp/{}/s.sock", "d".repeat(120));
    refused(
        UnixSocketExecutor::new(probe.argv(), long).into_inner(),
        "bytes long, more than the",
        "use a shorter directory",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn empty_unix_socket_path() {
    let probe = Probe::new();
    refused(
        UnixSocketExecutor::new(probe.argv(), "").into_inner(),
        "the unix socket path is empty",
        "give the path the service will listen on",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn pid_file_in_a_missing_directory() {
    let probe = Probe::new();
    refused(
        PidExecutor::new(probe.argv(), "/no/such/dir/x.pid").into_inner(),
        "the directory of the pid file /no/such/dir/x.pid does not exist",
        "create it first",
    );
    probe.assert_nothing_spawned();
}

#[test]
fn empty_pid_file_path() {
    let probe = Probe::new();
    refused(
        PidExecutor::new(probe.argv(), "").into_inner(),
        "the pid file path is empty",
        "give the path the service writes its pid to",
    );
    probe.assert_nothing_spawned();
}

// --- pid files left by an earlier run ---

/// `start()` with a pid file holding `content` fails as stale, naming it and what to do.
fn stale(content: &str, says: &str) {
    let probe = Probe::new();
    let pid_file = probe.dir.path().join("old.pid");
    std::fs::write(&pid_file, content).expect("write");
    let mut ex = PidExecutor::new(probe.argv(), &pid_file);
    let err = ex.start().expect_err(says);
    let message = err.to_string();
    assert!(matches!(err, Error::StalePidFile { .. }), "not AlreadyRunning: {message}");
    assert!(message.contains(&pid_file.display().to_string()), "{message}");
    assert!(message.contains(says), "{message}");
    assert!(message.contains("delete it"), "{message}");
    probe.assert_nothing_spawned();
}

#[test]
fn pid_file_with_garbage() {
    stale("garbage\n", "it holds \"garbage\", which is not a pid");
}

#[test]
fn pid_file_naming_a_dead_pid() {
    // Beyond the largest pid Linux hands out: surely nobody's.
    stale("4194304\n", "it names process 4194304, which is not running");
}

#[test]
fn empty_pid_file() {
    stale("", "it is empty");
}

// --- calls out of order ---

#[test]
fn start_twice() {
    let probe = Probe::new();
    let mut ex = SimpleExecutor::new(probe.argv());
    ex.start().expect("start");
    let pid = ex.pid();
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.spawned() == 0 {
        assert!(Instant::now() < deadline, "the service never ran");
        std::thread::sleep(Duration::from_millis(2));
    }
    let err = ex.start().expect_err("second start");
    let message = err.to_string();
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{message}");
    assert!(message.contains("this executor has already started it"), "{message}");
    assert!(message.contains("call stop() before starting it again"), "{message}");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(probe.spawned(), 1, "a second process was spawned");
    assert_eq!(ex.pid(), pid, "the first process is still the one");
    assert!(ex.running());
    ex.stop().expect("stop");
}

/// Stop before start is no error: Python mirakuru's `stop()` is a no-op then, and stopping is
/// idempotent (as closing is in std): `Ok(())`, and nothing is spawned.
#[test]
fn stop_before_start() {
    let probe = Probe::new();
    let mut ex = SimpleExecutor::new(probe.argv());
    ex.stop().expect("answered with Ok(())");
    assert!(!ex.running() && ex.pid().is_none());
    probe.assert_nothing_spawned();
}

/// Kill before start: the same no-op.
#[test]
fn kill_before_start() {
    let probe = Probe::new();
    let mut ex = SimpleExecutor::new(probe.argv());
    ex.kill().expect("answered with Ok(())");
    assert!(!ex.running() && ex.pid().is_none());
    probe.assert_nothing_spawned();
}

/// Kill twice: the second is a no-op, `Ok(())`; the tree is gone after the first.
#[test]
fn kill_twice() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = SimpleExecutor::new(svc(&["--spawn-children", "1"])).env(k, v);
    ex.start().expect("start");
    ex.kill().expect("kill");
    tag.assert_none_left_within(Duration::from_secs(1));
    ex.kill().expect("the second kill answers Ok(())");
    assert!(!ex.running() && ex.pid().is_none());
}

/// Stop twice: the same, after a graceful stop.
#[test]
fn stop_twice() {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = SimpleExecutor::new(svc(&[])).env(k, v);
    ex.start().expect("start");
    ex.stop().expect("stop");
    ex.stop().expect("the second stop answers Ok(())");
    tag.assert_none_left_within(Duration::from_secs(1));
}

// --- HTTP endpoints that misbehave: spawned, timed out with the reason, nothing left ---

fn misbehaving_http(mode: &str, reason: &str) {
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let port = free_port();
    let mut ex = HttpExecutor::new(
        svc(&["--tcp", &port.to_string(), mode]),
        format!("http://127.0.0.1:{port}/"),
    )
    .request_timeout(Duration::from_millis(100))
    .timeout(Duration::from_millis(500))
    .env(k, v);
    let began = Instant::now();
    let err = ex.start().expect_err(mode);
    let message = err.to_string();
    assert!(began.elapsed() < Duration::from_secs(10), "{mode} hung start(): {message}");
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{message}");
    assert!(message.contains("was not ready after 500ms"), "{message}");
    assert!(message.contains(reason), "the last attempt's outcome {reason:?}: {message}");
    assert!(message.contains("raise the startup timeout"), "{message}");
    tag.assert_none_left_within(Duration::from_secs(1));
}

#[test]
fn http_server_that_resets_connections() {
    misbehaving_http("--reset", "reset");
}

#[test]
fn http_server_that_answers_garbage() {
    misbehaving_http("--garbage", "the answer is not HTTP");
}

#[test]
fn http_server_that_never_finishes_its_headers() {
    misbehaving_http("--partial-headers", "no complete response within");
}
