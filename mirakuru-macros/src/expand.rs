//! Emitting the code: the test function with its fixtures started before the body and
//! stopped after it, or the shared fixture's `static`; and, first, the pipeline that leads
//! here, [`fixture`].

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, ReturnType, Type};

use crate::ast::{Item, SharedStatic, TestFn};
use crate::bind::{self, Binding, Fixtures};
use crate::command::{Cmd, Text};
use crate::def::{self, Def, Setter};
use crate::fallback;
use crate::readiness::{HttpTarget, Readiness};
use crate::values::{Port, Status, Typed};

/// `#[mirakuru::fixture(args)] item`: the item read, every fixture attribute on it read and
/// checked, the parameters bound, the code emitted; or, on any error, the fallback.
pub(crate) fn fixture(args: TokenStream, item: TokenStream) -> TokenStream {
    match Item::from_tokens(item.clone()) {
        Ok(Item::Fn(f)) => match bind::fixtures(args, &f) {
            Ok(fixtures) => test_fn(f, &fixtures),
            Err(error) => fallback::test_fn(f, error),
        },
        Ok(Item::Static(s)) => match def::for_static(args, &s) {
            Ok(def) => shared_static(s, &def),
            Err(error) => fallback::shared_static(s, error),
        },
        Ok(Item::Other(other)) => fallback::other_item(other),
        Err(error) => fallback::unreadable(item, error),
    }
}

/// A name the body cannot see, nor clash with (mixed-site hygiene).
fn hidden(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The test: fixtures started in order before the body, parameters bound, the body run, the
/// fixtures stopped in reverse (with their output printed if the body returned an `Err`; a
/// panicking body is covered by `Fixtures`'s `Drop`).
fn test_fn(f: TestFn, fixtures: &Fixtures) -> TokenStream {
    let TestFn { attrs, vis, mut sig, body, .. } = f;
    // Every parameter is a fixture; they become the `let`s below.
    sig.inputs = Punctuated::new();
    let output = match &sig.output {
        ReturnType::Type(_, ty) if !is_unit(ty) => Some(ty.clone()),
        _ => None,
    };
    let started = hidden("__mirakuru_fixtures");
    let specs = fixtures.defs.iter().map(spec);
    let lets = fixtures.bindings.iter().map(binding);
    let run_body = run_body(&body, output.as_deref(), sig.asyncness.is_some());
    let finish = finish(output.is_some());
    let stmts = quote! {
        let #started = ::mirakuru::__private::Fixtures::start(::std::vec![#(#specs),*]);
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

/// `let <param>: <type> = __mirakuru_fixtures.get(i);`
fn binding(binding: &Binding) -> TokenStream {
    let Binding { pat, ty, index } = binding;
    let index = Literal::usize_unsuffixed(*index);
    // All of `__mirakuru_fixtures.get(i)` is located at the type (with the hygiene of the
    // other generated names), so a type mismatch is reported there.
    let at = ty.span();
    let started = Ident::new("__mirakuru_fixtures", Span::mixed_site().located_at(at));
    quote_spanned!(at=> let #pat: #ty = #started.get(#index);)
}

/// The body, run in a closure (or an async block) so that `return` and `?` leave the body
/// and not the test: the fixtures are finished after it either way. The closure is bound
/// before it is called, which clippy does not mistake for a redundant closure call.
fn run_body(body: &Group, output: Option<&Type>, is_async: bool) -> TokenStream {
    let run = hidden("__mirakuru_body");
    let result = hidden("__mirakuru_result");
    match (output, is_async) {
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
    }
}

/// The fixtures stopped, after the body; with a result, whether it is a failure, and the
/// result returned.
fn finish(has_result: bool) -> TokenStream {
    let started = hidden("__mirakuru_fixtures");
    let result = hidden("__mirakuru_result");
    if !has_result {
        return quote! {
            #started.finish(false);
        };
    }
    quote! {
        {
            // Autoref specialization: `Err` results are failures, anything else is not.
            #[allow(unused_imports)]
            use ::mirakuru::__private::{OtherNotFailed as _, ResultFailed as _};
            #[allow(clippy::needless_borrow)]
            #started.finish((&#result).__mirakuru_failed());
        }
        #result
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
///
/// A run-scoped one also gets its keeper: a test, ignored unless the runtime runs the binary
/// on it by name (`--exact --ignored`), beside the static so that its name follows from the
/// static's path.
fn shared_static(s: SharedStatic, def: &Def) -> TokenStream {
    let SharedStatic { attrs, vis, static_token, ident, ty, semi_token, .. } = s;
    let spec = spec(def);
    let Some(scope_span) = def.run_scope else {
        return quote! {
            #(#attrs)*
            #vis #static_token #ident: #ty = ::mirakuru::__private::SharedFixture::new(|| #spec) #semi_token
        };
    };
    let name = ident.unraw().to_string();
    let path = LitStr::new(&name, Span::call_site());
    let keeper = Ident::new(&format!("__mirakuru_keep_{name}"), scope_span);
    quote! {
        #(#attrs)*
        #vis #static_token #ident: #ty = ::mirakuru::__private::SharedFixture::new(|| #spec)
            .in_run(::core::concat!(::core::module_path!(), "::", #path)) #semi_token

        #[doc(hidden)]
        #[allow(non_snake_case)]
        #[::core::prelude::v1::test]
        #[ignore = "the keeper of a run-scoped mirakuru fixture: run by the fixture itself"]
        fn #keeper() {
            #ident.keep();
        }
    }
}

/// `Spec::new(name, cmd).tcp(...)...`: the runtime description of one fixture.
fn spec(def: &Def) -> TokenStream {
    let name = LitStr::new(&def.name, Span::call_site());
    let mut chain = match &def.cmd {
        Cmd::Line(line) => quote!(::mirakuru::__private::Spec::new(#name, #line)),
        Cmd::Args(args) => {
            let args = into_strings(args);
            quote!(::mirakuru::__private::Spec::args(#name, [#(#args),*]))
        }
        Cmd::Service(service) => quote!(::mirakuru::__private::services::#service()),
    };
    for readiness in &def.readiness {
        chain.extend(readiness_setter(readiness));
    }
    if def.ready_any {
        chain.extend(quote!(.ready_any(true)));
    }
    for option in &def.options {
        chain.extend(option_setter(option));
    }
    chain
}

/// Literals and expressions of any string type, as one array type takes them.
fn into_strings(texts: &[Text]) -> impl Iterator<Item = TokenStream> + '_ {
    texts.iter().map(|t| quote!(::core::convert::Into::<::std::string::String>::into(#t)))
}

/// The `Spec` setter of a plain option, its value as the runtime takes that kind.
fn option_setter(option: &Setter) -> TokenStream {
    let setter = Ident::new(option.setter, Span::call_site());
    match &option.value {
        Typed::Millis(millis) => {
            let ms = spanned(Literal::u64_unsuffixed(millis.ms), millis.span);
            quote!(.#setter(::mirakuru::__private::Duration::from_millis(#ms)))
        }
        Typed::Signal(signal) => quote!(.#setter(::mirakuru::__private::Signal::#signal)),
        Typed::Str(lit) => quote!(.#setter(#lit)),
        Typed::Bool(lit) => quote!(.#setter(#lit)),
        Typed::Flag(lit) if lit.value() => quote!(.#setter(true)),
        Typed::Flag(_) => TokenStream::new(),
        Typed::I32(n, span) => {
            let n = spanned(Literal::i32_unsuffixed(*n), *span);
            quote!(.#setter(#n))
        }
        Typed::Usize(n, span) => {
            let n = spanned(Literal::usize_unsuffixed(*n), *span);
            quote!(.#setter(#n))
        }
        Typed::Env(vars) => vars
            .iter()
            .map(|var| {
                let key = LitStr::new(&var.key, var.span);
                let value = LitStr::new(&var.value, var.span);
                quote!(.#setter(#key, #value))
            })
            .collect(),
        Typed::Status(Status::Code(code, span)) => {
            let code = spanned(Literal::u16_suffixed(*code), *span);
            quote!(.#setter(#code))
        }
        Typed::Status(Status::Pattern(pattern)) => quote!(.#setter(#pattern)),
    }
}

/// `literal`, located where the user wrote its value.
fn spanned(mut literal: Literal, span: Span) -> Literal {
    literal.set_span(span);
    literal
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
            let fd = spanned(Literal::i32_unsuffixed(*fd), *span);
            quote!(.ready_fd(#fd))
        }
        Readiness::Exec(Cmd::Line(line)) => quote!(.exec(#line)),
        Readiness::Exec(Cmd::Args(args)) => {
            let args = into_strings(args);
            quote!(.exec_args([#(#args),*]))
        }
        // A probe is read as a command line or a list, never as a service.
        Readiness::Exec(Cmd::Service(_)) => TokenStream::new(),
        Readiness::Redis(p) => {
            let p = port(*p);
            quote!(.redis(#p))
        }
        Readiness::Postgres(p) => {
            let p = port(*p);
            quote!(.postgres(#p))
        }
        Readiness::Mysql(p) => {
            let p = port(*p);
            quote!(.mysql(#p))
        }
        Readiness::RedisUnix(path) => quote!(.redis_unix(#path)),
        Readiness::PostgresUnix(path) => quote!(.postgres_unix(#path)),
        Readiness::MysqlUnix(path) => quote!(.mysql_unix(#path)),
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
            let number = spanned(Literal::u16_unsuffixed(number), span);
            quote!(::mirakuru::__private::Port::Fixed(#number))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::expand;
    use quote::quote;

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
