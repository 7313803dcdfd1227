//! Bad input is answered by `start()` with an error that says what was wrong and what to do,
//! before anything is spawned.

use std::time::Duration;

use mirakuru::{
    Error, Executor, HttpExecutor, OutputExecutor, PidExecutor, Redirect, SimpleExecutor,
    TcpExecutor, UnixSocketExecutor,
};
use mirakuru_test::temp_dir;

use crate::svc;

/// Runs `start` on an executor whose command appends a line to a file if it ever runs, and
/// checks it failed with `InvalidArgument` mentioning `says`, without spawning anything.
fn assert_refused<C: mirakuru::ready::Check>(
    mut ex: Executor<C>,
    count: &std::path::Path,
    says: &str,
) {
    let err = ex.start().expect_err(says);
    let message = err.to_string();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{message}");
    assert!(message.contains(says), "expected {says:?} in: {message}");
    assert!(message.contains(';'), "a hint follows the problem: {message}");
    std::thread::sleep(Duration::from_millis(20));
    assert!(!count.exists(), "something was spawned for invalid input");
}

fn counting(dir: &tempfile::TempDir) -> (Vec<String>, std::path::PathBuf) {
    let count = dir.path().join("spawned");
    (svc(&["--count-file", &count.display().to_string()]), count)
}

#[test]
fn invalid_commands() {
    let dir = temp_dir();
    let (_, count) = counting(&dir);
    let plain_file = dir.path().join("not-executable");
    std::fs::write(&plain_file, "#!/bin/sh\n").expect("write");
    let plain_file = plain_file.display().to_string();
    for (cmd, says) in [
        ("", "empty"),
        ("   ", "empty"),
        ("echo 'unbalanced", "cannot be split"),
        ("no-such-program-anywhere --flag", "not found in PATH"),
        ("/no/such/dir/program", "does not exist"),
        ("/tmp", "is a directory"),
        (plain_file.as_str(), "not executable"),
    ] {
        assert_refused(SimpleExecutor::new(cmd).into_inner(), &count, says);
    }
    assert_refused(SimpleExecutor::new(["echo", "nul\0byte"]).into_inner(), &count, "NUL");
}

#[test]
fn invalid_settings() {
    let dir = temp_dir();
    let (argv, count) = counting(&dir);
    assert_refused(
        SimpleExecutor::new(argv.clone()).cwd("/no/such/dir").into_inner(),
        &count,
        "does not exist",
    );
    assert_refused(
        SimpleExecutor::new(argv.clone()).env("A=B", "x").into_inner(),
        &count,
        "not valid",
    );
    assert_refused(
        SimpleExecutor::new(argv.clone()).env("", "x").into_inner(),
        &count,
        "not valid",
    );
    assert_refused(SimpleExecutor::new(argv.clone()).env("K", "a\0b").into_inner(), &count, "NUL");
    assert_refused(
        SimpleExecutor::new(argv.clone()).timeout(Duration::ZERO).into_inner(),
        &count,
        "zero",
    );
    assert_refused(
        SimpleExecutor::new(argv).stdout(Redirect::File("/no/such/dir/log".into())).into_inner(),
        &count,
        "does not exist",
    );
}

#[test]
fn invalid_checks() {
    let dir = temp_dir();
    let (argv, count) = counting(&dir);
    assert_refused(
        OutputExecutor::new(argv.clone(), "unclosed (group").into_inner(),
        &count,
        "not a valid regular expression",
    );
    assert_refused(
        OutputExecutor::new(argv.clone(), "x")
            .stdout(Redirect::Null)
            .stderr(Redirect::Inherit)
            .into_inner(),
        &count,
        "captured",
    );
    assert_refused(TcpExecutor::new(argv.clone(), "127.0.0.1", 0).into_inner(), &count, "port 0");
    assert_refused(
        TcpExecutor::new(argv.clone(), "no-such-host.invalid", 80).into_inner(),
        &count,
        "does not resolve",
    );
    assert_refused(TcpExecutor::new(argv.clone(), "", 80).into_inner(), &count, "empty");
    assert_refused(
        HttpExecutor::new(argv.clone(), "https://127.0.0.1:1/").into_inner(),
        &count,
        "https",
    );
    assert_refused(HttpExecutor::new(argv.clone(), "not a url").into_inner(), &count, "not a URL");
    assert_refused(HttpExecutor::new(argv.clone(), "http:///x").into_inner(), &count, "no host");
    assert_refused(
        HttpExecutor::new(argv.clone(), "http://127.0.0.1:0/").into_inner(),
        &count,
        "port",
    );
    assert_refused(
        HttpExecutor::new(argv.clone(), "http://127.0.0.1:1/").status("5(").into_inner(),
        &count,
        "not a valid regular expression",
    );
    assert_refused(
        HttpExecutor::new(argv.clone(), "http://127.0.0.1:1/").method("GE T").into_inner(),
        &count,
        "not an HTTP method",
    );
    let long = format!("/tmp/{}/s.sock", "d".repeat(120));
    assert_refused(UnixSocketExecutor::new(argv.clone(), long).into_inner(), &count, "bytes long");
    assert_refused(UnixSocketExecutor::new(argv.clone(), "").into_inner(), &count, "empty");
    assert_refused(PidExecutor::new(argv.clone(), "").into_inner(), &count, "empty");
    assert_refused(
        PidExecutor::new(argv, "/no/such/dir/x.pid").into_inner(),
        &count,
        "does not exist",
    );
}

#[test]
fn stale_pid_files_are_reported_as_stale_not_as_already_running() {
    let dir = temp_dir();
    let (argv, count) = counting(&dir);
    let pid_file = dir.path().join("old.pid");
    // A pid that surely names no process: beyond pid_max.
    for (content, says) in [("4194304\n", "not running"), ("garbage\n", "not a pid"), ("", "empty")]
    {
        std::fs::write(&pid_file, content).expect("write");
        let mut ex = PidExecutor::new(argv.clone(), &pid_file);
        let err = ex.start().expect_err(content);
        assert!(matches!(err, Error::StalePidFile { .. }), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("delete it"), "{err}");
    }
    assert!(!count.exists());
}

#[test]
fn spawn_errors_of_the_os_are_reported() {
    // The program exists and is executable, but its interpreter does not exist: only
    // execve(2) can tell.
    let dir = temp_dir();
    let fake = dir.path().join("fake");
    std::fs::write(&fake, b"#!/no/such/interpreter\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut ex = SimpleExecutor::new(fake.display().to_string());
    let err = ex.start().expect_err("exec format error");
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert!(err.to_string().contains(&fake.display().to_string()), "{err}");
}

#[test]
fn environment_values_never_appear_in_errors() {
    let mut ex = TcpExecutor::new(svc(&["--exit", "1"]), "127.0.0.1", mirakuru_test::free_port())
        .env("DATABASE_PASSWORD", "hunter2-secret");
    let err = ex.start().expect_err("exits 1");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(!format!("{ex:?}").contains("hunter2"));
}
