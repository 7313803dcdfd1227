//! The generated code, and the pipeline that leads to it: read the item, read and check every
//! fixture attribute on it, bind the parameters, emit. When anything is wrong the item is
//! still emitted, as close to what the user wrote as compiles, next to the errors: IDEs keep
//! completing inside the test, and no secondary error hides the real one.

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, ReturnType, Type};

use crate::args;
use crate::ast::{Item, SharedStatic, TestFn};
use crate::errors::Errors;
use crate::fallback;
use crate::validate::{self, Anchor, Binding, Cmd, Def, HttpTarget, Port, Readiness, Status};

/// `#[mirakuru::fixture(args)] item`: the item read, every fixture attribute on it read and
/// checked, the parameters bound, the code emitted; or, on any error, the fallback.
pub(crate) fn fixture(args: TokenStream, item: TokenStream) -> TokenStream {
    match Item::from_tokens(item.clone()) {
        Ok(Item::Fn(f)) => match checked_fn(args, &f) {
            Ok((defs, bindings)) => fn_with_fixtures(f, &defs, &bindings),
            Err(error) => fallback::test_fn(f, error),
        },
        Ok(Item::Static(s)) => match checked_static(args, &s) {
            Ok(def) => shared_static(s, &def),
            Err(error) => fallback::shared_static(s, error),
        },
        Ok(Item::Other(other)) => fallback::other_item(other),
        Err(error) => fallback::unreadable(item, error),
    }
}

/// Reads and checks the fixture attribute being expanded and the ones stacked under it, in
/// source order; `None` for each that has errors (recorded in `errors`).
fn fixtures(
    args: TokenStream,
    stacked: &[Attribute],
    default_name: Option<&str>,
    errors: &mut Errors,
) -> Vec<Option<Def>> {
    let mut defs = Vec::with_capacity(1 + stacked.len());
    let (ours, parse_errors) = args::args(args);
    errors.extend(parse_errors);
    defs.push(validate::fixture(&ours, &Anchor::CallSite, default_name, errors));
    for attr in stacked {
        let def = errors.take(args::attr_args(attr)).and_then(|tokens| {
            let (args, parse_errors) = args::args(tokens);
            errors.extend(parse_errors);
            validate::fixture(&args, &Anchor::Attr(attr), default_name, errors)
        });
        defs.push(def);
    }
    defs
}

fn checked_fn(args: TokenStream, f: &TestFn) -> syn::Result<(Vec<Def>, Vec<Binding>)> {
    let mut errors = Errors::default();
    let defs: Option<Vec<Def>> =
        fixtures(args, &f.stacked, None, &mut errors).into_iter().collect();
    let bindings = defs.as_ref().and_then(|defs| {
        errors.take(validate::unique_names(defs));
        errors.take(validate::bind(&f.sig, defs))
    });
    errors.finish_with(defs.zip(bindings))
}

fn checked_static(args: TokenStream, s: &SharedStatic) -> syn::Result<Def> {
    let mut errors = Errors::default();
    let default_name = s.ident.unraw().to_string().to_lowercase();
    let def = fixtures(args, &[], Some(&default_name), &mut errors).into_iter().next().flatten();
    for attr in &s.stacked {
        errors.spanned(
            attr,
            "a shared fixture's `static` holds one fixture; declare one `static` per fixture",
        );
    }
    if let Some(token) = &s.mutability {
        errors.spanned(
            token,
            "a shared fixture cannot be `static mut`; remove `mut`: it is shared safely without it",
        );
    }
    if let Some((eq, expr)) = &s.init {
        errors.spanned(
            quote!(#eq #expr),
            "a shared fixture's `static` has no initializer: #[mirakuru::fixture(...)] writes it; remove `= ...`",
        );
    }
    errors.finish_with(def)
}

/// The test: fixtures started in order before the body, parameters bound, the body run, the
/// fixtures stopped in reverse (with their output printed if the body returned an `Err`; a
/// panicking body is covered by `Fixtures`'s `Drop`).
fn fn_with_fixtures(f: TestFn, defs: &[Def], bindings: &[Binding]) -> TokenStream {
    let TestFn { attrs, vis, mut sig, body, .. } = f;
    // Every parameter is a fixture; they become the `let`s below.
    sig.inputs = Punctuated::new();
    // Mixed-site names: the body cannot see them, nor clash with them.
    let fixtures = Ident::new("__mirakuru_fixtures", Span::mixed_site());
    let run = Ident::new("__mirakuru_body", Span::mixed_site());
    let result = Ident::new("__mirakuru_result", Span::mixed_site());
    let specs = defs.iter().map(spec);
    let lets = bindings.iter().map(|Binding { pat, ty, index }| {
        let index = Literal::usize_unsuffixed(*index);
        // All of `__mirakuru_fixtures.get(i)` is located at the type (with the hygiene of
        // the other generated names), so a type mismatch is reported there.
        let at = ty.span();
        let fixtures = Ident::new("__mirakuru_fixtures", Span::mixed_site().located_at(at));
        quote_spanned!(at=> let #pat: #ty = #fixtures.get(#index);)
    });
    let output = match &sig.output {
        ReturnType::Type(_, ty) if !is_unit(ty) => Some(ty.clone()),
        _ => None,
    };
    let is_async = sig.asyncness.is_some();
    // The body runs in a closure (or an async block), so that `return` and `?` leave the body
    // and not the test: the fixtures are finished after it either way. The closure is bound
    // before it is called, which clippy does not mistake for a redundant closure call.
    let run_body = match (&output, is_async) {
        (None, false) => quote! {
            let #run = || #body;
            #run();
        },
        (None, true) => quote! {
            async #body.await;
        },
        // `impl Trait` cannot be written as a closure's return type: let inference find it.
        (Some(ty), false) if mentions_impl(ty) => quote! {
            let #run = || #body;
            let #result = #run();
        },
        (Some(ty), false) => quote! {
            let #run = || -> #ty #body;
            let #result = #run();
        },
        (Some(ty), true) if mentions_impl(ty) => quote! {
            let #result = async #body.await;
        },
        // The annotation lets `?` inside the block infer its error type.
        (Some(ty), true) => quote! {
            let #result: #ty = async #body.await;
        },
    };
    let finish = match output {
        None => quote! {
            #fixtures.finish(false);
        },
        Some(_) => quote! {
            {
                // Autoref specialization: `Err` results are failures, anything else is not.
                #[allow(unused_imports)]
                use ::mirakuru::__private::{OtherNotFailed as _, ResultFailed as _};
                #[allow(clippy::needless_borrow)]
                #fixtures.finish((&#result).__mirakuru_failed());
            }
            #result
        },
    };
    let stmts = quote! {
        let #fixtures = ::mirakuru::__private::Fixtures::start(::std::vec![#(#specs),*]);
        #(#lets)*
        #run_body
        #finish
    };
    // The braces of the user's body: an item whose every end is the user's own is linted as
    // the user's (an unused test helper is still reported as dead code).
    let mut block = Group::new(Delimiter::Brace, stmts);
    block.set_span(body.span());
    quote! {
        #(#attrs)*
        #vis #sig #block
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

fn mentions_impl(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(ident) => ident == "impl",
            TokenTree::Group(group) => walk(group.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

/// The static, initialized with its fixture's `Spec`.
fn shared_static(s: SharedStatic, def: &Def) -> TokenStream {
    let SharedStatic { attrs, vis, static_token, ident, ty, semi_token, .. } = s;
    let spec = spec(def);
    quote! {
        #(#attrs)*
        #vis #static_token #ident: #ty = ::mirakuru::__private::SharedFixture::new(|| #spec) #semi_token
    }
}

/// `Spec::new(name, cmd).tcp(...)...`: the runtime description of one fixture.
fn spec(def: &Def) -> TokenStream {
    let name = LitStr::new(&def.name, Span::call_site());
    let mut chain = match &def.cmd {
        Cmd::Line(line) => quote!(::mirakuru::__private::Spec::new(#name, #line)),
        Cmd::Args(args) => {
            // Literals and expressions of any string type share one array type.
            let args = args
                .iter()
                .map(|a| quote!(::core::convert::Into::<::std::string::String>::into(#a)));
            quote!(::mirakuru::__private::Spec::args(#name, [#(#args),*]))
        }
    };
    for readiness in &def.readiness {
        chain.extend(readiness_setter(readiness));
    }
    if def.ready_any {
        chain.extend(quote!(.ready_any(true)));
    }
    if def.owned {
        chain.extend(quote!(.owned(true)));
    }
    if let Some(pattern) = &def.exec_output {
        chain.extend(quote!(.exec_output(#pattern)));
    }
    if let Some(millis) = &def.exec_timeout {
        let mut ms = Literal::u64_unsuffixed(millis.ms);
        ms.set_span(millis.span);
        chain.extend(quote!(.exec_timeout(::mirakuru::__private::Duration::from_millis(#ms))));
    }
    if let Some(pattern) = &def.file_matches {
        chain.extend(quote!(.file_matches(#pattern)));
    }
    if let Some((line, span)) = def.file_line {
        let mut line = Literal::usize_unsuffixed(line);
        line.set_span(span);
        chain.extend(quote!(.file_line(#line)));
    }
    if let Some(host) = &def.host {
        chain.extend(quote!(.host(#host)));
    }
    for (setter, millis) in [("timeout", &def.timeout), ("stop_timeout", &def.stop_timeout)] {
        if let Some(millis) = millis {
            let setter = Ident::new(setter, Span::call_site());
            let mut ms = Literal::u64_unsuffixed(millis.ms);
            ms.set_span(millis.span);
            chain.extend(quote!(.#setter(::mirakuru::__private::Duration::from_millis(#ms))));
        }
    }
    for var in &def.env {
        let key = LitStr::new(&var.key, var.span);
        let value = LitStr::new(&var.value, var.span);
        chain.extend(quote!(.env(#key, #value)));
    }
    if let Some(cwd) = &def.cwd {
        chain.extend(quote!(.cwd(#cwd)));
    }
    if let Some(shell) = &def.shell {
        chain.extend(quote!(.shell(#shell)));
    }
    if let Some(user) = &def.user {
        chain.extend(quote!(.user(#user)));
    }
    if let Some(signal) = &def.stop_signal {
        chain.extend(quote!(.stop_signal(::mirakuru::__private::Signal::#signal)));
    }
    if let Some(signal) = &def.kill_signal {
        chain.extend(quote!(.kill_signal(::mirakuru::__private::Signal::#signal)));
    }
    if let Some((code, span)) = def.expected_returncode {
        let mut code = Literal::i32_unsuffixed(code);
        code.set_span(span);
        chain.extend(quote!(.expected_returncode(#code)));
    }
    if let Some(method) = &def.method {
        chain.extend(quote!(.method(#method)));
    }
    match &def.status {
        Some(Status::Code(code, span)) => {
            let mut code = Literal::u16_suffixed(*code);
            code.set_span(*span);
            chain.extend(quote!(.status(#code)));
        }
        Some(Status::Pattern(pattern)) => chain.extend(quote!(.status(#pattern))),
        None => {}
    }
    chain
}

/// The `Spec` setter of one readiness check.
fn readiness_setter(readiness: &Readiness) -> TokenStream {
    match readiness {
        Readiness::Tcp(p) => {
            let p = port(*p);
            quote!(.tcp(#p))
        }
        Readiness::Discover(span) => quote_spanned!(*span=> .discover_port()),
        Readiness::Http(p, HttpTarget::Root) => {
            let p = port(*p);
            quote!(.http(#p, "/"))
        }
        Readiness::Http(p, HttpTarget::Path(path)) => {
            let p = port(*p);
            quote!(.http(#p, #path))
        }
        Readiness::Http(p, HttpTarget::Url(url)) => {
            let p = port(*p);
            quote!(.http_url(#p, #url))
        }
        Readiness::Unix(None) => quote!(.unix(::core::option::Option::None)),
        Readiness::Unix(Some(path)) => quote!(.unix(::core::option::Option::Some(#path))),
        Readiness::Pid(path) => quote!(.pid(#path)),
        Readiness::Output(banner) => quote!(.output(#banner)),
        Readiness::Notify(span) => quote_spanned!(*span=> .notify()),
        Readiness::ReadyFd(fd, span) => {
            let mut fd = Literal::i32_unsuffixed(*fd);
            fd.set_span(*span);
            quote!(.ready_fd(#fd))
        }
        Readiness::Exec(Cmd::Line(line)) => quote!(.exec(#line)),
        Readiness::Exec(Cmd::Args(args)) => {
            let args = args
                .iter()
                .map(|a| quote!(::core::convert::Into::<::std::string::String>::into(#a)));
            quote!(.exec_args([#(#args),*]))
        }
        Readiness::Redis(p) => {
            let p = port(*p);
            quote!(.redis(#p))
        }
        Readiness::Postgres(p) => {
            let p = port(*p);
            quote!(.postgres(#p))
        }
        Readiness::File(path) => quote!(.file(#path)),
        Readiness::Check(check, what) => {
            let what = LitStr::new(what, Span::call_site());
            quote!(.custom(#what, #check))
        }
    }
}

fn port(port: Port) -> TokenStream {
    match port {
        Port::Auto(span) => quote_spanned!(span=> ::mirakuru::__private::Port::Auto),
        Port::Fixed(number, span) => {
            let mut number = Literal::u16_unsuffixed(number);
            number.set_span(span);
            quote!(::mirakuru::__private::Port::Fixed(#number))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion, as text, for comparing with `quote!`ed expectations.
    fn expand(args: TokenStream, item: TokenStream) -> String {
        fixture(args, item).to_string()
    }

    fn errors_in(expansion: &str) -> Vec<String> {
        expansion
            .split(":: core :: compile_error ! { ")
            .skip(1)
            .map(|rest| rest.split(" }").next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn expands_one_fixture_with_a_parameter() {
        let out = expand(
            quote!(tcp = auto, cmd = "redis-server --port {port} --save ''"),
            quote! {
                #[test]
                fn reads(redis: &mirakuru::Fixture) {
                    assert!(redis.port() > 0);
                }
            },
        );
        let expected = quote! {
            #[test]
            fn reads() {
                let __mirakuru_fixtures = ::mirakuru::__private::Fixtures::start(::std::vec![
                    ::mirakuru::__private::Spec::new("redis-server", "redis-server --port {port} --save ''")
                        .tcp(::mirakuru::__private::Port::Auto)
                ]);
                let redis: &mirakuru::Fixture = __mirakuru_fixtures.get(0);
                let __mirakuru_body = || { assert!(redis.port() > 0); };
                __mirakuru_body();
                __mirakuru_fixtures.finish(false);
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn expands_two_stacked_fixtures_in_source_order_and_binds_by_name() {
        let out = expand(
            quote!(
                name = pg,
                tcp = auto,
                cmd = "postgres -p {port}",
                timeout = "30s",
                user = "postgres"
            ),
            quote! {
                #[mirakuru::fixture(name = cache, tcp = 11211, args = ["memcached", "-p", "11211"], stop_signal = INT, expected_returncode = -15)]
                #[test]
                fn both(cache: &mirakuru::Fixture, pg: &mirakuru::Fixture) -> Result<(), String> {
                    Ok(())
                }
            },
        );
        let expected = quote! {
            #[test]
            fn both() -> Result<(), String> {
                let __mirakuru_fixtures = ::mirakuru::__private::Fixtures::start(::std::vec![
                    ::mirakuru::__private::Spec::new("pg", "postgres -p {port}")
                        .tcp(::mirakuru::__private::Port::Auto)
                        .timeout(::mirakuru::__private::Duration::from_millis(30000))
                        .user("postgres"),
                    ::mirakuru::__private::Spec::args("cache", [
                        ::core::convert::Into::<::std::string::String>::into("memcached"),
                        ::core::convert::Into::<::std::string::String>::into("-p"),
                        ::core::convert::Into::<::std::string::String>::into("11211")
                    ])
                        .tcp(::mirakuru::__private::Port::Fixed(11211))
                        .stop_signal(::mirakuru::__private::Signal::SIGINT)
                        .expected_returncode(-15)
                ]);
                let cache: &mirakuru::Fixture = __mirakuru_fixtures.get(1);
                let pg: &mirakuru::Fixture = __mirakuru_fixtures.get(0);
                let __mirakuru_body = || -> Result<(), String> { Ok(()) };
                let __mirakuru_result = __mirakuru_body();
                {
                    #[allow(unused_imports)]
                    use ::mirakuru::__private::{OtherNotFailed as _, ResultFailed as _};
                    #[allow(clippy::needless_borrow)]
                    __mirakuru_fixtures.finish((&__mirakuru_result).__mirakuru_failed());
                }
                __mirakuru_result
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn passes_expressions_in_the_command_through_to_the_runtime() {
        let out = expand(
            quote!(tcp = auto, args = [SERVICE, "--tcp", "{port}", env!("X")]),
            quote! {
                #[test]
                fn t() {}
            },
        );
        assert!(
            out.contains(
                &quote!(::core::convert::Into::<::std::string::String>::into(SERVICE)).to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(::core::convert::Into::<::std::string::String>::into(env!("X")))
                    .to_string()
            ),
            "{out}"
        );
        let line = expand(
            quote!(cmd = LINE),
            quote!(
                #[test]
                fn t() {}
            ),
        );
        assert!(line.contains(&quote!(Spec::new("fixture", LINE)).to_string()), "{line}");
    }

    #[test]
    fn expands_an_async_test_into_an_awaited_block() {
        let out = expand(
            quote!(output = "hi", args = ["sh", "-c", "echo hi; exec sleep 30"]),
            quote! {
                #[tokio::test]
                async fn waits(s: &mirakuru::Fixture) -> Result<(), std::io::Error> {
                    Ok(())
                }
            },
        );
        assert!(out.contains(&quote!(let __mirakuru_result: Result<(), std::io::Error> = async { Ok(()) }.await;).to_string()), "{out}");
        assert!(
            out.starts_with(
                &quote!(#[tokio::test] async fn waits() -> Result<(), std::io::Error>).to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(Spec::args(
                    "sh",
                    [
                        ::core::convert::Into::<::std::string::String>::into("sh"),
                        ::core::convert::Into::<::std::string::String>::into("-c"),
                        ::core::convert::Into::<::std::string::String>::into(
                            "echo hi; exec sleep 30"
                        )
                    ]
                )
                .output("hi"))
                .to_string()
            ),
            "{out}"
        );
    }

    #[test]
    fn writes_every_setter() {
        let out = expand(
            quote!(
                http = 8080,
                url = "http://{host}:8080/x",
                method = "GET",
                status = 204,
                host = "::1",
                stop_timeout = "1.5s",
                env = ["A=1"],
                cwd = "{tmpdir}",
                shell = true,
                kill_signal = "KILL",
                cmd = "server",
            ),
            quote!(
                fn t() {}
            ),
        );
        for part in [
            quote!(.http_url(::mirakuru::__private::Port::Fixed(8080), "http://{host}:8080/x")),
            quote!(.host("::1")),
            quote!(.stop_timeout(::mirakuru::__private::Duration::from_millis(1500))),
            quote!(.env("A", "1")),
            quote!(.cwd("{tmpdir}")),
            quote!(.shell(true)),
            quote!(.kill_signal(::mirakuru::__private::Signal::SIGKILL)),
            quote!(.method("GET")),
            quote!(.status(204u16)),
        ] {
            assert!(out.contains(&part.to_string()), "{part} missing from {out}");
        }
    }

    #[test]
    fn readiness_kinds_become_their_setters() {
        let cases = [
            (
                quote!(http = auto, cmd = "s {port}"),
                quote!(.http(::mirakuru::__private::Port::Auto, "/")),
            ),
            (
                quote!(http = auto, path = "/h", cmd = "s {port}"),
                quote!(.http(::mirakuru::__private::Port::Auto, "/h")),
            ),
            (quote!(unix = auto, cmd = "s {socket}"), quote!(.unix(::core::option::Option::None))),
            (
                quote!(unix = "/tmp/s", cmd = "s"),
                quote!(.unix(::core::option::Option::Some("/tmp/s"))),
            ),
            (quote!(pid = "{tmpdir}/p", cmd = "s"), quote!(.pid("{tmpdir}/p"))),
            (quote!(status = "2\\d\\d", http = auto, cmd = "s {port}"), quote!(.status("2\\d\\d"))),
            (quote!(tcp = discover, cmd = "s --port 0"), quote!(.discover_port())),
            (quote!(notify = true, cmd = "s"), quote!(.notify())),
            (quote!(ready_fd = 3, cmd = "s"), quote!(.ready_fd(3))),
            (
                quote!(redis = auto, cmd = "s {port}"),
                quote!(.redis(::mirakuru::__private::Port::Auto)),
            ),
            (
                quote!(postgres = 5432, cmd = "s"),
                quote!(.postgres(::mirakuru::__private::Port::Fixed(5432))),
            ),
            (quote!(exec = "pg_isready", cmd = "s"), quote!(.exec("pg_isready"))),
            (
                quote!(
                    exec = ["redis-cli", "ping"],
                    exec_output = "PONG",
                    exec_timeout = "2s",
                    cmd = "s"
                ),
                quote!(.exec_args([
                    ::core::convert::Into::<::std::string::String>::into("redis-cli"),
                    ::core::convert::Into::<::std::string::String>::into("ping")
                ])
                .exec_output("PONG")
                .exec_timeout(::mirakuru::__private::Duration::from_millis(2000))),
            ),
            (
                quote!(file = "{tmpdir}/f", file_matches = "^ready", file_line = 8, cmd = "s"),
                quote!(.file("{tmpdir}/f").file_matches("^ready").file_line(8)),
            ),
            (quote!(check = my::check, cmd = "s"), quote!(.custom("`my::check`", my::check))),
            (
                quote!(notify = true, tcp = auto, ready = any, owned = true, cmd = "s {port}"),
                quote!(.notify().tcp(::mirakuru::__private::Port::Auto).ready_any(true).owned(true)),
            ),
        ];
        for (args, part) in cases {
            let out = expand(
                args,
                quote!(
                    fn t() {}
                ),
            );
            assert!(out.contains(&part.to_string()), "{part} missing from {out}");
        }
    }

    #[test]
    fn one_fixture_binds_one_parameter_positionally() {
        let out = expand(
            quote!(cmd = "x", name = pg),
            quote!(
                fn t(db: &mirakuru::Fixture) {}
            ),
        );
        assert!(
            out.contains(
                &quote!(let db: &mirakuru::Fixture = __mirakuru_fixtures.get(0);).to_string()
            ),
            "{out}"
        );
    }

    #[test]
    fn a_shared_static_gets_its_initializer() {
        let out = expand(
            quote!(tcp = auto, cmd = "redis-server --port {port}"),
            quote! {
                /// The cache.
                pub static REDIS: mirakuru::SharedFixture;
            },
        );
        let expected = quote! {
            #[doc = r" The cache."]
            pub static REDIS: mirakuru::SharedFixture = ::mirakuru::__private::SharedFixture::new(|| {
                ::mirakuru::__private::Spec::new("redis", "redis-server --port {port}")
                    .tcp(::mirakuru::__private::Port::Auto)
            });
        };
        // `|| { spec }` and `|| spec` differ only in braces.
        assert_eq!(
            out.replace("{ ", "").replace(" }", ""),
            expected.to_string().replace("{ ", "").replace(" }", "")
        );
    }

    #[test]
    fn a_shared_static_is_checked() {
        let out = expand(
            quote!(cmd = "x"),
            quote! {
                #[mirakuru::fixture(cmd = "y")]
                static mut REDIS: mirakuru::SharedFixture = make();
            },
        );
        assert_eq!(
            errors_in(&out),
            [
                "\"a shared fixture's `static` holds one fixture; declare one `static` per fixture\"",
                "\"a shared fixture cannot be `static mut`; remove `mut`: it is shared safely without it\"",
                "\"a shared fixture's `static` has no initializer: #[mirakuru::fixture(...)] writes it; remove `= ...`\"",
            ]
        );
        assert!(
            out.starts_with(
                &quote!(
                    static mut REDIS: mirakuru::SharedFixture =
                        ::mirakuru::__private::SharedFixture::new(|| ::core::unreachable!());
                )
                .to_string()
            ),
            "{out}"
        );
    }

    #[test]
    fn a_static_with_errors_still_compiles_apart_from_them() {
        let out = expand(
            quote!(tcp = auto),
            quote!(
                static REDIS: mirakuru::SharedFixture;
            ),
        );
        assert!(
            out.starts_with(
                &quote!(
                    static REDIS: mirakuru::SharedFixture =
                        ::mirakuru::__private::SharedFixture::new(|| ::core::unreachable!());
                )
                .to_string()
            ),
            "{out}"
        );
        assert_eq!(errors_in(&out).len(), 1);
    }

    #[test]
    fn errors_leave_the_function_as_written_but_not_a_test() {
        let out = expand(
            quote!(tcp = auto, prot = 1),
            quote! {
                /// Docs.
                #[test]
                #[should_panic]
                fn reads(redis: &mirakuru::Fixture) { redis.port(); }
            },
        );
        let expected = quote! {
            #[doc = r" Docs."]
            #[allow(dead_code)]
            fn reads(redis: &mirakuru::Fixture) { redis.port(); }
        };
        assert!(out.starts_with(&expected.to_string()), "{out}");
        assert_eq!(errors_in(&out).len(), 2, "{out}");
    }

    #[test]
    fn errors_keep_a_test_without_parameters_a_test() {
        let out = expand(
            quote!(tcp = auto),
            quote!(
                #[test]
                fn t() {}
            ),
        );
        assert!(
            out.starts_with(
                &quote!(
                    #[test]
                    fn t() {}
                )
                .to_string()
            ),
            "{out}"
        );
    }

    #[test]
    fn errors_of_every_stacked_attribute_and_parameter_are_reported() {
        let out = expand(
            quote!(cmd = "x", tcp = 0),
            quote! {
                #[mirakuru::fixture(cmd = "y", timeout = "soon")]
                #[test]
                fn t() {}
            },
        );
        let errors = errors_in(&out);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("\"port 0"));
        assert!(errors[1].starts_with("\"`timeout = \\\"soon\\\"`"));
        let out = expand(
            quote!(cmd = "x", name = a),
            quote!(
                #[mirakuru::fixture(cmd = "y", name = b)]
                fn t(c: &F) {}
            ),
        );
        assert_eq!(
            errors_in(&out),
            ["\"no fixture named `c`; add `name = c` to its #[mirakuru::fixture(...)]\""]
        );
    }

    #[test]
    fn other_items_are_rejected_on_their_keyword() {
        let out = expand(
            quote!(cmd = "x"),
            quote!(
                #[derive(Debug)]
                pub struct S;
            ),
        );
        assert!(
            out.starts_with(
                &quote!(
                    #[derive(Debug)]
                    pub struct S;
                )
                .to_string()
            ),
            "{out}"
        );
        assert_eq!(
            errors_in(&out),
            ["\"#[mirakuru::fixture(...)] goes on a test function (`#[test] fn ...`) or on the `static` of a shared fixture, not on `struct`\""]
        );
    }

    #[test]
    fn impl_trait_results_are_left_to_inference() {
        let out = expand(
            quote!(cmd = "x"),
            quote!(
                fn t() -> impl std::process::Termination {}
            ),
        );
        assert!(out.contains(&quote!(let __mirakuru_body = || { };).to_string()), "{out}");
    }
}
