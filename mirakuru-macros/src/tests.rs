//! Helpers for the unit tests of every phase: one attribute read and checked as the macro
//! does, what it passes to the runtime, and the expansion as text.

use proc_macro2::TokenStream;

use crate::def::{self, Def};
use crate::draft::Anchor;
use crate::errors::Errors;
use crate::values::Typed;

/// The fixture one attribute's arguments describe, or all their error messages.
pub(crate) fn check(tokens: TokenStream) -> Result<Def, Vec<String>> {
    let (args, parse_errors) = crate::args::args(tokens);
    let mut errors = Errors::default();
    errors.extend(parse_errors);
    let def = def::check(&args, &Anchor::CallSite, None, &mut errors);
    match errors.finish(()) {
        Ok(()) => def.ok_or_else(Vec::new),
        Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
    }
}

/// The one error message of an attribute.
pub(crate) fn error(tokens: TokenStream) -> String {
    match check(tokens) {
        Ok(_) => panic!("expected an error"),
        Err(messages) => {
            assert_eq!(messages.len(), 1, "{messages:#?}");
            messages[0].clone()
        }
    }
}

/// The fixture of an attribute without errors.
pub(crate) fn ok(tokens: TokenStream) -> Def {
    match check(tokens) {
        Ok(def) => def,
        Err(messages) => panic!("unexpected errors: {messages:#?}"),
    }
}

/// The value `def` passes to the setter `name`, if it calls it.
pub(crate) fn setter<'d>(def: &'d Def, name: &str) -> Option<&'d Typed> {
    def.options.iter().find(|o| o.setter == name).map(|o| &o.value)
}

/// The milliseconds `def` passes to the duration setter `name`.
pub(crate) fn millis(def: &Def, name: &str) -> Option<u64> {
    match setter(def, name) {
        Some(Typed::Millis(millis)) => Some(millis.ms),
        _ => None,
    }
}

/// The signal `def` passes to the setter `name`.
pub(crate) fn signal(def: &Def, name: &str) -> Option<String> {
    match setter(def, name) {
        Some(Typed::Signal(signal)) => Some(signal.to_string()),
        _ => None,
    }
}

/// The environment entries of `def`.
pub(crate) fn env(def: &Def) -> Vec<(&str, &str)> {
    match setter(def, "env") {
        Some(Typed::Env(vars)) => vars.iter().map(|v| (v.key.as_str(), v.value.as_str())).collect(),
        _ => Vec::new(),
    }
}

/// The expansion, as text, for comparing with `quote!`ed expectations.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> String {
    crate::expand::fixture(args, item).to_string()
}

/// The messages of the `compile_error!`s in an expansion.
pub(crate) fn errors_in(expansion: &str) -> Vec<String> {
    expansion
        .split(":: core :: compile_error ! { ")
        .skip(1)
        .map(|rest| rest.split(" }").next().unwrap_or_default().to_string())
        .collect()
}
