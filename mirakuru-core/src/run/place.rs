//! Where a run's fixtures keep their state: `$TMPDIR/mirakuru-<uid>/run-<key>/<fixture>/`,
//! inside the private lock directory (owner, 0700, checked), each level made 0700 and checked
//! the same way, no symlink followed. A run's directory names its runner; one whose runner is
//! gone and whose keepers are all gone is what a crashed run left, and is removed — never
//! reused, since a new run has a new key.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;

use super::runner::{Run, Runner};
use crate::fixture::{open_lock, private_dir};

/// The files of one run-scoped fixture in one run.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    pub(crate) dir: PathBuf,
}

impl Place {
    /// The fixture's directory in `run`, made if missing, after clearing what crashed runs
    /// left.
    /// `fingerprint` tells apart two fixtures of one path that are not the same service.
    pub(crate) fn of(run: &Run, fixture: &str, fingerprint: u64) -> Result<Place, String> {
        let user = crate::fixture::user_dir()?;
        let run_dir = user.join(format!("run-{}", run.key));
        if std::fs::symlink_metadata(&run_dir).is_err() {
            remove_abandoned(&user);
        }
        private_dir(&run_dir)?;
        let runner_file = run_dir.join("runner");
        if std::fs::symlink_metadata(&runner_file).is_err() {
            write_atomically(&runner_file, run.runner.to_arg().as_bytes())
                .map_err(|e| format!("{} cannot be written: {e}", runner_file.display()))?;
        }
        let dir = run_dir.join(format!("{}-{fingerprint:016x}", file_name(fixture)));
        private_dir(&dir)?;
        Ok(Place { dir })
    }

    /// The place the keeper was given.
    pub(crate) fn at(dir: PathBuf) -> Place {
        Place { dir }
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.join("keeper.log")
    }

    /// Held by whoever starts the keeper, so that one does.
    pub(crate) fn start_lock(&self) -> PathBuf {
        self.dir.join("start.lock")
    }

    /// Held exclusively by the keeper for as long as it lives.
    pub(crate) fn keeper_lock(&self) -> PathBuf {
        self.dir.join("keeper.lock")
    }

    /// Shared by the processes using the service; exclusive for `stopped!`.
    pub(crate) fn lease(&self) -> PathBuf {
        self.dir.join("lease.lock")
    }

    /// Taken by users on their way in; held by `stopped!` so newcomers wait behind it.
    pub(crate) fn turnstile(&self) -> PathBuf {
        self.dir.join("turnstile.lock")
    }

    /// Removes the fixture's files, and the run's directory once no fixture is left in it.
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let Some(run_dir) = self.dir.parent() else { return };
        let others = std::fs::read_dir(run_dir).into_iter().flatten().flatten();
        if !others.into_iter().any(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let _ = std::fs::remove_dir_all(run_dir);
        }
    }

    /// Held exclusively by the keeper while the service is stopped and until it is back:
    /// a test that comes in (after the turnstile) waits on it, also when the process that
    /// stopped the service died in its `stopped!` block and let go of the turnstile.
    pub(crate) fn down(&self) -> PathBuf {
        self.dir.join("down.lock")
    }

    /// Whether a keeper holds this place.
    pub(crate) fn keeper_alive(&self) -> bool {
        keeper_alive(&self.dir)
    }
}

/// A fixture's path as a file name: `common::PG` is `common.PG`.
fn file_name(fixture: &str) -> String {
    let name: String = fixture
        .replace("::", ".")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect();
    if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// Writes `path` whole or not at all: readers never see half of it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether a keeper holds the keeper lock of the fixture directory `dir`.
fn keeper_alive(dir: &Path) -> bool {
    let Ok(file) = open_lock(&dir.join("keeper.lock")) else { return false };
    rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared).is_err()
}

/// Removes the directories of runs whose runner is gone and whose keepers are all gone.
fn remove_abandoned(user: &Path) {
    let Ok(entries) = std::fs::read_dir(user) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_run = name.to_str().is_some_and(|n| n.starts_with("run-"));
        if !is_run || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        // A run's directory is made before its runner file: one without is being made now
        // (by another process of that run), unless it is older than any start takes.
        let runner = std::fs::read_to_string(dir.join("runner")).ok();
        let young = || {
            let made = entry.metadata().and_then(|m| m.modified()).ok();
            made.and_then(|m| m.elapsed().ok()).is_none_or(|age| age < Duration::from_secs(600))
        };
        match runner.as_deref().and_then(Runner::from_arg) {
            Some(runner) if runner.alive() => continue,
            None if young() => continue,
            _ => {}
        }
        let fixtures = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        if fixtures
            .filter(|f| f.file_type().is_ok_and(|t| t.is_dir()))
            .any(|f| keeper_alive(&f.path()))
        {
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_anyone_else_could_write_or_a_symlink_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("a temporary directory");
        let open = base.path().join("open");
        std::fs::create_dir(&open).expect("made");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = private_dir(&open).expect_err("0777 is not private");
        assert!(err.contains("mode 777") && err.contains("remove it"), "{err}");
        let link = base.path().join("link");
        let mine = base.path().join("mine");
        private_dir(&mine).expect("made 0700");
        std::os::unix::fs::symlink(&mine, &link).expect("a symlink");
        assert!(private_dir(&link).is_err(), "a symlink is not followed");
    }

    #[test]
    fn a_state_is_read_whole_or_not_at_all() {
        let base = tempfile::tempdir().expect("a temporary directory");
        let path = base.path().join("state");
        assert!(super::super::state::State::read(&path).is_none());
        std::fs::write(&path, b"{\"Ready\":{\"keep").expect("half a state");
        assert!(super::super::state::State::read(&path).is_none(), "half is none");
        let failed = super::super::state::State::Failed("it exited with code 3".into());
        failed.write(&path).expect("written");
        let read = super::super::state::State::read(&path);
        assert!(
            matches!(read, Some(super::super::state::State::Failed(m)) if m.contains("code 3"))
        );
    }

    #[test]
    fn a_fixture_path_is_one_safe_file_name() {
        assert_eq!(file_name("common::PG"), "common.PG");
        assert_eq!(file_name("../x"), "_.._x");
        assert_eq!(file_name("a/b"), "a_b");
    }
}
