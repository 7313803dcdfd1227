//! What runs when the test binary exits normally: the end of `main`, `std::process::exit`,
//! or libtest's own exit after the last test. Rust never drops statics, so shared fixtures and
//! leaked executors would otherwise outlive the binary (rstest#132, testcontainers-rs#707).
//!
//! One `atexit(3)` handler runs the registered hooks, the last registered first — so shared
//! fixtures, registered when first used, stop gracefully before the final stop of every
//! process tree still alive, registered at the first spawn.

use std::sync::{Mutex, Once};
use std::time::Duration;

type Hook = Box<dyn FnOnce() + Send>;

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

/// Runs `hook` when the binary exits normally.
pub(crate) fn at_exit(hook: impl FnOnce() + Send + 'static) {
    REGISTER.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()`; failure only loses the hooks.
        unsafe { libc::atexit(run_hooks) };
    });
    HOOKS.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(hook));
}

extern "C" fn run_hooks() {
    // A panic must not cross the C boundary (that aborts) nor stop the other hooks.
    loop {
        let Some(hook) = take_last() else { return };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    }
}

fn take_last() -> Option<Hook> {
    // Another thread may hold the lock while the main thread exits; never wait long for it.
    for _ in 0..200 {
        match HOOKS.try_lock() {
            Ok(mut hooks) => return hooks.pop(),
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner().pop(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1))
            }
        }
    }
    None
}
