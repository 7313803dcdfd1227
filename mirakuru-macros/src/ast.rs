//! Reading the item under the attribute, into our view of it: a test function, a shared
//! fixture's `static`, or anything else (which is an error). The items are taken apart only as far as the
//! expansion needs: a test body is never parsed.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Meta, Signature, Token, Type, Visibility};

/// The item the attribute is on. Each keeps apart the fixture attributes stacked under ours
/// (`stacked`, in source order) from its other attributes (`attrs`).
pub(crate) enum Item {
    Fn(TestFn),
    Static(SharedStatic),
    Other(OtherItem),
}

/// A test function. Its body is kept as the brace group it is, never parsed: a test body
/// that does not compile yet must still get our expansion (and its errors must be rustc's).
pub(crate) struct TestFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) stacked: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Group,
}

/// `static NAME: Type;`, as a shared fixture is declared.
pub(crate) struct SharedStatic {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) stacked: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) static_token: Token![static],
    pub(crate) mutability: Option<Token![mut]>,
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// `= expr`, which a shared fixture must not have: the `=` and the expression's tokens.
    pub(crate) init: Option<(Token![=], TokenStream)>,
    /// Re-emitted, so that the item's span is the user's from end to end.
    pub(crate) semi_token: Token![;],
}

/// Anything else, re-emitted as it is: its attributes but ours, and the tokens from its
/// visibility on, with the span of its keyword (`struct`, `impl`, ...).
pub(crate) struct OtherItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) rest: TokenStream,
    pub(crate) keyword: TokenTree,
}

impl Item {
    /// Reads the item. Fails only when the tokens are not an item we can take apart; the
    /// caller then emits them unchanged so that rustc reports what is wrong with them.
    pub(crate) fn from_tokens(tokens: TokenStream) -> syn::Result<Item> {
        (|input: ParseStream<'_>| parse_item(input)).parse2(tokens)
    }
}

/// Whether `attr` is a `#[mirakuru::fixture(...)]`, `#[::mirakuru::fixture(...)]` or
/// `#[fixture(...)]` (with arguments: a bare `#[fixture]` is rstest's).
pub(crate) fn is_fixture_attr(attr: &Attribute) -> bool {
    if !matches!(attr.style, syn::AttrStyle::Outer) {
        return false;
    }
    let path = attr.path();
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.unraw().to_string()).collect();
    match segments.as_slice() {
        [a, b] => a == "mirakuru" && b == "fixture",
        [a] => a == "fixture" && path.leading_colon.is_none() && matches!(attr.meta, Meta::List(_)),
        _ => false,
    }
}

/// `(stacked, others)`: the fixture attributes, and the rest.
fn split_attrs(attrs: Vec<Attribute>) -> (Vec<Attribute>, Vec<Attribute>) {
    attrs.into_iter().partition(is_fixture_attr)
}

fn parse_item(input: ParseStream<'_>) -> syn::Result<Item> {
    let attrs = input.call(Attribute::parse_outer)?;
    let fork = input.fork();
    fork.parse::<Visibility>()?;
    let is_fn = fork.peek(Token![fn])
        || fork.peek(Token![async])
        || fork.peek(Token![unsafe])
        || fork.peek(Token![extern]) && !fork.peek2(Token![crate])
        || fork.peek(Token![const])
            && (fork.peek2(Token![fn]) || fork.peek2(Token![async]) || fork.peek2(Token![unsafe]));
    if fork.peek(Token![static]) {
        parse_static(input, attrs).map(Item::Static)
    } else if is_fn {
        parse_fn(input, attrs).map(Item::Fn)
    } else {
        let keyword: TokenTree = fork.parse()?;
        let rest: TokenStream = input.parse()?;
        let (_, attrs) = split_attrs(attrs);
        Ok(Item::Other(OtherItem { attrs, rest, keyword }))
    }
}

fn parse_fn(input: ParseStream<'_>, mut attrs: Vec<Attribute>) -> syn::Result<TestFn> {
    let vis: Visibility = input.parse()?;
    let sig: Signature = input.parse()?;
    let body: Group = match input.parse::<TokenTree>()? {
        TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => group,
        other => return Err(syn::Error::new_spanned(other, "expected the function's body")),
    };
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the function"));
    }
    // Inner attributes (`#![allow(...)]`) become outer ones: the body ends up inside a closure
    // or an async block, where inner attributes are not allowed (tokio-macros does the same).
    let (inner, stmts) = (|body: ParseStream<'_>| {
        let inner = body.call(Attribute::parse_inner)?;
        let rest: TokenStream = body.parse()?;
        Ok((inner, rest))
    })
    .parse2(body.stream())?;
    let body = if inner.is_empty() {
        body
    } else {
        for mut attr in inner {
            attr.style = syn::AttrStyle::Outer;
            attrs.push(attr);
        }
        let mut group = Group::new(Delimiter::Brace, stmts);
        group.set_span(body.span());
        group
    };
    let (stacked, attrs) = split_attrs(attrs);
    Ok(TestFn { attrs, stacked, vis, sig, body })
}

fn parse_static(input: ParseStream<'_>, attrs: Vec<Attribute>) -> syn::Result<SharedStatic> {
    let vis: Visibility = input.parse()?;
    let static_token: Token![static] = input.parse()?;
    let mutability: Option<Token![mut]> = input.parse()?;
    let ident: Ident = input.call(Ident::parse_any)?;
    input.parse::<Token![:]>()?;
    let ty: Type = input.parse()?;
    let init = if input.peek(Token![=]) {
        let eq: Token![=] = input.parse()?;
        let mut expr = TokenStream::new();
        while !(input.is_empty() || input.peek(Token![;]) && input.peek2_is_end()) {
            expr.extend([input.parse::<TokenTree>()?]);
        }
        Some((eq, expr))
    } else {
        None
    };
    let semi_token: Token![;] = input.parse()?;
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the static"));
    }
    let (stacked, attrs) = split_attrs(attrs);
    Ok(SharedStatic { attrs, stacked, vis, static_token, mutability, ident, ty, init, semi_token })
}

/// `peek2` that also sees the end of input.
trait Peek2IsEnd {
    fn peek2_is_end(&self) -> bool;
}

impl Peek2IsEnd for ParseStream<'_> {
    fn peek2_is_end(&self) -> bool {
        let fork = self.fork();
        fork.parse::<TokenTree>().is_ok() && fork.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn reads_a_test_function_and_lifts_inner_attributes() {
        let item = Item::from_tokens(quote! {
            #[test]
            pub async fn reads(redis: &mirakuru::Fixture) -> Result<(), String> {
                #![allow(unused)]
                Ok(())
            }
        });
        let Ok(Item::Fn(f)) = item else { panic!("not read as a function") };
        assert_eq!(f.attrs.len(), 2);
        assert!(f.attrs[1].path().is_ident("allow"));
        assert!(f.sig.asyncness.is_some());
        assert_eq!(f.sig.inputs.len(), 1);
        assert_eq!(f.body.stream().to_string(), quote!(Ok(())).to_string());
    }

    #[test]
    fn reads_a_static_without_initializer() {
        let item = Item::from_tokens(quote! {
            /// The cache.
            pub(crate) static REDIS: mirakuru::SharedFixture;
        });
        let Ok(Item::Static(s)) = item else { panic!("not read as a static") };
        assert_eq!(s.ident, "REDIS");
        assert!(s.mutability.is_none() && s.init.is_none());
        assert_eq!(s.attrs.len(), 1);
    }

    #[test]
    fn reads_a_static_with_mut_and_initializer() {
        let item = Item::from_tokens(quote!(
            static mut REDIS: Fixture = make(1, 2);
        ));
        let Ok(Item::Static(s)) = item else { panic!("not read as a static") };
        assert!(s.mutability.is_some());
        assert_eq!(s.init.map(|(_, e)| e.to_string()), Some(quote!(make(1, 2)).to_string()));
    }

    #[test]
    fn other_items_are_kept_with_their_keyword() {
        let item = Item::from_tokens(quote!(
            #[derive(Debug)]
            pub struct S {
                a: u8,
            }
        ));
        let Ok(Item::Other(OtherItem { attrs, keyword, .. })) = item else {
            panic!("not read as another item")
        };
        assert_eq!(attrs.len(), 1);
        assert_eq!(keyword.to_string(), "struct");
    }

    #[test]
    fn a_const_item_is_not_a_function() {
        let item = Item::from_tokens(quote!(
            const X: u8 = 1;
        ));
        assert!(matches!(item, Ok(Item::Other(o)) if o.keyword.to_string() == "const"));
    }

    #[test]
    fn recognises_fixture_attributes_by_path() {
        let attrs: Vec<Attribute> = syn::parse_quote!(
            #[mirakuru::fixture(cmd = "a")]
            #[::mirakuru::fixture(cmd = "b")]
            #[fixture(cmd = "c")]
            #[fixture]
            #[rstest::fixture]
            #[test]
        );
        let found: Vec<bool> = attrs.iter().map(is_fixture_attr).collect();
        assert_eq!(found, [true, true, true, false, false, false]);
    }
}
