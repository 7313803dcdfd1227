//! What is run and how (`mirakuru-core/src/command.rs`): the program and its arguments, the
//! environment, the working directory, the user, stdin. Everything invalid is refused before
//! anything is spawned.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use mirakuru::{Error, SimpleExecutor};
use mirakuru_test::{temp_dir, Tag};

use crate::{ready, tag_env};

/// §2.16.1: the default stdin was a pipe held open; here it is /dev/null unless asked.
#[test]
fn stdin_is_not_a_pipe_held_open() {
    let mut ex = SimpleExecutor::new(vec![
        "sh".to_string(),
        "-c".into(),
        "cat; echo eof-seen; exec sleep 300".into(),
    ]);
    ex.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ex.output().stdout_lossy().contains("eof-seen") {
        assert!(Instant::now() < deadline, "stdin never reached end of file");
        std::thread::sleep(Duration::from_millis(5));
    }
    ex.stop().expect("stop");
}

/// A binary started with a low soft limit on open files (1,024 is usual) still runs hundreds
/// of services: the limit is raised to the hard one. Its services get the limit the binary was
/// started with, as Go's runtime does for its children: a program that uses select(2) breaks
/// on descriptors past 1,024.
#[test]
fn many_services_fit_under_a_low_file_limit_and_each_gets_that_limit() {
    let name = "command::many_services_fit_under_a_low_file_limit_and_each_gets_that_limit";
    if !crate::in_child(name, &[]) {
        return;
    }
    const SOFT: u64 = 128;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write a valid rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if limit.rlim_max < 1024 {
        eprintln!("skipped: the hard limit on open files is {}", limit.rlim_max);
        return;
    }
    let low = libc::rlimit { rlim_cur: SOFT, rlim_max: limit.rlim_max };
    // SAFETY: as above; in a child process of its own, before its first start.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut services: Vec<SimpleExecutor> = Vec::new();
    for _ in 0..60 {
        let mut ex = SimpleExecutor::new(crate::svc(&[])).env(k, &v);
        ex.start().expect("starts: 60 services hold more descriptors than 128");
        services.push(ex);
    }
    let pid = services[0].pid().expect("pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("its limits");
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
    for mut ex in services {
        ex.stop().expect("stop");
    }
    tag.assert_none_left();
    assert_eq!(soft, Some(SOFT), "the service's limit: {limits}");
}

#[test]
fn runs_as_another_user_when_root_and_says_why_not_otherwise() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&["--spawn-children", "1", "--children-setsid"]).user("nobody").env(k, v);
    if !root {
        let err = ex.start().expect_err("only root can switch users");
        assert!(err.to_string().contains("only root"), "{err}");
        return;
    }
    ex.start().expect("start as nobody");
    let pid = ex.pid().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    assert!(uid_line.contains("65534"), "{uid_line}");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).expect("Groups line");
    assert_eq!(groups.trim(), "Groups:", "supplementary groups dropped");
    // Its child left the session, and belongs to another user than the test: still stopped.
    ex.stop().expect("stop");
    tag.assert_none_left();
}

/// A uid without a passwd entry is accepted, as documented (`.user("54321")`); its group is
/// the same number. It used to be refused as an unknown user.
#[test]
fn a_uid_without_a_passwd_entry_is_accepted() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&[]).user("54321").env(k, v);
    ex.start().expect("start as uid 54321");
    let pid = ex.pid().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    let gid_line = status.lines().find(|l| l.starts_with("Gid:")).expect("Gid line");
    assert!(uid_line.contains("54321") && gid_line.contains("54321"), "{uid_line} {gid_line}");
    ex.stop().expect("stop");
    tag.assert_none_left();
}

mod bad_input {
    //! The bad-input catalogue entries of this behaviour (numbered as in the README's table).

    use super::*;
    use crate::{refused, Probe};

    // The command.

    // bad-input catalogue #1
    #[test]
    fn nonexistent_program() {
        refused(
            SimpleExecutor::new("no-such-program-anywhere --flag").into_inner(),
            "`no-such-program-anywhere` was not found in PATH",
            "give its full path",
        );
    }

    // bad-input catalogue #2
    #[test]
    fn nonexistent_program_path() {
        refused(
            SimpleExecutor::new("/no/such/dir/program").into_inner(),
            "/no/such/dir/program does not exist",
            "check the path",
        );
    }

    // bad-input catalogue #3
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

    // bad-input catalogue #4
    #[test]
    fn directory_as_program() {
        refused(SimpleExecutor::new("/tmp").into_inner(), "/tmp is a directory", "executable file");
    }

    // bad-input catalogue #5
    #[test]
    fn empty_command() {
        refused(SimpleExecutor::new("").into_inner(), "the command is empty", "program to run");
    }

    // bad-input catalogue #6
    #[test]
    fn blank_command() {
        refused(SimpleExecutor::new(" \t ").into_inner(), "the command is empty", "program to run");
    }

    // bad-input catalogue #7
    #[test]
    fn empty_argument_list() {
        refused(
            SimpleExecutor::new(Vec::<String>::new()).into_inner(),
            "the command is empty",
            "program to run",
        );
    }

    // bad-input catalogue #8
    #[test]
    fn empty_command_for_the_shell() {
        refused(
            SimpleExecutor::new("  ").shell(true).into_inner(),
            "the command is empty",
            "program to run",
        );
    }

    // bad-input catalogue #9
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

    // bad-input catalogue #10
    #[test]
    fn nul_in_an_argument() {
        let probe = Probe::new();
        let mut argv = probe.argv();
        argv.extend(["--banner".into(), "nul\0byte".into()]);
        refused(
            SimpleExecutor::new(argv).into_inner(),
            "contains a NUL byte",
            "remove the NUL byte",
        );
        probe.assert_nothing_spawned();
    }

    // bad-input catalogue #11
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

    // The environment.

    // bad-input catalogue #12
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

    // bad-input catalogue #13
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

    // bad-input catalogue #14
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

    // bad-input catalogue #15
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

    // Where and as whom.

    // bad-input catalogue #16
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

    // bad-input catalogue #17
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

    // bad-input catalogue #20
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

    // Paths with a NUL byte: refused before the spawn (they used to fail only after it, at
    // every attempt until the timeout).
    #[test]
    fn nul_in_a_pid_file_path() {
        // bad-input catalogue #48
        let probe = Probe::new();
        refused(
            mirakuru::PidExecutor::new(probe.argv(), "/tmp/a\0b.pid").into_inner(),
            "contains a NUL byte",
            "remove it",
        );
        probe.assert_nothing_spawned();
    }

    #[test]
    fn nul_in_a_unix_socket_path() {
        // bad-input catalogue #49
        let probe = Probe::new();
        refused(
            mirakuru::UnixSocketExecutor::new(probe.argv(), "/tmp/a\0b.sock").into_inner(),
            "contains a NUL byte",
            "remove it",
        );
        probe.assert_nothing_spawned();
    }

    #[test]
    fn nul_in_a_file_check_path() {
        // bad-input catalogue #50
        let probe = Probe::new();
        refused(
            mirakuru::Executor::new(probe.argv(), mirakuru::ready::file("/tmp/a\0b")),
            "contains a NUL byte",
            "remove it",
        );
        probe.assert_nothing_spawned();
    }

    /// An empty banner would match at once.
    #[test]
    fn empty_banner() {
        // bad-input catalogue #51
        let probe = Probe::new();
        refused(
            mirakuru::OutputExecutor::new(probe.argv(), "").into_inner(),
            "the banner is empty",
            "give the text the service prints",
        );
        probe.assert_nothing_spawned();
    }
}
