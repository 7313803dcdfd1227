//! Checking the keys, after the table of them: [`KEYS`] names every key once, with what it
//! is (a readiness check, a plain option and its `Spec` setter, or a key read by code of its
//! own) and what else it needs; then come the hints for Python mirakuru's spellings and for
//! typos, and the first check, which sorts the arguments by key ([`Given`]).
//!
//! A plain option is one row: its name, the kind of value it takes (`values::Kind`), the
//! `Spec` setter that takes it, and a valid value, which messages suggest. Reading, checking
//! and emitting it all follow from the row: a new option is a new row.

use crate::args::Arg;
use crate::errors::{list, Errors};
use crate::readiness::{self, Reader};
use crate::values::Kind;

// The keys that code outside this table refers to.
pub(crate) const CMD: &str = "cmd";
pub(crate) const ARGS: &str = "args";
pub(crate) const TCP: &str = "tcp";
pub(crate) const HTTP: &str = "http";
pub(crate) const PATH: &str = "path";
pub(crate) const URL: &str = "url";
pub(crate) const UNIX: &str = "unix";
pub(crate) const EXEC: &str = "exec";
pub(crate) const FILE: &str = "file";
pub(crate) const READY: &str = "ready";
pub(crate) const OWNED: &str = "owned";
pub(crate) const ENV: &str = "env";
pub(crate) const SHELL: &str = "shell";
pub(crate) const NAME: &str = "name";
pub(crate) const SCOPE: &str = "scope";
pub(crate) const SERVICE: &str = "service";
pub(crate) const LOAD: &str = "load";

/// Every key, in the order the messages list them. A plain option's row is
/// `option(name, kind of value, Spec setter, a valid value)`; the setter must exist on the
/// runtime's `Spec` and take one value of that kind (`expand` says how each kind is passed).
pub(crate) const KEYS: &[Key] = &[
    special(SERVICE),
    special(CMD),
    special(ARGS),
    check(TCP, readiness::tcp),
    check(HTTP, readiness::http),
    special(PATH).needs(Needs::Http),
    special(URL).needs(Needs::Http),
    option("method", Kind::Method, "method", "\"GET\"").needs(Needs::Http),
    option("status", Kind::Status, "status", "200").needs(Needs::Http),
    check(UNIX, readiness::unix),
    check("pid", readiness::pid),
    check("output", readiness::output),
    check("notify", readiness::notify),
    check("ready_fd", readiness::ready_fd),
    check(EXEC, readiness::exec),
    option("exec_output", Kind::Regex, "exec_output", "\"^PONG\"").needs(Needs::Exec),
    option("exec_timeout", Kind::Timeout, "exec_timeout", "\"30s\"").needs(Needs::Exec),
    check("redis", readiness::redis),
    check("postgres", readiness::postgres),
    check("mysql", readiness::mysql),
    check(FILE, readiness::file),
    option("file_matches", Kind::Regex, "file_matches", "\"^PONG\"").needs(Needs::File),
    option("file_line", Kind::Line, "file_line", "8").needs(Needs::File),
    check("check", readiness::custom),
    special(READY),
    option(OWNED, Kind::Flag, "owned", "true").needs(Needs::Port),
    option("host", Kind::Text, "host", "\"127.0.0.1\""),
    option("timeout", Kind::Timeout, "timeout", "\"30s\""),
    option("stop_timeout", Kind::Duration, "stop_timeout", "\"30s\""),
    option(ENV, Kind::Env, "env", "[\"KEY=value\"]").with_placeholders(),
    option("cwd", Kind::Text, "cwd", "\"{tmpdir}\"").with_placeholders(),
    option(SHELL, Kind::Bool, "shell", "true"),
    option("user", Kind::Text, "user", "\"postgres\""),
    option("stop_signal", Kind::Signal, "stop_signal", "SIGINT"),
    option("kill_signal", Kind::Signal, "kill_signal", "SIGINT"),
    option("expected_returncode", Kind::I32, "expected_returncode", "143"),
    option(LOAD, Kind::Text, "load", "\"tests/schema.sql\"").needs(Needs::Service),
    special(NAME),
    special(SCOPE),
];

/// One row of [`KEYS`].
#[derive(Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) needs: Needs,
    pub(crate) role: Role,
}

#[derive(Clone, Copy)]
pub(crate) enum Role {
    /// Read by code of its own: the command (`cmd`, `args`), the HTTP check's target (`path`,
    /// `url`), `ready` and `name`.
    Special,
    /// A readiness check, read by this function of `readiness`.
    Check(Reader),
    /// A plain option.
    Option(Opt),
}

/// A plain option: `key = value` becomes `.setter(value)`.
#[derive(Clone, Copy)]
pub(crate) struct Opt {
    pub(crate) kind: Kind,
    pub(crate) setter: &'static str,
    /// A valid value, as the messages suggest writing it.
    pub(crate) example: &'static str,
    /// Whether its strings may hold placeholders, which are then checked.
    pub(crate) placeholders: bool,
}

/// What else a key needs, if anything, to mean something. The variants are in the order in
/// which plain options are read and their setters emitted, and then as [`KEYS`] lists them:
/// the refinements of checks first, the HTTP check's last. That is the order the expansion
/// and its errors have always had.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Needs {
    /// A check on a port, whose listener `owned` vets.
    Port,
    /// The `exec` probe.
    Exec,
    /// The `file` check.
    File,
    /// A ready-made database server (`service = postgres`).
    Service,
    Nothing,
    /// The HTTP check.
    Http,
}

impl Needs {
    /// The readiness key it refines, and how to add it: without it, the key is an error.
    pub(crate) fn check(self) -> Option<(&'static str, &'static str)> {
        match self {
            Needs::Http => Some((HTTP, "an HTTP check; add `http = auto` or `http = <port>`")),
            Needs::Exec => Some((EXEC, "an `exec` probe; add `exec = \"program --flag\"`")),
            Needs::File => Some((FILE, "a `file` check; add `file = \"{tmpdir}/ready\"`")),
            Needs::Service => Some((
                SERVICE,
                "a ready-made database server; add `service = postgres` (or `mariadb`)",
            )),
            Needs::Port | Needs::Nothing => None,
        }
    }
}

const fn special(name: &'static str) -> Key {
    Key { name, needs: Needs::Nothing, role: Role::Special }
}

const fn check(name: &'static str, reader: Reader) -> Key {
    Key { name, needs: Needs::Nothing, role: Role::Check(reader) }
}

const fn option(
    name: &'static str,
    kind: Kind,
    setter: &'static str,
    example: &'static str,
) -> Key {
    let opt = Opt { kind, setter, example, placeholders: false };
    Key { name, needs: Needs::Nothing, role: Role::Option(opt) }
}

impl Key {
    const fn needs(self, needs: Needs) -> Key {
        Key { needs, ..self }
    }

    const fn with_placeholders(self) -> Key {
        match self.role {
            Role::Option(opt) => {
                Key { role: Role::Option(Opt { placeholders: true, ..opt }), ..self }
            }
            _ => self,
        }
    }

    pub(crate) fn option(&self) -> Option<&Opt> {
        match &self.role {
            Role::Option(opt) => Some(opt),
            _ => None,
        }
    }
}

/// The plain options, in the order their setters are emitted (see [`Needs`]).
pub(crate) fn options() -> Vec<(&'static Key, &'static Opt)> {
    let mut options: Vec<(&'static Key, &'static Opt)> =
        KEYS.iter().filter_map(|key| key.option().map(|opt| (key, opt))).collect();
    options.sort_by_key(|(key, _)| key.needs);
    options
}

/// Keys that say the same thing two ways, and what they both say: the first one given is
/// kept, the other is an error.
const RIVALS: &[(&str, &str, &str)] = &[
    (
        SERVICE,
        CMD,
        "say what runs; keep one: `service` for a ready-made server, `cmd` for your own command",
    ),
    (
        SERVICE,
        ARGS,
        "say what runs; keep one: `service` for a ready-made server, `args` for your own command",
    ),
    (
        CMD,
        ARGS,
        "give the command; keep one: `cmd` for a command line, `args` for a list of arguments",
    ),
    (
        PATH,
        URL,
        "say where the HTTP check goes; keep one: `path` on the fixture's host and port, or a \
         whole `url`",
    ),
];

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
    let keys = list(KEYS.iter().map(|k| k.name), false);
    match KEYS.iter().map(|k| k.name).find(|k| close(name, k)) {
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

/// The arguments sorted by key: each key known and given once, and of two rivals only the
/// first.
pub(crate) struct Given<'a> {
    args: Vec<(&'static Key, &'a Arg)>,
}

impl<'a> Given<'a> {
    /// Sorts `args` by key, reporting unknown keys, duplicates and rivals.
    pub(crate) fn sort(args: &'a [Arg], errors: &mut Errors) -> Given<'a> {
        let mut given = Given { args: Vec::new() };
        for arg in args {
            let name = arg.name();
            let Some(key) = KEYS.iter().find(|k| k.name == name) else {
                errors.spanned(&arg.key, unknown_key_message(&name));
                continue;
            };
            if given.has(key.name) {
                errors.spanned(&arg.key, format!("duplicate `{name}` argument; give it once"));
                continue;
            }
            if let Some((first, what)) = given.rival(key.name) {
                errors.spanned(&arg.key, format!("`{first}` and `{name}` both {what}"));
                continue;
            }
            given.args.push((key, arg));
        }
        given
    }

    /// The key given already that says what `name` says, and what they both say.
    fn rival(&self, name: &str) -> Option<(&'static str, &'static str)> {
        RIVALS.iter().find_map(|&(a, b, what)| {
            let other = if name == a {
                b
            } else if name == b {
                a
            } else {
                return None;
            };
            self.has(other).then_some((other, what))
        })
    }

    /// The arguments, in the order written.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static Key, &'a Arg)> + '_ {
        self.args.iter().copied()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Arg> {
        self.args.iter().find(|(k, _)| k.name == name).map(|(_, arg)| *arg)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The argument of `name`, if its value could be read: an unreadable value is reported
    /// already, and reading it again would only add noise.
    pub(crate) fn valid(&self, name: &str) -> Option<&'a Arg> {
        self.get(name).filter(|a| !matches!(a.value, crate::args::Value::Invalid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{check, error, expand, ok, setter};
    use proc_macro2::{Span, TokenStream};
    use quote::quote;
    use syn::Ident;

    /// An attribute giving `key` its example value, with the check the key needs, if any.
    fn using(key: &Key, opt: &Opt) -> TokenStream {
        let name = Ident::new(key.name, Span::call_site());
        let value: TokenStream = opt.example.parse().unwrap();
        if key.needs == Needs::Service {
            return quote!(service = postgres, #name = #value);
        }
        let (cmd, needed) = match key.needs {
            Needs::Port => ("server --port {port}", quote!(tcp = auto,)),
            Needs::Http => ("server --port {port}", quote!(http = auto,)),
            Needs::Exec => ("server", quote!(exec = "probe",)),
            Needs::File => ("server", quote!(file = "{tmpdir}/ready",)),
            Needs::Service | Needs::Nothing => ("server", quote!()),
        };
        quote!(cmd = #cmd, #needed #name = #value)
    }

    #[test]
    fn every_option_row_is_read_checked_and_emitted_from_the_table() {
        let options = options();
        assert_eq!(options.len(), KEYS.iter().filter(|k| k.option().is_some()).count());
        for (key, opt) in options {
            let attr = using(key, opt);
            // Read and checked: the row's example is a valid value of the row's kind.
            let def = ok(attr.clone());
            assert!(setter(&def, opt.setter).is_some(), "`{}` sets nothing", key.name);
            // Emitted: the row's setter is called, and nothing is wrong.
            let out = expand(
                attr,
                quote!(
                    fn t() {}
                ),
            );
            assert!(out.contains(&format!(". {} (", opt.setter)), "no `.{}(` in {out}", opt.setter);
            assert!(!out.contains("compile_error"), "{out}");
        }
    }

    #[test]
    fn every_row_is_a_known_key_and_a_refinement_needs_its_check() {
        let listed = error(quote!(cmd = "x", prot = 1));
        for key in KEYS {
            assert!(listed.contains(&format!("`{}`", key.name)), "`{}` is not listed", key.name);
            let Some((needed, how)) = key.needs.check() else { continue };
            assert!(KEYS.iter().any(|k| k.name == needed), "`{needed}` is not a key");
            let name = Ident::new(key.name, Span::call_site());
            let messages = check(quote!(cmd = "x", #name = 1)).err().unwrap_or_default();
            let expected = format!("`{}` only applies to {how}", key.name);
            assert!(messages.contains(&expected), "{messages:#?}");
        }
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let message = error(quote!(cmd = "x", prot = 1));
        assert!(message.starts_with("unknown `mirakuru::fixture` argument `prot`; expected one of `service`, `cmd`, `args`, `tcp`,"), "{message}");
        assert!(message.ends_with("`expected_returncode`, `load`, `name`, `scope`"), "{message}");
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
}
