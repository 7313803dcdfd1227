//! UI tests: every misuse of `#[mirakuru::fixture(...)]` gets a compile error under the
//! offending token (`tests/ui`), and every supported use compiles (`tests/pass`).
//!
//! trybuild builds each case as a binary, where `#[test]` functions do not exist; so the pass
//! cases also put the attribute on functions that `main` names, which makes rustc type-check
//! the expansion.
//!
//! After a change in a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p mirakuru-macros --test compiletest` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
