//! Finding a service's programs: the directory an environment variable names, then `PATH`,
//! then where distributions put them off `PATH` (Debian keeps PostgreSQL's in
//! `/usr/lib/postgresql/<version>/bin`, and servers in `/usr/sbin`, which a user's `PATH`
//! often lacks). A missing program is an error that says where it was looked for and what
//! to install.

use std::path::{Path, PathBuf};

use crate::Error;

/// Where one service's programs may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search {
    /// The service, in messages.
    pub(crate) title: &'static str,
    /// The variable naming a directory searched first.
    pub(crate) env: &'static str,
    /// Directories searched after `PATH`; a `*` is a version, the newest first.
    pub(crate) dirs: &'static [&'static str],
    /// What to install, said when a program is missing.
    pub(crate) install: &'static str,
}

impl Search {
    /// The first of `names` found, in the order of the places (a place's every name before the
    /// next place), so that programs found one by one come from one installation.
    pub(crate) fn find(&self, names: &[&str]) -> Result<PathBuf, Error> {
        // The variable, when set, must be right: a typo (`…/16/bin` for `…/15/bin`) would
        // otherwise pass unseen, another installation taken instead.
        if let Some(dir) = self.env_dir() {
            return names.iter().map(|n| dir.join(n)).find(|p| is_executable(p)).ok_or_else(|| {
                Error::InvalidArgument {
                    command: names.join(" or "),
                    problem: format!(
                        "{}={} holds no {}",
                        self.env,
                        dir.display(),
                        names.join(" or ")
                    ),
                    hint: format!(
                        "set {} to the directory of {}'s programs, or unset it to search PATH \
                         and the usual places",
                        self.env, self.title
                    ),
                }
            });
        }
        let places = self.places();
        for dir in &places {
            for name in names {
                let path = dir.join(name);
                if is_executable(&path) {
                    return Ok(path);
                }
            }
        }
        let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
        Err(Error::InvalidArgument {
            command: names.join(" or "),
            problem: format!(
                "{} is not installed: no {} in {}",
                self.title,
                names.join(" or "),
                looked.join(", ")
            ),
            hint: format!(
                "install it ({}), or set {} to the directory that holds it",
                self.install, self.env
            ),
        })
    }

    /// `name` beside `found`, or where the search finds it.
    /// The variable's directory, when set, is the only place (see [`Search::find`]). A
    /// symlink's target directory counts too: `/usr/local/bin/postgres` may point into
    /// `/usr/lib/postgresql/15/bin`, where `psql` is the real one.
    pub(crate) fn beside(&self, found: &Path, name: &str) -> Result<PathBuf, Error> {
        let real = std::fs::canonicalize(found).ok();
        let dirs = [Some(found), real.as_deref()].into_iter().flatten().filter_map(Path::parent);
        for dir in dirs {
            let path = dir.join(name);
            if is_executable(&path) {
                return Ok(path);
            }
        }
        self.find(&[name])
    }

    /// The directory the variable names, made absolute (programs run in other directories).
    fn env_dir(&self) -> Option<PathBuf> {
        let dir = PathBuf::from(std::env::var_os(self.env).filter(|d| !d.is_empty())?);
        Some(std::path::absolute(&dir).unwrap_or(dir))
    }

    fn places(&self) -> Vec<PathBuf> {
        let mut places = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            places.extend(std::env::split_paths(&path).filter(|p| p.is_absolute()));
        }
        for pattern in self.dirs {
            places.extend(expand(pattern));
        }
        places.dedup();
        places
    }
}

/// The directories a pattern with at most one `*` names, the highest version first.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((before, after)) = pattern.split_once('*') else {
        return vec![PathBuf::from(pattern)];
    };
    let (parent, prefix) = before.rsplit_once('/').unwrap_or(("", before));
    let Ok(entries) = std::fs::read_dir(if parent.is_empty() { "/" } else { parent }) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let key = version.split('.').map(|p| p.parse::<u64>().ok()).collect::<Option<_>>()?;
            Some((key, PathBuf::from(format!("{parent}/{name}{after}"))))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, path)| path).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_directories_come_newest_first() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for version in ["9.6", "15", "13", "notaversion"] {
            std::fs::create_dir_all(dir.path().join(version).join("bin")).expect("mkdir");
        }
        let pattern = format!("{}/*/bin", dir.path().display());
        let found = expand(&pattern);
        let names: Vec<_> = found
            .iter()
            .map(|p| p.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or(""))
            .collect();
        assert_eq!(names, ["15", "13", "9.6"]);
    }

    #[test]
    fn a_missing_program_says_where_it_was_looked_for_and_what_to_install() {
        let search = Search {
            title: "Nothing",
            env: "MIRAKURU_NOTHING_BIN",
            dirs: &["/nonexistent-mirakuru/*/bin"],
            install: "apt-get install nothing",
        };
        let err =
            search.find(&["no-such-program-mirakuru"]).expect_err("not installed").to_string();
        assert!(err.contains("Nothing is not installed"), "{err}");
        assert!(err.contains("apt-get install nothing"), "{err}");
        assert!(err.contains("MIRAKURU_NOTHING_BIN"), "{err}");
    }
}
