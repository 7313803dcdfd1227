//! Binding the test function's parameters to its fixtures: every fixture attribute on the
//! function read and checked, their names unique, and each parameter given the fixture of
//! its name.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::{FnArg, Pat, Signature, Type};

use crate::ast::TestFn;
use crate::def::{self, Def};
use crate::errors::Errors;

/// The fixtures of a test function, in source order, and its parameters bound to them.
pub(crate) struct Fixtures {
    pub(crate) defs: Vec<Def>,
    pub(crate) bindings: Vec<Binding>,
}

/// Reads and checks the attribute being expanded (`args`) and the ones stacked under it,
/// then binds the parameters; every error of all of them, if any.
pub(crate) fn fixtures(args: TokenStream, f: &TestFn) -> syn::Result<Fixtures> {
    let mut errors = Errors::default();
    let defs: Option<Vec<Def>> =
        def::read_all(args, &f.stacked, None, &mut errors).into_iter().collect();
    for def in defs.iter().flatten() {
        if let Some(span) = def.run_scope {
            errors.push(syn::Error::new(
                span,
                "`scope = run` is for a shared fixture's static: a test's own fixtures live for \
                 the test; declare `#[mirakuru::fixture(scope = run, ...)] static NAME: \
                 mirakuru::SharedFixture;` and take it with `NAME.get()`",
            ));
        }
    }
    let bindings = defs.as_ref().and_then(|defs| {
        errors.take(unique_names(defs));
        errors.take(bind(&f.sig, defs))
    });
    errors.finish_with(defs.zip(bindings).map(|(defs, bindings)| Fixtures { defs, bindings }))
}

/// A fixture parameter of the test function, and the fixture it binds.
pub(crate) struct Binding {
    pub(crate) pat: Box<Pat>,
    pub(crate) ty: Box<Type>,
    pub(crate) index: usize,
}

/// Binds the function's parameters to fixtures: by `name`, or, with one fixture and one
/// parameter, to each other whatever their names.
fn bind(sig: &Signature, defs: &[Def]) -> syn::Result<Vec<Binding>> {
    let mut errors = Errors::default();
    let mut bindings: Vec<Binding> = Vec::new();
    let params: Vec<&FnArg> = sig.inputs.iter().collect();
    for param in &params {
        let typed = match param {
            FnArg::Typed(typed) => typed,
            FnArg::Receiver(receiver) => {
                errors.spanned(
                    receiver,
                    "a fixture test is a free function: `self` cannot be a fixture",
                );
                continue;
            }
        };
        let ident = match &*typed.pat {
            Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.unraw()),
            _ => None,
        };
        let index = if defs.len() == 1 && params.len() == 1 {
            Some(0)
        } else {
            ident.as_ref().and_then(|ident| {
                defs.iter().position(|d| d.name_ident.as_ref().is_some_and(|n| n.unraw() == *ident))
            })
        };
        let Some(index) = index else {
            let message = match &ident {
                Some(ident) => format!(
                    "no fixture named `{ident}`; add `name = {ident}` to its #[mirakuru::fixture(...)]"
                ),
                None => "fixture parameters are bound by name; write the parameter as `<name>: \
                         &mirakuru::Fixture` with the `name` of its #[mirakuru::fixture(...)]"
                    .to_string(),
            };
            errors.spanned(typed, message);
            continue;
        };
        if bindings.iter().any(|b| b.index == index) {
            errors.spanned(
                typed,
                format!("fixture `{}` is already bound to another parameter", defs[index].name),
            );
            continue;
        }
        bindings.push(Binding { pat: typed.pat.clone(), ty: typed.ty.clone(), index });
    }
    errors.finish(bindings)
}

/// Fixtures on one function need names of their own.
fn unique_names(defs: &[Def]) -> syn::Result<()> {
    let mut errors = Errors::default();
    for (i, def) in defs.iter().enumerate() {
        let Some(ident) = &def.name_ident else { continue };
        let earlier = defs[..i]
            .iter()
            .any(|d| d.name_ident.as_ref().is_some_and(|n| n.unraw() == ident.unraw()));
        if earlier {
            errors.spanned(
                ident,
                format!("two fixtures are named `{}`; give each its own `name`", ident.unraw()),
            );
        }
    }
    errors.finish(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ok;
    use quote::quote;

    fn defs(list: &[TokenStream]) -> Vec<Def> {
        list.iter().map(|t| ok(t.clone())).collect()
    }

    fn bind_errors(sig: Signature, defs: &[Def]) -> Vec<String> {
        match bind(&sig, defs) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn one_fixture_binds_one_parameter_whatever_its_name() {
        let defs = defs(&[quote!(cmd = "x", name = pg)]);
        let bindings =
            bind(&syn::parse_quote!(fn t(db: &mirakuru::Fixture)), &defs).unwrap_or_default();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].index, 0);
    }

    #[test]
    fn parameters_bind_fixtures_by_name() {
        let defs = defs(&[quote!(cmd = "x", name = pg), quote!(cmd = "y", name = cache)]);
        let bindings = bind(&syn::parse_quote!(fn t(cache: &Fixture, r#pg: &Fixture)), &defs)
            .unwrap_or_default();
        assert_eq!(bindings.iter().map(|b| b.index).collect::<Vec<_>>(), [1, 0]);
    }

    #[test]
    fn a_parameter_without_fixture_is_an_error() {
        let defs = defs(&[quote!(cmd = "x", name = pg), quote!(cmd = "y")]);
        assert_eq!(
            bind_errors(syn::parse_quote!(fn t(pg: &Fixture, redis: &Fixture, (a, b): (u8, u8))), &defs),
            [
                "no fixture named `redis`; add `name = redis` to its #[mirakuru::fixture(...)]",
                "fixture parameters are bound by name; write the parameter as `<name>: &mirakuru::Fixture` with the `name` of its #[mirakuru::fixture(...)]",
            ]
        );
        let one = self::defs(&[quote!(cmd = "x")]);
        assert_eq!(bind_errors(syn::parse_quote!(fn t(a: &Fixture, b: &Fixture)), &one).len(), 2);
    }

    #[test]
    fn fixture_names_are_unique() {
        let defs = defs(&[quote!(cmd = "x", name = pg), quote!(cmd = "y", name = pg)]);
        assert_eq!(
            unique_names(&defs).err().map(|e| e.to_string()).as_deref(),
            Some("two fixtures are named `pg`; give each its own `name`")
        );
    }
}
