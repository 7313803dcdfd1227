//! Typing the command: `cmd = "line"` or `args = [...]` (and the `exec` probe's, which is
//! written the same way), split as the runtime splits it so that bad quoting is a compile
//! error.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;

use crate::args::{Arg, Value};
use crate::errors::Errors;
use crate::values::expected;

pub(crate) enum Cmd {
    Line(Text),
    Args(Vec<Text>),
    /// `service = postgres`: a preset, which runs its own command.
    Service(syn::Ident),
}

impl Cmd {
    /// Its strings, each a literal or an expression.
    pub(crate) fn texts(&self) -> Vec<&Text> {
        match self {
            Cmd::Line(line) => vec![line],
            Cmd::Args(args) => args.iter().collect(),
            Cmd::Service(_) => Vec::new(),
        }
    }
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

/// `cmd = "program --flag"`: a command line, or an expression giving one.
pub(crate) fn command_line(arg: &Arg, shell: bool) -> syn::Result<Cmd> {
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

/// `args = ["program", "--flag"]`.
pub(crate) fn arg_list(arg: &Arg) -> syn::Result<Cmd> {
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
    list_of_texts(
        "args",
        *span,
        items,
        "`args` is empty; list the program and its arguments: `args = [\"program\", \"--flag\"]`",
        "the program name is empty; write the program to run first",
    )
}

/// `[a, b, ...]` (the brackets at `span`) for `key`: strings, or expressions of a string type
/// left to the runtime. `empty` and `no_program` say what is wrong with an empty list and an
/// empty program name.
pub(crate) fn list_of_texts(
    key: &str,
    span: Span,
    items: &[Value],
    empty: &str,
    no_program: &str,
) -> syn::Result<Cmd> {
    let mut errors = Errors::default();
    let mut args = Vec::new();
    for item in items {
        match item {
            Value::Str(s) => args.push(Text::Lit(s.clone())),
            Value::Ident(_) | Value::Other(_) => args.push(Text::Expr(item.tokens())),
            Value::Invalid => {}
            other => errors.spanned(
                other.tokens(),
                format!("`{key}` lists strings, not {}; write it in quotes", other.kind()),
            ),
        }
    }
    if items.is_empty() {
        errors.at(span, empty);
    } else if let Some(Text::Lit(first)) =
        args.first().filter(|a| a.value().is_some_and(|v| v.is_empty()))
    {
        errors.spanned(first, no_program);
    }
    errors.finish(Cmd::Args(args))
}

/// The program's file name, to call the fixture by in messages.
pub(crate) fn program_name(cmd: &Cmd, shell: bool) -> String {
    let first = match cmd {
        Cmd::Line(line) if !shell => line
            .value()
            .and_then(|line| shell_words::split(&line).ok())
            .and_then(|words| words.into_iter().next()),
        Cmd::Line(line) => {
            line.value().and_then(|l| l.split_whitespace().next().map(str::to_string))
        }
        Cmd::Args(args) => args.first().and_then(Text::value),
        Cmd::Service(ident) => Some(ident.to_string()),
    };
    first
        .as_deref()
        .and_then(|program| program.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("fixture")
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::tests::{check, error, ok};
    use quote::quote;

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
    fn quoting_is_checked_unless_a_shell_runs_the_line() {
        assert!(error(quote!(cmd = "echo 'hi")).starts_with("unbalanced quotes in `cmd`"));
        ok(quote!(cmd = "echo 'hi", shell = true));
        ok(quote!(cmd = "redis-server --save ''"));
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
}
