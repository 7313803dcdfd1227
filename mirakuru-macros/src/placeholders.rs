//! Checking the placeholders in strings: `{port}`, `{host}`, `{tmpdir}` and `{socket}` are
//! filled in at start, any other `{word}` is a mistake, and `{port}` only means something
//! with a port chosen at start.

use syn::LitStr;

use crate::command::{Cmd, Text};
use crate::errors::{list, Errors};
use crate::readiness::Readiness;

/// The placeholders strings may use.
const PLACEHOLDERS: &[&str] = &["port", "host", "tmpdir", "socket"];

/// What `{port}` can stand for in a fixture.
#[derive(Clone, Copy)]
pub(crate) enum PortUse {
    Auto,
    Fixed(u16),
    /// `tcp = discover`: known only once the service listens.
    Discover,
    None,
    /// Not known: a readiness check has an error.
    Unknown,
}

/// The `{name}`s in `text`; `${VAR}` shell expansions and braces around anything but a
/// word (`{print $1}`, `{a,b}`, `{}`) are not placeholders.
pub(crate) fn find(text: &str) -> Vec<&str> {
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

/// Checks the placeholders of one string, the value of `key`.
pub(crate) fn check(lit: &LitStr, key: &str, port: PortUse, errors: &mut Errors) {
    let text = lit.value();
    let mut reported: Vec<&str> = Vec::new();
    for word in find(&text) {
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
        } else if word == "port" {
            port_placeholder(lit, port, errors);
        }
    }
}

/// `{port}` in `lit`, with the fixture's port used as `port` says.
fn port_placeholder(lit: &LitStr, port: PortUse, errors: &mut Errors) {
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

/// Checks the placeholders in the strings of a readiness check (the HTTP check's are its
/// `path` or `url`, checked as they are read).
pub(crate) fn in_check(key: &str, check: &Readiness, port: PortUse, errors: &mut Errors) {
    match check {
        Readiness::Unix(Some(path))
        | Readiness::Pid(path)
        | Readiness::File(path)
        | Readiness::RedisUnix(path)
        | Readiness::PostgresUnix(path)
        | Readiness::MysqlUnix(path) => self::check(path, key, port, errors),
        Readiness::Exec(cmd) => in_command(key, cmd, port, errors),
        _ => {}
    }
}

/// Checks the placeholders in the literal strings of a command, the value of `key`.
pub(crate) fn in_command(key: &str, cmd: &Cmd, port: PortUse, errors: &mut Errors) {
    for text in cmd.texts() {
        if let Text::Lit(lit) = text {
            check(lit, key, port, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{error, ok};
    use quote::quote;

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
            find("a {port} ${x} {} {a,b} {print $1} {tmpdir}/{y_1}"),
            ["port", "tmpdir", "y_1"]
        );
    }
}
