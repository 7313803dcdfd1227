//! Reading the attribute's arguments: `key = value`, separated by commas, each value kept as
//! it was written ([`Value`]). Nothing here knows the keys; `keys` and `values` do.

use proc_macro2::{Delimiter, Group, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Attribute, Ident, Lit, LitBool, LitFloat, LitInt, LitStr, Meta};

use crate::errors::Errors;

/// One `key = value` argument.
pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) value: Value,
}

impl Arg {
    /// The key without `r#`.
    pub(crate) fn name(&self) -> String {
        self.key.unraw().to_string()
    }
}

/// A value as written. Which kinds a key accepts is decided by `validate`.
pub(crate) enum Value {
    Str(LitStr),
    /// An integer, with the span of its `-` sign when negative.
    Int(Option<Span>, LitInt),
    Float(LitFloat),
    Bool(LitBool),
    Ident(Ident),
    /// `[a, b, ...]`: the span of the brackets and the elements.
    List(Span, Vec<Value>),
    /// Anything else (a path, an expression, another literal), kept for its span.
    Other(TokenStream),
    /// A value that could not be read; its error is already reported.
    Invalid,
}

impl Value {
    /// Tokens to span an error on.
    pub(crate) fn tokens(&self) -> TokenStream {
        match self {
            Value::Str(lit) => lit.to_token_stream(),
            Value::Int(minus, lit) => {
                let mut tokens = TokenStream::new();
                if let Some(span) = minus {
                    let mut punct = Punct::new('-', Spacing::Alone);
                    punct.set_span(*span);
                    tokens.extend([TokenTree::Punct(punct)]);
                }
                lit.to_tokens(&mut tokens);
                tokens
            }
            Value::Float(lit) => lit.to_token_stream(),
            Value::Bool(lit) => lit.to_token_stream(),
            Value::Ident(ident) => ident.to_token_stream(),
            Value::List(span, _) => {
                let mut group = Group::new(Delimiter::Bracket, TokenStream::new());
                group.set_span(*span);
                TokenTree::Group(group).into()
            }
            Value::Other(tokens) => tokens.clone(),
            Value::Invalid => TokenStream::new(),
        }
    }

    /// What kind of value this is, for messages: "a string", "a list", ...
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(..) => "an integer",
            Value::Float(_) => "a number with a fraction",
            Value::Bool(_) => "a boolean",
            Value::Ident(_) => "an identifier",
            Value::List(..) => "a list",
            Value::Other(_) | Value::Invalid => "an expression",
        }
    }
}

/// Reads the attribute's arguments. Each comma-separated argument is read on its own, so one
/// malformed argument does not hide the mistakes in the others.
pub(crate) fn args(tokens: TokenStream) -> (Vec<Arg>, Errors) {
    let mut errors = Errors::default();
    let mut args = Vec::new();
    for chunk in split_commas(tokens) {
        if let Some(arg) = arg(chunk, &mut errors) {
            args.push(arg);
        }
    }
    (args, errors)
}

/// Splits at the commas outside brackets; empty pieces (a trailing comma) are dropped, a
/// doubled comma is kept as a piece holding just that comma.
fn split_commas(tokens: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    for tree in tokens {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                if current.is_empty() {
                    // `,,` or a leading comma: keep it, so it gets an error of its own.
                    chunks.push(vec![tree]);
                } else {
                    chunks.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(tree),
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// `key = value`.
fn arg(chunk: Vec<TokenTree>, errors: &mut Errors) -> Option<Arg> {
    let mut trees = chunk.into_iter();
    let key = match trees.next()? {
        TokenTree::Ident(key) => key,
        other => {
            errors.spanned(&other, "expected an argument such as `cmd = \"...\"` or `tcp = auto`");
            return None;
        }
    };
    let name = key.unraw();
    match trees.next() {
        Some(TokenTree::Punct(eq)) if eq.as_char() == '=' => {}
        Some(other) => {
            errors.spanned(&other, format!("expected `=` after `{name}`, as in `{name} = ...`"));
            return Some(Arg { key, value: Value::Invalid });
        }
        None => {
            errors.spanned(&key, format!("`{name}` needs a value: write `{name} = ...`"));
            return Some(Arg { key, value: Value::Invalid });
        }
    }
    let rest: Vec<TokenTree> = trees.collect();
    if rest.is_empty() {
        errors.spanned(&key, format!("`{name}` needs a value after `=`"));
        return Some(Arg { key, value: Value::Invalid });
    }
    Some(Arg { key, value: value(rest, errors) })
}

/// A value: a literal, `-` and an integer, an identifier, `[...]`, or anything else (kept).
fn value(trees: Vec<TokenTree>, errors: &mut Errors) -> Value {
    match trees.as_slice() {
        [TokenTree::Literal(lit)] => match Lit::new(lit.clone()) {
            Lit::Str(s) => Value::Str(s),
            Lit::Int(i) => Value::Int(None, i),
            Lit::Float(f) => Value::Float(f),
            _ => Value::Other(trees.into_iter().collect()),
        },
        [TokenTree::Punct(minus), TokenTree::Literal(lit)] if minus.as_char() == '-' => {
            match Lit::new(lit.clone()) {
                Lit::Int(i) => Value::Int(Some(minus.span()), i),
                _ => Value::Other(trees.into_iter().collect()),
            }
        }
        [TokenTree::Ident(ident)] if ident == "true" || ident == "false" => {
            Value::Bool(LitBool::new(ident == "true", ident.span()))
        }
        [TokenTree::Ident(ident)] => Value::Ident(ident.clone()),
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::Bracket => {
            let mut items = Vec::new();
            for chunk in split_commas(group.stream()) {
                match chunk.as_slice() {
                    [TokenTree::Punct(p)] if p.as_char() == ',' => {
                        errors.spanned(p, "unexpected `,`: a list is written `[a, b]`");
                    }
                    _ => items.push(value(chunk, errors)),
                }
            }
            Value::List(group.span(), items)
        }
        // What a `macro_rules!` passes as `$value:expr`.
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::None => {
            value(group.stream().into_iter().collect(), errors)
        }
        _ => Value::Other(trees.into_iter().collect()),
    }
}

/// The argument tokens of a stacked fixture attribute.
pub(crate) fn attr_args(attr: &Attribute) -> syn::Result<TokenStream> {
    match &attr.meta {
        Meta::List(list) => Ok(list.tokens.clone()),
        Meta::Path(_) => Ok(TokenStream::new()),
        Meta::NameValue(nv) => Err(syn::Error::new_spanned(
            nv,
            "write the fixture's arguments in parentheses: #[mirakuru::fixture(cmd = \"...\")]",
        )),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_args(tokens: TokenStream) -> Vec<Arg> {
        let (args, errors) = args(tokens);
        assert!(errors.is_empty(), "unexpected errors");
        args
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        match args(tokens).1.finish(()) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn reads_every_kind_of_value() {
        let args = parse_args(quote!(
            cmd = "redis-server",
            tcp = auto,
            expected_returncode = -15,
            timeout = 30,
            shell = true,
            env = ["A=1", "B=2"],
            stop_signal = Signal::SIGINT,
            x = 1.5,
        ));
        let kinds: Vec<(String, &str)> = args.iter().map(|a| (a.name(), a.value.kind())).collect();
        assert_eq!(
            kinds,
            [
                ("cmd".into(), "a string"),
                ("tcp".into(), "an identifier"),
                ("expected_returncode".into(), "an integer"),
                ("timeout".into(), "an integer"),
                ("shell".into(), "a boolean"),
                ("env".into(), "a list"),
                ("stop_signal".into(), "an expression"),
                ("x".into(), "a number with a fraction"),
            ]
        );
        assert!(matches!(&args[2].value, Value::Int(Some(_), lit) if lit.base10_digits() == "15"));
        assert!(matches!(&args[5].value, Value::List(_, items) if items.len() == 2));
    }

    #[test]
    fn a_raw_key_is_read_without_its_prefix() {
        assert_eq!(parse_args(quote!(r#name = pg))[0].name(), "name");
    }

    #[test]
    fn malformed_arguments_are_each_reported_and_the_others_still_read() {
        let tokens = quote!(cmd "x", "tcp", shell, timeout =, name = pg);
        assert_eq!(
            messages(tokens.clone()),
            [
                "expected `=` after `cmd`, as in `cmd = ...`",
                "expected an argument such as `cmd = \"...\"` or `tcp = auto`",
                "`shell` needs a value: write `shell = ...`",
                "`timeout` needs a value after `=`",
            ]
        );
        let (args, _) = args(tokens);
        let names: Vec<String> = args.iter().map(Arg::name).collect();
        assert_eq!(names, ["cmd", "shell", "timeout", "name"]);
        assert!(matches!(args[0].value, Value::Invalid));
        assert!(matches!(args[3].value, Value::Ident(_)));
    }

    #[test]
    fn a_doubled_comma_is_an_error() {
        assert_eq!(
            messages(quote!(tcp = auto,, cmd = "x")),
            ["expected an argument such as `cmd = \"...\"` or `tcp = auto`"]
        );
        assert_eq!(
            messages(quote!(args = ["a",, "b"])),
            ["unexpected `,`: a list is written `[a, b]`"]
        );
    }
}
