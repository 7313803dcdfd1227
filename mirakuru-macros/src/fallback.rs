//! Emitting the fallback, when the attribute has errors: the item, as close to what the user
//! wrote as compiles, next to every error. IDEs keep completing inside the test, and no secondary
//! error hides the real one.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Attribute;

use crate::ast::{OtherItem, SharedStatic, TestFn};

/// Tokens that are not an item we can take apart (half-typed code), as they came: rustc says
/// what is wrong with them.
pub(crate) fn unreadable(item: TokenStream, error: syn::Error) -> TokenStream {
    let mut out = item;
    out.extend(error.into_compile_error());
    out
}

/// The function as written. If it has fixture parameters, it stops being a test (a test
/// cannot have parameters): the body still type-checks against the parameters' types, so
/// there are no secondary errors.
pub(crate) fn test_fn(f: TestFn, error: syn::Error) -> TokenStream {
    let TestFn { attrs, vis, sig, body, .. } = f;
    let error = error.into_compile_error();
    if sig.inputs.is_empty() {
        return quote!(#(#attrs)* #vis #sig #body #error);
    }
    let attrs = attrs.iter().filter(|a| !is_test_attr(a));
    quote! {
        #(#attrs)*
        #[allow(dead_code)]
        #vis #sig #body
        #error
    }
}

/// `#[test]`, `#[tokio::test]` and the like, and the attributes only a test may have.
fn is_test_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    path.segments.last().is_some_and(|s| s.ident == "test")
        || path.is_ident("should_panic")
        || path.is_ident("ignore")
}

/// The static as written, with a stand-in initializer: an initializer written by the user is
/// an error already, and evaluating it could add others.
pub(crate) fn shared_static(s: SharedStatic, error: syn::Error) -> TokenStream {
    let SharedStatic { attrs, vis, static_token, mutability, ident, ty, semi_token, .. } = s;
    let init = quote!(::mirakuru::__private::SharedFixture::new(|| ::core::unreachable!()));
    let error = error.into_compile_error();
    quote! {
        #(#attrs)*
        #vis #static_token #mutability #ident: #ty = #init #semi_token
        #error
    }
}

/// The item as written, but for our attributes, and why the attribute cannot go there.
pub(crate) fn other_item(item: OtherItem) -> TokenStream {
    let OtherItem { attrs, rest, keyword } = item;
    let error = syn::Error::new_spanned(
        &keyword,
        format!(
            "#[mirakuru::fixture(...)] goes on a test function (`#[test] fn ...`) or on the `static` \
             of a shared fixture, not on `{keyword}`"
        ),
    )
    .into_compile_error();
    quote!(#(#attrs)* #rest #error)
}

#[cfg(test)]
mod tests {
    use crate::tests::{errors_in, expand};
    use quote::quote;

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
}
