//! This test binary's directory: every fixture's private directory (`{tmpdir}`) and every
//! notify socket is created inside it, so that whatever the binary leaves on disk — a
//! PostgreSQL data directory is tens of megabytes — goes with one removal: by the fixture's
//! teardown, by the exit hook, or by the reaper when the binary died.
//!
//! It is made with a random name by `mkdtemp` semantics (`O_EXCL`: another user cannot
//! prepare it), mode 0711: the services of other users (`Executor::user`) must pass through
//! it to reach their own 0700 directories inside, but nobody may list it.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The run directory's twin in memory, if there is one: made with it, removed with it.
static RAM_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Where memory-backed directories are made: a tmpfs on every Linux system.
const RAM_BASE: &str = "/dev/shm";

/// The room `/dev/shm` must have for servers' data to go there: containers often give it
/// 64 MB, too little for a few PostgreSQL servers, which then stay on disk.
const RAM_ROOM: u64 = 1 << 30;

/// The run directory, created on first use. A failure is not remembered (it may be a
/// passing lack of file descriptors): the next call tries again.
pub(crate) fn run_dir() -> io::Result<PathBuf> {
    let mut dir = DIR.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = &*dir {
        return Ok(dir.clone());
    }
    use std::os::unix::fs::PermissionsExt;
    let made = tempfile::Builder::new()
        .prefix(&format!("mirakuru-run-{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o711))
        .tempdir_in(temp_base())?
        .keep();
    *dir = Some(made.clone());
    *RAM_DIR.lock().unwrap_or_else(|p| p.into_inner()) = make_ram_dir();
    // Removed at a normal exit after every tree is stopped: this hook is registered before
    // any spawn, so it runs after the one that stops the trees (atexit runs the last first).
    super::at_exit(remove_run_dir);
    Ok(made)
}

/// The directory temporary files go in: `TMPDIR`, unless it is too deep for unix socket paths
/// (`sun_path` holds 107 bytes, and a socket sits two levels below it).
fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if base.as_os_str().len() > 40 {
        PathBuf::from("/tmp")
    } else {
        base
    }
}

/// The run directory's twin in `/dev/shm`, where servers' data goes when there is room:
/// PostgreSQL's `CREATE DATABASE` copies a template's files, 20 ms in memory against 90
/// (and up to 160) on this project's ext4 disks, and a test's data never needs to outlive
/// the machine's power. `MIRAKURU_DATA_IN_RAM=0` keeps it on disk.
fn make_ram_dir() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var_os("MIRAKURU_DATA_IN_RAM").is_some_and(|v| v == "0") {
        return None;
    }
    if !ram_has_room() {
        return None;
    }
    let made = tempfile::Builder::new()
        .prefix(&format!("mirakuru-run-{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o711))
        .tempdir_in(RAM_BASE)
        .ok()?
        .keep();
    Some(made)
}

/// Whether `/dev/shm` has [`RAM_ROOM`] free.
fn ram_has_room() -> bool {
    rustix::fs::statvfs(RAM_BASE)
        .is_ok_and(|stat| stat.f_bavail.saturating_mul(stat.f_frsize) >= RAM_ROOM)
}

/// The memory-backed twin of the run directory, if it was made (see `make_ram_dir`).
pub(crate) fn ram_dir() -> Option<PathBuf> {
    RAM_DIR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A private (0700) directory for a server's data: in memory where there is room, else in
/// the run directory; removed when the returned value is dropped.
pub(crate) fn data_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    // Made with the run directory, if at all; used while there is room still (another
    // process may have filled it since).
    let run = run_dir()?;
    let base = ram_dir().filter(|_| ram_has_room()).unwrap_or(run);
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
}

/// A new private (0700) directory inside the run directory, named `prefix` and random
/// characters, removed when the returned value is dropped.
pub(crate) fn private_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(run_dir()?)
}

/// Removes the run directory: at a normal exit, after every service stopped.
fn remove_run_dir() {
    let made = DIR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(dir) = made {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(dir) = ram_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
