//! Ready when the process prints a banner: a regex searched in its output as it arrives (see
//! `output.rs` for the matching rules).

use regex::bytes::{Regex, RegexBuilder};

use super::{Captures, Check, Context, Setup, Status};
use std::time::Duration;

use crate::output::{BannerWatch, Stream, SEARCH_SLICE};

/// Ready when a line of the captured stdout or stderr contains a match of a regex. `^` and `$`
/// match at line boundaries. The groups of the match are kept ([`Check::captures`]); a group
/// named `port` (`listening on port (?P<port>\d+)`) is the service's [`port`](Check::port).
#[derive(Debug)]
pub struct Banner {
    pattern: String,
    /// For stdout and stderr: the id of the queue the supervisor fills, and the search.
    watches: [Option<(usize, BannerWatch)>; 2],
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
        if self.pattern.is_empty() {
            return Err("the banner is empty: it would match any output at once; give the text \
                        the service prints when it is ready"
                .into());
        }
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
        self.watches = setup.watch_output().map(|id| Some((id?, BannerWatch::new(regex.clone()))));
        Ok(())
    }

    /// Searches what the service wrote since the last look, on this thread — never on the
    /// supervisor's, which serves every service (`output.rs`).
    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let monitor = cx.monitor();
        let mut all_closed = true;
        let mut more = false;
        for (stream, watch) in [Stream::Stdout, Stream::Stderr].into_iter().zip(&mut self.watches) {
            let Some((id, search)) = watch else { continue };
            let got = monitor.take_unsearched(stream, *id, SEARCH_SLICE);
            more |= got.more;
            search.feed(&got.bytes, got.offset);
            if got.closed {
                search.close(got.offset + got.bytes.len() as u64);
            }
            if let Some(found) = search.found() {
                self.groups = Some(
                    found
                        .groups
                        .iter()
                        .map(|g| g.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                );
                for (stream, (id, _)) in [Stream::Stdout, Stream::Stderr]
                    .into_iter()
                    .zip(&self.watches)
                    .filter_map(|(s, w)| Some((s, w.as_ref()?)))
                {
                    monitor.end_watch(stream, *id);
                }
                return Status::Ready;
            }
            all_closed &= got.closed;
        }
        if all_closed {
            // Nobody can write the banner any more.
            return Status::Failed("its output was closed before the banner appeared".into());
        }
        if more {
            // Searched a slice of what is queued: the rest at once, after a look at the clock.
            cx.poll_again_in(Duration::ZERO);
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
