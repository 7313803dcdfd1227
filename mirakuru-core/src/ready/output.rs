//! Ready when the process prints a banner: a regex searched in its output as it arrives (see
//! `output.rs` for the matching rules).

use regex::bytes::{Regex, RegexBuilder};

use super::{Captures, Check, Context, Setup, Status};
use crate::output::Stream;

/// Ready when a line of the captured stdout or stderr contains a match of a regex. `^` and `$`
/// match at line boundaries. The groups of the match are kept ([`Check::captures`]); a group
/// named `port` (`listening on port (?P<port>\d+)`) is the service's [`port`](Check::port).
#[derive(Debug, Clone)]
pub struct Banner {
    pattern: String,
    watches: [Option<usize>; 2],
    names: Vec<Option<String>>,
    groups: Option<Vec<Option<String>>>,
}

impl Banner {
    /// Waits for `pattern`, a regular expression (regex crate syntax; use `regex::escape` for
    /// a literal text).
    pub fn new(pattern: impl Into<String>) -> Banner {
        Banner { pattern: pattern.into(), watches: [None, None], names: Vec::new(), groups: None }
    }

    /// The pattern, as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The capture groups of the match (index 0 is the whole match), once found.
    pub fn groups(&self) -> Option<&[Option<String>]> {
        self.groups.as_deref()
    }

    pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
        RegexBuilder::new(pattern).multi_line(true).build().map_err(|e| {
            format!(
                "the banner {pattern:?} is not a valid regular expression ({}); escape special \
                 characters with a backslash, or use regex::escape for a literal text",
                e.to_string().lines().last().unwrap_or("syntax error").trim()
            )
        })
    }
}

impl Check for Banner {
    fn describe(&self) -> String {
        format!("the output to match {:?}", self.pattern)
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        let regex = Banner::compile(&self.pattern)?;
        if !setup.captures(Stream::Stdout) && !setup.captures(Stream::Stderr) {
            return Err(
                "a banner can only be seen in captured output, but stdout and stderr are both \
                        redirected; keep one of them Redirect::Capture"
                    .into(),
            );
        }
        self.groups = None;
        self.names = regex.capture_names().map(|n| n.map(str::to_string)).collect();
        self.watches = setup.watch_output(&regex);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let state = cx.monitor().lock();
        let mut all_closed = true;
        for (stream, id) in [Stream::Stdout, Stream::Stderr].into_iter().zip(self.watches) {
            let Some(id) = id else { continue };
            let capture = match stream {
                Stream::Stdout => &state.stdout,
                Stream::Stderr => &state.stderr,
            };
            if let Some(found) = capture.watch(id).and_then(|w| w.found()) {
                self.groups = Some(
                    found
                        .groups
                        .iter()
                        .map(|g| g.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                );
                return Status::Ready;
            }
            all_closed &= capture.is_closed();
        }
        if all_closed {
            // Nobody can write the banner any more.
            return Status::Failed("its output was closed before the banner appeared".into());
        }
        Status::NotYet
    }

    fn captures(&self) -> Option<Captures> {
        self.groups.clone().map(|groups| Captures::new(groups, self.names.clone()))
    }

    fn port(&self) -> Option<u16> {
        self.captures().and_then(|c| c.port())
    }
}
