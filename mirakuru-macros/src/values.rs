//! Typing the values: a value as written ([`Value`]) becomes the typed value a key takes
//! (a duration, a port, a signal, a checked string, environment entries, ...), or an error
//! saying what to write instead. Which key takes which kind of value is `keys`'s table.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Ident, LitBool, LitStr};

use crate::args::{Arg, Value};
use crate::errors::{list, Errors};

/// The kinds of value a plain option takes, each read by one function below and emitted as
/// one kind of `Spec` setter argument by `expand`.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A duration, zero allowed: `Duration::from_millis(ms)`.
    Duration,
    /// A duration other than zero: a limit of zero leaves no time at all.
    Timeout,
    /// A POSIX signal name: `Signal::SIGxxx`.
    Signal,
    /// A string that is not blank.
    Text,
    /// A regular expression, as the runtime's `regex` crate reads it.
    Regex,
    /// An HTTP method: a string that is an HTTP token.
    Method,
    /// An HTTP status: a code, or a regex matching the whole code.
    Status,
    /// `true` or `false`, both passed on.
    Bool,
    /// `true` or `false`, passed on only when `true`: `false` is the runtime's default.
    Flag,
    /// An `i32`, such as an exit code.
    I32,
    /// A line number, from 1.
    Line,
    /// `["KEY=value", ...]`: one setter call per entry, `(key, value)`.
    Env,
}

/// A plain option's value, typed; what `Kind` says, with the spans of what was written.
pub(crate) enum Typed {
    Millis(Millis),
    Signal(Ident),
    Str(LitStr),
    Bool(LitBool),
    Flag(LitBool),
    I32(i32, Span),
    Usize(usize, Span),
    Env(Vec<EnvVar>),
    Status(Status),
}

impl Typed {
    /// The strings in it, which may hold placeholders.
    pub(crate) fn strings(&self) -> Vec<LitStr> {
        match self {
            Typed::Str(lit) => vec![lit.clone()],
            Typed::Env(vars) => vars.iter().map(|v| LitStr::new(&v.value, v.span)).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether it is a `true` boolean.
    pub(crate) fn is_true(&self) -> bool {
        matches!(self, Typed::Bool(b) | Typed::Flag(b) if b.value())
    }
}

/// Reads `arg` as a value of `kind`; `example` is what the messages say to write.
pub(crate) fn read(kind: Kind, arg: &Arg, example: &str) -> syn::Result<Typed> {
    Ok(match kind {
        Kind::Duration => Typed::Millis(duration(arg, true, example)?),
        Kind::Timeout => Typed::Millis(duration(arg, false, example)?),
        Kind::Signal => Typed::Signal(signal(arg, example)?),
        Kind::Text => Typed::Str(non_empty_string(arg, example)?),
        Kind::Regex => Typed::Str(pattern(arg, example)?),
        Kind::Method => Typed::Str(method(arg, example)?),
        Kind::Status => Typed::Status(status(arg, example)?),
        Kind::Bool => Typed::Bool(boolean(arg, example)?),
        Kind::Flag => Typed::Flag(boolean(arg, example)?),
        Kind::I32 => {
            let (code, span) = int32(arg, example)?;
            Typed::I32(code, span)
        }
        Kind::Line => {
            let (line, span) = line_number(arg, example)?;
            Typed::Usize(line, span)
        }
        Kind::Env => Typed::Env(env(arg, example)?),
    })
}

#[derive(Clone, Copy)]
pub(crate) enum Port {
    Auto(Span),
    Fixed(u16, Span),
}

impl Port {
    pub(crate) fn same(self, other: Port) -> bool {
        match (self, other) {
            (Port::Auto(_), Port::Auto(_)) => true,
            (Port::Fixed(a, _), Port::Fixed(b, _)) => a == b,
            _ => false,
        }
    }

    pub(crate) fn written(self) -> String {
        match self {
            Port::Auto(_) => "auto".into(),
            Port::Fixed(p, _) => p.to_string(),
        }
    }
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

/// `` `key` takes <what>, not <what was written> ``, with a hint at how to write it.
pub(crate) fn expected(arg: &Arg, what: &str, example: &str) -> syn::Error {
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

pub(crate) fn string(arg: &Arg, example: &str) -> syn::Result<LitStr> {
    match &arg.value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(expected(arg, "a string", example)),
    }
}

pub(crate) fn non_empty_string(arg: &Arg, example: &str) -> syn::Result<LitStr> {
    let s = string(arg, example)?;
    if s.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(
            &s,
            format!("`{}` is empty; write `{} = {example}`", arg.name(), arg.name()),
        ));
    }
    Ok(s)
}

pub(crate) fn boolean(arg: &Arg, example: &str) -> syn::Result<LitBool> {
    match &arg.value {
        Value::Bool(b) => Ok(b.clone()),
        _ => Err(expected(arg, "`true` or `false`", example)),
    }
}

/// `name = pg`: an identifier, which parameters bind to.
pub(crate) fn name(arg: &Arg) -> syn::Result<Ident> {
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

/// `scope = run` (true) or `scope = process` (false, the default).
pub(crate) fn scope(arg: &Arg) -> syn::Result<bool> {
    match &arg.value {
        Value::Ident(ident) if ident == "run" => Ok(true),
        Value::Ident(ident) if ident == "process" => Ok(false),
        Value::Str(s) if matches!(s.value().as_str(), "run" | "process") => {
            Err(syn::Error::new_spanned(
                s,
                format!("write the scope without quotes: `scope = {}`", s.value()),
            ))
        }
        _ => Err(expected(
            arg,
            "`run` (one service for the whole test run) or `process` (one per test process, \
             the default)",
            "run",
        )),
    }
}

/// The presets `service` names, as `mirakuru::services` has them.
pub(crate) const SERVICES: &[&str] = &["postgres", "redis", "mariadb", "memcached", "nginx"];

/// `service = postgres`: one of [`SERVICES`].
pub(crate) fn service(arg: &Arg) -> syn::Result<syn::Ident> {
    let known = SERVICES.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    match &arg.value {
        Value::Ident(ident) if SERVICES.contains(&ident.to_string().as_str()) => Ok(ident.clone()),
        Value::Str(s) if SERVICES.contains(&s.value().as_str()) => Err(syn::Error::new_spanned(
            s,
            format!("write the service without quotes: `service = {}`", s.value()),
        )),
        Value::Ident(ident) => Err(syn::Error::new_spanned(
            ident,
            format!(
                "`{ident}` is not a ready-made server; `service` takes one of {known}, or give \
                 your own command with `cmd`"
            ),
        )),
        _ => Err(expected(arg, &format!("a ready-made server: {known}"), "postgres")),
    }
}

/// A regex string, such as `exec_output` and `file_matches` take.
fn pattern(arg: &Arg, example: &str) -> syn::Result<LitStr> {
    let s = non_empty_string(arg, example)?;
    if let Some(why) = regex_error(&s.value()) {
        return Err(syn::Error::new_spanned(
            &s,
            format!(
                "the `{}` pattern is not a valid regular expression: {why}; escape special \
                 characters with a backslash",
                arg.name()
            ),
        ));
    }
    Ok(s)
}

/// A 1-based line number.
fn line_number(arg: &Arg, example: &str) -> syn::Result<(usize, Span)> {
    match &arg.value {
        Value::Int(None, lit) => match lit.base10_digits().parse::<usize>() {
            Ok(n) if n >= 1 => Ok((n, lit.span())),
            _ => Err(syn::Error::new_spanned(
                lit,
                format!("lines are numbered from 1: write `{} = {example}`", arg.name()),
            )),
        },
        _ => Err(expected(arg, "a line number", example)),
    }
}

/// `auto` or a port number, for the checks that wait on a port.
pub(crate) fn port(arg: &Arg) -> syn::Result<Port> {
    let key = arg.name();
    match &arg.value {
        Value::Ident(ident) if ident == "auto" => Ok(Port::Auto(ident.span())),
        Value::Int(minus, lit) => {
            let value = lit.base10_digits().parse::<u64>().ok();
            match (minus, value) {
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

/// `"30s"`-style durations, or an integer number of seconds.
fn duration(arg: &Arg, zero_ok: bool, example: &str) -> syn::Result<Millis> {
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
                    format!("`{key} = {}` {why}", s.to_token_stream()),
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
        _ => return Err(expected(arg, "a duration", example)),
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
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
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

/// `["KEY=value", ...]`.
fn env(arg: &Arg, example: &str) -> syn::Result<Vec<EnvVar>> {
    let key = arg.name();
    let Value::List(_, items) = &arg.value else {
        if let Value::Str(s) = &arg.value {
            return Err(syn::Error::new_spanned(
                s,
                format!("`{key}` is a list: write `{key} = [{}]`", s.to_token_stream()),
            ));
        }
        return Err(expected(arg, "a list of `\"KEY=value\"` strings", example));
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
                    format!("`{key}` lists `\"KEY=value\"` strings, not {}", other.kind()),
                );
                continue;
            }
        };
        if let Some(var) = errors.take(env_entry(&key, s)) {
            vars.push(var);
        }
    }
    errors.finish(vars)
}

/// One `"KEY=value"`.
fn env_entry(key: &str, s: &LitStr) -> syn::Result<EnvVar> {
    let text = s.value();
    let Some((name, value)) = text.split_once('=') else {
        return Err(syn::Error::new_spanned(
            s,
            format!(
                "`{key}` entries are `\"KEY=value\"`, and {text:?} has no `=`; write `\"{text}=value\"`"
            ),
        ));
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() {
        Err(syn::Error::new_spanned(
            s,
            format!("the variable name is missing before `=` in {text:?}; write `\"KEY=value\"`"),
        ))
    } else if !valid {
        Err(syn::Error::new_spanned(
            s,
            format!("`{name}` is not a valid environment variable name; use letters, digits and `_`, not starting with a digit"),
        ))
    } else {
        Ok(EnvVar { key: name.to_string(), value: value.to_string(), span: s.span() })
    }
}

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

/// The signal's name with the `SIG` prefix, spanned on what the user wrote.
fn signal(arg: &Arg, example: &str) -> syn::Result<Ident> {
    let key = arg.name();
    let (written, span) = match &arg.value {
        Value::Ident(ident) => (ident.to_string(), ident.span()),
        Value::Str(s) => (s.value(), s.span()),
        // `Signal::SIGINT`, `mirakuru::Signal::SIGINT`: the name is the last segment.
        Value::Other(tokens) if is_path(tokens) => match tokens.clone().into_iter().last() {
            Some(TokenTree::Ident(ident)) => (ident.to_string(), ident.span()),
            _ => return Err(expected(arg, "a signal name", example)),
        },
        Value::Int(..) => {
            return Err(syn::Error::new_spanned(
                arg.value.tokens(),
                format!("write the signal's name, not its number: `{key} = {example}`"),
            ))
        }
        _ => return Err(expected(arg, "a signal name", example)),
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

/// Whether `tokens` are a path such as `a::b::c`.
pub(crate) fn is_path(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().all(|t| match t {
        TokenTree::Ident(_) => true,
        TokenTree::Punct(p) => p.as_char() == ':',
        _ => false,
    })
}

/// An `i32`, with the span of its `-` sign when negative.
fn int32(arg: &Arg, example: &str) -> syn::Result<(i32, Span)> {
    match &arg.value {
        Value::Int(minus, lit) => {
            let text = format!("{}{}", if minus.is_some() { "-" } else { "" }, lit.base10_digits());
            text.parse::<i32>().map(|code| (code, minus.unwrap_or_else(|| lit.span()))).map_err(
                |_| {
                    syn::Error::new_spanned(
                        arg.value.tokens(),
                        format!("`{}` {text} does not fit an i32", arg.name()),
                    )
                },
            )
        }
        _ => Err(expected(arg, "an integer", example)),
    }
}

fn method(arg: &Arg, example: &str) -> syn::Result<LitStr> {
    let method = string(arg, example)?;
    let text = method.value();
    let token = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(syn::Error::new_spanned(&method, format!("{text:?} is not an HTTP method; write one such as `\"HEAD\"`, `\"GET\"` or `\"POST\"`")));
    }
    Ok(method)
}

fn status(arg: &Arg, example: &str) -> syn::Result<Status> {
    match &arg.value {
        Value::Int(None, lit) => match lit.base10_digits().parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(Status::Code(code, lit.span())),
            _ => Err(syn::Error::new_spanned(lit, "an HTTP status code is from 100 to 599")),
        },
        Value::Str(s) => match regex_error(&s.value()) {
            None => Ok(Status::Pattern(s.clone())),
            Some(why) => Err(syn::Error::new_spanned(
                s,
                format!("the `{key}` pattern is not a valid regular expression: {why}; write a code (`{key} = {example}`) or a pattern such as `\"2\\\\d\\\\d\"`", key = arg.name()),
            )),
        },
        _ => Err(expected(arg, "a status code or a regex string", example)),
    }
}

/// Why `pattern` is not a regex the runtime's `regex` crate accepts, or `None`.
pub(crate) fn regex_error(pattern: &str) -> Option<String> {
    let error = regex_syntax::ParserBuilder::new().multi_line(true).build().parse(pattern).err()?;
    Some(match error {
        regex_syntax::Error::Parse(e) => e.kind().to_string(),
        regex_syntax::Error::Translate(e) => e.kind().to_string(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::Readiness;
    use crate::tests::{env, error, millis, ok, signal};
    use quote::quote;

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
        assert_eq!(millis(&ok(quote!(cmd = "x", stop_timeout = 0)), "stop_timeout"), Some(0));
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
        assert_eq!(env(&ok(quote!(cmd = "x", env = ["A=b=c", "E="]))).len(), 2);
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
            assert_eq!(signal(&def, "stop_signal").as_deref(), Some("SIGINT"));
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
}
