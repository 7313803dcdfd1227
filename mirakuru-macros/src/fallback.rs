//! What is emitted when the attribute has errors: the item, as close to what the user wrote
//! as compiles, next to every error. IDEs keep completing inside the test, and no secondary
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
