//! A server's data directory, prepared once and copied for each server: `initdb` takes 1-2 s
//! and a copy of its result tens of milliseconds. The prepared directory is kept in the
//! user's lock directory (`$TMPDIR/mirakuru-<uid>/`, 0700), keyed by what made it (the
//! program, its version, the options), and made by one process while the others wait.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;

use super::client::{run_client_within, LOAD_TIMEOUT};
use crate::fixture::{lock_within, open_lock, user_dir};
use crate::Error;

/// How long a process waits for another one preparing the same data directory.
const PREPARE_WAIT: Duration = Duration::from_secs(300);

/// The file written last into a prepared directory: without it, the directory is a leftover
/// of a preparation that died.
const READY: &str = ".mirakuru-prepared";

/// The password a prepared directory was made with, beside it (0600), for a recipe with one.
const SECRET: &str = ".mirakuru-secret";

/// What makes a prepared directory: a name for messages and paths, and everything it
/// depends on.
#[derive(Debug)]
pub(crate) struct Recipe<'a> {
    pub(crate) name: &'a str,
    /// The programs whose version decides the directory's format.
    pub(crate) programs: &'a [&'a Path],
    /// The options it was made with.
    pub(crate) options: &'a [&'a str],
    /// The user that owns it.
    pub(crate) owner: Option<(u32, u32)>,
    /// Whether it is made with a password of its own (see [`Recipe::copy_to`]).
    pub(crate) secret: bool,
}

impl Recipe<'_> {
    /// Copies the directory prepared for this recipe into `dest` (made, mode 0700, owned by the
    /// recipe's owner), preparing it first if no process has: with the command `init` makes
    /// for the directory it is given, run as the owner, in that directory. With `secret`, a
    /// random password is made for the preparation, in a file (readable by the owner) whose
    /// path `init` gets; returns it, the same for every copy.
    pub(crate) fn copy_to(
        &self,
        dest: &Path,
        init: impl FnOnce(&Path, Option<&Path>) -> std::process::Command,
    ) -> Result<Option<String>, Error> {
        let io = |action: String| {
            move |e: std::io::Error| Error::Io { command: self.name.to_string(), action, source: e }
        };
        let cache = self.cache_dir().map_err(io("finding the data directory cache of".into()))?;
        if !cache.join(READY).exists() {
            let lock = open_lock(&cache.with_extension("lock"))
                .map_err(io("locking the data directory cache of".into()))?;
            let locked = lock_within(&lock, FlockOperation::NonBlockingLockExclusive, PREPARE_WAIT)
                .map_err(io("locking the data directory cache of".into()))?;
            if !locked {
                return Err(Error::Io {
                    command: self.name.to_string(),
                    action: format!("waiting for another process preparing {}", cache.display()),
                    source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                });
            }
            if !cache.join(READY).exists() {
                self.prepare(&cache, init)?;
            }
        }
        copy_tree(&cache, dest, self.owner).map_err(io(format!(
            "copying {} to {} for",
            cache.display(),
            dest.display()
        )))?;
        match self.secret {
            true => std::fs::read_to_string(cache.join(SECRET))
                .map(|s| Some(s.trim().to_string()))
                .map_err(io(format!("reading the password of {}", cache.display()))),
            false => Ok(None),
        }
    }

    fn cache_dir(&self) -> std::io::Result<PathBuf> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for program in self.programs {
            program.hash(&mut hasher);
            // A new version of the program replaces the file.
            if let Ok(meta) = std::fs::metadata(program) {
                (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(&mut hasher);
            }
        }
        (self.options, self.owner, self.secret).hash(&mut hasher);
        let dir = user_dir().map_err(std::io::Error::other)?;
        Ok(dir.join(format!("{}-{:016x}", self.name, hasher.finish())))
    }

    /// Runs `init` in a directory the owner can reach (the run directory; the cache is in a
    /// directory only this user may enter), then moves its result into the cache.
    fn prepare(
        &self,
        cache: &Path,
        init: impl FnOnce(&Path, Option<&Path>) -> std::process::Command,
    ) -> Result<(), Error> {
        let io = |action: &str| {
            let action = format!("{action} {}", cache.display());
            move |e: std::io::Error| Error::Io { command: self.name.to_string(), action, source: e }
        };
        let _ = std::fs::remove_dir_all(cache);
        let work =
            crate::process::private_dir("prepare-").map_err(io("making a directory to prepare"))?;
        own(work.path(), self.owner).map_err(io("making a directory to prepare"))?;
        let data = work.path().join("data");
        std::fs::DirBuilder::new().mode(0o700).create(&data).map_err(io("preparing"))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(io("preparing"))?;
        }
        let secret = match self.secret {
            true => Some(new_secret().map_err(io("making a password for"))?),
            false => None,
        };
        let secret_file = work.path().join("secret");
        if let Some(secret) = &secret {
            std::fs::write(&secret_file, secret).map_err(io("making a password for"))?;
            own(&secret_file, self.owner).map_err(io("making a password for"))?;
        }
        let mut command = init(&data, secret.as_ref().map(|_| secret_file.as_path()));
        // Its working directory must be one the owner may enter.
        command.current_dir(&data);
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        let what = format!("preparing the data directory of {}", self.name);
        run_client_within(command, &what, None, LOAD_TIMEOUT)?;
        match std::fs::rename(&data, cache) {
            // The run directory is on another file system than TMPDIR (a TMPDIR too long for
            // socket paths sends it to /tmp): copied instead.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                copy_tree(&data, cache, None).map_err(io("keeping"))?;
            }
            renamed => renamed.map_err(io("keeping"))?,
        }
        if let Some(secret) = &secret {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(cache.join(SECRET))
                .map_err(io("keeping the password of"))?;
            file.write_all(secret.as_bytes()).map_err(io("keeping the password of"))?;
        }
        std::fs::write(cache.join(READY), b"").map_err(io("keeping"))?;
        Ok(())
    }
}

/// Copies the tree `from` into the new directory `to` (0700), files, directories and symlinks,
/// owned by `owner` if given; the readiness marker is left out.
fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(to)?;
    own(to, owner)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == READY || entry.file_name() == SECRET {
            continue;
        }
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&source, &target, owner)?;
            let mode = std::fs::metadata(&source)?.permissions().mode();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
            }
        } else {
            // `copy` uses copy_file_range: a reflink where the file system has them.
            std::fs::copy(&source, &target)?;
            own(&target, owner)?;
        }
    }
    Ok(())
}

/// The file in a fixture's directory holding its server's password: written by `prepare`, read
/// by `endpoint` (the directory is 0700, its owner the service's user or the caller).
const FIXTURE_SECRET: &str = "password";

/// Keeps `password` in the fixture's directory `dir` (0600, owned by `owner`).
pub(crate) fn keep_secret(
    dir: &Path,
    password: &str,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(FIXTURE_SECRET);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    file.write_all(password.as_bytes())?;
    own(&path, owner)
}

/// The password kept in the fixture's directory `dir`, if any.
pub(crate) fn kept_secret(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(FIXTURE_SECRET)).ok().map(|p| p.trim().to_string())
}

/// 32 random hex digits: a server's password.
pub(crate) fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    crate::platform::random_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn own(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_is_prepared_once_and_copied_for_each_server() {
        let program = tempfile::NamedTempFile::new().expect("a file");
        let options = [&*format!("test-{}", std::process::id())];
        let recipe = Recipe {
            name: "test-data",
            programs: &[program.path()],
            options: &options,
            owner: None,
            secret: false,
        };
        let runs = std::cell::Cell::new(0);
        let init = |_: &Path, _: Option<&Path>| {
            runs.set(runs.get() + 1);
            let mut sh = std::process::Command::new("sh");
            sh.args(["-c", "mkdir base && printf prepared > base/file"]);
            sh
        };
        let servers = tempfile::tempdir().expect("a directory");
        recipe.copy_to(&servers.path().join("a"), init).expect("prepared and copied");
        recipe.copy_to(&servers.path().join("b"), init).expect("copied");
        assert_eq!(runs.get(), 1, "prepared once");
        for copy in ["a", "b"] {
            let file = servers.path().join(copy).join("base/file");
            assert_eq!(std::fs::read(&file).expect("copied"), b"prepared");
            let mode = std::fs::metadata(servers.path().join(copy)).expect("made").mode();
            assert_eq!(mode & 0o777, 0o700);
            assert!(!servers.path().join(copy).join(READY).exists());
        }
        let _ = std::fs::remove_dir_all(recipe.cache_dir().expect("the cache"));
    }
}
