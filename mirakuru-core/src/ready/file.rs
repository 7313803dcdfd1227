//! Ready when a file says so: it exists, and its content (or one of its lines) matches a
//! regex. PostgreSQL rewrites line 8 of `postmaster.pid` in place from `starting` to `ready`
//! once it accepts connections — what `pg_ctl -w` waits for, with no network and no
//! authentication (docs/design.md §4). The file's directory is watched with inotify, so every
//! write is seen when it happens (docs/design.md §5: IN_MODIFY / IN_CLOSE_WRITE / IN_MOVED_TO).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use regex::bytes::Regex;

use super::{Backoff, Banner, Captures, Check, Context, Setup, Status};
use crate::platform::DirWatch;

/// A content condition: a regex over the whole file, or over one of its lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    pub(crate) pattern: Option<String>,
    /// 1-based line number.
    pub(crate) line: Option<usize>,
    regex: Option<Regex>,
}

impl Matcher {
    pub(crate) fn prepare(&mut self) -> Result<(), String> {
        if self.line == Some(0) {
            return Err("line numbers start at 1; give the line the content is on".into());
        }
        self.regex = match &self.pattern {
            Some(p) => Some(Banner::compile(p).map_err(|e| format!("the file pattern: {e}"))?),
            None => None,
        };
        Ok(())
    }

    /// `Ok(captures)` when `content` satisfies the condition, else what it holds instead.
    pub(crate) fn check(&self, content: &[u8]) -> Result<Option<Captures>, String> {
        let text: &[u8] = match self.line {
            Some(n) => match content.split(|&b| b == b'\n').nth(n - 1) {
                Some(line) => line,
                None => return Err(format!("it has fewer than {n} lines")),
            },
            None => content,
        };
        let Some(regex) = &self.regex else { return Ok(None) };
        match regex.captures(text) {
            Some(caps) => {
                let groups = caps
                    .iter()
                    .map(|g| g.map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()))
                    .collect();
                let names = regex.capture_names().map(|n| n.map(str::to_string)).collect();
                Ok(Some(Captures::new(groups, names)))
            }
            None => {
                let shown = String::from_utf8_lossy(text);
                let shown: String = shown.trim_end().chars().take(80).collect();
                Err(match self.line {
                    Some(n) => format!("its line {n} is {shown:?}"),
                    None => format!("its content {shown:?} does not match"),
                })
            }
        }
    }

    pub(crate) fn describe(&self) -> Option<String> {
        let pattern = self.pattern.as_ref()?;
        Some(match self.line {
            Some(n) => format!("line {n} to match {pattern:?}"),
            None => format!("content to match {pattern:?}"),
        })
    }
}

/// What identifies one version of a file: a rewrite changes the mtime or the size, a
/// replacement the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    len: u64,
}

fn version(path: &Path) -> Option<Version> {
    let m = std::fs::metadata(path).ok()?;
    Some(Version { dev: m.dev(), ino: m.ino(), mtime: (m.mtime(), m.mtime_nsec()), len: m.len() })
}

/// Ready when a file exists and, with [`matches`](FileContent::matches), its content — or
/// its [`line`](FileContent::line) `n` — matches a regex. The groups of the match are the
/// check's [`captures`](Check::captures).
///
/// A file left by an earlier run is not taken for this run's: if the file is already there
/// when the service starts, it counts only once it has been written again.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor, Signal};
///
/// // PostgreSQL's own readiness flag: line 8 of postmaster.pid.
/// let mut pg = Executor::new(
///     "postgres -D /tmp/pg/data -p 5433 -k /tmp/pg",
///     ready::file("/tmp/pg/data/postmaster.pid").line(8).matches("^ready"),
/// )
/// .stop_signal(Signal::SIGINT)
/// .user("postgres");
/// pg.start()?;
/// pg.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileContent {
    path: PathBuf,
    resolved: PathBuf,
    matcher: Matcher,
    watch: Option<DirWatch>,
    /// The version found before the spawn, which does not count.
    before: Option<Version>,
    groups: Option<Captures>,
    backoff: Backoff,
    last: Option<String>,
}

/// A check that is ready when the file at `path` exists (and, with
/// [`matches`](FileContent::matches), says so); see [`FileContent`].
pub fn file(path: impl Into<PathBuf>) -> FileContent {
    let path = path.into();
    FileContent {
        resolved: path.clone(),
        path,
        matcher: Matcher::default(),
        watch: None,
        before: None,
        groups: None,
        backoff: Backoff::new(),
        last: None,
    }
}

impl FileContent {
    /// Requires the content to match `pattern`, a regex (`^` and `$` match at line ends).
    pub fn matches(mut self, pattern: impl Into<String>) -> FileContent {
        self.matcher.pattern = Some(pattern.into());
        self
    }

    /// Applies [`matches`](FileContent::matches) to line `n` only (1-based), as
    /// `postmaster.pid`'s line 8.
    pub fn line(mut self, n: usize) -> FileContent {
        self.matcher.line = Some(n);
        self
    }

    /// The file path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Check for FileContent {
    fn describe(&self) -> String {
        match self.matcher.describe() {
            Some(what) => format!("the file {} ({what})", self.resolved.display()),
            None => format!("the file {} to exist", self.resolved.display()),
        }
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("the file path is empty; give the file the service writes".into());
        }
        super::check_path(&self.path, "file path")?;
        self.matcher.prepare()?;
        self.resolved = setup.resolve(&self.path);
        // Watch before reading the old version: a write in between is then not missed.
        self.watch = DirWatch::new(&self.resolved);
        self.before = version(&self.resolved);
        self.groups = None;
        self.backoff = Backoff::new();
        self.last = None;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        if let Some(watch) = &self.watch {
            watch.drain();
        }
        let now = version(&self.resolved);
        let outcome = match (now, std::fs::read(&self.resolved)) {
            (None, _) | (_, Err(_)) => Err("it does not exist".to_string()),
            (Some(v), Ok(_)) if Some(v) == self.before => {
                Err("it is unchanged since before the start (left by an earlier run?)".to_string())
            }
            (Some(_), Ok(content)) => self.matcher.check(&content),
        };
        match outcome {
            Ok(groups) => {
                self.groups = groups;
                Status::Ready
            }
            Err(why) => {
                self.last = Some(why);
                match &self.watch {
                    Some(watch) => cx.poll_when_readable(watch),
                    None => cx.poll_again_in(self.backoff.next_delay()),
                }
                Status::NotYet
            }
        }
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

    const POSTMASTER_PID: &[u8] =
        b"4242\n/var/lib/postgresql/data\n1767225600\n5433\n/tmp\n127.0.0.1\n  1234  5678\nready   \n";

    fn matcher(pattern: &str, line: Option<usize>) -> Matcher {
        let mut m = Matcher { pattern: Some(pattern.into()), line, regex: None };
        m.prepare().expect("valid");
        m
    }

    #[test]
    fn the_eighth_line_of_postmaster_pid_says_ready() {
        let m = matcher("^ready", Some(8));
        assert!(m.check(POSTMASTER_PID).is_ok());
        let starting = String::from_utf8_lossy(POSTMASTER_PID).replace("ready   ", "starting");
        assert_eq!(
            m.check(starting.as_bytes()).err().as_deref(),
            Some("its line 8 is \"starting\"")
        );
        assert_eq!(m.check(b"4242\n/data\n").err().as_deref(), Some("it has fewer than 8 lines"));
    }

    #[test]
    fn whole_content_matches_give_captures() {
        let m = matcher(r"(?m)^(?P<port>54\d\d)$", None);
        let caps = m.check(POSTMASTER_PID).expect("matches").expect("captures");
        assert_eq!(caps.name("port"), Some("5433"));
        assert!(matcher("nope", None).check(b"x").is_err());
    }

    #[test]
    fn line_zero_is_refused() {
        let mut m = Matcher { pattern: None, line: Some(0), regex: None };
        assert!(m.prepare().is_err());
    }
}
