//! What a process writes: every byte of stdout and stderr is drained by the supervisor for the
//! whole life of the process (so a chatty server never blocks on a full pipe — mirakuru #98),
//! the last bytes are kept in a bounded buffer for users and error messages, and banner
//! watches see every byte, before it can fall out of that buffer.
//!
//! The banner is searched by the thread that waits for the service, not by the supervisor:
//! one slow regex must never delay another service's start, stop or exit (the supervisor
//! serves them all). The supervisor only queues the bytes a watch has not seen yet; when a
//! queue is full, it stops reading that stream until the waiting thread has searched it —
//! the service then waits on its own pipe, never the others.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

use regex::bytes::Regex;

/// How much of each stream is kept by default: 64 KiB, the same window Python mirakuru peeks.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// The longest unterminated line a banner watch keeps while it waits for more bytes
/// (mirakuru's `MAX_CARRY_OVER`). A banner longer than this is not found.
const MAX_CARRY: usize = 64 * 1024;

/// How many bytes not yet searched a banner watch queues before the stream is read no more.
const WATCH_QUEUE: usize = 1024 * 1024;

/// How many bytes the waiting thread searches at one look, so that it sees its deadline
/// between two looks even with a slow regex.
pub(crate) const SEARCH_SLICE: usize = 64 * 1024;

/// One of the two output streams of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// What a process wrote, as captured: the last bytes of each stream (see
/// [`Executor::output_limit`](crate::Executor::output_limit)).
///
/// ```
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::OutputExecutor;
///
/// let mut ex = OutputExecutor::new(["sh", "-c", "echo hello; echo ready; sleep 30"], "ready");
/// ex.start()?;
/// assert!(ex.output().stdout_lossy().starts_with("hello\n"));
/// ex.stop()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The last bytes written to stdout.
    pub stdout: Vec<u8>,
    /// The last bytes written to stderr.
    pub stderr: Vec<u8>,
    /// How many earlier bytes of stdout were dropped to respect the limit.
    pub stdout_dropped: u64,
    /// How many earlier bytes of stderr were dropped to respect the limit.
    pub stderr_dropped: u64,
}

impl Output {
    /// Standard output as text, invalid UTF-8 replaced by `�`.
    pub fn stdout_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// Standard error as text, invalid UTF-8 replaced by `�`.
    pub fn stderr_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }

    /// The last `lines` lines of each non-empty stream, labelled, for error messages. Empty if
    /// the process wrote nothing (or its output was not captured).
    pub fn tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for (name, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            let all: Vec<&str> = text.split('\n').collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!("--- last lines of {name} ---\n"));
            for line in &all[from..] {
                // A 10 MiB line must not become a 10 MiB error message.
                if line.len() > 512 {
                    let cut = (0..=512).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
                    out.push_str(&line[..cut]);
                    out.push_str(" […]\n");
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("stdout", &self.stdout_lossy())
            .field("stderr", &self.stderr_lossy())
            .field("stdout_dropped", &self.stdout_dropped)
            .field("stderr_dropped", &self.stderr_dropped)
            .finish()
    }
}

/// The captured part of one stream plus the queues of the banner watches fed from it.
#[derive(Debug)]
pub(crate) struct Capture {
    kept: VecDeque<u8>,
    limit: usize,
    total: u64,
    closed: bool,
    watches: Vec<WatchQueue>,
}

/// The bytes one banner watch has not searched yet.
#[derive(Debug, Default)]
struct WatchQueue {
    bytes: Vec<u8>,
    /// Where `bytes` starts in the stream.
    offset: u64,
    /// The watch found its banner, or its start is over: nothing is queued any more.
    done: bool,
}

/// What a banner watch gets at each look: the bytes written since its last one.
#[derive(Debug, Default)]
pub(crate) struct Unsearched {
    pub(crate) bytes: Vec<u8>,
    /// Where `bytes` starts in the stream.
    pub(crate) offset: u64,
    /// The stream is closed and nothing more will come after these bytes.
    pub(crate) closed: bool,
    /// More bytes are queued already: look again at once.
    pub(crate) more: bool,
    /// The queue was full: the supervisor must be told to read the stream again.
    pub(crate) was_full: bool,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Capture {
        Capture { kept: VecDeque::new(), limit, total: 0, closed: false, watches: Vec::new() }
    }

    /// Appends what the process wrote; watches queue it whole (the supervisor reads no more
    /// than [`room`](Capture::room) allows).
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        for watch in self.watches.iter_mut().filter(|w| !w.done) {
            if watch.bytes.is_empty() {
                watch.offset = self.total;
            }
            watch.bytes.extend_from_slice(chunk);
        }
        self.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(self.limit)..];
        let overflow = (self.kept.len() + chunk.len()).saturating_sub(self.limit);
        self.kept.drain(..overflow);
        self.kept.extend(chunk);
    }

    /// The writing end is closed: no more bytes will come.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// How many bytes may be read from the stream now: as many as the fullest queue of a
    /// watch still takes (any number when nothing watches).
    pub(crate) fn room(&self) -> usize {
        self.watches
            .iter()
            .filter(|w| !w.done)
            .map(|w| WATCH_QUEUE.saturating_sub(w.bytes.len()))
            .min()
            .unwrap_or(usize::MAX)
    }

    pub(crate) fn kept(&self) -> (Vec<u8>, u64) {
        (self.kept.iter().copied().collect(), self.total - self.kept.len() as u64)
    }

    /// Starts queueing the stream for a new watch, from the next byte written; its id.
    pub(crate) fn add_watch(&mut self) -> usize {
        self.watches.push(WatchQueue { offset: self.total, ..WatchQueue::default() });
        self.watches.len() - 1
    }

    /// Takes up to `max` of the bytes watch `id` has not searched yet.
    pub(crate) fn take_unsearched(&mut self, id: usize, max: usize) -> Unsearched {
        let closed = self.closed;
        match self.watches.get_mut(id) {
            Some(watch) => {
                let was_full = watch.bytes.len() >= WATCH_QUEUE;
                let bytes = if watch.bytes.len() <= max {
                    std::mem::take(&mut watch.bytes)
                } else {
                    watch.bytes.drain(..max).collect()
                };
                let offset = watch.offset;
                watch.offset += bytes.len() as u64;
                let more = !watch.bytes.is_empty();
                Unsearched { was_full, offset, bytes, closed: closed && !more, more }
            }
            None => Unsearched { closed, ..Unsearched::default() },
        }
    }

    /// Queues nothing more for watch `id`.
    pub(crate) fn end_watch(&mut self, id: usize) {
        if let Some(watch) = self.watches.get_mut(id) {
            *watch = WatchQueue { done: true, ..WatchQueue::default() };
        }
    }

    /// Queues nothing more for any watch: the start is over.
    pub(crate) fn end_watches(&mut self) {
        (0..self.watches.len()).for_each(|id| self.end_watch(id));
    }
}

/// A banner found in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Capture groups of the banner regex (index 0: the whole match).
    pub(crate) groups: Vec<Option<Vec<u8>>>,
    /// Offset in the stream just past the banner's line: what mirakuru consumes.
    pub(crate) end_of_line: u64,
}

/// Searches a stream for a regex as bytes arrive (`regex.search`, not `match`, like mirakuru
/// 3.0.3+), across read boundaries: the unterminated tail of the stream is carried over to the
/// next chunk (mirakuru #1115 missed banners split over two writes). Like mirakuru, a banner
/// counts once its line is complete: up to and including the next newline, or the end of the
/// stream.
#[derive(Debug)]
pub(crate) struct BannerWatch {
    regex: Regex,
    carry: Vec<u8>,
    /// Groups of a match whose line has not ended yet.
    pending: Option<Vec<Option<Vec<u8>>>>,
    found: Option<Found>,
}

impl BannerWatch {
    pub(crate) fn new(regex: Regex) -> BannerWatch {
        BannerWatch { regex, carry: Vec::new(), pending: None, found: None }
    }

    pub(crate) fn found(&self) -> Option<&Found> {
        self.found.as_ref()
    }

    /// `offset`: position of `chunk` in the stream.
    pub(crate) fn feed(&mut self, chunk: &[u8], offset: u64) {
        if self.found.is_some() {
            return;
        }
        if let Some(groups) = self.pending.take() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.found = Some(Found { groups, end_of_line: offset + nl as u64 + 1 })
                }
                None => self.pending = Some(groups),
            }
            return;
        }
        let carry_start = offset - self.carry.len() as u64;
        self.carry.extend_from_slice(chunk);
        if let Some(caps) = self.regex.captures(&self.carry) {
            let whole_end = caps.get(0).map_or(0, |m| m.end());
            let groups = caps.iter().map(|g| g.map(|m| m.as_bytes().to_vec())).collect::<Vec<_>>();
            match self.carry[whole_end..].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let end_of_line = carry_start + (whole_end + nl) as u64 + 1;
                    self.found = Some(Found { groups, end_of_line });
                }
                None => self.pending = Some(groups),
            }
            self.carry = Vec::new();
            return;
        }
        // Keep only the unterminated last line, and at most MAX_CARRY of it.
        let keep_from = match self.carry.iter().rposition(|&b| b == b'\n') {
            Some(nl) => nl + 1,
            None => 0,
        };
        let keep_from = keep_from.max(self.carry.len().saturating_sub(MAX_CARRY));
        self.carry.drain(..keep_from);
    }

    /// End of stream ends the last line too.
    pub(crate) fn close(&mut self, total: u64) {
        if let Some(groups) = self.pending.take() {
            self.found = Some(Found { groups, end_of_line: total });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A banner watch fed as the waiting thread feeds it: through a capture's queue.
    struct Watched {
        capture: Capture,
        id: usize,
        watch: BannerWatch,
    }

    impl Watched {
        fn feed(&mut self, chunk: &[u8]) {
            self.capture.feed(chunk);
            self.search();
        }

        fn close(&mut self) {
            self.capture.close();
            self.search();
        }

        fn search(&mut self) {
            let got = self.capture.take_unsearched(self.id, usize::MAX);
            self.watch.feed(&got.bytes, got.offset);
            if got.closed {
                self.watch.close(got.offset + got.bytes.len() as u64);
            }
        }

        fn found(&self) -> Option<&Found> {
            self.watch.found()
        }
    }

    fn watch(pattern: &str) -> Watched {
        let mut capture = Capture::new(16);
        let id = capture.add_watch();
        Watched { capture, id, watch: BannerWatch::new(Regex::new(pattern).expect("valid regex")) }
    }

    #[test]
    fn banner_split_across_writes_is_found() {
        let mut c = watch("ready to accept");
        c.feed(b"noise\nready to");
        assert!(c.found().is_none());
        c.feed(b" accept connections\nmore\n");
        let found = c.found().expect("found");
        assert_eq!(found.end_of_line, "noise\nready to accept connections\n".len() as u64);
    }

    #[test]
    fn banner_counts_once_its_line_ends() {
        let mut c = watch("up");
        c.feed(b"server is up");
        assert!(c.found().is_none(), "line not finished");
        c.feed(b" now\n");
        assert!(c.found().is_some());
    }

    #[test]
    fn banner_on_last_line_counts_at_end_of_stream() {
        let mut c = watch("bye");
        c.feed(b"bye");
        c.close();
        assert_eq!(c.found().map(|f| f.end_of_line), Some(3));
    }

    #[test]
    fn banner_is_searched_anywhere_in_a_line() {
        let mut c = watch(r"port (\d+)");
        c.feed(b"2026-01-01 listening on port 6379 now\n");
        let found = c.found().expect("found");
        assert_eq!(found.groups[1].as_deref(), Some(&b"6379"[..]));
    }

    #[test]
    fn banner_inside_a_huge_line_is_found() {
        let mut c = watch("BANNER");
        let noise = vec![b'y'; 1 << 20];
        for _ in 0..10 {
            c.feed(&noise);
        }
        c.feed(b"BAN");
        c.feed(b"NER");
        c.feed(&noise);
        c.feed(b"\n");
        assert!(c.found().is_some());
    }

    #[test]
    fn a_full_queue_asks_the_reader_to_wait_and_loses_nothing() {
        let mut capture = Capture::new(16);
        assert_eq!(capture.room(), usize::MAX, "nothing watches: read freely");
        let id = capture.add_watch();
        capture.feed(&vec![b'x'; WATCH_QUEUE]);
        assert_eq!(capture.room(), 0, "the watch's queue is full: read no more");
        let got = capture.take_unsearched(id, 100);
        assert_eq!((got.bytes.len(), got.offset, got.was_full, got.more), (100, 0, true, true));
        let got = capture.take_unsearched(id, usize::MAX);
        assert_eq!((got.bytes.len(), got.offset, got.more), (WATCH_QUEUE - 100, 100, false));
        assert_eq!(capture.room(), WATCH_QUEUE);
        capture.end_watch(id);
        capture.feed(b"more");
        assert_eq!(capture.room(), usize::MAX, "a finished watch queues nothing");
        assert!(capture.take_unsearched(id, usize::MAX).bytes.is_empty());
    }

    #[test]
    fn capture_keeps_only_the_last_bytes() {
        let mut c = Capture::new(4);
        c.feed(b"abcdef");
        c.feed(b"gh");
        let (kept, dropped) = c.kept();
        assert_eq!(kept, b"efgh");
        assert_eq!(dropped, 4);
    }

    #[test]
    fn tail_labels_streams_and_cuts_long_lines() {
        let out =
            Output { stdout: b"a\nb\nc\n".to_vec(), stderr: vec![b'x'; 2000], ..Output::default() };
        let tail = out.tail(2);
        assert!(tail.contains("--- last lines of stdout ---\nb\nc\n"), "{tail}");
        assert!(tail.contains("--- last lines of stderr ---\n"), "{tail}");
        assert!(tail.len() < 700, "{tail}");
    }
}
