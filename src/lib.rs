#![doc = include_str!("../README.md")]
// The README shows tests as users write them, with `#[test]`; as doctests they only compile.
#![allow(clippy::test_attr_in_doctest)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

#[doc(inline)]
pub use mirakuru_core::*;

#[doc(inline)]
pub use mirakuru_macros::fixture;

/// Stops a service for the duration of a block: inside it the service is down and `$name`
/// still refers to it; after it, the service is started again and ready — also when the block
/// panics or leaves early through `?` or `return`. If the service was not started, it stays
/// down.
///
/// Panics if the service cannot be stopped or restarted (use [`Executor::stopped`] to get
/// those errors as values).
///
/// ```
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::SimpleExecutor;
///
/// let mut sleeper = SimpleExecutor::new("sleep 300");
/// sleeper.start()?;
/// let pid = sleeper.pid();
/// mirakuru::stopped!(sleeper, {
///     assert!(!sleeper.running());
/// });
/// assert!(sleeper.running());
/// assert_ne!(sleeper.pid(), pid, "a new process");
/// sleeper.stop()?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! stopped {
    ($name:expr, $body:block) => {{
        // Method syntax: works on an executor, a `&mut` to one, and a fixture handle alike.
        let __mirakuru_restart = match $name.stopped() {
            ::core::result::Result::Ok(guard) => guard,
            ::core::result::Result::Err(err) => ::core::panic!(
                "mirakuru::stopped!: could not stop `{}`: {}",
                ::core::stringify!($name),
                err
            ),
        };
        // The guard restarts the service when this block ends, however it ends.
        $body
    }};
}

/// What macro expansions call into. Not a public API: expansions name everything through
/// here by absolute path, so a user's crate needs `mirakuru` alone.
#[doc(hidden)]
pub mod __private {
    pub use core::time::Duration;
    pub use mirakuru_core::fixture::{Fixtures, OtherNotFailed, Port, ResultFailed, Spec};
    pub use mirakuru_core::{services, Fixture, SharedFixture, Signal};
}
