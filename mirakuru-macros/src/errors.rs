//! Reporting: every error of an attribute is collected so that the user sees all mistakes in
//! one build, not one per build (serde_derive's `Ctxt`, rstest's `ErrorsVec`).

use proc_macro2::Span;
use quote::ToTokens;
use std::fmt::Display;

/// Errors found so far; empty when all is well.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `error` after the ones already found.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error covering `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    /// Records all errors of `other`.
    pub(crate) fn extend(&mut self, other: Errors) {
        if let Some(error) = other.0 {
            self.push(error);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `value` when no error was found, else all the errors.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            None => Ok(value),
            Some(error) => Err(error),
        }
    }

    /// `value` when there is one and no error was found, else all the errors. A step that
    /// gives no value has always reported why; should one ever not, the user still gets an
    /// error rather than a panic.
    pub(crate) fn finish_with<T>(self, value: Option<T>) -> syn::Result<T> {
        match (self.0, value) {
            (None, Some(value)) => Ok(value),
            (Some(error), _) => Err(error),
            (None, None) => {
                Err(syn::Error::new(Span::call_site(), "invalid #[mirakuru::fixture(...)]"))
            }
        }
    }
}

/// `` `a`, `b`, `c` `` (with `or` before the last when `or` is set), as messages list choices.
pub(crate) fn list(items: impl IntoIterator<Item = impl Display>, or: bool) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    match items.split_last() {
        Some((last, rest)) if or && !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => items.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_error_gives_the_value() {
        assert_eq!(Errors::default().finish(7).ok(), Some(7));
    }

    #[test]
    fn errors_are_kept_in_order() {
        let mut errors = Errors::default();
        errors.at(Span::call_site(), "first");
        errors.take::<()>(Err(syn::Error::new(Span::call_site(), "second")));
        let messages: Vec<String> = match errors.finish(()) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(messages, ["first", "second"]);
    }
}
