//! What runs when the test binary exits normally: the end of `main`, `std::process::exit`,
//! or libtest's own exit after the last test. Rust never drops statics, so shared fixtures and
//! leaked executors would otherwise outlive the binary (rstest#132, testcontainers-rs#707).
//!
//! One `atexit(3)` handler runs the registered hooks, the last registered first — so shared
//! fixtures, registered when first used, stop gracefully before the final stop of every
//! process tree still alive, registered at the first spawn.

use std::sync::{Mutex, Once, TryLockError};
use std::time::Duration;

type Hook = Box<dyn FnOnce() + Send>;

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

/// Runs `hook` when the binary exits normally.
pub(crate) fn at_exit(hook: impl FnOnce() + Send + 'static) {
    REGISTER.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()` that never unwinds; failure only loses
        // the hooks. Neither nix nor rustix offers atexit(3).
        unsafe { libc::atexit(run_hooks) };
    });
    HOOKS.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(hook));
}

extern "C" fn run_hooks() {
    // A panic must not cross the C boundary (that aborts) nor stop the other hooks.
    while let Some(hook) = take_last() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    }
}

fn take_last() -> Option<Hook> {
    try_lock_briefly(&HOOKS).and_then(|mut hooks| hooks.pop())
}

/// Locks `mutex` unless another thread holds it for longer than 200 ms: at exit, a thread
/// that will never run again may hold it, and exit must not hang on it.
pub(crate) fn try_lock_briefly<T>(mutex: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    for _ in 0..200 {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    None
}
