//! Whether what was written makes sense: every key known and given once, every value of the
//! right kind and valid (ports, durations, signals, regexes, quoting, placeholders), the keys
//! consistent with each other, and the test function's parameters bound to fixtures. What
//! comes out ([`Def`], [`Binding`]) is what `expand` needs, already checked.
//!
//! Every problem becomes a `syn::Error` on the token responsible, and all of them are
//! reported together.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::{Attribute, FnArg, Ident, LitBool, LitStr, Pat, Signature, Type};

use crate::args::{Arg, Value};
use crate::errors::Errors;

/// A fixture's description, checked.
pub(crate) struct Def {
    /// The name used in messages.
    pub(crate) name: String,
    /// `name = ident`, which parameters bind to.
    pub(crate) name_ident: Option<Ident>,
    pub(crate) cmd: Cmd,
    /// What the fixture waits for, in the order written; empty: only that it runs.
    pub(crate) readiness: Vec<Readiness>,
    /// `ready = any`: any of the checks, instead of all.
    pub(crate) ready_any: bool,
    pub(crate) owned: bool,
    pub(crate) exec_output: Option<LitStr>,
    pub(crate) exec_timeout: Option<Millis>,
    pub(crate) file_matches: Option<LitStr>,
    pub(crate) file_line: Option<(usize, Span)>,
    pub(crate) host: Option<LitStr>,
    pub(crate) timeout: Option<Millis>,
    pub(crate) stop_timeout: Option<Millis>,
    pub(crate) env: Vec<EnvVar>,
    pub(crate) cwd: Option<LitStr>,
    pub(crate) shell: Option<LitBool>,
    pub(crate) user: Option<LitStr>,
    /// The signal's name with the `SIG` prefix, spanned on what the user wrote.
    pub(crate) stop_signal: Option<Ident>,
    pub(crate) kill_signal: Option<Ident>,
    pub(crate) expected_returncode: Option<(i32, Span)>,
    pub(crate) method: Option<LitStr>,
    pub(crate) status: Option<Status>,
}

pub(crate) enum Cmd {
    Line(Text),
    Args(Vec<Text>),
}

/// A string argument: a literal, checked here, or any expression of a string type (a
/// `const`, `env!(...)`, `format!(...)`), checked by the runtime when the fixture starts.
pub(crate) enum Text {
    Lit(LitStr),
    Expr(TokenStream),
}

impl quote::ToTokens for Text {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Text::Lit(lit) => lit.to_tokens(tokens),
            Text::Expr(expr) => tokens.extend(expr.clone()),
        }
    }
}

impl Text {
    /// The literal's value; `None` for an expression.
    pub(crate) fn value(&self) -> Option<String> {
        match self {
            Text::Lit(lit) => Some(lit.value()),
            Text::Expr(_) => None,
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Port {
    Auto(Span),
    Fixed(u16, Span),
}

impl Port {
    fn same(self, other: Port) -> bool {
        match (self, other) {
            (Port::Auto(_), Port::Auto(_)) => true,
            (Port::Fixed(a, _), Port::Fixed(b, _)) => a == b,
            _ => false,
        }
    }

    fn written(self) -> String {
        match self {
            Port::Auto(_) => "auto".into(),
            Port::Fixed(p, _) => p.to_string(),
        }
    }
}

pub(crate) enum Readiness {
    Tcp(Port),
    /// `tcp = discover`.
    Discover(Span),
    Http(Port, HttpTarget),
    Unix(Option<LitStr>),
    Pid(LitStr),
    Output(LitStr),
    Notify(Span),
    ReadyFd(i32, Span),
    Exec(Cmd),
    Redis(Port),
    Postgres(Port),
    File(LitStr),
    /// `check = <closure or function>`, with what it is called in messages.
    Check(TokenStream, String),
}

impl Readiness {
    /// The port of a check that waits on one.
    fn port(&self) -> Option<Port> {
        match self {
            Readiness::Tcp(p)
            | Readiness::Http(p, _)
            | Readiness::Redis(p)
            | Readiness::Postgres(p) => Some(*p),
            _ => None,
        }
    }
}

pub(crate) enum HttpTarget {
    Root,
    Path(LitStr),
    Url(LitStr),
}

pub(crate) enum Status {
    Code(u16, Span),
    Pattern(LitStr),
}

/// A duration in whole milliseconds.
pub(crate) struct Millis {
    pub(crate) ms: u64,
    pub(crate) span: Span,
}

pub(crate) struct EnvVar {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// Where an error about the attribute as a whole (a missing command) goes: the attribute
/// being expanded (the call site), or a stacked one.
pub(crate) enum Anchor<'a> {
    CallSite,
    Attr(&'a Attribute),
}

impl Anchor<'_> {
    fn error(&self, message: &str) -> syn::Error {
        match self {
            Anchor::CallSite => syn::Error::new(Span::call_site(), message),
            Anchor::Attr(attr) => syn::Error::new_spanned(attr, message),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Cmd,
    Args,
    Tcp,
    Http,
    Path,
    Url,
    Method,
    Status,
    Unix,
    Pid,
    Output,
    Notify,
    ReadyFd,
    Exec,
    ExecOutput,
    ExecTimeout,
    Redis,
    Postgres,
    File,
    FileMatches,
    FileLine,
    Check,
    Ready,
    Owned,
    Host,
    Timeout,
    StopTimeout,
    Env,
    Cwd,
    Shell,
    User,
    StopSignal,
    KillSignal,
    ExpectedReturncode,
    Name,
}

/// Every key, in the order the messages list them.
const KEYS: &[(&str, Key)] = &[
    ("cmd", Key::Cmd),
    ("args", Key::Args),
    ("tcp", Key::Tcp),
    ("http", Key::Http),
    ("path", Key::Path),
    ("url", Key::Url),
    ("method", Key::Method),
    ("status", Key::Status),
    ("unix", Key::Unix),
    ("pid", Key::Pid),
    ("output", Key::Output),
    ("notify", Key::Notify),
    ("ready_fd", Key::ReadyFd),
    ("exec", Key::Exec),
    ("exec_output", Key::ExecOutput),
    ("exec_timeout", Key::ExecTimeout),
    ("redis", Key::Redis),
    ("postgres", Key::Postgres),
    ("file", Key::File),
    ("file_matches", Key::FileMatches),
    ("file_line", Key::FileLine),
    ("check", Key::Check),
    ("ready", Key::Ready),
    ("owned", Key::Owned),
    ("host", Key::Host),
    ("timeout", Key::Timeout),
    ("stop_timeout", Key::StopTimeout),
    ("env", Key::Env),
    ("cwd", Key::Cwd),
    ("shell", Key::Shell),
    ("user", Key::User),
    ("stop_signal", Key::StopSignal),
    ("kill_signal", Key::KillSignal),
    ("expected_returncode", Key::ExpectedReturncode),
    ("name", Key::Name),
];

/// The keys that say when the fixture is ready. With several, it waits for all of them (or
/// any, with `ready = any`).
const READINESS: &[Key] = &[
    Key::Tcp,
    Key::Http,
    Key::Unix,
    Key::Pid,
    Key::Output,
    Key::Notify,
    Key::ReadyFd,
    Key::Exec,
    Key::Redis,
    Key::Postgres,
    Key::File,
    Key::Check,
];

/// The keys that only an `http` fixture has (and the `exec` and `file` refinements below).
const HTTP_ONLY: &[Key] = &[Key::Path, Key::Url, Key::Method, Key::Status];

/// Spellings from Python mirakuru (and near misses) with what to write instead.
const HINTS: &[(&str, &str)] = &[
    ("envvars", "Python mirakuru's `envvars` is `env` here: `env = [\"KEY=value\"]`"),
    ("banner", "Python mirakuru's `banner` is `output` here: `output = \"ready to accept\"`"),
    ("sig_stop", "Python mirakuru's `sig_stop` is `stop_signal` here: `stop_signal = SIGINT`"),
    ("sig_kill", "Python mirakuru's `sig_kill` is `kill_signal` here: `kill_signal = SIGKILL`"),
    ("signal", "write `stop_signal = SIGINT` (or `kill_signal = ...`)"),
    ("socket_name", "Python mirakuru's `socket_name` is `unix` here: `unix = \"{tmpdir}/app.sock\"` or `unix = auto`"),
    ("socket", "a unix socket check is `unix = \"path\"` or `unix = auto`"),
    ("filename", "Python mirakuru's pid `filename` is `pid` here: `pid = \"{tmpdir}/app.pid\"`"),
    ("command", "the command is `cmd = \"program --flag\"` or `args = [\"program\", \"--flag\"]`"),
    ("port", "the port goes with the readiness check: `tcp = 6379`, or `tcp = auto` for a free port (`http = ...` for HTTP)"),
    ("sleep", "there is no polling interval to set: readiness is event-driven; remove `sleep`"),
    ("sd_notify", "sd_notify readiness is `notify = true`"),
    ("notify_socket", "sd_notify readiness is `notify = true`: the socket is made for the fixture"),
    ("readiness_fd", "an s6-style readiness fd is `ready_fd = 3`"),
    ("notification_fd", "an s6-style readiness fd is `ready_fd = 3`"),
    ("pg_isready", "`postgres = auto` checks PostgreSQL as pg_isready does; or run it: `exec = \"pg_isready -h {host} -p {port}\"`"),
    ("custom", "a custom check is `check = |cx| ...` (a closure or a function taking `&mirakuru::ready::Context`)"),
    ("any", "to wait for any of several checks write `ready = any`"),
    ("discover_port", "write `tcp = discover` to find the port a service started on port 0 listens on"),
    ("envs", "environment variables are `env = [\"KEY=value\", ...]`"),
    ("dir", "the working directory is `cwd = \"path\"`"),
];

/// Python mirakuru parameters the attribute does not offer: an executor built by hand does.
const BY_HAND: &[&str] =
    &["stdin", "stdout", "stderr", "payload", "headers", "request_timeout", "output_limit"];

/// The placeholders strings may use.
const PLACEHOLDERS: &[&str] = &["port", "host", "tmpdir", "socket"];

/// POSIX signal names (the common ones first), all of them variants of `mirakuru::Signal` on
/// every Unix.
const SIGNALS: &[&str] = &[
    "SIGTERM",
    "SIGINT",
    "SIGQUIT",
    "SIGKILL",
    "SIGHUP",
    "SIGUSR1",
    "SIGUSR2",
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCONT",
    "SIGFPE",
    "SIGILL",
    "SIGPIPE",
    "SIGPROF",
    "SIGSEGV",
    "SIGSTOP",
    "SIGSYS",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGVTALRM",
    "SIGWINCH",
    "SIGXCPU",
    "SIGXFSZ",
];

fn key_name(key: Key) -> &'static str {
    KEYS.iter().find(|(_, k)| *k == key).map_or("?", |(name, _)| name)
}

/// `` `a`, `b`, `c` `` (with `or` before the last when `or` is set).
fn list(items: impl IntoIterator<Item = impl std::fmt::Display>, or: bool) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    match items.split_last() {
        Some((last, rest)) if or && !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => items.join(", "),
    }
}

fn unknown_key_message(name: &str) -> String {
    let head = format!("unknown `mirakuru::fixture` argument `{name}`");
    if let Some((_, hint)) = HINTS.iter().find(|(k, _)| *k == name) {
        return format!("{head}; {hint}");
    }
    if BY_HAND.contains(&name) {
        return format!(
            "{head}; the attribute does not set `{name}`: start a `mirakuru::Executor` by hand for that"
        );
    }
    let keys = list(KEYS.iter().map(|(k, _)| k), false);
    match KEYS.iter().map(|(k, _)| *k).find(|k| close(name, k)) {
        Some(near) => format!("{head}; did you mean `{near}`? expected one of {keys}"),
        None => format!("{head}; expected one of {keys}"),
    }
}

/// Whether `typo` is probably a misspelling of `key`: at most one edit per three letters,
/// counting a swap of two neighbours as one (optimal string alignment distance).
fn close(typo: &str, key: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (typo.chars().collect(), key.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()] <= (b.len() / 3).max(1)
}

/// The arguments sorted by key: at most one per key, and only one of each exclusive group.
struct Slots<'a> {
    args: Vec<(Key, &'a Arg)>,
}

impl<'a> Slots<'a> {
    fn get(&self, key: Key) -> Option<&'a Arg> {
        self.args.iter().find(|(k, _)| *k == key).map(|(_, arg)| *arg)
    }

    fn has(&self, key: Key) -> bool {
        self.get(key).is_some()
    }
}

fn sort_keys<'a>(args: &'a [Arg], errors: &mut Errors) -> Slots<'a> {
    let mut slots = Slots { args: Vec::new() };
    for arg in args {
        let name = arg.name();
        let Some(&(_, key)) = KEYS.iter().find(|(k, _)| *k == name) else {
            errors.spanned(&arg.key, unknown_key_message(&name));
            continue;
        };
        if slots.has(key) {
            errors.spanned(&arg.key, format!("duplicate `{name}` argument; give it once"));
            continue;
        }
        let rival = |group: &[Key]| {
            slots
                .args
                .iter()
                .find(|(k, _)| group.contains(k) && group.contains(&key))
                .map(|(k, _)| *k)
        };
        if let Some(first) = rival(&[Key::Cmd, Key::Args]) {
            errors.spanned(
                &arg.key,
                format!(
                    "`{}` and `{name}` both give the command; keep one: `cmd` for a command line, \
                     `args` for a list of arguments",
                    key_name(first)
                ),
            );
            continue;
        }
        if let Some(first) = rival(&[Key::Path, Key::Url]) {
            errors.spanned(
                &arg.key,
                format!(
                    "`{}` and `{name}` both say where the HTTP check goes; keep one: `path` on the \
                     fixture's host and port, or a whole `url`",
                    key_name(first)
                ),
            );
            continue;
        }
        slots.args.push((key, arg));
    }
    slots
}

/// What `{port}` can stand for in this fixture.
#[derive(Clone, Copy)]
enum PortUse {
    Auto,
    Fixed(u16),
    /// `tcp = discover`: known only once the service listens.
    Discover,
    None,
    /// Not known: a readiness check has an error.
    Unknown,
}

/// Checks one fixture attribute's arguments, recording what is wrong in `all_errors`; the
/// fixture when nothing is. `default_name` names it in messages when it has no `name` (a
/// static's name); without either, the program's file name does.
pub(crate) fn fixture(
    args: &[Arg],
    anchor: &Anchor<'_>,
    default_name: Option<&str>,
    all_errors: &mut Errors,
) -> Option<Def> {
    let mut errors = Errors::default();
    let slots = sort_keys(args, &mut errors);
    let arg = |key| slots.get(key).filter(|a| !matches!(a.value, Value::Invalid));

    let shell = arg(Key::Shell).and_then(|a| errors.take(boolean(a)));
    let is_shell = shell.as_ref().is_some_and(LitBool::value);

    // Readiness first: whether `{port}` means anything depends on it.
    let mut readiness: Vec<(Key, &Arg, Readiness)> = Vec::new();
    let mut readiness_ok = true;
    for &(key, a) in slots.args.iter().filter(|(k, _)| READINESS.contains(k)) {
        match (!matches!(a.value, Value::Invalid)).then(|| errors.take(readiness_of(key, a))) {
            Some(Some(r)) => readiness.push((key, a, r)),
            _ => readiness_ok = false,
        }
    }
    // Two readiness kinds are a mistake unless `ready` says how they combine: someone who
    // writes `tcp = 5432, unix = "..."` may well mean one of them only.
    if !slots.has(Key::Ready) {
        if let [(first, ..), (second, a, _), ..] = readiness.as_slice() {
            errors.spanned(
                a.key.clone(),
                format!(
                    "two readiness kinds, `{}` and `{}`; keep one, or say how they combine: \
                     `ready = all` (every check must pass) or `ready = any` (the first to pass)",
                    key_name(*first),
                    key_name(*second),
                ),
            );
        }
    }
    let has = |key: Key| readiness.iter().any(|(k, _, _)| *k == key) || slots.has(key);
    // One port per fixture: every check on a port waits on the same one.
    let mut first_port: Option<(Key, Port)> = None;
    for (key, a, r) in &readiness {
        let Some(port) = r.port() else { continue };
        match first_port {
            None => first_port = Some((*key, port)),
            Some((first_key, first)) if !port.same(first) => errors.spanned(
                a.value.tokens(),
                format!(
                    "`{} = {}` and `{} = {}` differ, and a fixture has one port; write the same \
                     port for every check (`auto` everywhere, or the same number)",
                    key_name(first_key),
                    first.written(),
                    key_name(*key),
                    port.written()
                ),
            ),
            Some(_) => {}
        }
    }
    let discover = readiness.iter().find_map(|(_, _, r)| match r {
        Readiness::Discover(span) => Some(*span),
        _ => None,
    });
    if let (Some(span), Some((key, _))) = (discover, first_port) {
        errors.at(
            span,
            format!(
                "`tcp = discover` finds the port once the service listens, but `{}` needs the \
                 port before the start; give the port (`auto` or a number) and drop `discover`",
                key_name(key)
            ),
        );
    }
    let port_use = match (readiness_ok, first_port, discover) {
        (false, ..) => PortUse::Unknown,
        (true, Some((_, Port::Auto(_))), _) => PortUse::Auto,
        (true, Some((_, Port::Fixed(p, _))), _) => PortUse::Fixed(p),
        (true, None, Some(_)) => PortUse::Discover,
        (true, None, None) => PortUse::None,
    };
    for (key, requires) in [
        (HTTP_ONLY, Key::Http),
        (&[Key::ExecOutput, Key::ExecTimeout][..], Key::Exec),
        (&[Key::FileMatches, Key::FileLine][..], Key::File),
    ]
    .iter()
    .flat_map(|(keys, requires)| keys.iter().map(move |k| (*k, *requires)))
    {
        if let Some(a) = slots.get(key) {
            if !has(requires) {
                let name = key_name(key);
                let how = match requires {
                    Key::Http => "an HTTP check; add `http = auto` or `http = <port>`",
                    Key::Exec => "an `exec` probe; add `exec = \"program --flag\"`",
                    _ => "a `file` check; add `file = \"{tmpdir}/ready\"`",
                };
                errors.spanned(&a.key, format!("`{name}` only applies to {how}"));
            }
        }
    }
    let mut readiness: Vec<(Key, Readiness)> =
        readiness.into_iter().map(|(k, _, r)| (k, r)).collect();
    for (_, r) in &mut readiness {
        if let Readiness::Http(port, _) = r {
            *r = Readiness::Http(*port, http_target(&slots, port_use, &mut errors));
        }
        match r {
            Readiness::Unix(Some(path)) => placeholders(path, "unix", port_use, &mut errors),
            Readiness::Pid(path) => placeholders(path, "pid", port_use, &mut errors),
            Readiness::File(path) => placeholders(path, "file", port_use, &mut errors),
            Readiness::Exec(Cmd::Line(Text::Lit(line))) => {
                placeholders(line, "exec", port_use, &mut errors)
            }
            Readiness::Exec(Cmd::Args(args)) => {
                for a in args {
                    if let Text::Lit(lit) = a {
                        placeholders(lit, "exec", port_use, &mut errors);
                    }
                }
            }
            _ => {}
        }
    }
    let ready_any = match arg(Key::Ready).and_then(|a| errors.take(ready_mode(a))) {
        Some((any, span)) => {
            if readiness.len() < 2 && readiness_ok {
                errors.at(
                    span,
                    "`ready` says how several readiness checks combine, and this fixture has \
                     fewer than two; remove it",
                );
            }
            any
        }
        None => false,
    };
    let owned = match arg(Key::Owned).and_then(|a| errors.take(boolean(a))) {
        Some(b) if b.value() => {
            if discover.is_some() {
                errors.spanned(
                    &b,
                    "`tcp = discover` only ever finds the service's own listeners; remove `owned`",
                );
            } else if first_port.is_none() && readiness_ok {
                errors.spanned(
                    &b,
                    "`owned` checks who listens on the fixture's port, and it has none; add \
                     `tcp = auto` (or `http`, `redis`, `postgres`)",
                );
            }
            true
        }
        _ => false,
    };
    let exec_output = arg(Key::ExecOutput).and_then(|a| errors.take(pattern(a, "exec_output")));
    let exec_timeout = arg(Key::ExecTimeout).and_then(|a| errors.take(duration(a, false)));
    let file_matches = arg(Key::FileMatches).and_then(|a| errors.take(pattern(a, "file_matches")));
    let file_line = arg(Key::FileLine).and_then(|a| errors.take(line_number(a)));

    // The command.
    let cmd = match (arg(Key::Cmd), arg(Key::Args)) {
        (Some(a), _) => errors.take(command_line(a, is_shell)),
        (None, Some(a)) => errors.take(arg_list(a)),
        (None, None) => {
            if !slots.has(Key::Cmd) && !slots.has(Key::Args) {
                errors.push(anchor.error(
                    "missing command: add `cmd = \"program --flag\"` (a command line) or \
                     `args = [\"program\", \"--flag\"]` (a list of arguments)",
                ));
            }
            None
        }
    };
    let mut command_words: Vec<String> = Vec::new();
    // An expression may mention `{port}` itself: what it says is only known at run time.
    let mut opaque = false;
    let texts: Vec<&Text> = match &cmd {
        Some(Cmd::Line(line)) => vec![line],
        Some(Cmd::Args(args)) => args.iter().collect(),
        None => Vec::new(),
    };
    let key = if matches!(cmd, Some(Cmd::Line(_))) { "cmd" } else { "args" };
    for text in texts {
        match text {
            Text::Lit(lit) => {
                placeholders(lit, key, port_use, &mut errors);
                command_words.push(lit.value());
            }
            Text::Expr(_) => opaque = true,
        }
    }

    let env = arg(Key::Env).and_then(|a| errors.take(env(a))).unwrap_or_default();
    for var in &env {
        let lit = LitStr::new(&var.value, var.span);
        placeholders(&lit, "env", port_use, &mut errors);
        command_words.push(var.value.clone());
    }

    // A chosen port or socket the service is never told about cannot be listened on.
    if cmd.is_some() && !opaque {
        let mentions = |placeholder: &str| command_words.iter().any(|w| w.contains(placeholder));
        if let Some((_, Port::Auto(span))) = first_port {
            if !mentions("{port}") {
                errors.at(
                    span,
                    "`auto` picks a free port at start, but the command never mentions `{port}`; pass \
                     it to the service (`--port {port}`, or in `env`), or write the port it listens on",
                );
            }
        }
        if readiness.iter().any(|(_, r)| matches!(r, Readiness::Unix(None)))
            && !mentions("{socket}")
        {
            if let Some(a) = slots.get(Key::Unix) {
                errors.spanned(
                    a.value.tokens(),
                    "`unix = auto` waits for the socket at `{socket}`, but the command never \
                     mentions `{socket}`; pass it to the service, or write the socket's path",
                );
            }
        }
    }

    let host = arg(Key::Host).and_then(|a| errors.take(non_empty_string(a, "\"127.0.0.1\"")));
    let timeout = arg(Key::Timeout).and_then(|a| errors.take(duration(a, false)));
    let stop_timeout = arg(Key::StopTimeout).and_then(|a| errors.take(duration(a, true)));
    let cwd = arg(Key::Cwd).and_then(|a| errors.take(non_empty_string(a, "\"{tmpdir}\"")));
    if let Some(cwd) = &cwd {
        placeholders(cwd, "cwd", port_use, &mut errors);
    }
    let user = arg(Key::User).and_then(|a| errors.take(non_empty_string(a, "\"postgres\"")));
    let stop_signal = arg(Key::StopSignal).and_then(|a| errors.take(signal(a)));
    let kill_signal = arg(Key::KillSignal).and_then(|a| errors.take(signal(a)));
    let expected_returncode = arg(Key::ExpectedReturncode).and_then(|a| errors.take(returncode(a)));
    let is_http = readiness.iter().any(|(k, _)| *k == Key::Http);
    let method = if is_http { arg(Key::Method).and_then(|a| errors.take(method(a))) } else { None };
    let status = if is_http { arg(Key::Status).and_then(|a| errors.take(status(a))) } else { None };
    let name_ident = arg(Key::Name).and_then(|a| errors.take(name(a)));

    let ok = errors.is_empty();
    all_errors.extend(errors);
    // Without a command or a readiness check, the error is already reported (here, or by the
    // parser for a value it could not read).
    let (Some(cmd), true, true) = (cmd, readiness_ok, ok) else {
        return None;
    };
    let readiness = readiness.into_iter().map(|(_, r)| r).collect();
    let name = match (&name_ident, default_name) {
        (Some(ident), _) => ident.unraw().to_string(),
        (None, Some(name)) => name.to_string(),
        (None, None) => program_name(&cmd, is_shell),
    };
    Some(Def {
        name,
        name_ident,
        cmd,
        readiness,
        ready_any,
        owned,
        exec_output,
        exec_timeout,
        file_matches,
        file_line,
        host,
        timeout,
        stop_timeout,
        env,
        cwd,
        shell,
        user,
        stop_signal,
        kill_signal,
        expected_returncode,
        method,
        status,
    })
}

/// Where the HTTP check goes: `path`, `url`, or `/`.
fn http_target(slots: &Slots<'_>, port_use: PortUse, errors: &mut Errors) -> HttpTarget {
    let arg = |key| slots.get(key).filter(|a| !matches!(a.value, Value::Invalid));
    if let Some(a) = arg(Key::Path) {
        if let Some(path) = errors.take(string(a, "\"/health\"")) {
            placeholders(&path, "path", port_use, errors);
            return HttpTarget::Path(path);
        }
    } else if let Some(a) = arg(Key::Url) {
        if let Some(url) = errors.take(string(a, "\"http://{host}:{port}/health\"")) {
            let lower = url.value().to_ascii_lowercase();
            if !lower.starts_with("http://") {
                let why = if lower.starts_with("https://") {
                    "the HTTP check speaks plain HTTP"
                } else {
                    "it must start with `http://`"
                };
                errors.spanned(
                    &url,
                    format!(
                        "`url` is not an http:// URL: {why}; write it as \
                         `\"http://{{host}}:{{port}}/path\"`"
                    ),
                );
            }
            placeholders(&url, "url", port_use, errors);
            return HttpTarget::Url(url);
        }
    }
    HttpTarget::Root
}

/// The program's file name, to call the fixture by in messages.
fn program_name(cmd: &Cmd, shell: bool) -> String {
    let first = match cmd {
        Cmd::Line(line) if !shell => line
            .value()
            .and_then(|line| shell_words::split(&line).ok())
            .and_then(|words| words.into_iter().next()),
        Cmd::Line(line) => {
            line.value().and_then(|l| l.split_whitespace().next().map(str::to_string))
        }
        Cmd::Args(args) => args.first().and_then(Text::value),
    };
    first
        .as_deref()
        .and_then(|program| program.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("fixture")
        .to_string()
}

fn expected(arg: &Arg, what: &str, example: &str) -> syn::Error {
    let key = arg.name();
    let found = arg.value.kind();
    let hint = match &arg.value {
        Value::Ident(ident) if what.starts_with("a string") => {
            format!("; put it in quotes: `{key} = \"{ident}\"`")
        }
        Value::Str(s) if what.starts_with("an integer") || what.starts_with("a port") => {
            format!("; write it without quotes: `{key} = {}`", s.value())
        }
        Value::Str(s) if what.starts_with("`true`") || what.starts_with("an identifier") => {
            format!("; write it without quotes: `{key} = {}`", s.value())
        }
        _ => format!("; write `{key} = {example}`"),
    };
    syn::Error::new_spanned(arg.value.tokens(), format!("`{key}` takes {what}, not {found}{hint}"))
}

fn string(arg: &Arg, example: &str) -> syn::Result<LitStr> {
    match &arg.value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(expected(arg, "a string", example)),
    }
}

fn non_empty_string(arg: &Arg, example: &str) -> syn::Result<LitStr> {
    let s = string(arg, example)?;
    if s.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(
            &s,
            format!("`{}` is empty; write `{} = {example}`", arg.name(), arg.name()),
        ));
    }
    Ok(s)
}

fn boolean(arg: &Arg) -> syn::Result<LitBool> {
    match &arg.value {
        Value::Bool(b) => Ok(b.clone()),
        _ => Err(expected(arg, "`true` or `false`", "true")),
    }
}

fn name(arg: &Arg) -> syn::Result<Ident> {
    match &arg.value {
        Value::Ident(ident) => Ok(ident.clone()),
        Value::Str(s) if syn::parse_str::<Ident>(&s.value()).is_ok() => {
            Err(syn::Error::new_spanned(
                s,
                format!("write the name as an identifier, without quotes: `name = {}`", s.value()),
            ))
        }
        _ => Err(expected(arg, "an identifier", "pg")),
    }
}

fn readiness_of(key: Key, arg: &Arg) -> syn::Result<Readiness> {
    match key {
        Key::Tcp => match &arg.value {
            Value::Ident(ident) if ident == "discover" => Ok(Readiness::Discover(ident.span())),
            Value::Str(s) if s.value() == "discover" => {
                Err(syn::Error::new_spanned(s, "write `tcp = discover` without quotes"))
            }
            _ => port(arg).map(Readiness::Tcp),
        },
        Key::Http => port(arg).map(|p| Readiness::Http(p, HttpTarget::Root)),
        Key::Redis => port(arg).map(Readiness::Redis),
        Key::Postgres => port(arg).map(Readiness::Postgres),
        Key::Unix => match &arg.value {
            Value::Ident(ident) if ident == "auto" => Ok(Readiness::Unix(None)),
            Value::Str(s) if s.value() == "auto" => {
                Err(syn::Error::new_spanned(s, "write `unix = auto` without quotes"))
            }
            Value::Str(_) => {
                non_empty_string(arg, "\"{tmpdir}/app.sock\"").map(|s| Readiness::Unix(Some(s)))
            }
            _ => Err(expected(arg, "`auto` or a string", "auto")),
        },
        Key::Pid => non_empty_string(arg, "\"{tmpdir}/app.pid\"").map(Readiness::Pid),
        Key::File => non_empty_string(arg, "\"{tmpdir}/ready\"").map(Readiness::File),
        Key::Notify => {
            let b = boolean(arg)?;
            if b.value() {
                Ok(Readiness::Notify(b.span()))
            } else {
                Err(syn::Error::new_spanned(
                    &b,
                    "`notify = false` is the default; remove it, or write `notify = true` to wait \
                     for READY=1",
                ))
            }
        }
        Key::ReadyFd => match &arg.value {
            Value::Int(None, lit) => match lit.base10_digits().parse::<i32>() {
                Ok(fd) if fd >= 3 => Ok(Readiness::ReadyFd(fd, lit.span())),
                Ok(fd @ 0..=2) => Err(syn::Error::new_spanned(
                    lit,
                    format!(
                        "fd {fd} is stdin, stdout or stderr; give the readiness fd a number of 3 \
                         or more: `ready_fd = 3`"
                    ),
                )),
                _ => Err(syn::Error::new_spanned(
                    lit,
                    "the fd number is too large; write `ready_fd = 3`",
                )),
            },
            _ => Err(expected(arg, "an integer (an fd number)", "3")),
        },
        Key::Exec => exec_command(arg).map(Readiness::Exec),
        Key::Check => match &arg.value {
            Value::Ident(ident) => Ok(Readiness::Check(arg.value.tokens(), format!("`{ident}`"))),
            Value::Other(tokens) => {
                let text = tokens.to_string();
                let what = if is_path(tokens) {
                    format!("`{}`", text.replace(' ', ""))
                } else {
                    "the fixture's `check` closure".to_string()
                };
                Ok(Readiness::Check(tokens.clone(), what))
            }
            Value::Str(s) => Err(syn::Error::new_spanned(
                s,
                "`check` takes a closure or a function, not a string: `check = |cx| ...` or \
                 `check = my_check` (taking `&mirakuru::ready::Context` and returning \
                 `mirakuru::ready::Status`)",
            )),
            _ => Err(expected(arg, "a closure or a function", "my_check")),
        },
        _ => {
            let banner = string(arg, "\"ready to accept connections\"")?;
            if banner.value().is_empty() {
                return Err(syn::Error::new_spanned(
                    &banner,
                    "an empty banner matches at once; write what the service prints when it is ready",
                ));
            }
            if let Some(why) = regex_error(&banner.value()) {
                return Err(syn::Error::new_spanned(
                    &banner,
                    format!(
                        "the banner is not a valid regular expression: {why}; escape special \
                         characters with a backslash (`\\\\(`, `\\\\.`)"
                    ),
                ));
            }
            Ok(Readiness::Output(banner))
        }
    }
}

/// The `exec` probe: a command line (split as the runtime splits it) or a list of arguments.
fn exec_command(arg: &Arg) -> syn::Result<Cmd> {
    match &arg.value {
        Value::Str(line) => match shell_words::split(&line.value()) {
            Err(_) => Err(syn::Error::new_spanned(
                line,
                "unbalanced quotes in `exec`: the line is split as a POSIX shell would, and a \
                     quote is never closed; close it, or write the probe as a list of arguments",
            )),
            Ok(words) if words.first().is_none_or(String::is_empty) => {
                Err(syn::Error::new_spanned(
                    line,
                    "the probe command is empty; write the program to run",
                ))
            }
            Ok(_) => Ok(Cmd::Line(Text::Lit(line.clone()))),
        },
        Value::List(span, items) => {
            let mut errors = Errors::default();
            let mut args = Vec::new();
            for item in items {
                match item {
                    Value::Str(s) => args.push(Text::Lit(s.clone())),
                    Value::Ident(_) | Value::Other(_) => args.push(Text::Expr(item.tokens())),
                    Value::Invalid => {}
                    other => errors.spanned(
                        other.tokens(),
                        format!("`exec` lists strings, not {}; write it in quotes", other.kind()),
                    ),
                }
            }
            if items.is_empty() {
                errors.at(*span, "`exec` is empty; list the probe and its arguments: `exec = [\"pg_isready\", \"-p\", \"{port}\"]`");
            } else if let Some(Text::Lit(first)) =
                args.first().filter(|a| a.value().is_some_and(|v| v.is_empty()))
            {
                errors.spanned(
                    first,
                    "the probe's program name is empty; write the program to run first",
                );
            }
            errors.finish(Cmd::Args(args))
        }
        Value::Ident(_) | Value::Other(_) => Ok(Cmd::Line(Text::Expr(arg.value.tokens()))),
        _ => {
            Err(expected(arg, "a command line or a list of arguments", "\"pg_isready -p {port}\""))
        }
    }
}

/// `ready = all` or `ready = any`.
fn ready_mode(arg: &Arg) -> syn::Result<(bool, Span)> {
    match &arg.value {
        Value::Ident(ident) if ident == "all" => Ok((false, ident.span())),
        Value::Ident(ident) if ident == "any" => Ok((true, ident.span())),
        Value::Str(s) if s.value() == "all" || s.value() == "any" => {
            Err(syn::Error::new_spanned(s, format!("write `ready = {}` without quotes", s.value())))
        }
        _ => Err(syn::Error::new_spanned(
            arg.value.tokens(),
            "`ready` is `all` (every readiness check, the default) or `any` (the first one ready)",
        )),
    }
}

/// A regex string for `exec_output` and `file_matches`.
fn pattern(arg: &Arg, key: &str) -> syn::Result<LitStr> {
    let s = non_empty_string(arg, "\"^PONG\"")?;
    if let Some(why) = regex_error(&s.value()) {
        return Err(syn::Error::new_spanned(
            &s,
            format!(
                "the `{key}` pattern is not a valid regular expression: {why}; escape special \
                 characters with a backslash"
            ),
        ));
    }
    Ok(s)
}

/// A 1-based line number.
fn line_number(arg: &Arg) -> syn::Result<(usize, Span)> {
    match &arg.value {
        Value::Int(None, lit) => match lit.base10_digits().parse::<usize>() {
            Ok(n) if n >= 1 => Ok((n, lit.span())),
            _ => Err(syn::Error::new_spanned(
                lit,
                "lines are numbered from 1: write `file_line = 8`",
            )),
        },
        _ => Err(expected(arg, "a line number", "8")),
    }
}

fn port(arg: &Arg) -> syn::Result<Port> {
    let key = arg.name();
    match &arg.value {
        Value::Ident(ident) if ident == "auto" => Ok(Port::Auto(ident.span())),
        Value::Int(minus, lit) => {
            let value = lit.base10_digits().parse::<u64>().ok();
            match (minus, value) {
                (None, Some(0)) if key == "tcp" => Err(syn::Error::new_spanned(
                    arg.value.tokens(),
                    "port 0 cannot be waited for; write `tcp = auto` for a free port chosen at start, \
                     or `tcp = discover` to start the service on port 0 and find the port it got",
                )),
                (None, Some(0)) => Err(syn::Error::new_spanned(
                    arg.value.tokens(),
                    format!("port 0 cannot be waited for; write `{key} = auto` for a free port chosen at start"),
                )),
                (None, Some(p)) if p <= 65535 => Ok(Port::Fixed(p as u16, lit.span())),
                _ => Err(syn::Error::new_spanned(
                    arg.value.tokens(),
                    format!(
                        "port {}{} is out of range; write a port from 1 to 65535, or `{key} = auto`",
                        if minus.is_some() { "-" } else { "" },
                        lit.base10_digits()
                    ),
                )),
            }
        }
        Value::Str(s) if s.value() == "auto" => {
            Err(syn::Error::new_spanned(s, format!("write `{key} = auto` without quotes")))
        }
        Value::Ident(ident) => Err(syn::Error::new_spanned(
            ident,
            format!("expected `auto` or a port number, found `{ident}`; write `{key} = auto` or `{key} = 8080`"),
        )),
        _ => Err(expected(arg, "a port number or `auto`", "auto")),
    }
}

fn command_line(arg: &Arg, shell: bool) -> syn::Result<Cmd> {
    let line = match &arg.value {
        Value::Str(s) => s.clone(),
        Value::Ident(_) | Value::Other(_) => return Ok(Cmd::Line(Text::Expr(arg.value.tokens()))),
        Value::List(..) => {
            return Err(syn::Error::new_spanned(
                arg.value.tokens(),
                "`cmd` is a command line; for a list of arguments write `args = [\"program\", \"--flag\"]`",
            ))
        }
        _ => return Err(expected(arg, "a string", "\"program --flag\"")),
    };
    if line.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(
            &line,
            "the command is empty; write the program to run and its arguments",
        ));
    }
    if !shell {
        // The runtime splits the line the same way, before filling in the placeholders.
        match shell_words::split(&line.value()) {
            Err(_) => {
                return Err(syn::Error::new_spanned(
                    &line,
                    "unbalanced quotes in `cmd`: the line is split as a POSIX shell would, and a \
                     quote is never closed; close it, or add `shell = true` to run the line with `sh -c`",
                ))
            }
            Ok(words) if words.first().is_none_or(String::is_empty) => {
                return Err(syn::Error::new_spanned(&line, "the program name is empty; write the program to run first"));
            }
            Ok(_) => {}
        }
    }
    Ok(Cmd::Line(Text::Lit(line)))
}

fn arg_list(arg: &Arg) -> syn::Result<Cmd> {
    let Value::List(span, items) = &arg.value else {
        if let Value::Str(s) = &arg.value {
            return Err(syn::Error::new_spanned(
                s,
                "`args` is a list of arguments, as in `args = [\"program\", \"--flag\"]`; for a command \
                 line write `cmd = \"...\"`",
            ));
        }
        return Err(expected(arg, "a list of strings", "[\"program\", \"--flag\"]"));
    };
    let mut errors = Errors::default();
    let mut args = Vec::new();
    for item in items {
        match item {
            Value::Str(s) => args.push(Text::Lit(s.clone())),
            Value::Ident(_) | Value::Other(_) => args.push(Text::Expr(item.tokens())),
            Value::Invalid => {}
            other => errors.spanned(
                other.tokens(),
                format!("`args` lists strings, not {}; write it in quotes", other.kind()),
            ),
        }
    }
    if items.is_empty() {
        errors.at(*span, "`args` is empty; list the program and its arguments: `args = [\"program\", \"--flag\"]`");
    } else if let Some(Text::Lit(first)) =
        args.first().filter(|a| a.value().is_some_and(|v| v.is_empty()))
    {
        errors.spanned(first, "the program name is empty; write the program to run first");
    }
    errors.finish(Cmd::Args(args))
}

/// `"30s"`-style durations, or an integer number of seconds.
fn duration(arg: &Arg, zero_ok: bool) -> syn::Result<Millis> {
    let key = arg.name();
    let (ms, span) = match &arg.value {
        Value::Int(None, lit) => {
            let ms = lit.base10_digits().parse::<u64>().ok().and_then(|s| s.checked_mul(1000));
            match ms {
                Some(ms) => (ms, lit.span()),
                None => return Err(syn::Error::new_spanned(lit, format!("`{key}` is too long"))),
            }
        }
        Value::Str(s) => match parse_duration(&s.value()) {
            Ok(ms) => (ms, s.span()),
            Err(why) => {
                return Err(syn::Error::new_spanned(
                    s,
                    format!("`{key} = {}` {why}", quote::ToTokens::to_token_stream(s)),
                ))
            }
        },
        Value::Float(f) => {
            return Err(syn::Error::new_spanned(
                f,
                format!(
                    "write a duration with a fraction as a string with its unit: `{key} = \"{}s\"`",
                    f.base10_digits()
                ),
            ))
        }
        Value::Int(Some(_), _) => {
            return Err(syn::Error::new_spanned(
                arg.value.tokens(),
                format!("`{key}` cannot be negative"),
            ))
        }
        _ => return Err(expected(arg, "a duration", "\"30s\"")),
    };
    if ms == 0 && !zero_ok {
        return Err(syn::Error::new(
            span,
            "a startup timeout of zero gives the service no time to start",
        ));
    }
    Ok(Millis { ms, span })
}

/// Milliseconds in `"500ms"`, `"30s"`, `"1.5s"`, `"2m"`, `"1h"`, or why not.
fn parse_duration(text: &str) -> Result<u64, String> {
    const FORMS: &str = "write it as `\"500ms\"`, `\"30s\"`, `\"1.5s\"`, `\"2m\"` or `\"1h\"`, or a whole number of seconds without quotes";
    let text = text.trim();
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit_ms: u128 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" if !number.is_empty() => return Err(format!("has no unit; {FORMS}")),
        _ => return Err(format!("is not a duration; {FORMS}")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits_ok(whole)
        || !digits_ok(fraction)
        || number.ends_with('.')
        || fraction.len() > 9
    {
        return Err(format!("is not a duration; {FORMS}"));
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let whole: u128 = whole.parse().map_err(|_| "is too long".to_string())?;
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| "is not a duration".to_string())?
    };
    let scaled = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(|| "is too long".to_string())?;
    if scaled % scale != 0 {
        return Err("is not a whole number of milliseconds".into());
    }
    u64::try_from(scaled / scale).map_err(|_| "is too long".into())
}

fn env(arg: &Arg) -> syn::Result<Vec<EnvVar>> {
    let Value::List(_, items) = &arg.value else {
        if let Value::Str(s) = &arg.value {
            return Err(syn::Error::new_spanned(
                s,
                format!("`env` is a list: write `env = [{}]`", quote::ToTokens::to_token_stream(s)),
            ));
        }
        return Err(expected(arg, "a list of `\"KEY=value\"` strings", "[\"KEY=value\"]"));
    };
    let mut errors = Errors::default();
    let mut vars = Vec::new();
    for item in items {
        let s = match item {
            Value::Str(s) => s,
            Value::Invalid => continue,
            other => {
                errors.spanned(
                    other.tokens(),
                    format!("`env` lists `\"KEY=value\"` strings, not {}", other.kind()),
                );
                continue;
            }
        };
        let text = s.value();
        let Some((key, value)) = text.split_once('=') else {
            errors.spanned(s, format!("`env` entries are `\"KEY=value\"`, and {text:?} has no `=`; write `\"{text}=value\"`"));
            continue;
        };
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if key.is_empty() {
            errors.spanned(
                s,
                format!(
                    "the variable name is missing before `=` in {text:?}; write `\"KEY=value\"`"
                ),
            );
        } else if !valid {
            errors.spanned(
                s,
                format!("`{key}` is not a valid environment variable name; use letters, digits and `_`, not starting with a digit"),
            );
        } else {
            vars.push(EnvVar { key: key.to_string(), value: value.to_string(), span: s.span() });
        }
    }
    errors.finish(vars)
}

fn signal(arg: &Arg) -> syn::Result<Ident> {
    let key = arg.name();
    let (written, span) = match &arg.value {
        Value::Ident(ident) => (ident.to_string(), ident.span()),
        Value::Str(s) => (s.value(), s.span()),
        // `Signal::SIGINT`, `mirakuru::Signal::SIGINT`: the name is the last segment.
        Value::Other(tokens) if is_path(tokens) => match tokens.clone().into_iter().last() {
            Some(TokenTree::Ident(ident)) => (ident.to_string(), ident.span()),
            _ => return Err(expected(arg, "a signal name", "SIGINT")),
        },
        Value::Int(..) => {
            return Err(syn::Error::new_spanned(
                arg.value.tokens(),
                format!("write the signal's name, not its number: `{key} = SIGINT`"),
            ))
        }
        _ => return Err(expected(arg, "a signal name", "SIGINT")),
    };
    let upper = written.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if SIGNALS.contains(&full.as_str()) {
        Ok(Ident::new(&full, span))
    } else {
        Err(syn::Error::new_spanned(
            arg.value.tokens(),
            format!(
                "unknown signal `{written}`; expected one of {} (the `SIG` may be left out)",
                list(SIGNALS, true)
            ),
        ))
    }
}

fn is_path(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().all(|t| match t {
        TokenTree::Ident(_) => true,
        TokenTree::Punct(p) => p.as_char() == ':',
        _ => false,
    })
}

fn returncode(arg: &Arg) -> syn::Result<(i32, Span)> {
    match &arg.value {
        Value::Int(minus, lit) => {
            let text = format!("{}{}", if minus.is_some() { "-" } else { "" }, lit.base10_digits());
            text.parse::<i32>().map(|code| (code, minus.unwrap_or_else(|| lit.span()))).map_err(
                |_| {
                    syn::Error::new_spanned(
                        arg.value.tokens(),
                        format!("`expected_returncode` {text} does not fit an i32"),
                    )
                },
            )
        }
        _ => Err(expected(arg, "an integer", "143")),
    }
}

fn method(arg: &Arg) -> syn::Result<LitStr> {
    let method = string(arg, "\"GET\"")?;
    let text = method.value();
    let token = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(syn::Error::new_spanned(&method, format!("{text:?} is not an HTTP method; write one such as `\"HEAD\"`, `\"GET\"` or `\"POST\"`")));
    }
    Ok(method)
}

fn status(arg: &Arg) -> syn::Result<Status> {
    match &arg.value {
        Value::Int(None, lit) => match lit.base10_digits().parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(Status::Code(code, lit.span())),
            _ => Err(syn::Error::new_spanned(lit, "an HTTP status code is from 100 to 599")),
        },
        Value::Str(s) => match regex_error(&s.value()) {
            None => Ok(Status::Pattern(s.clone())),
            Some(why) => Err(syn::Error::new_spanned(
                s,
                format!("the `status` pattern is not a valid regular expression: {why}; write a code (`status = 200`) or a pattern such as `\"2\\\\d\\\\d\"`"),
            )),
        },
        _ => Err(expected(arg, "a status code or a regex string", "200")),
    }
}

/// Why `pattern` is not a regex the runtime's `regex` crate accepts, or `None`.
fn regex_error(pattern: &str) -> Option<String> {
    let error = regex_syntax::ParserBuilder::new().multi_line(true).build().parse(pattern).err()?;
    Some(match error {
        regex_syntax::Error::Parse(e) => e.kind().to_string(),
        regex_syntax::Error::Translate(e) => e.kind().to_string(),
        other => other.to_string(),
    })
}

/// The `{name}`s in `text`; `${VAR}` shell expansions and braces around anything but a
/// word (`{print $1}`, `{a,b}`, `{}`) are not placeholders.
fn find_placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        let start = offset + open;
        let after = &text[start + 1..];
        let dollar = text[..start].ends_with('$');
        if let Some(close) = after.find('}') {
            let word = &after[..close];
            let is_word = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_word && !dollar {
                found.push(word);
            }
        }
        offset = start + 1;
        rest = &text[offset..];
    }
    found
}

/// Checks the placeholders of one string.
fn placeholders(lit: &LitStr, key: &str, port: PortUse, errors: &mut Errors) {
    let text = lit.value();
    let mut reported: Vec<&str> = Vec::new();
    for word in find_placeholders(&text) {
        if reported.contains(&word) {
            continue;
        }
        reported.push(word);
        if !PLACEHOLDERS.contains(&word) {
            errors.spanned(
                lit,
                format!(
                    "unknown placeholder `{{{word}}}` in `{key}`; the placeholders are {}",
                    list(PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")), true)
                ),
            );
            continue;
        }
        if word != "port" {
            continue;
        }
        match port {
            PortUse::Auto | PortUse::Unknown => {}
            PortUse::Fixed(p) => errors.spanned(
                lit,
                format!(
                    "`{{port}}` stands for the port chosen with `auto` (`tcp = auto`, `http = auto`, \
                     ...); with a fixed port, write the port itself: `{p}`"
                ),
            ),
            PortUse::Discover => errors.spanned(
                lit,
                "`{port}` is not known before the start with `tcp = discover`: start the service on \
                 port 0 (write `0` where it takes its port), and read the port found with `port()`",
            ),
            PortUse::None => errors.spanned(
                lit,
                "`{port}` needs a port chosen at start: `tcp = auto` (or `http`, `redis`, `postgres`); \
                 without a check on a port there is no port to fill in",
            ),
        }
    }
}

/// A fixture parameter of the test function, and the fixture it binds.
pub(crate) struct Binding {
    pub(crate) pat: Box<Pat>,
    pub(crate) ty: Box<Type>,
    pub(crate) index: usize,
}

/// Binds the function's parameters to fixtures: by `name`, or, with one fixture and one
/// parameter, to each other whatever their names.
pub(crate) fn bind(sig: &Signature, defs: &[Def]) -> syn::Result<Vec<Binding>> {
    let mut errors = Errors::default();
    let mut bindings: Vec<Binding> = Vec::new();
    let params: Vec<&FnArg> = sig.inputs.iter().collect();
    for param in &params {
        let typed = match param {
            FnArg::Typed(typed) => typed,
            FnArg::Receiver(receiver) => {
                errors.spanned(
                    receiver,
                    "a fixture test is a free function: `self` cannot be a fixture",
                );
                continue;
            }
        };
        let ident = match &*typed.pat {
            Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.unraw()),
            _ => None,
        };
        let index = if defs.len() == 1 && params.len() == 1 {
            Some(0)
        } else {
            ident.as_ref().and_then(|ident| {
                defs.iter().position(|d| d.name_ident.as_ref().is_some_and(|n| n.unraw() == *ident))
            })
        };
        let Some(index) = index else {
            let message = match &ident {
                Some(ident) => format!(
                    "no fixture named `{ident}`; add `name = {ident}` to its #[mirakuru::fixture(...)]"
                ),
                None => "fixture parameters are bound by name; write the parameter as `<name>: \
                         &mirakuru::Fixture` with the `name` of its #[mirakuru::fixture(...)]"
                    .to_string(),
            };
            errors.spanned(typed, message);
            continue;
        };
        if bindings.iter().any(|b| b.index == index) {
            errors.spanned(
                typed,
                format!("fixture `{}` is already bound to another parameter", defs[index].name),
            );
            continue;
        }
        bindings.push(Binding { pat: typed.pat.clone(), ty: typed.ty.clone(), index });
    }
    errors.finish(bindings)
}

/// Fixtures on one function need names of their own.
pub(crate) fn unique_names(defs: &[Def]) -> syn::Result<()> {
    let mut errors = Errors::default();
    for (i, def) in defs.iter().enumerate() {
        let Some(ident) = &def.name_ident else { continue };
        let earlier = defs[..i]
            .iter()
            .any(|d| d.name_ident.as_ref().is_some_and(|n| n.unraw() == ident.unraw()));
        if earlier {
            errors.spanned(
                ident,
                format!("two fixtures are named `{}`; give each its own `name`", ident.unraw()),
            );
        }
    }
    errors.finish(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn check(tokens: TokenStream) -> Result<Def, Vec<String>> {
        let (args, parse_errors) = crate::args::args(tokens);
        let mut errors = Errors::default();
        errors.extend(parse_errors);
        let def = fixture(&args, &Anchor::CallSite, None, &mut errors);
        match errors.finish(()) {
            Ok(()) => def.ok_or_else(Vec::new),
            Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    fn error(tokens: TokenStream) -> String {
        match check(tokens) {
            Ok(_) => panic!("expected an error"),
            Err(messages) => {
                assert_eq!(messages.len(), 1, "{messages:#?}");
                messages[0].clone()
            }
        }
    }

    fn ok(tokens: TokenStream) -> Def {
        match check(tokens) {
            Ok(def) => def,
            Err(messages) => panic!("unexpected errors: {messages:#?}"),
        }
    }

    #[test]
    fn accepts_a_full_http_fixture() {
        let def = ok(quote!(
            name = web,
            http = auto,
            path = "/health",
            method = "GET",
            status = "2\\d\\d",
            cmd = "python3 -m http.server {port} --bind {host}",
            timeout = "1.5s",
            stop_timeout = 5,
            env = ["A=1", "DIR={tmpdir}"],
            cwd = "{tmpdir}",
            shell = false,
            user = "nobody",
            stop_signal = INT,
            kill_signal = "SIGKILL",
            expected_returncode = -15,
            host = "::1",
        ));
        assert_eq!(def.name, "web");
        assert!(matches!(
            def.readiness.as_slice(),
            [Readiness::Http(Port::Auto(_), HttpTarget::Path(_))]
        ));
        assert_eq!(def.timeout.map(|t| t.ms), Some(1500));
        assert_eq!(def.stop_timeout.map(|t| t.ms), Some(5000));
        assert_eq!(
            def.env.iter().map(|v| (v.key.as_str(), v.value.as_str())).collect::<Vec<_>>(),
            [("A", "1"), ("DIR", "{tmpdir}")]
        );
        assert_eq!(def.stop_signal.map(|s| s.to_string()).as_deref(), Some("SIGINT"));
        assert_eq!(def.kill_signal.map(|s| s.to_string()).as_deref(), Some("SIGKILL"));
        assert_eq!(def.expected_returncode.map(|c| c.0), Some(-15));
        assert!(matches!(def.status, Some(Status::Pattern(_))));
    }

    #[test]
    fn names_an_unnamed_fixture_after_its_program() {
        assert_eq!(
            ok(quote!(cmd = "/usr/bin/redis-server --port {port}", tcp = auto)).name,
            "redis-server"
        );
        assert_eq!(ok(quote!(args = ["{tmpdir}/run.sh"])).name, "run.sh");
        assert_eq!(ok(quote!(cmd = "FOO=1 exec x |", shell = true)).name, "FOO=1");
    }

    #[test]
    fn a_static_names_the_fixture_unless_name_is_given() {
        let name = |tokens| {
            let (args, _) = crate::args::args(tokens);
            fixture(&args, &Anchor::CallSite, Some("redis"), &mut Errors::default()).map(|d| d.name)
        };
        assert_eq!(name(quote!(cmd = "redis-server")).as_deref(), Some("redis"));
        assert_eq!(name(quote!(cmd = "redis-server", name = cache)).as_deref(), Some("cache"));
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let message = error(quote!(cmd = "x", prot = 1));
        assert!(message.starts_with("unknown `mirakuru::fixture` argument `prot`; expected one of `cmd`, `args`, `tcp`,"), "{message}");
        assert!(message.ends_with("`expected_returncode`, `name`"), "{message}");
    }

    #[test]
    fn unknown_keys_suggest_a_near_one() {
        assert!(error(quote!(cmd = "x", tpc = auto)).contains("did you mean `tcp`?"));
        assert!(error(quote!(cmd = "x", stop_timout = 1)).contains("did you mean `stop_timeout`?"));
    }

    #[test]
    fn python_spellings_get_a_hint() {
        assert_eq!(
            error(quote!(cmd = "x", envvars = ["A=1"])),
            "unknown `mirakuru::fixture` argument `envvars`; Python mirakuru's `envvars` is `env` here: `env = [\"KEY=value\"]`"
        );
        assert!(error(quote!(cmd = "x", banner = "ready")).contains("is `output` here"));
        assert!(error(quote!(cmd = "x", sig_stop = SIGINT)).contains("is `stop_signal` here"));
        assert!(error(quote!(cmd = "x", port = 80)).contains("`tcp = 6379`"));
        assert!(
            error(quote!(cmd = "x", stdout = "f")).contains("start a `mirakuru::Executor` by hand")
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert_eq!(
            error(quote!(cmd = "x", timeout = 1, timeout = 2)),
            "duplicate `timeout` argument; give it once"
        );
    }

    #[test]
    fn the_command_is_required_once() {
        assert!(error(quote!(tcp = auto)).starts_with("missing command: add `cmd = "));
        assert!(error(quote!(cmd = "a", args = ["a"]))
            .starts_with("`cmd` and `args` both give the command"));
        assert!(error(quote!(cmd = "")).starts_with("the command is empty"));
        assert!(error(quote!(args = [])).starts_with("`args` is empty"));
        assert!(error(quote!(args = [""])).starts_with("the program name is empty"));
        assert!(error(quote!(args = ["a", 1])).starts_with("`args` lists strings, not an integer"));
        assert!(error(quote!(args = "a b")).starts_with("`args` is a list of arguments"));
        assert!(error(quote!(cmd = ["a"])).starts_with("`cmd` is a command line"));
    }

    #[test]
    fn a_malformed_command_is_not_also_reported_missing() {
        assert_eq!(check(quote!(cmd "x")).err().map(|m| m.len()), Some(1));
    }

    #[test]
    fn several_readiness_checks_combine_in_the_order_written() {
        let def = ok(quote!(
            cmd = "redis-server --port {port} --supervised systemd",
            ready = all,
            notify = true,
            redis = auto,
            tcp = auto
        ));
        assert!(matches!(
            def.readiness.as_slice(),
            [Readiness::Notify(_), Readiness::Redis(Port::Auto(_)), Readiness::Tcp(Port::Auto(_))]
        ));
        assert!(!def.ready_any);
        let def = ok(quote!(cmd = "s {port}", ready = any, http = auto, tcp = auto));
        assert!(def.ready_any);
        assert!(error(quote!(cmd = "s {port}", tcp = auto, ready = any))
            .starts_with("`ready` says how several readiness checks combine"));
        assert!(error(quote!(cmd = "s {port}", tcp = auto, output = "x"))
            .starts_with("two readiness kinds, `tcp` and `output`"));
        assert!(error(quote!(cmd = "s", notify = true, output = "x", ready = "any"))
            .starts_with("write `ready = any` without quotes"));
        assert!(error(quote!(cmd = "s", notify = true, output = "x", ready = first))
            .starts_with("`ready` is `all`"));
    }

    #[test]
    fn a_fixture_has_one_port() {
        assert_eq!(
            error(quote!(cmd = "x {port}", ready = all, tcp = auto, http = 8080)),
            "`tcp = auto` and `http = 8080` differ, and a fixture has one port; write the same port for every check (`auto` everywhere, or the same number)"
        );
        assert!(error(quote!(cmd = "x", ready = all, tcp = 1, redis = 2))
            .contains("`tcp = 1` and `redis = 2` differ"));
        ok(quote!(cmd = "x", ready = all, tcp = 6379, redis = 6379));
        ok(quote!(cmd = "x {port}", ready = all, postgres = auto, tcp = auto, owned = true));
    }

    #[test]
    fn the_new_readiness_keys_are_checked() {
        assert!(matches!(
            ok(quote!(cmd = "x", ready_fd = 3)).readiness.as_slice(),
            [Readiness::ReadyFd(3, _)]
        ));
        assert!(
            error(quote!(cmd = "x", ready_fd = 1)).starts_with("fd 1 is stdin, stdout or stderr")
        );
        assert!(error(quote!(cmd = "x", ready_fd = "3")).starts_with("`ready_fd` takes an integer"));
        assert!(
            error(quote!(cmd = "x", notify = false)).starts_with("`notify = false` is the default")
        );
        assert!(error(quote!(cmd = "x", notify = "yes"))
            .starts_with("`notify` takes `true` or `false`"));
        assert!(error(quote!(cmd = "x", check = "my_check"))
            .starts_with("`check` takes a closure or a function, not a string"));
        assert!(matches!(
            ok(quote!(cmd = "x", check = my::check)).readiness.as_slice(),
            [Readiness::Check(_, what)] if what == "`my::check`"
        ));
        assert!(matches!(
            ok(quote!(cmd = "x", check = |cx| mirakuru::ready::Status::Ready)).readiness.as_slice(),
            [Readiness::Check(_, what)] if what == "the fixture's `check` closure"
        ));
        assert!(error(quote!(cmd = "x", file = "")).starts_with("`file` is empty"));
        assert!(error(quote!(cmd = "x", file = "{tmpdir}/p", file_matches = "("))
            .starts_with("the `file_matches` pattern is not a valid regular expression"));
        assert!(error(quote!(cmd = "x", file = "{tmpdir}/p", file_line = 0))
            .starts_with("lines are numbered from 1"));
        let def = ok(quote!(
            cmd = "x",
            file = "{tmpdir}/data/postmaster.pid",
            file_line = 8,
            file_matches = "^ready"
        ));
        assert_eq!(def.file_line.map(|l| l.0), Some(8));
    }

    #[test]
    fn exec_probes_are_checked() {
        let def = ok(quote!(
            cmd = "x {port}",
            ready = all,
            tcp = auto,
            exec = "pg_isready -h {host} -p {port}",
            exec_output = "accepting",
            exec_timeout = "2s"
        ));
        assert!(matches!(
            def.readiness.as_slice(),
            [Readiness::Tcp(_), Readiness::Exec(Cmd::Line(_))]
        ));
        assert_eq!(def.exec_timeout.map(|t| t.ms), Some(2000));
        assert!(matches!(
            ok(quote!(cmd = "x", exec = ["redis-cli", "ping"])).readiness.as_slice(),
            [Readiness::Exec(Cmd::Args(args))] if args.len() == 2
        ));
        assert!(error(quote!(cmd = "x", exec = "redis-cli 'ping"))
            .starts_with("unbalanced quotes in `exec`"));
        assert!(error(quote!(cmd = "x", exec = [])).starts_with("`exec` is empty"));
        assert!(error(quote!(cmd = "x", exec = "p --port {port}"))
            .starts_with("`{port}` needs a port chosen at start"));
        assert_eq!(
            error(quote!(cmd = "x", exec_output = "PONG")),
            "`exec_output` only applies to an `exec` probe; add `exec = \"program --flag\"`"
        );
        assert_eq!(
            error(quote!(cmd = "x", file_line = 8)),
            "`file_line` only applies to a `file` check; add `file = \"{tmpdir}/ready\"`"
        );
    }

    #[test]
    fn discovery_and_ownership_are_checked() {
        assert!(matches!(
            ok(quote!(cmd = "server --port 0", tcp = discover)).readiness.as_slice(),
            [Readiness::Discover(_)]
        ));
        assert!(error(quote!(cmd = "server --port {port}", tcp = discover))
            .starts_with("`{port}` is not known before the start with `tcp = discover`"));
        assert!(error(quote!(cmd = "server --port 0", tcp = discover, owned = true))
            .starts_with("`tcp = discover` only ever finds the service's own listeners"));
        assert!(error(quote!(cmd = "server", output = "x", owned = true))
            .starts_with("`owned` checks who listens on the fixture's port"));
        assert!(error(quote!(cmd = "x", tcp = 0)).contains("or `tcp = discover`"));
        assert!(error(quote!(cmd = "x", tcp = "discover"))
            .starts_with("write `tcp = discover` without quotes"));
        assert!(ok(quote!(cmd = "x --port {port}", tcp = auto, owned = true)).owned);
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(
            error(quote!(cmd = "x", tcp = 70000)),
            "port 70000 is out of range; write a port from 1 to 65535, or `tcp = auto`"
        );
        assert_eq!(
            error(quote!(cmd = "x", tcp = -1)),
            "port -1 is out of range; write a port from 1 to 65535, or `tcp = auto`"
        );
        assert_eq!(
            error(quote!(cmd = "x", http = 0)),
            "port 0 cannot be waited for; write `http = auto` for a free port chosen at start"
        );
        assert_eq!(error(quote!(cmd = "x", tcp = "auto")), "write `tcp = auto` without quotes");
        assert_eq!(error(quote!(cmd = "x", tcp = "80")), "`tcp` takes a port number or `auto`, not a string; write it without quotes: `tcp = 80`");
        assert!(error(quote!(cmd = "x", tcp = any))
            .starts_with("expected `auto` or a port number, found `any`"));
        assert!(matches!(
            ok(quote!(cmd = "x", tcp = 6379)).readiness.as_slice(),
            [Readiness::Tcp(Port::Fixed(6379, _))]
        ));
    }

    #[test]
    fn an_automatic_port_must_reach_the_service() {
        assert!(error(quote!(cmd = "redis-server", tcp = auto)).starts_with(
            "`auto` picks a free port at start, but the command never mentions `{port}`"
        ));
        ok(quote!(cmd = "server", env = ["PORT={port}"], http = auto));
        assert!(error(quote!(cmd = "server", unix = auto))
            .starts_with("`unix = auto` waits for the socket at `{socket}`"));
        ok(quote!(args = ["server", "--socket", "{socket}"], unix = auto));
    }

    #[test]
    fn quoting_is_checked_unless_a_shell_runs_the_line() {
        assert!(error(quote!(cmd = "echo 'hi")).starts_with("unbalanced quotes in `cmd`"));
        ok(quote!(cmd = "echo 'hi", shell = true));
        ok(quote!(cmd = "redis-server --save ''"));
    }

    #[test]
    fn banners_and_status_patterns_must_be_regexes() {
        assert_eq!(
            error(quote!(cmd = "x", output = "ready (")),
            "the banner is not a valid regular expression: unclosed group; escape special characters with a backslash (`\\\\(`, `\\\\.`)"
        );
        assert!(
            error(quote!(cmd = "x", output = "")).starts_with("an empty banner matches at once")
        );
        assert!(error(quote!(cmd = "x {port}", http = auto, status = "2[")).starts_with(
            "the `status` pattern is not a valid regular expression: unclosed character class"
        ));
        assert_eq!(
            error(quote!(cmd = "x {port}", http = auto, status = 700)),
            "an HTTP status code is from 100 to 599"
        );
        assert!(matches!(
            ok(quote!(cmd = "x {port}", http = auto, status = 204)).status,
            Some(Status::Code(204, _))
        ));
    }

    #[test]
    fn http_keys_need_http() {
        assert_eq!(
            error(quote!(cmd = "x", status = 200)),
            "`status` only applies to an HTTP check; add `http = auto` or `http = <port>`"
        );
        assert!(error(quote!(cmd = "x {port}", tcp = auto, path = "/"))
            .starts_with("`path` only applies to an HTTP check"));
        assert!(error(quote!(cmd = "x {port}", http = auto, path = "/", url = "http://x"))
            .starts_with("`path` and `url` both say where"));
        assert!(error(quote!(cmd = "x {port}", http = auto, url = "https://{host}:{port}/"))
            .contains("plain HTTP"));
        assert!(error(quote!(cmd = "x {port}", http = auto, method = "G T"))
            .starts_with("\"G T\" is not an HTTP method"));
    }

    #[test]
    fn durations_are_read_as_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500));
        assert_eq!(parse_duration("2m"), Ok(120_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration(" 10 s "), Ok(10_000));
        assert!(parse_duration("30").is_err_and(|e| e.starts_with("has no unit")));
        assert!(parse_duration("30 sec").is_err_and(|e| e.starts_with("is not a duration")));
        assert!(parse_duration("1.s").is_err());
        assert!(parse_duration(".5s").is_err());
        assert!(parse_duration("0.5ms").is_err_and(|e| e.contains("whole number of milliseconds")));
        assert!(parse_duration("99999999999999999999h").is_err_and(|e| e == "is too long"));
    }

    #[test]
    fn bad_durations_are_errors() {
        assert_eq!(
            error(quote!(cmd = "x", timeout = "30 seconds")),
            "`timeout = \"30 seconds\"` is not a duration; write it as `\"500ms\"`, `\"30s\"`, `\"1.5s\"`, `\"2m\"` or `\"1h\"`, or a whole number of seconds without quotes"
        );
        assert_eq!(
            error(quote!(cmd = "x", timeout = 1.5)),
            "write a duration with a fraction as a string with its unit: `timeout = \"1.5s\"`"
        );
        assert_eq!(
            error(quote!(cmd = "x", timeout = 0)),
            "a startup timeout of zero gives the service no time to start"
        );
        assert_eq!(ok(quote!(cmd = "x", stop_timeout = 0)).stop_timeout.map(|t| t.ms), Some(0));
    }

    #[test]
    fn env_entries_are_checked() {
        assert_eq!(
            error(quote!(cmd = "x", env = ["FOO"])),
            "`env` entries are `\"KEY=value\"`, and \"FOO\" has no `=`; write `\"FOO=value\"`"
        );
        assert!(error(quote!(cmd = "x", env = ["=1"])).starts_with("the variable name is missing"));
        assert!(error(quote!(cmd = "x", env = ["1A=1"]))
            .starts_with("`1A` is not a valid environment variable name"));
        assert_eq!(
            error(quote!(cmd = "x", env = "A=1")),
            "`env` is a list: write `env = [\"A=1\"]`"
        );
        assert_eq!(ok(quote!(cmd = "x", env = ["A=b=c", "E="])).env.len(), 2);
    }

    #[test]
    fn signals_are_posix_names() {
        for written in [
            quote!(SIGINT),
            quote!(INT),
            quote!("SIGINT"),
            quote!("int"),
            quote!(mirakuru::Signal::SIGINT),
        ] {
            let def = ok(quote!(cmd = "x", stop_signal = #written));
            assert_eq!(def.stop_signal.map(|s| s.to_string()).as_deref(), Some("SIGINT"));
        }
        assert!(error(quote!(cmd = "x", stop_signal = SIGFOO))
            .starts_with("unknown signal `SIGFOO`; expected one of `SIGTERM`, `SIGINT`,"));
        assert!(error(quote!(cmd = "x", kill_signal = 9))
            .starts_with("write the signal's name, not its number"));
    }

    #[test]
    fn values_of_the_wrong_kind_say_what_to_write() {
        assert_eq!(error(quote!(cmd = "x", shell = "true")), "`shell` takes `true` or `false`, not a string; write it without quotes: `shell = true`");
        assert_eq!(
            error(quote!(cmd = "x", user = postgres)),
            "`user` takes a string, not an identifier; put it in quotes: `user = \"postgres\"`"
        );
        assert_eq!(
            error(quote!(cmd = "x", name = "pg")),
            "write the name as an identifier, without quotes: `name = pg`"
        );
        assert_eq!(
            error(quote!(cmd = "x", expected_returncode = 99999999999)),
            "`expected_returncode` 99999999999 does not fit an i32"
        );
        assert_eq!(
            error(quote!(cmd = "x", host = "")),
            "`host` is empty; write `host = \"127.0.0.1\"`"
        );
    }

    #[test]
    fn placeholders_are_checked() {
        assert_eq!(
            error(quote!(cmd = "x --dir {tmp}")),
            "unknown placeholder `{tmp}` in `cmd`; the placeholders are `{port}`, `{host}`, `{tmpdir}` or `{socket}`"
        );
        assert_eq!(
            error(quote!(cmd = "x --port {port}", tcp = 6390)),
            "`{port}` stands for the port chosen with `auto` (`tcp = auto`, `http = auto`, ...); with a fixed port, write the port itself: `6390`"
        );
        assert!(error(quote!(cmd = "x --port {port}"))
            .starts_with("`{port}` needs a port chosen at start"));
        assert!(error(quote!(args = ["x"], env = ["P={port}"])).starts_with("`{port}` needs"));
        ok(quote!(
            cmd = "sh -c 'echo ${HOME} {} {a,b}; awk \"{print $1}\"' {tmpdir} {socket} {host}"
        ));
    }

    #[test]
    fn finds_placeholders_but_not_shell_braces() {
        assert_eq!(
            find_placeholders("a {port} ${x} {} {a,b} {print $1} {tmpdir}/{y_1}"),
            ["port", "tmpdir", "y_1"]
        );
    }

    #[test]
    fn all_errors_of_an_attribute_are_reported_together() {
        let messages = check(quote!(tcp = 0, timeout = "soon", prot = 1)).err().unwrap_or_default();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].starts_with("unknown `mirakuru::fixture` argument `prot`"));
        assert!(messages[1].starts_with("port 0 cannot be waited for"));
        assert!(messages[2].starts_with("missing command"));
        assert!(messages[3].starts_with("`timeout = \"soon\"` is not a duration"));
    }

    #[test]
    fn an_invalid_readiness_check_does_not_also_report_the_port_placeholder() {
        assert_eq!(check(quote!(cmd = "x --port {port}", tcp = 0)).err().map(|m| m.len()), Some(1));
    }

    fn defs(list: &[TokenStream]) -> Vec<Def> {
        list.iter().map(|t| ok(t.clone())).collect()
    }

    fn bind_errors(sig: Signature, defs: &[Def]) -> Vec<String> {
        match bind(&sig, defs) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn one_fixture_binds_one_parameter_whatever_its_name() {
        let defs = defs(&[quote!(cmd = "x", name = pg)]);
        let bindings =
            bind(&syn::parse_quote!(fn t(db: &mirakuru::Fixture)), &defs).unwrap_or_default();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].index, 0);
    }

    #[test]
    fn parameters_bind_fixtures_by_name() {
        let defs = defs(&[quote!(cmd = "x", name = pg), quote!(cmd = "y", name = cache)]);
        let bindings = bind(&syn::parse_quote!(fn t(cache: &Fixture, r#pg: &Fixture)), &defs)
            .unwrap_or_default();
        assert_eq!(bindings.iter().map(|b| b.index).collect::<Vec<_>>(), [1, 0]);
    }

    #[test]
    fn a_parameter_without_fixture_is_an_error() {
        let defs = defs(&[quote!(cmd = "x", name = pg), quote!(cmd = "y")]);
        assert_eq!(
            bind_errors(syn::parse_quote!(fn t(pg: &Fixture, redis: &Fixture, (a, b): (u8, u8))), &defs),
            [
                "no fixture named `redis`; add `name = redis` to its #[mirakuru::fixture(...)]",
                "fixture parameters are bound by name; write the parameter as `<name>: &mirakuru::Fixture` with the `name` of its #[mirakuru::fixture(...)]",
            ]
        );
        let one = self::defs(&[quote!(cmd = "x")]);
        assert_eq!(bind_errors(syn::parse_quote!(fn t(a: &Fixture, b: &Fixture)), &one).len(), 2);
    }

    #[test]
    fn fixture_names_are_unique() {
        let defs = defs(&[quote!(cmd = "x", name = pg), quote!(cmd = "y", name = pg)]);
        assert_eq!(
            unique_names(&defs).err().map(|e| e.to_string()).as_deref(),
            Some("two fixtures are named `pg`; give each its own `name`")
        );
    }
}
