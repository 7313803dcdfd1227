//! What mirakuru guarantees about safety: no shell unless asked; owner markers that cannot be
//! guessed and are matched exactly; private temporary directories and sockets; signals only
//! for processes it owns, also when a pid has been recycled; environment values never shown.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirakuru::fixture::{Fixtures, Port, Spec};
use mirakuru::{Error, OutputExecutor, PidExecutor, SimpleExecutor, TcpExecutor};
use mirakuru_test::{free_port, is_alive, service, temp_dir, wait_gone, Tag};

use crate::{ready, svc, tag_env, READY};

/// The environment of a live process, as `KEY=VALUE` entries.
fn environ(pid: u32) -> Vec<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    env.split(|&b| b == 0).map(|e| String::from_utf8_lossy(e).into_owned()).collect()
}

fn marker_of(pid: u32) -> String {
    environ(pid)
        .into_iter()
        .find_map(|e| e.strip_prefix("MIRAKURU_OWNER=").map(str::to_string))
        .expect("every service carries an owner marker")
}

#[test]
fn a_command_line_is_never_given_to_a_shell_unless_asked() {
    let dir = temp_dir();
    let pwned = dir.path().join("pwned");
    let p = pwned.display();
    // Every way a shell would run `touch`: as an argument it is just text.
    let text = format!("x; touch {p} && touch {p} | touch {p} $(touch {p}) `touch {p}` > {p}");
    let line = format!("{} --banner \"{text}\"", service());
    let mut ex = OutputExecutor::new(line, "pwned");
    ex.start().expect("start");
    assert_eq!(ex.output().stdout_lossy().trim_end(), text, "the banner arrived verbatim");
    ex.stop().expect("stop");
    assert!(!pwned.exists(), "a shell ran part of the command");

    // Asked for, the shell runs it.
    let mut ex = SimpleExecutor::new(format!("touch {p}; exec sleep 30")).shell(true);
    ex.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pwned.exists() {
        assert!(Instant::now() < deadline, "shell(true) ran no shell");
        std::thread::sleep(Duration::from_millis(5));
    }
    ex.stop().expect("stop");
}

#[test]
fn owner_markers_are_random_128_bit_values_distinct_for_every_start() {
    let mut markers = Vec::new();
    for _ in 0..8 {
        // Ready by banner: right after execve(2) the kernel briefly shows no environment.
        let mut ex = ready(&[]);
        ex.start().expect("start");
        markers.push(marker_of(ex.pid().expect("pid")));
        ex.stop().expect("stop");
    }
    let me = std::process::id().to_string();
    for marker in &markers {
        let (owner, random) = marker.split_once(':').expect("<owner pid>:<random>");
        assert_eq!(owner, me, "{marker}");
        assert_eq!(random.len(), 32, "128 bits in hex: {marker}");
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{marker}");
    }
    let mut randoms: Vec<&str> = markers.iter().map(|m| &m[m.find(':').unwrap() + 1..]).collect();
    randoms.sort();
    randoms.dedup();
    assert_eq!(randoms.len(), markers.len(), "a marker was reused: {markers:?}");
    // Not a counter nor a clock: consecutive markers share no long common prefix.
    for pair in markers.windows(2) {
        let common = pair[0].bytes().zip(pair[1].bytes()).take_while(|(a, b)| a == b).count();
        assert!(common < me.len() + 1 + 8, "markers look sequential: {pair:?}");
    }
}

#[test]
fn stopping_one_executor_never_touches_the_tree_of_another() {
    // Same owner pid, another random part: the sweep matches whole markers, so even the
    // escaped grandchildren of one service are not taken for the other's.
    let (tag_a, tag_b) = (Tag::new(), Tag::new());
    let args = ["--spawn-children", "2", "--children-setsid", "--grandchildren"];
    let (k, v) = tag_env(&tag_a);
    let mut a = ready(&args).env(k, v);
    let (k, v) = tag_env(&tag_b);
    let mut b = ready(&args).env(k, v);
    a.start().expect("start a");
    b.start().expect("start b");
    let b_pids = tag_b.pids();
    assert_eq!(b_pids.len(), 5, "b and its children and grandchildren");
    a.stop().expect("stop a");
    tag_a.assert_none_left();
    std::thread::sleep(Duration::from_millis(50));
    assert!(b_pids.iter().all(|&p| is_alive(p)), "stopping a reached b's tree");
    b.stop().expect("stop b");
    tag_b.assert_none_left();
}

#[test]
fn fixture_directories_sockets_and_port_claims_are_private() {
    let spec = Spec::args("private", [service(), "--unix".into(), "{socket}".into()]).unix(None);
    let fixtures = Fixtures::start(vec![spec]);
    let fixture = fixtures.get(0);
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let tmpdir = std::fs::metadata(fixture.tmpdir()).expect("tmpdir");
    assert_eq!(tmpdir.permissions().mode() & 0o777, 0o700, "the fixture's directory");
    assert_eq!(tmpdir.uid(), me);
    assert!(fixture.socket().starts_with(fixture.tmpdir()), "the socket is inside it");
    let tmpdir_path = fixture.tmpdir().to_path_buf();
    fixtures.finish(false);
    assert!(!tmpdir_path.exists(), "removed with the fixture");

    // Fixed ports are claimed through lock files in a directory of this user's only.
    let port = free_port();
    let spec =
        Spec::args("claimed", [service(), "--tcp".into(), port.to_string()]).tcp(Port::Fixed(port));
    let fixtures = Fixtures::start(vec![spec]);
    let claims = std::env::temp_dir().join(format!("mirakuru-{me}"));
    let meta = std::fs::metadata(&claims).expect("the claims directory");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{}", claims.display());
    assert_eq!(meta.uid(), me);
    fixtures.finish(false);
}

#[test]
fn a_pid_file_naming_a_process_the_service_did_not_start_is_never_signalled() {
    // The pid file names a process that is older than the service: it cannot be the
    // service's daemon, whatever the file says, and must survive the stop.
    let mut stranger = Command::new(service()).stdout(Stdio::null()).spawn().expect("stranger");
    // Start times have the resolution of a clock tick (10 ms): make "older" unambiguous.
    std::thread::sleep(Duration::from_millis(30));
    let dir = temp_dir();
    let pid_file = dir.path().join("daemon.pid");
    let script = format!("echo {} > {}; exec sleep 300", stranger.id(), pid_file.display());
    let mut ex = PidExecutor::new(script, &pid_file).shell(true);
    ex.start().expect("the pid file names a live process");
    ex.stop().expect("stop");
    std::thread::sleep(Duration::from_millis(50));
    let alive = is_alive(stranger.id());
    stranger.kill().expect("kill the stranger");
    stranger.wait().expect("reap the stranger");
    assert!(alive, "stop() signalled a process it never started");
}

/// Makes the next process created in this pid namespace get `pid`, if the kernel lets us
/// (root, `/proc/sys/kernel/ns_last_pid`): spawns `make` until its child gets it.
fn spawn_with_pid(pid: u32, make: impl Fn() -> std::process::Child) -> Option<std::process::Child> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let child = make();
        if child.id() == pid {
            return Some(child);
        }
        // Another test's process took it first: let that one go and try again.
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

#[test]
fn a_recycled_pid_of_the_service_is_never_signalled() {
    // The service's process is reaped by someone else (a `waitpid` elsewhere in the program),
    // its pid is given to a stranger — a process group leader with a child — and only then is
    // the executor stopped. Nothing of the stranger's may be signalled.
    let tag = Tag::new();
    let (k, v) = tag_env(&tag);
    let mut ex = ready(&[]).env(k, v);
    ex.start().expect("start");
    let pid = ex.pid().expect("pid");
    // Start times tell processes apart at the resolution of a clock tick (10 ms): a real
    // recycling takes a wrap-around of the pid space, far longer than that.
    std::thread::sleep(Duration::from_millis(30));
    // SAFETY: kill only takes integers; the pid is the service, our unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    // Once mirakuru has seen the exit (without reaping), someone else reaps: mirakuru still
    // believes it has a zombie to reap at stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ex.exit_status().is_none() {
        assert!(Instant::now() < deadline, "the exit was never seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: waitpid on our own child; we take over reaping it on purpose.
    unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
    let stranger = spawn_with_pid(pid, || {
        use std::os::unix::process::CommandExt;
        Command::new(service())
            .args(["--spawn-children", "1", "--banner", READY])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stranger")
    });
    let Some(mut stranger) = stranger else {
        println!("skipped: cannot choose the next pid here (needs root and ns_last_pid)");
        ex.stop().ok();
        return;
    };
    // Wait until the stranger's child runs (it prints its banner after spawning it).
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(stranger.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("banner");
    let mut child_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(stranger.stderr.take().expect("stderr")),
        &mut child_line,
    )
    .expect("child");
    let child: u32 =
        child_line.trim().strip_prefix("child ").and_then(|p| p.parse().ok()).expect("child pid");

    let running = ex.running();
    // In a thread: a stop that waited for the stranger (our child too) would never return.
    let stopping = std::thread::spawn(move || ex.stop());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stopping.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stop_returned = stopping.is_finished();
    std::thread::sleep(Duration::from_millis(50));
    let (stranger_alive, child_alive) = (is_alive(stranger.id()), is_alive(child));
    // SAFETY: kill only takes integers; the stranger leads its own process group.
    unsafe { libc::kill(-(stranger.id() as i32), libc::SIGKILL) };
    stranger.wait().expect("reap the stranger");
    wait_gone(child, Duration::from_secs(5));
    assert!(stop_returned, "stop() waited for the process that took the service's pid");
    assert!(stranger_alive && child_alive, "the executor signalled the process that took its pid");
    assert!(!running, "a stranger's process counted as the service running");
    // The service was killed before stop(): reporting that is right, so is a lost status.
    let stopped = stopping.join().expect("stop thread");
    assert!(matches!(stopped, Ok(()) | Err(Error::ProcessFinishedWithError { .. })), "{stopped:?}");
}

#[test]
fn environment_values_never_appear_in_errors_or_debug_output() {
    const SECRET: &str = "hunter2-secret";
    let port = free_port();
    // A service that fails to start: exit, timeout, invalid argument.
    let failures: Vec<Error> = vec![
        TcpExecutor::new(svc(&["--exit", "1"]), "127.0.0.1", port)
            .env("DATABASE_PASSWORD", SECRET)
            .start()
            .expect_err("exits 1"),
        OutputExecutor::new(svc(&[]), "never")
            .env("DATABASE_PASSWORD", SECRET)
            .timeout(Duration::from_millis(100))
            .start()
            .expect_err("times out"),
        SimpleExecutor::new(svc(&[]))
            .env("DATABASE_PASSWORD", SECRET)
            .env("BAD=NAME", SECRET)
            .start()
            .expect_err("invalid name"),
        SimpleExecutor::new(svc(&[]))
            .env("DATABASE_PASSWORD", format!("{SECRET}\0"))
            .start()
            .expect_err("NUL in the value"),
    ];
    for err in &failures {
        assert!(!err.to_string().contains(SECRET), "{err}");
        assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
    }
    let ex = SimpleExecutor::new(svc(&[])).env("DATABASE_PASSWORD", SECRET);
    assert!(!format!("{ex:?}").contains(SECRET), "{ex:?}");
    assert!(!format!("{:?}", ex.command()).contains(SECRET));
    // A fixture that cannot start fails its test with a message that leaves the value out.
    let spec =
        Spec::args("secretive", svc(&["--exit", "1"])).output("never").env("API_TOKEN", SECRET);
    let err = Fixtures::try_start(vec![spec]).expect_err("exits 1");
    assert!(!err.1.to_string().contains(SECRET), "{}", err.1);
}

/// A service running as another user names, with `MAINPID=`, a root process started after it:
/// it is not adopted (only the service's tree, or its own user's processes are), the start
/// says why, and `stop()` leaves that process alone. It used to be believed after checking
/// only its start time, so any user could make `stop()` signal root's processes.
#[test]
fn a_mainpid_naming_another_users_process_is_refused() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let named = dir.path().join("victim.pid");
    let args = svc(&[
        "--notify",
        "--notify-mainpid-from",
        &named.display().to_string(),
        "--notify-ready-after-ms",
        "50",
    ]);
    let named_path = named.clone();
    let starting = std::thread::spawn(move || {
        let mut ex = mirakuru::Executor::new(args, mirakuru::ready::notify()).user("nobody");
        let started = ex.start();
        (ex, started)
    });
    // Root's process, started after the service: newer than it, so the start time alone
    // would let it pass.
    std::thread::sleep(Duration::from_millis(100));
    let mut victim = Command::new("sleep").arg("300").spawn().expect("victim");
    std::fs::write(&named_path, victim.id().to_string()).expect("name the victim");
    let (mut ex, started) = starting.join().expect("the start returns");
    started.expect("ready: READY=1 came");
    assert_ne!(ex.main_pid(), Some(victim.id()), "the victim is not the service's main process");
    let ignored = ex.read_check(|n| n.main_pid());
    assert_eq!(ignored, None, "MAINPID was refused");
    ex.stop().expect("stop");
    std::thread::sleep(Duration::from_millis(50));
    let alive = is_alive(victim.id());
    victim.kill().expect("kill the victim");
    victim.wait().expect("reap the victim");
    assert!(alive, "stop() signalled root's process because the service named it");
}

/// What another user may have put in place of the lock directory or a lock file in a shared
/// temporary directory is refused at once, with a message — a symlink (root would create
/// files where it points), a directory of theirs, a FIFO (opening it blocked `start()`
/// forever) — instead of blocking the start or being followed.
#[test]
fn a_lock_directory_or_file_prepared_by_someone_else_is_refused() {
    let name = "security::a_lock_directory_or_file_prepared_by_someone_else_is_refused";
    let Some(case) = std::env::var_os("MIRAKURU_LOCK_CASE") else {
        for case in ["symlink", "foreign-dir", "fifo"] {
            let base = temp_dir();
            crate::in_child_with(
                name,
                &[("TMPDIR", &base.path().display().to_string()), ("MIRAKURU_LOCK_CASE", case)],
            );
        }
        return;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let dir = std::env::temp_dir().join(format!("mirakuru-{me}"));
    let port = free_port();
    match case.to_str() {
        Some("symlink") => {
            let elsewhere = std::env::temp_dir().join("elsewhere");
            std::fs::create_dir(&elsewhere).expect("elsewhere");
            std::os::unix::fs::symlink(&elsewhere, &dir).expect("symlink");
        }
        Some("foreign-dir") => {
            if me != 0 {
                return; // only root can give it to another user
            }
            std::fs::create_dir(&dir).expect("dir");
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
        }
        _ => {
            std::fs::create_dir(&dir).expect("dir");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("0700");
            let fifo = dir.join(format!("port-{port}.lock"));
            let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: mkfifo reads a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }
    }
    let spec =
        Spec::args("claimed", [service(), "--tcp".into(), port.to_string()]).tcp(Port::Fixed(port));
    let began = Instant::now();
    let err = Fixtures::try_start(vec![spec]).expect_err("refused");
    assert!(began.elapsed() < Duration::from_secs(5), "it did not wait");
    let message = err.1.to_string();
    assert!(
        message.contains("not a private directory") || message.contains("cannot be used"),
        "{case:?}: {message}"
    );
    assert!(!std::env::temp_dir().join("elsewhere").join(format!("port-{port}.lock")).exists());
}
