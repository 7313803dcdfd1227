//! `mirakuru-test-service`: a small, precise, scriptable fake service.
//!
//! The tests and the benchmark of mirakuru start this binary instead of ad-hoc
//! shell scripts, so that every behaviour a fixture library must cope with
//! (slow starts, odd readiness signals, stubborn children, hostile endpoints…)
//! can be asked for with a flag and happens exactly when expected.
//!
//! It is a module of the `mirakuru-test` library so that more than one program can be the
//! service: the `mirakuru-test-service` binary is [`main`], and `mirakuru-bench` calls [`run`]
//! when started with a marker argument, so that the benchmark needs no other binary built
//! next to it (a `cargo run` builds only the binary it runs).
//!
//! Flags are parsed by hand (`--flag VALUE` or `--flag=VALUE`). An unknown
//! flag, a bad value or a flag missing the flag it refines prints one line to
//! stderr and exits with 2. A runtime failure (e.g. the port is taken) prints
//! `mirakuru-test-service: <what>: <why>` to stderr and exits with 3. If the
//! reader of stdout or stderr goes away (EPIPE), output to that stream is
//! dropped and the service lives on.
//!
//! # Startup steps, in this order (each optional)
//!
//! 1. `--count-file PATH`: append `<pid>\n` to PATH (one `O_APPEND` write).
//! 2. `--daemonize`: double fork; the original process and the intermediate
//!    one (which calls `setsid()`) exit 0, the grandchild goes on.
//!    `--daemonize-linger-ms MS`: the original process waits MS before it
//!    exits (a launcher that is still running when its daemon is ready).
//!    `--clear-env`: the grandchild then executes itself again with an empty
//!    environment (as nginx overwrites its own): no variable of its starter,
//!    owner markers included, is left in `/proc/<pid>/environ`.
//! 3. `--ignore SIG` (repeatable): set SIG to `SIG_IGN`.
//!    `--exit-on SIG:CODE` (repeatable): `_exit(CODE)` when SIG arrives.
//!    SIG is a name (`TERM`, `SIGTERM`, `int`…) or a number.
//! 4. `--spawn-children N`: start N copies of this binary in `--child` mode,
//!    printing `child <pid>` to stderr for each (reaped in the background).
//!    `--children-setsid`: each child calls `setsid()` (escapes the group).
//!    `--children-ignore-term`: the children ignore SIGTERM.
//!    `--grandchildren`: each child starts one grandchild in its own session
//!    (printing `grandchild <pid>` to stderr).
//! 5. `--close-stdout`: `close(1)`; later stdout output is silently skipped.
//! 6. `--non-utf8`: write `\xff\xfe\xfd invalid utf8 \xc3\x28\n` to stdout.
//! 7. `--noise-mib N` (fractional): write exactly round(N MiB) bytes of noise
//!    to stdout, as lines of 63 `x` + `\n`, in blocking 64 KiB writes.
//!    `--noise-stderr`: write the noise to stderr instead.
//!    `--noise-no-newline`: one single run of `x`, no newline at all.
//! 8. `--delay-ms MS`: sleep before any socket exists (a slow start).
//! 9. `--tcp PORT`: bind (with `SO_REUSEADDR`) and listen on PORT (0: the OS
//!    picks one), then print `listening on port <P>` to stderr.
//!    `--host H`: address to bind (default `127.0.0.1`; `::1`, `[::1]` work).
//!    `--bind-before-listen-ms MS`: sleep between `bind()` and `listen()`, so
//!    connects are refused although the address is taken (TCP and unix).
//! 10. `--unix PATH`: the same on a unix stream socket (exit 3 if PATH exists;
//!     the socket file is never removed), then print
//!     `listening on unix socket <PATH>` to stderr.
//! 11. `--pid-file PATH`: write `<pid>\n` to `PATH.tmp`, then rename it to PATH.
//!     `--pid-file-garbage`: write `not-a-pid\n` straight to PATH instead.
//! 12. `--notify`: if `NOTIFY_SOCKET` is set (a path, or `@name` for the
//!     Linux abstract namespace), send the datagram `READY=1\nSTATUS=ready\n`.
//!     `--notify-message MSG` (repeatable): send MSG as its own datagram first.
//!     `--notify-mainpid`: send `MAINPID=<own pid>` first of all (after
//!     `--daemonize`, the daemon's pid).
//!     `--notify-mainpid-from PATH`: send `MAINPID=<the pid PATH holds>` first of
//!     all, once PATH exists (any process: a service naming a stranger).
//!     `--notify-ready-after-ms MS`: sleep MS between the messages and `READY=1`.
//!     `--notify-no-ready`: do not send the `READY=1` datagram.
//! 13. `--ready-fd N`: write `\n` to fd N, then close it (s6-style readiness).
//!     The fd is made close-on-exec at startup so children do not inherit it.
//! 14. `--banner TEXT`: write `TEXT\n` to stdout, flushed at once.
//!     `--banner-stderr`: write it to stderr instead.
//!     `--banner-split MS`: write the first half, sleep MS, write the rest.
//!     `--banner-no-newline`: leave out the trailing newline.
//!     `--banner-in-long-line MIB`: MIB MiB of `y`, TEXT, MIB MiB of `y`, `\n`.
//! 15. `--flood-after-ready-mib N`: then write N MiB of lines of 63 `z` + `\n`
//!     to stdout from a background thread (serving goes on meanwhile).
//!     `--flood-done-file PATH`: create PATH once the flood is fully written.
//! 16. `--exit CODE`: wait for the flood, sleep `--exit-after-ms MS` (default
//!     0) while serving, then exit with CODE. Without it: run until a signal.
//! 17. Serving, when listening. Per connection (one thread each), by mode:
//!     - default: hold the connection open until the peer closes it;
//!     - `--http`: answer one HTTP/1.x request, then close. The status comes
//!       from `--status METHOD=C1,C2,...` (repeatable; codes used in turn, the
//!       last one repeating; METHOD `*` is the fallback; default 200). The
//!       body is `ok\n` (left out for HEAD, but `Content-Length` is given).
//!       1xx, 204 and 304 answers carry no body and no `Content-Length`.
//!       `--expect-target T`: any other request target (compared verbatim)
//!       gets a 404 with body `unexpected target <target>\n`.
//!       `--expect-header NAME:VALUE` (repeatable): a 400 unless a header
//!       NAME (any case) has exactly VALUE (both trimmed).
//!       `--echo-request-to PATH`: append the raw head, the body and `----\n`;
//!     - `--hang`: accept, then never read nor answer;
//!     - `--reset`: accept, then close with `SO_LINGER` 0 (connection reset);
//!     - `--garbage`: read a bit, answer `this is not http\r\n\r\n`, close;
//!     - `--partial-headers`: read a bit, send a status line and one header,
//!       then never finish the head;
//!     - `--trickle-ms MS`: read a bit, then send an endless header one byte
//!       every MS milliseconds (a peer that is slow but never silent).
//!
//! `--child` is internal: the mode `--spawn-children` starts copies in. It
//! resets inherited ignored signals, honours `--children-setsid`,
//! `--children-ignore-term` and `--grandchildren`, then sleeps forever.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{self as unix_net, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use libc::c_int;

const NAME: &str = "mirakuru-test-service";
const MIB: f64 = 1024.0 * 1024.0;
/// Size of every bulk write (noise, flood, long banner lines).
const CHUNK: usize = 64 * 1024;
/// Noise and flood lines are 63 fill bytes plus `\n`.
const LINE: usize = 64;
const BACKLOG: c_int = 128;
const NON_UTF8: &[u8] = b"\xff\xfe\xfd invalid utf8 \xc3\x28\n";
const READY: &[u8] = b"READY=1\nSTATUS=ready\n";
/// A request head larger than this is refused (the connection is dropped).
const MAX_HEAD: usize = 1024 * 1024;
/// How long a closing connection waits for the peer to finish sending, so
/// that unread request bytes do not turn our close into a reset.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The service, configured by this process's arguments: what `mirakuru-test-service` runs.
pub fn main() -> ! {
    run(Vec::new(), std::env::args_os().skip(1))
}

/// The service, configured by `args` (the flags above, without a program name). `reexec` are
/// the arguments that make this program the service again: the copies that `--spawn-children`
/// starts get them before their own flags (none for `mirakuru-test-service`, the marker for a
/// program that is the service only when asked).
pub fn run(reexec: Vec<OsString>, args: impl IntoIterator<Item = OsString>) -> ! {
    let config = parse_args(args.into_iter()).unwrap_or_else(|msg| usage_error(&msg));
    REEXEC.set(reexec).unwrap_or_else(|_| fail("the service can only run once per process"));
    if config.child {
        run_child(&config)
    }
    run_service(Box::leak(Box::new(config)))
}

/// What [`run`] was given to start this program as the service again.
static REEXEC: OnceLock<Vec<OsString>> = OnceLock::new();

// ---------------------------------------------------------------------------
// Configuration and argument parsing
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Config {
    child: bool,
    count_file: Option<PathBuf>,
    daemonize: bool,
    daemonize_linger: Option<Duration>,
    clear_env: bool,
    /// Applied in the order given, so the last flag for a signal wins.
    signals: Vec<(c_int, Disposition)>,
    spawn_children: u32,
    children_setsid: bool,
    children_ignore_term: bool,
    grandchildren: bool,
    close_stdout: bool,
    non_utf8: bool,
    noise_mib: Option<f64>,
    trickle: Duration,
    noise_stderr: bool,
    noise_no_newline: bool,
    delay: Option<Duration>,
    tcp_port: Option<u16>,
    host: Option<String>,
    unix_path: Option<PathBuf>,
    bind_before_listen: Option<Duration>,
    pid_file: Option<PathBuf>,
    pid_file_garbage: bool,
    notify: bool,
    notify_messages: Vec<String>,
    notify_no_ready: bool,
    notify_mainpid: bool,
    notify_mainpid_from: Option<PathBuf>,
    notify_ready_after: Option<Duration>,
    ready_fd: Option<RawFd>,
    banner: Option<String>,
    banner_stderr: bool,
    banner_split: Option<Duration>,
    banner_no_newline: bool,
    banner_in_long_line_mib: Option<f64>,
    flood_mib: Option<f64>,
    flood_done_file: Option<PathBuf>,
    exit_code: Option<i32>,
    exit_after: Option<Duration>,
    mode: Mode,
    http: HttpConfig,
}

#[derive(Clone, Copy)]
enum Disposition {
    Ignore,
    ExitWith(i32),
}

/// What the service does with each accepted connection.
#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    #[default]
    Hold,
    Http,
    Hang,
    Reset,
    Garbage,
    PartialHeaders,
    Trickle,
}

#[derive(Default)]
struct HttpConfig {
    statuses: Vec<StatusSequence>,
    expect_target: Option<String>,
    expect_headers: Vec<(String, String)>,
    echo_to: Option<PathBuf>,
}

/// The codes `--status METHOD=...` answers with, and how many were used.
struct StatusSequence {
    method: String,
    codes: Vec<u16>,
    used: AtomicUsize,
}

/// Walks the command line one flag at a time.
struct ArgParser {
    args: std::vec::IntoIter<String>,
    flag: String,
    /// The `VALUE` of a `--flag=VALUE` argument, until it is consumed.
    inline: Option<String>,
}

impl ArgParser {
    fn next_flag(&mut self) -> Result<Option<String>, String> {
        if let Some(value) = self.inline.take() {
            return Err(format!("{} takes no value (got {value:?})", self.flag));
        }
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        if !arg.starts_with("--") {
            return Err(format!("unexpected argument {arg:?}"));
        }
        match arg.split_once('=') {
            Some((flag, value)) => {
                self.flag = flag.to_string();
                self.inline = Some(value.to_string());
            }
            None => self.flag = arg,
        }
        Ok(Some(self.flag.clone()))
    }

    fn value(&mut self) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{} needs a value", self.flag))
    }

    fn number<T: FromStr>(&mut self) -> Result<T, String> {
        let value = self.value()?;
        value.parse().map_err(|_| format!("{}: bad value {value:?}", self.flag))
    }

    fn millis(&mut self) -> Result<Duration, String> {
        self.number().map(Duration::from_millis)
    }

    /// A size in MiB; fractions are fine, negative or non-finite are not.
    fn mib(&mut self) -> Result<f64, String> {
        let mib: f64 = self.number()?;
        if mib.is_finite() && mib >= 0.0 {
            Ok(mib)
        } else {
            Err(format!("{}: bad size {mib}", self.flag))
        }
    }

    fn path(&mut self) -> Result<PathBuf, String> {
        self.value().map(PathBuf::from)
    }

    fn bad(&self, value: &str) -> String {
        format!("{}: bad value {value:?}", self.flag)
    }
}

fn parse_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Config, String> {
    let args = args
        .map(|arg| arg.into_string().map_err(|arg| format!("argument {arg:?} is not valid UTF-8")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = ArgParser { args: args.into_iter(), flag: String::new(), inline: None };
    let mut c = Config::default();
    while let Some(flag) = p.next_flag()? {
        match flag.as_str() {
            "--child" => c.child = true,
            "--count-file" => c.count_file = Some(p.path()?),
            "--daemonize" => c.daemonize = true,
            "--clear-env" => c.clear_env = true,
            "--daemonize-linger-ms" => c.daemonize_linger = Some(p.millis()?),
            "--ignore" => {
                let value = p.value()?;
                let sig = parse_signal(&value).ok_or_else(|| p.bad(&value))?;
                c.signals.push((sig, Disposition::Ignore));
            }
            "--exit-on" => {
                let value = p.value()?;
                let (sig, code) = value.rsplit_once(':').ok_or_else(|| p.bad(&value))?;
                let sig = parse_signal(sig).ok_or_else(|| p.bad(&value))?;
                let code = parse_exit_code(code).ok_or_else(|| p.bad(&value))?;
                c.signals.push((sig, Disposition::ExitWith(code)));
            }
            "--spawn-children" => c.spawn_children = p.number()?,
            "--children-setsid" => c.children_setsid = true,
            "--children-ignore-term" => c.children_ignore_term = true,
            "--grandchildren" => c.grandchildren = true,
            "--close-stdout" => c.close_stdout = true,
            "--non-utf8" => c.non_utf8 = true,
            "--noise-mib" => c.noise_mib = Some(p.mib()?),
            "--noise-stderr" => c.noise_stderr = true,
            "--noise-no-newline" => c.noise_no_newline = true,
            "--delay-ms" => c.delay = Some(p.millis()?),
            "--tcp" => c.tcp_port = Some(p.number()?),
            "--host" => c.host = Some(p.value()?),
            "--unix" => c.unix_path = Some(p.path()?),
            "--bind-before-listen-ms" => c.bind_before_listen = Some(p.millis()?),
            "--pid-file" => c.pid_file = Some(p.path()?),
            "--pid-file-garbage" => c.pid_file_garbage = true,
            "--notify" => c.notify = true,
            "--notify-message" => c.notify_messages.push(p.value()?),
            "--notify-no-ready" => c.notify_no_ready = true,
            "--notify-mainpid" => c.notify_mainpid = true,
            "--notify-mainpid-from" => c.notify_mainpid_from = Some(p.path()?),
            "--notify-ready-after-ms" => c.notify_ready_after = Some(p.millis()?),
            "--ready-fd" => {
                let value = p.value()?;
                let fd = value.parse().ok().filter(|fd| *fd >= 0);
                c.ready_fd = Some(fd.ok_or_else(|| p.bad(&value))?);
            }
            "--banner" => c.banner = Some(p.value()?),
            "--banner-stderr" => c.banner_stderr = true,
            "--banner-split" => c.banner_split = Some(p.millis()?),
            "--banner-no-newline" => c.banner_no_newline = true,
            "--banner-in-long-line" => c.banner_in_long_line_mib = Some(p.mib()?),
            "--flood-after-ready-mib" => c.flood_mib = Some(p.mib()?),
            "--flood-done-file" => c.flood_done_file = Some(p.path()?),
            "--exit" => {
                let value = p.value()?;
                c.exit_code = Some(parse_exit_code(&value).ok_or_else(|| p.bad(&value))?);
            }
            "--exit-after-ms" => c.exit_after = Some(p.millis()?),
            "--http" => set_mode(&mut c, Mode::Http)?,
            "--hang" => set_mode(&mut c, Mode::Hang)?,
            "--reset" => set_mode(&mut c, Mode::Reset)?,
            "--garbage" => set_mode(&mut c, Mode::Garbage)?,
            "--partial-headers" => set_mode(&mut c, Mode::PartialHeaders)?,
            "--trickle-ms" => {
                c.trickle = Duration::from_millis(p.number()?);
                set_mode(&mut c, Mode::Trickle)?
            }
            "--status" => {
                let value = p.value()?;
                let sequence = parse_status(&value).ok_or_else(|| p.bad(&value))?;
                // A later `--status` for the same method replaces the earlier one.
                c.http.statuses.retain(|s| s.method != sequence.method);
                c.http.statuses.push(sequence);
            }
            "--expect-target" => c.http.expect_target = Some(p.value()?),
            "--expect-header" => {
                let value = p.value()?;
                let (name, expected) = value.split_once(':').ok_or_else(|| p.bad(&value))?;
                let header = (name.trim().to_string(), expected.trim().to_string());
                c.http.expect_headers.push(header);
            }
            "--echo-request-to" => c.http.echo_to = Some(p.path()?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    validate(&c)?;
    Ok(c)
}

fn set_mode(c: &mut Config, mode: Mode) -> Result<(), String> {
    if c.mode != Mode::Hold && c.mode != mode {
        return Err(
            "only one of --http, --hang, --reset, --garbage, --partial-headers may be given".into(),
        );
    }
    c.mode = mode;
    Ok(())
}

/// Refuses flags that refine a flag which is absent: they are typos in a test.
fn validate(c: &Config) -> Result<(), String> {
    let listening = c.tcp_port.is_some() || c.unix_path.is_some();
    let http_options = !c.http.statuses.is_empty()
        || c.http.expect_target.is_some()
        || !c.http.expect_headers.is_empty()
        || c.http.echo_to.is_some();
    let banner_options = c.banner_stderr
        || c.banner_split.is_some()
        || c.banner_no_newline
        || c.banner_in_long_line_mib.is_some();
    let children_options = c.children_setsid || c.children_ignore_term || c.grandchildren;
    let rules = [
        (c.host.is_some() && c.tcp_port.is_none(), "--host needs --tcp"),
        (
            c.bind_before_listen.is_some() && !listening,
            "--bind-before-listen-ms needs --tcp or --unix",
        ),
        (
            (c.noise_stderr || c.noise_no_newline) && c.noise_mib.is_none(),
            "--noise-stderr and --noise-no-newline need --noise-mib",
        ),
        (banner_options && c.banner.is_none(), "--banner-* options need --banner"),
        (
            c.banner_split.is_some() && c.banner_in_long_line_mib.is_some(),
            "--banner-split and --banner-in-long-line cannot be combined",
        ),
        (
            c.flood_done_file.is_some() && c.flood_mib.is_none(),
            "--flood-done-file needs --flood-after-ready-mib",
        ),
        (c.exit_after.is_some() && c.exit_code.is_none(), "--exit-after-ms needs --exit"),
        (c.pid_file_garbage && c.pid_file.is_none(), "--pid-file-garbage needs --pid-file"),
        (
            (!c.notify_messages.is_empty()
                || c.notify_no_ready
                || c.notify_mainpid
                || c.notify_ready_after.is_some())
                && !c.notify,
            "--notify-message, --notify-mainpid, --notify-ready-after-ms and --notify-no-ready need --notify",
        ),
        (
            children_options && !c.child && c.spawn_children == 0,
            "--children-setsid, --children-ignore-term and --grandchildren need --spawn-children",
        ),
        (
            http_options && c.mode != Mode::Http,
            "--status, --expect-target, --expect-header and --echo-request-to need --http",
        ),
        (
            c.mode != Mode::Hold && !listening,
            "--http, --hang, --reset, --garbage and --partial-headers need --tcp or --unix",
        ),
    ];
    match rules.iter().find(|(broken, _)| *broken) {
        Some((_, msg)) => Err(msg.to_string()),
        None => Ok(()),
    }
}

/// The signals known by name; numbers are accepted too.
const SIGNALS: &[(&str, c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];
/// One slot per signal number `--exit-on` may name.
const MAX_SIGNAL: usize = 64;

/// `TERM`, `SIGTERM`, `term` or `15`; KILL and STOP are refused since they
/// can be neither ignored nor caught.
fn parse_signal(text: &str) -> Option<c_int> {
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let sig = match name.parse::<c_int>() {
        Ok(number) => number,
        Err(_) => SIGNALS.iter().find(|(n, _)| *n == name)?.1,
    };
    let catchable = sig != libc::SIGKILL && sig != libc::SIGSTOP;
    (catchable && (1..=MAX_SIGNAL as c_int).contains(&sig)).then_some(sig)
}

fn parse_exit_code(text: &str) -> Option<i32> {
    text.parse().ok().filter(|code| (0..=255).contains(code))
}

/// `HEAD=503,503,200` (or `*=500`).
fn parse_status(text: &str) -> Option<StatusSequence> {
    let (method, codes) = text.split_once('=')?;
    let codes = codes
        .split(',')
        .map(|code| code.trim().parse().ok().filter(|c| (100..=599).contains(c)))
        .collect::<Option<Vec<u16>>>()?;
    (!method.is_empty()).then(|| StatusSequence {
        method: method.to_string(),
        codes,
        used: AtomicUsize::new(0),
    })
}

// ---------------------------------------------------------------------------
// Diagnostics and output
// ---------------------------------------------------------------------------

/// Writes one exact line to stderr (`child <pid>`, `listening on port <P>`),
/// in a single write so lines from several processes do not interleave.
fn say(line: &str) {
    let _ = io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// A diagnostic for humans, prefixed with the program name.
fn note(msg: impl Display) {
    say(&format!("{NAME}: {msg}"));
}

/// A runtime failure: exit 3.
fn fail(msg: impl Display) -> ! {
    note(msg);
    std::process::exit(3)
}

/// A command-line error: exit 2.
fn usage_error(msg: &str) -> ! {
    note(msg);
    std::process::exit(2)
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Cleared when a stream is closed (`--close-stdout`) or its reader went away.
static STDOUT_OPEN: AtomicBool = AtomicBool::new(true);
static STDERR_OPEN: AtomicBool = AtomicBool::new(true);

impl Stream {
    fn open_flag(self) -> &'static AtomicBool {
        match self {
            Stream::Stdout => &STDOUT_OPEN,
            Stream::Stderr => &STDERR_OPEN,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Writes and flushes `bytes`; returns whether they all went out.
///
/// A failed write (typically EPIPE: the test dropped its reader) is not fatal:
/// the stream is given up and the service lives on, as a real service would
/// have to for the library's teardown to be tested.
fn emit(stream: Stream, bytes: &[u8]) -> bool {
    if !stream.open_flag().load(Ordering::Relaxed) {
        return false;
    }
    let result = match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        Stream::Stderr => io::stderr().lock().write_all(bytes),
    };
    if let Err(e) = result {
        stream.open_flag().store(false, Ordering::Relaxed);
        note(format_args!("{} is gone ({e}), writing no more to it", stream.name()));
        return false;
    }
    true
}

fn mib_to_bytes(mib: f64) -> usize {
    (mib * MIB).round() as usize
}

/// Writes `total` bytes of `fill` (as 64-byte lines when `lines`) in 64 KiB
/// blocking writes; returns whether everything was written.
fn write_pattern(stream: Stream, fill: u8, lines: bool, total: usize) -> bool {
    let mut chunk = vec![fill; CHUNK];
    if lines {
        for end_of_line in (LINE - 1..CHUNK).step_by(LINE) {
            chunk[end_of_line] = b'\n';
        }
    }
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK);
        if !emit(stream, &chunk[..n]) {
            return false;
        }
        left -= n;
    }
    true
}

// ---------------------------------------------------------------------------
// Startup steps
// ---------------------------------------------------------------------------

fn run_service(cfg: &'static Config) -> ! {
    // Taken first so the children spawned below do not inherit the fd.
    let ready_fd = cfg.ready_fd.map(take_ready_fd);
    if let Some(path) = &cfg.count_file {
        append_pid(path);
    }
    if cfg.daemonize {
        daemonize(cfg.daemonize_linger);
        if cfg.clear_env {
            exec_without_environment();
        }
    }
    apply_signals(&cfg.signals);
    spawn_children(cfg);
    if cfg.close_stdout {
        close_stdout();
    }
    if cfg.non_utf8 {
        emit(Stream::Stdout, NON_UTF8);
    }
    if let Some(mib) = cfg.noise_mib {
        let stream = if cfg.noise_stderr { Stream::Stderr } else { Stream::Stdout };
        write_pattern(stream, b'x', !cfg.noise_no_newline, mib_to_bytes(mib));
    }
    if let Some(delay) = cfg.delay {
        thread::sleep(delay);
    }
    let listeners = open_listeners(cfg);
    if let Some(path) = &cfg.pid_file {
        write_pid_file(path, cfg.pid_file_garbage);
    }
    if cfg.notify {
        notify(cfg);
    }
    if let Some(fd) = ready_fd {
        signal_ready_fd(fd);
    }
    if let Some(text) = &cfg.banner {
        write_banner(cfg, text);
    }
    let flood = cfg.flood_mib.map(|mib| start_flood(mib, cfg.flood_done_file.as_deref()));
    for listener in listeners {
        listener.serve(cfg);
    }
    if let Some(code) = cfg.exit_code {
        if let Some(flood) = flood {
            let _ = flood.join();
        }
        thread::sleep(cfg.exit_after.unwrap_or_default());
        std::process::exit(code);
    }
    sleep_forever()
}

fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

fn os_result(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD only changes a flag of the descriptor; a bad fd gives EBADF.
    os_result(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Step 1: one `O_APPEND` write, so concurrent starts never mix their lines.
fn append_pid(path: &Path) {
    let line = format!("{}\n", std::process::id());
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .unwrap_or_else(|e| fail(format_args!("cannot append to {}: {e}", path.display())));
}

/// Step 2: the classic double fork; only the grandchild returns.
fn daemonize(linger: Option<Duration>) {
    fork_and_leave_parent(linger);
    // SAFETY: setsid takes no arguments; it only moves us to a new session.
    if unsafe { libc::setsid() } < 0 {
        fail(format_args!("setsid failed: {}", io::Error::last_os_error()));
    }
    fork_and_leave_parent(None);
}

/// Runs this program again, with the same arguments but those that made it daemonize, and an
/// empty environment.
fn exec_without_environment() -> ! {
    use std::os::unix::process::CommandExt;
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--daemonize-linger-ms") {
        args.drain(at..(at + 2).min(args.len()));
    }
    let args = args.into_iter().filter(|a| a != "--daemonize" && a != "--clear-env");
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(format_args!("no exe: {e}")));
    let err = std::process::Command::new(exe).args(args).env_clear().exec();
    fail(format_args!("exec without environment failed: {err}"))
}

/// Forks; the parent exits (after `linger`, if given), the child goes on.
fn fork_and_leave_parent(linger: Option<Duration>) {
    // SAFETY: no thread has been started yet (daemonizing comes before every
    // step that starts one), so the child may go on running ordinary code.
    match unsafe { libc::fork() } {
        -1 => fail(format_args!("fork failed: {}", io::Error::last_os_error())),
        0 => {}
        _ => {
            if let Some(linger) = linger {
                std::thread::sleep(linger);
            }
            // SAFETY: `_exit` ends the parent at once, without running exit
            // handlers or flushing buffers that the child now owns too.
            unsafe { libc::_exit(0) }
        }
    }
}

/// The code each `--exit-on` signal exits with, read by the signal handler.
static EXIT_CODES: [AtomicI32; MAX_SIGNAL + 1] = [const { AtomicI32::new(0) }; MAX_SIGNAL + 1];

extern "C" fn exit_on_signal(sig: c_int) {
    let code = EXIT_CODES[sig as usize].load(Ordering::Relaxed);
    // SAFETY: `_exit` is async-signal-safe, unlike `std::process::exit`.
    unsafe { libc::_exit(code) }
}

fn set_disposition(sig: c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: `sigaction` is plain data for which all-zero bytes are valid;
    // we then fill in the handler and an empty mask ourselves.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: both pointers refer to live `sigaction` values (or are null).
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        os_result(libc::sigaction(sig, &action, ptr::null_mut())).map(drop)
    }
}

/// Step 3.
fn apply_signals(signals: &[(c_int, Disposition)]) {
    for &(sig, disposition) in signals {
        let handler = match disposition {
            Disposition::Ignore => libc::SIG_IGN,
            Disposition::ExitWith(code) => {
                EXIT_CODES[sig as usize].store(code, Ordering::Relaxed);
                exit_on_signal as extern "C" fn(c_int) as libc::sighandler_t
            }
        };
        set_disposition(sig, handler)
            .unwrap_or_else(|e| fail(format_args!("cannot set the handler of signal {sig}: {e}")));
    }
}

/// Step 4: copies of this binary in `--child` mode.
fn spawn_children(cfg: &Config) {
    let mut args = vec!["--child"];
    if cfg.children_setsid {
        args.push("--children-setsid");
    }
    if cfg.children_ignore_term {
        args.push("--children-ignore-term");
    }
    if cfg.grandchildren {
        args.push("--grandchildren");
    }
    for _ in 0..cfg.spawn_children {
        spawn_copy("child", &args);
    }
}

/// Starts this binary with `args`, waits until it has set itself up (it says
/// so on its stdout, a pipe of ours), and prints `<label> <pid>` to stderr.
/// Waiting matters: a test that stops the service right after its banner must
/// find the children already ignoring SIGTERM, in their own sessions.
///
/// A thread reaps the copy when it dies, so that a test probing its pid
/// does not mistake a zombie for a live process; we never block on it.
fn spawn_copy(label: &str, args: &[&str]) {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| fail(format_args!("cannot find my own executable: {e}")));
    let mut child = Command::new(&exe)
        .args(REEXEC.get().into_iter().flatten())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(format_args!("cannot spawn {}: {e}", exe.display())));
    if let Some(stdout) = child.stdout.take() {
        let mut line = String::new();
        let _ = io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line);
    }
    say(&format!("{label} {}", child.id()));
    thread::spawn(move || child.wait());
}

/// The hidden `--child` mode: sleep forever, as configured.
fn run_child(cfg: &Config) -> ! {
    // Ignored signals survive exec: undo what the parent's `--ignore` set, so
    // that only `--children-ignore-term` decides. SIGPIPE stays as the Rust
    // runtime set it, lest a closed stderr kill us.
    for &(_, sig) in SIGNALS {
        if ![libc::SIGKILL, libc::SIGSTOP, libc::SIGPIPE].contains(&sig) {
            let _ = set_disposition(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: setsid takes no arguments; it only moves us to a new session.
    if cfg.children_setsid && unsafe { libc::setsid() } < 0 {
        fail(format_args!("setsid failed: {}", io::Error::last_os_error()));
    }
    if cfg.children_ignore_term {
        set_disposition(libc::SIGTERM, libc::SIG_IGN)
            .unwrap_or_else(|e| fail(format_args!("cannot ignore SIGTERM: {e}")));
    }
    if cfg.grandchildren {
        let mut args = vec!["--child", "--children-setsid"];
        if cfg.children_ignore_term {
            args.push("--children-ignore-term");
        }
        spawn_copy("grandchild", &args);
    }
    // Tell the parent we are set up, then let go of its pipe.
    let _ = io::stdout().write_all(b"ready\n");
    let _ = io::stdout().flush();
    if let Ok(null) = fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 only replaces our end of the parent's pipe.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) };
    }
    sleep_forever()
}

/// Step 5: really close fd 1 so the reader sees EOF while we live on.
fn close_stdout() {
    let _ = io::stdout().flush();
    STDOUT_OPEN.store(false, Ordering::Relaxed);
    // SAFETY: no Rust object owns fd 1; `io::stdout()` is never used again
    // (STDOUT_OPEN is false), so a socket later given fd 1 is not written to.
    unsafe { libc::close(1) };
}

/// Step 11: atomic unless a garbage pid file is wanted.
fn write_pid_file(path: &Path, garbage: bool) {
    let result = if garbage {
        fs::write(path, "not-a-pid\n")
    } else {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        fs::write(&tmp, format!("{}\n", std::process::id())).and_then(|()| fs::rename(&tmp, path))
    };
    result.unwrap_or_else(|e| fail(format_args!("cannot write pid file {}: {e}", path.display())));
}

/// Step 12: the `sd_notify` protocol, one datagram per message.
fn notify(cfg: &Config) {
    // Like sd_notify(): without NOTIFY_SOCKET there is nobody to tell.
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mainpid = match &cfg.notify_mainpid_from {
        Some(path) => Some(format!("MAINPID={}", wait_for_content(path).trim())),
        None => cfg.notify_mainpid.then(|| format!("MAINPID={}", std::process::id())),
    };
    let mut messages = mainpid.iter().chain(&cfg.notify_messages).map(|m| m.as_bytes());
    let result = notify_address(&target).and_then(|address| {
        let socket = UnixDatagram::unbound()?;
        messages.try_for_each(|msg| socket.send_to_addr(msg, &address).map(drop))?;
        if let Some(pause) = cfg.notify_ready_after {
            thread::sleep(pause);
        }
        if !cfg.notify_no_ready {
            socket.send_to_addr(READY, &address)?;
        }
        Ok(())
    });
    result.unwrap_or_else(|e| fail(format_args!("cannot notify {target:?}: {e}")));
}

/// What `path` holds, once it exists (up to 10 s).
fn wait_for_content(path: &Path) -> String {
    for _ in 0..10_000 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text;
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    fail(format_args!("{} never appeared", path.display()))
}

fn notify_address(target: &OsStr) -> io::Result<unix_net::SocketAddr> {
    match target.as_bytes().strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            unix_net::SocketAddr::from_abstract_name(name)
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract unix sockets exist on Linux only",
        )),
        None => unix_net::SocketAddr::from_pathname(target),
    }
}

/// Checks the `--ready-fd` at startup and takes ownership of it.
fn take_ready_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: F_GETFD only reads the descriptor's flags; a bad fd gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        fail(format_args!("--ready-fd {fd} is not open"));
    }
    set_cloexec(fd).unwrap_or_else(|e| fail(format_args!("--ready-fd {fd}: {e}")));
    // SAFETY: the fd is open (checked above) and was handed to us for this
    // sole purpose; nothing else in this process owns or closes it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Step 13: one newline, then close.
fn signal_ready_fd(fd: OwnedFd) {
    let raw = fd.as_raw_fd();
    File::from(fd)
        .write_all(b"\n")
        .unwrap_or_else(|e| fail(format_args!("cannot write to --ready-fd {raw}: {e}")));
}

/// Step 14.
fn write_banner(cfg: &Config, text: &str) {
    let stream = if cfg.banner_stderr { Stream::Stderr } else { Stream::Stdout };
    let end: &[u8] = if cfg.banner_no_newline { b"" } else { b"\n" };
    if let Some(mib) = cfg.banner_in_long_line_mib {
        let padding = mib_to_bytes(mib);
        let _ = write_pattern(stream, b'y', false, padding)
            && emit(stream, text.as_bytes())
            && write_pattern(stream, b'y', false, padding)
            && emit(stream, end);
    } else if let Some(pause) = cfg.banner_split {
        let mut middle = text.len() / 2;
        while !text.is_char_boundary(middle) {
            middle -= 1;
        }
        let (first, rest) = text.split_at(middle);
        if emit(stream, first.as_bytes()) {
            thread::sleep(pause);
            emit(stream, &[rest.as_bytes(), end].concat());
        }
    } else {
        emit(stream, &[text.as_bytes(), end].concat());
    }
}

/// Step 15: in the background, so that a reader which stops draining after
/// readiness blocks the flood, not the serving.
fn start_flood(mib: f64, done_file: Option<&'static Path>) -> JoinHandle<()> {
    thread::spawn(move || {
        if write_pattern(Stream::Stdout, b'z', true, mib_to_bytes(mib)) {
            if let Some(path) = done_file {
                File::create(path).unwrap_or_else(|e| {
                    fail(format_args!("cannot create {}: {e}", path.display()))
                });
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Listening sockets (steps 9 and 10)
// ---------------------------------------------------------------------------

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Step 17: one accept loop thread per listener.
    fn serve(self, cfg: &'static Config) {
        thread::spawn(move || match self {
            Listener::Tcp(listener) => accept_loop(listener.incoming(), cfg),
            Listener::Unix(listener) => accept_loop(listener.incoming(), cfg),
        });
    }
}

fn open_listeners(cfg: &Config) -> Vec<Listener> {
    let mut listeners = Vec::new();
    if let Some(port) = cfg.tcp_port {
        let host = cfg.host.as_deref().unwrap_or("127.0.0.1");
        let listener = listen_tcp(host, port, cfg.bind_before_listen);
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| fail(format_args!("cannot read the bound port: {e}")))
            .port();
        say(&format!("listening on port {port}"));
        listeners.push(Listener::Tcp(listener));
    }
    if let Some(path) = &cfg.unix_path {
        let listener = listen_unix(path, cfg.bind_before_listen);
        say(&format!("listening on unix socket {}", path.display()));
        listeners.push(Listener::Unix(listener));
    }
    listeners
}

fn listen_tcp(host: &str, port: u16, pause: Option<Duration>) -> TcpListener {
    // `[::1]` is accepted as well as `::1`.
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let address = (bare, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| fail(format_args!("cannot resolve host {host}")));
    let domain = match address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = bind_and_listen(domain, |fd| bind_inet(fd, address), pause)
        .unwrap_or_else(|e| fail(format_args!("cannot {}", e.for_address(&address))));
    TcpListener::from(fd)
}

fn listen_unix(path: &Path, pause: Option<Duration>) -> UnixListener {
    let what = format!("unix socket {}", path.display());
    // Never removed nor replaced: stale socket files are a case under test.
    if path.symlink_metadata().is_ok() {
        fail(format_args!("cannot bind {what}: the path already exists"));
    }
    let fd = bind_and_listen(libc::AF_UNIX, |fd| bind_unix(fd, path), pause)
        .unwrap_or_else(|e| fail(format_args!("cannot {}", e.for_address(&what))));
    UnixListener::from(fd)
}

/// A failed socket call, named by the step that failed.
struct SocketError {
    step: &'static str,
    error: io::Error,
}

impl SocketError {
    fn for_address(&self, what: &dyn Display) -> String {
        format!("{} {what}: {}", self.step, self.error)
    }
}

fn at(step: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |error| SocketError { step, error }
}

/// socket + `SO_REUSEADDR` + bind + optional pause + listen. Done by hand since
/// std's `bind` also listens, leaving no room for `--bind-before-listen-ms`.
fn bind_and_listen(
    domain: c_int,
    bind: impl FnOnce(&OwnedFd) -> io::Result<()>,
    pause: Option<Duration>,
) -> Result<OwnedFd, SocketError> {
    let fd = new_stream_socket(domain).map_err(at("create a socket for"))?;
    if domain != libc::AF_UNIX {
        let on: c_int = 1;
        set_sockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &on)
            .map_err(at("set SO_REUSEADDR for"))?;
    }
    bind(&fd).map_err(at("bind"))?;
    if let Some(pause) = pause {
        thread::sleep(pause);
    }
    // SAFETY: `fd` is a valid socket we own.
    os_result(unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) }).map_err(at("listen on"))?;
    Ok(fd)
}

fn new_stream_socket(domain: c_int) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let kind = libc::SOCK_STREAM;
    // SAFETY: plain system call; the result is checked below.
    let raw = os_result(unsafe { libc::socket(domain, kind, 0) })?;
    // SAFETY: `raw` is a fresh socket that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    #[cfg(not(target_os = "linux"))]
    set_cloexec(fd.as_raw_fd())?;
    Ok(fd)
}

fn set_sockopt<T>(fd: RawFd, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    let len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to a live, initialised T of exactly `len` bytes.
    os_result(unsafe { libc::setsockopt(fd, level, name, ptr::from_ref(value).cast(), len) })
        .map(drop)
}

fn bind_raw<T>(fd: &OwnedFd, address: &T) -> io::Result<()> {
    let len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `address` is a fully initialised sockaddr_* of `len` bytes.
    os_result(unsafe { libc::bind(fd.as_raw_fd(), ptr::from_ref(address).cast(), len) }).map(drop)
}

// The BSD `sin_len`/`sun_len` fields are left zero: those kernels take the
// length from bind()'s own argument.

fn bind_inet(fd: &OwnedFd, address: SocketAddr) -> io::Result<()> {
    match address {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain data; all-zero bytes are valid.
            let mut raw: libc::sockaddr_in = unsafe { mem::zeroed() };
            raw.sin_family = libc::AF_INET as libc::sa_family_t;
            raw.sin_port = v4.port().to_be();
            raw.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            bind_raw(fd, &raw)
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_in6 is plain data; all-zero bytes are valid.
            let mut raw: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            raw.sin6_port = v6.port().to_be();
            raw.sin6_flowinfo = v6.flowinfo();
            raw.sin6_addr.s6_addr = v6.ip().octets();
            raw.sin6_scope_id = v6.scope_id();
            bind_raw(fd, &raw)
        }
    }
}

fn bind_unix(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    // SAFETY: sockaddr_un is plain data; all-zero bytes are valid.
    let mut raw: libc::sockaddr_un = unsafe { mem::zeroed() };
    raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // The zero bytes left after the path terminate it.
    if bytes.len() >= raw.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path too long for a unix socket, or containing NUL",
        ));
    }
    for (slot, &byte) in raw.sun_path.iter_mut().zip(bytes) {
        *slot = byte as libc::c_char;
    }
    bind_raw(fd, &raw)
}

// ---------------------------------------------------------------------------
// Serving connections (step 17)
// ---------------------------------------------------------------------------

/// What the handlers need from TCP and unix streams alike.
trait Conn: Read + Write + AsRawFd + Send + 'static {
    fn close_write(&self) -> io::Result<()>;
    fn limit_reads(&self, timeout: Duration) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn close_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn limit_reads(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

impl Conn for UnixStream {
    fn close_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn limit_reads(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

fn accept_loop<S: Conn>(connections: impl Iterator<Item = io::Result<S>>, cfg: &'static Config) {
    for connection in connections {
        match connection {
            Ok(stream) => handle(stream, cfg),
            Err(e) => {
                note(format_args!("accept failed: {e}"));
                // Out of fds, say: do not spin while it lasts.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn handle<S: Conn>(mut stream: S, cfg: &'static Config) {
    match cfg.mode {
        // Leaked on purpose: the socket stays open, unread, for good.
        Mode::Hang => mem::forget(stream),
        Mode::Reset => reset(stream),
        Mode::Hold => {
            thread::spawn(move || io::copy(&mut stream, &mut io::sink()));
        }
        Mode::Http => {
            thread::spawn(move || serve_http(stream, &cfg.http));
        }
        Mode::Garbage => {
            thread::spawn(move || {
                let _ = read_a_bit(&mut stream);
                let _ = stream.write_all(b"this is not http\r\n\r\n");
                close_gracefully(stream);
            });
        }
        Mode::PartialHeaders => {
            thread::spawn(move || {
                let _ = read_a_bit(&mut stream);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n");
                // Say nothing more, but notice when the peer gives up.
                io::copy(&mut stream, &mut io::sink())
            });
        }
        Mode::Trickle => {
            thread::spawn(move || {
                let _ = read_a_bit(&mut stream);
                let head = b"HTTP/1.1 200 OK\r\nX-Slow: ";
                let bytes = head.iter().copied().chain(std::iter::repeat(b'z'));
                for byte in bytes {
                    if stream.write_all(&[byte]).is_err() {
                        return;
                    }
                    thread::sleep(cfg.trickle);
                }
            });
        }
    }
}

fn read_a_bit(stream: &mut impl Read) -> io::Result<usize> {
    stream.read(&mut [0; 4096])
}

/// Closing with `SO_LINGER` {on, 0} sends a RST instead of a FIN.
fn reset<S: Conn>(stream: S) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    if let Err(e) = set_sockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &linger) {
        note(format_args!("cannot set SO_LINGER: {e}"));
    }
    drop(stream); // The close that sends the RST.
}

/// Sends our FIN, then reads what the peer still sends: closing with unread
/// bytes would reset the connection and could destroy our answer in flight.
fn close_gracefully<S: Conn>(mut stream: S) {
    let _ = stream.close_write();
    let _ = stream.limit_reads(DRAIN_TIMEOUT);
    let _ = io::copy(&mut stream, &mut io::sink());
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// `None` when the request line is not `METHOD TARGET VERSION`.
    fn parse(head: &[u8]) -> Option<Request> {
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let mut request_line = lines.next()?.split_whitespace();
        let (method, target, _version) =
            (request_line.next()?, request_line.next()?, request_line.next()?);
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        Some(Request { method: method.to_string(), target: target.to_string(), headers })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn content_length(&self) -> u64 {
        self.header("Content-Length").and_then(|value| value.parse().ok()).unwrap_or(0)
    }
}

fn serve_http<S: Conn>(mut stream: S, http: &HttpConfig) -> io::Result<()> {
    let Some((head, mut body)) = read_head(&mut stream)? else {
        return Ok(()); // The peer closed before a full head: a mere probe.
    };
    let request = Request::parse(&head);
    let length = request.as_ref().map_or(0, Request::content_length);
    if (body.len() as u64) < length {
        let missing = length - body.len() as u64;
        (&mut stream).take(missing).read_to_end(&mut body)?;
    }
    body.truncate(length as usize);
    if let Some(path) = &http.echo_to {
        echo_request(path, &head, &body);
    }
    let (status, text) = match &request {
        Some(request) => http.answer(request),
        None => (400, "bad request line\n".to_string()),
    };
    let head_only = request.is_some_and(|r| r.method == "HEAD");
    stream.write_all(&response(status, &text, head_only))?;
    close_gracefully(stream);
    Ok(())
}

/// Reads up to the blank line ending the head; returns the head (blank line
/// included) and the body bytes that came with it, or `None` on early EOF.
fn read_head(stream: &mut impl Read) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buffer = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        if let Some(end) = head_end(&buffer) {
            let rest = buffer.split_off(end);
            return Ok(Some((buffer, rest)));
        }
        if buffer.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Where the head ends: after `\r\n\r\n`, or after a bare `\n\n`.
fn head_end(buffer: &[u8]) -> Option<usize> {
    let find = |pattern: &[u8]| {
        buffer
            .windows(pattern.len())
            .position(|window| window == pattern)
            .map(|at| at + pattern.len())
    };
    find(b"\r\n\r\n").or_else(|| find(b"\n\n"))
}

/// Appends head, body and a `----\n` separator in one locked write, so that
/// concurrent requests never interleave.
fn echo_request(path: &Path, head: &[u8], body: &[u8]) {
    static ECHO_LOCK: Mutex<()> = Mutex::new(());
    let _guard = ECHO_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let record = [head, body, b"----\n"].concat();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(&record))
        .unwrap_or_else(|e| fail(format_args!("cannot append to {}: {e}", path.display())));
}

impl HttpConfig {
    /// The status and body for one request.
    fn answer(&self, request: &Request) -> (u16, String) {
        if let Some(expected) = &self.expect_target {
            if request.target != *expected {
                return (404, format!("unexpected target {}\n", request.target));
            }
        }
        for (name, value) in &self.expect_headers {
            if request.header(name) != Some(value.as_str()) {
                return (400, format!("missing header {name}: {value}\n"));
            }
        }
        (self.next_status(&request.method), "ok\n".to_string())
    }

    /// The next code of the method's sequence, else of `*`'s, else 200.
    fn next_status(&self, method: &str) -> u16 {
        let find = |name: &str| self.statuses.iter().find(|s| s.method == name);
        find(method).or_else(|| find("*")).map_or(200, |sequence| {
            let used = sequence.used.fetch_add(1, Ordering::Relaxed);
            sequence.codes[used.min(sequence.codes.len() - 1)]
        })
    }
}

fn response(status: u16, body: &str, head_only: bool) -> Vec<u8> {
    // 1xx, 204 and 304 answers carry neither body nor Content-Length.
    let bodiless = status < 200 || status == 204 || status == 304;
    let mut text = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if !bodiless {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("Connection: close\r\n\r\n");
    if !bodiless && !head_only {
        text.push_str(body);
    }
    text.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
