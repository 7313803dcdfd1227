//! Ready when the service has written its pid file. The file is watched with inotify, and its
//! content is checked: a pid file left by an earlier run is reported as stale instead of
//! "already running" (Python mirakuru only tested that the file exists), and more of its
//! content can be required (PostgreSQL's `postmaster.pid` says `ready` on its line 8): a pid
//! file can be written before the service is ready (VTest#41, docs/design.md §4).

use std::path::{Path, PathBuf};

use super::file::Matcher;
use super::{Backoff, Captures, Check, Context, Setup, Status};
use crate::error::Error;
use crate::platform::DirWatch;

/// Ready when a pid file exists and names a running process (or is empty: some services only
/// `touch` it) — and, with [`matches`](PidFile::matches), when its content, or its
/// [`line`](PidFile::line) `n`, matches a regex too. The process it names is then the
/// service's main process: stopped with it, and watched by
/// [`check_alive`](crate::Executor::check_alive).
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor, Signal};
///
/// // pg_ctl exits once it has started the server; postmaster.pid names the server, and its
/// // line 8 turns from "starting" to "ready".
/// let mut pg = Executor::new(
///     "pg_ctl start -D /tmp/pg/data -o '-p 5433 -k /tmp/pg'",
///     ready::PidFile::new("/tmp/pg/data/postmaster.pid").line(8).matches("^ready"),
/// )
/// .stop_signal(Signal::SIGINT)
/// .user("postgres");
/// pg.start()?;
/// pg.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    resolved: PathBuf,
    matcher: Matcher,
    groups: Option<Captures>,
    watch: Option<DirWatch>,
    /// Whether a writer has finished with the file: only then is an empty file a touched
    /// one rather than one about to receive its pid.
    written: bool,
    backoff: Backoff,
    last: Option<String>,
}

/// What a pid file says.
#[derive(Debug, PartialEq, Eq)]
enum Content {
    Missing,
    Empty,
    Pid(u32),
    Garbage(String),
}

fn read(path: &Path) -> Content {
    let Ok(bytes) = std::fs::read(path) else {
        return Content::Missing;
    };
    let text = String::from_utf8_lossy(&bytes);
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() && text.trim().is_empty() {
        return Content::Empty;
    }
    match first.parse::<u32>() {
        Ok(pid) if pid > 0 => Content::Pid(pid),
        _ => Content::Garbage(first.chars().take(64).collect()),
    }
}

fn is_alive(pid: u32) -> bool {
    // EPERM: it exists but belongs to someone else.
    crate::platform::process_exists(pid)
}

impl PidFile {
    /// Waits for the pid file at `path` (relative paths are resolved against the executor's
    /// working directory).
    pub fn new(path: impl Into<PathBuf>) -> PidFile {
        let path = path.into();
        PidFile {
            resolved: path.clone(),
            path,
            matcher: Matcher::default(),
            groups: None,
            watch: None,
            written: false,
            backoff: Backoff::new(),
            last: None,
        }
    }

    /// The pid file path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Also requires the content to match `pattern`, a regex (`^` and `$` match at line
    /// ends).
    pub fn matches(mut self, pattern: impl Into<String>) -> PidFile {
        self.matcher.pattern = Some(pattern.into());
        self
    }

    /// Applies [`matches`](PidFile::matches) to line `n` only (1-based).
    pub fn line(mut self, n: usize) -> PidFile {
        self.matcher.line = Some(n);
        self
    }
}

impl Check for PidFile {
    fn describe(&self) -> String {
        let mut what = format!("pid file {} to name a running process", self.resolved.display());
        if let Some(content) = self.matcher.describe() {
            what.push_str(&format!(" and its {content}"));
        }
        what
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err(
                "the pid file path is empty; give the path the service writes its pid to".into()
            );
        }
        super::check_path(&self.path, "pid file path")?;
        self.matcher.prepare()?;
        self.groups = None;
        self.resolved = setup.resolve(&self.path);
        if let Some(dir) = self.resolved.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(format!(
                    "the directory of the pid file {} does not exist; create it first",
                    self.resolved.display()
                ));
            }
        }
        self.watch = DirWatch::new(&self.resolved);
        self.written = false;
        self.backoff = Backoff::new();
        self.last = None;
        Ok(())
    }

    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        let stale = |content: String| Error::StalePidFile {
            command: setup.command(),
            path: self.resolved.clone(),
            content,
        };
        match read(&self.resolved) {
            Content::Missing => Ok(None),
            Content::Pid(pid) if is_alive(pid) => Ok(Some(format!(
                "the pid file {} names process {pid}, which is running",
                self.resolved.display()
            ))),
            Content::Pid(pid) => {
                Err(stale(format!("it names process {pid}, which is not running")))
            }
            Content::Empty => Err(stale("it is empty".into())),
            Content::Garbage(text) => Err(stale(format!("it holds {text:?}, which is not a pid"))),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        if let Some(watch) = &self.watch {
            self.written |= watch.drain().written;
        }
        match read(&self.resolved) {
            Content::Pid(pid) if is_alive(pid) => {
                let checked = match std::fs::read(&self.resolved) {
                    Ok(content) => self.matcher.check(&content),
                    Err(e) => Err(e.to_string()),
                };
                match checked {
                    Ok(groups) => {
                        // Ready as the file says; but a process that cannot be the service's
                        // (older than it, or another user's) is not adopted: stop() will not
                        // signal it.
                        if let Err(why) = cx.try_set_main_pid(pid) {
                            tracing::warn!(
                                target: "mirakuru",
                                pid_file = %self.resolved.display(),
                                "the pid file names process {pid}, not adopted: {why}"
                            );
                        }
                        self.groups = groups;
                        return Status::Ready;
                    }
                    Err(why) => self.last = Some(format!("it names process {pid}, but {why}")),
                }
            }
            // Without inotify there is no telling; take it as Python mirakuru would.
            Content::Empty
                if self.matcher.pattern.is_none() && (self.written || self.watch.is_none()) =>
            {
                return Status::Ready
            }
            Content::Empty => self.last = Some("it is empty".into()),
            Content::Pid(pid) => {
                self.last = Some(format!("it names process {pid}, which is not running"))
            }
            Content::Garbage(text) => {
                self.last = Some(format!("it holds {text:?}, which is not a pid"))
            }
            Content::Missing => self.last = Some("it does not exist".into()),
        }
        match &self.watch {
            Some(watch) => cx.poll_when_readable(watch),
            None => cx.poll_again_in(self.backoff.next_delay()),
        }
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    fn captures(&self) -> Option<Captures> {
        self.groups.clone()
    }

    fn release(&mut self) {
        self.watch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_content_is_classified() {
        let dir =
            std::env::temp_dir().join(format!("mirakuru-pidfile-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("x.pid");
        assert_eq!(read(&file), Content::Missing);
        for (text, expected) in [
            ("123\n", Content::Pid(123)),
            ("  77  \n", Content::Pid(77)),
            ("", Content::Empty),
            ("not-a-pid\n", Content::Garbage("not-a-pid".into())),
            ("0\n", Content::Garbage("0".into())),
        ] {
            std::fs::write(&file, text).expect("write");
            assert_eq!(read(&file), expected, "{text:?}");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
