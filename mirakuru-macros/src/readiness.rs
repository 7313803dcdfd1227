//! Typing the readiness keys: each one's value becomes the check it stands for (one reader
//! per key, named in `keys`'s table), and `ready = all | any` says how several combine.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;

use crate::args::{Arg, Value};
use crate::command::{list_of_texts, Cmd, Text};
use crate::values::{
    boolean, expected, is_path, non_empty_string, port, regex_error, string, Port,
};

/// What a fixture waits for.
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
    /// `redis = "{tmpdir}/redis.sock"`: over its unix socket.
    RedisUnix(LitStr),
    Postgres(Port),
    /// `postgres = "{tmpdir}/.s.PGSQL.5432"`: over its unix socket.
    PostgresUnix(LitStr),
    Mysql(Port),
    /// `mysql = "{tmpdir}/mysql.sock"`: over its unix socket.
    MysqlUnix(LitStr),
    File(LitStr),
    /// `check = <closure or function>`, with what it is called in messages.
    Check(TokenStream, String),
}

impl Readiness {
    /// The port of a check that waits on one.
    pub(crate) fn port(&self) -> Option<Port> {
        match self {
            Readiness::Tcp(p)
            | Readiness::Http(p, _)
            | Readiness::Redis(p)
            | Readiness::Postgres(p)
            | Readiness::Mysql(p) => Some(*p),
            _ => None,
        }
    }
}

pub(crate) enum HttpTarget {
    Root,
    Path(LitStr),
    Url(LitStr),
}

/// The signature of the readers below, as `keys`'s table names them.
pub(crate) type Reader = fn(&Arg) -> syn::Result<Readiness>;

/// `tcp = auto`, `tcp = 6379` or `tcp = discover`.
pub(crate) fn tcp(arg: &Arg) -> syn::Result<Readiness> {
    match &arg.value {
        Value::Ident(ident) if ident == "discover" => Ok(Readiness::Discover(ident.span())),
        Value::Str(s) if s.value() == "discover" => {
            Err(syn::Error::new_spanned(s, "write `tcp = discover` without quotes"))
        }
        Value::Int(None, lit) if lit.base10_digits().parse::<u64>().ok() == Some(0) => {
            Err(syn::Error::new_spanned(
                arg.value.tokens(),
                "port 0 cannot be waited for; write `tcp = auto` for a free port chosen at start, \
                 or `tcp = discover` to start the service on port 0 and find the port it got",
            ))
        }
        _ => port(arg).map(Readiness::Tcp),
    }
}

/// `http = auto` or a port; where it goes (`path`, `url`) is read later (`draft.rs`).
pub(crate) fn http(arg: &Arg) -> syn::Result<Readiness> {
    port(arg).map(|p| Readiness::Http(p, HttpTarget::Root))
}

/// `redis = auto`, a port, or the path of its unix socket.
pub(crate) fn redis(arg: &Arg) -> syn::Result<Readiness> {
    match socket_path(arg, "\"{tmpdir}/redis.sock\"") {
        Some(path) => path.map(Readiness::RedisUnix),
        None => port(arg).map(Readiness::Redis),
    }
}

/// `postgres = auto`, a port, or the path of its unix socket (`<dir>/.s.PGSQL.<port>`).
pub(crate) fn postgres(arg: &Arg) -> syn::Result<Readiness> {
    match socket_path(arg, "\"{tmpdir}/.s.PGSQL.5432\"") {
        Some(path) => path.map(Readiness::PostgresUnix),
        None => port(arg).map(Readiness::Postgres),
    }
}

/// `mysql = auto`, a port, or the path of its unix socket.
pub(crate) fn mysql(arg: &Arg) -> syn::Result<Readiness> {
    match socket_path(arg, "\"{tmpdir}/mysql.sock\"") {
        Some(path) => path.map(Readiness::MysqlUnix),
        None => port(arg).map(Readiness::Mysql),
    }
}

/// The socket path of a protocol check given a string (other than a quoted `"auto"`, which
/// `port` explains); `None` when the value is not a string.
fn socket_path(arg: &Arg, example: &str) -> Option<syn::Result<LitStr>> {
    match &arg.value {
        Value::Str(s) if s.value() != "auto" => Some(non_empty_string(arg, example)),
        _ => None,
    }
}

/// `unix = auto` (at `{socket}`) or `unix = "path"`.
pub(crate) fn unix(arg: &Arg) -> syn::Result<Readiness> {
    match &arg.value {
        Value::Ident(ident) if ident == "auto" => Ok(Readiness::Unix(None)),
        Value::Str(s) if s.value() == "auto" => {
            Err(syn::Error::new_spanned(s, "write `unix = auto` without quotes"))
        }
        Value::Str(_) => {
            non_empty_string(arg, "\"{tmpdir}/app.sock\"").map(|s| Readiness::Unix(Some(s)))
        }
        _ => Err(expected(arg, "`auto` or a string", "auto")),
    }
}

pub(crate) fn pid(arg: &Arg) -> syn::Result<Readiness> {
    non_empty_string(arg, "\"{tmpdir}/app.pid\"").map(Readiness::Pid)
}

pub(crate) fn file(arg: &Arg) -> syn::Result<Readiness> {
    non_empty_string(arg, "\"{tmpdir}/ready\"").map(Readiness::File)
}

/// `notify = true`; `false` is the default, and saying so is a slip.
pub(crate) fn notify(arg: &Arg) -> syn::Result<Readiness> {
    let b = boolean(arg, "true")?;
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

/// `ready_fd = 3`: an fd past stdin, stdout and stderr.
pub(crate) fn ready_fd(arg: &Arg) -> syn::Result<Readiness> {
    match &arg.value {
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
    }
}

/// `check = my_check` or `check = |cx| ...`, with what messages call it.
pub(crate) fn custom(arg: &Arg) -> syn::Result<Readiness> {
    match &arg.value {
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
    }
}

/// `output = "regex"`: the banner.
pub(crate) fn output(arg: &Arg) -> syn::Result<Readiness> {
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

/// The `exec` probe: a command line (split as the runtime splits it) or a list of arguments.
pub(crate) fn exec(arg: &Arg) -> syn::Result<Readiness> {
    match &arg.value {
        Value::Str(line) => match shell_words::split(&line.value()) {
            Err(_) => Err(syn::Error::new_spanned(
                line,
                "unbalanced quotes in `exec`: the line is split as a POSIX shell would, and a \
                     quote is never closed; close it, or write the probe as a list of arguments",
            )),
            Ok(words) if words.first().is_none_or(String::is_empty) => Err(
                syn::Error::new_spanned(line, "the probe command is empty; write the program to run"),
            ),
            Ok(_) => Ok(Readiness::Exec(Cmd::Line(Text::Lit(line.clone())))),
        },
        Value::List(span, items) => list_of_texts(
            "exec",
            *span,
            items,
            "`exec` is empty; list the probe and its arguments: `exec = [\"pg_isready\", \"-p\", \"{port}\"]`",
            "the probe's program name is empty; write the program to run first",
        )
        .map(Readiness::Exec),
        Value::Ident(_) | Value::Other(_) => {
            Ok(Readiness::Exec(Cmd::Line(Text::Expr(arg.value.tokens()))))
        }
        _ => {
            Err(expected(arg, "a command line or a list of arguments", "\"pg_isready -p {port}\""))
        }
    }
}

/// `ready = all` or `ready = any`: whether any check, instead of all, makes the fixture ready.
pub(crate) fn ready_mode(arg: &Arg) -> syn::Result<(bool, Span)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{error, millis, ok, setter};
    use crate::values::{Status, Typed};
    use quote::quote;

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
        assert!(matches!(setter(&def, "file_line"), Some(Typed::Usize(8, _))));
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
        assert_eq!(millis(&def, "exec_timeout"), Some(2000));
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
            setter(&ok(quote!(cmd = "x {port}", http = auto, status = 204)), "status"),
            Some(Typed::Status(Status::Code(204, _)))
        ));
    }
}
