//! Shared fixtures: one service for all the tests of a binary. Declared as a static, started
//! by the first test that asks for it (exactly once, however many ask at the same moment),
//! used by any number of tests in parallel, and stopped when the binary exits — Rust never
//! drops statics (rstest#132, testcontainers-rs#707), so an exit hook does it.
//!
//! Services are spawned by mirakuru's supervisor thread, which lives as long as the binary:
//! that the first user is a short-lived test thread does not matter to `PR_SET_PDEATHSIG`.
//!
//! Under `cargo nextest`, which runs every test in a process of its own, a shared fixture is
//! started once per test process.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::fixture::{Fixture, Spec};
use crate::process::at_exit;
use crate::{Error, Stopped};

/// A fixture shared by the tests of a binary. Write it as a static with the attribute, or by
/// hand:
///
/// ```no_run
/// use mirakuru::fixture::{Port, Spec};
/// use mirakuru::SharedFixture;
///
/// static REDIS: SharedFixture = SharedFixture::new(|| {
///     Spec::new("redis", "redis-server --port {port} --save ''").tcp(Port::Auto)
/// });
///
/// #[test]
/// fn counts() {
///     let redis = REDIS.get(); // started here if no test did before
///     let _port = redis.port();
/// }
/// ```
pub struct SharedFixture {
    spec: fn() -> Spec,
    started: OnceLock<Result<Fixture, String>>,
    /// Tests hold it for reading while they use the service; `stopped!` takes it for writing.
    gate: RwLock<()>,
}

impl SharedFixture {
    /// A shared fixture described by `spec`, called once, at the first use.
    pub const fn new(spec: fn() -> Spec) -> SharedFixture {
        SharedFixture { spec, started: OnceLock::new(), gate: RwLock::new(()) }
    }

    /// The running fixture, started now if no test did before.
    ///
    /// # Panics
    ///
    /// If it could not start, with the original error — in every test that asks, not only the
    /// first.
    #[track_caller]
    pub fn get(&'static self) -> SharedGuard {
        match self.try_get() {
            Ok(guard) => guard,
            Err(message) => panic!("{message}"),
        }
    }

    /// [`SharedFixture::get`] that returns the start error as text instead of panicking.
    ///
    /// # Errors
    ///
    /// The message of the error the first start failed with.
    pub fn try_get(&'static self) -> Result<SharedGuard, String> {
        let started = self.started.get_or_init(|| {
            let spec = (self.spec)();
            let name = spec.name().to_string();
            let fixture = spec.start().map_err(|err| {
                format!("shared mirakuru fixture `{name}` could not start: {err}")
            })?;
            at_exit(move || self.shut_down());
            Ok(fixture)
        });
        let fixture = started.as_ref().map_err(Clone::clone)?;
        let read = self.gate.read().unwrap_or_else(|p| p.into_inner());
        Ok(SharedGuard { owner: self, fixture, read: RefCell::new(Some(read)) })
    }

    /// At exit: waits briefly for tests still using it, then stops it gracefully.
    fn shut_down(&'static self) {
        let _gate = self.gate.try_write();
        if let Some(Ok(fixture)) = self.started.get() {
            fixture.shut_down_shared();
        }
    }
}

impl fmt::Debug for SharedFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedFixture")
            .field("started", &self.started.get())
            .finish_non_exhaustive()
    }
}

/// A test's use of a shared fixture; derefs to [`Fixture`]. While it lives, the service is
/// not stopped by another test's `stopped!`.
pub struct SharedGuard {
    owner: &'static SharedFixture,
    fixture: &'static Fixture,
    read: RefCell<Option<RwLockReadGuard<'static, ()>>>,
}

impl SharedGuard {
    /// Stops the shared service until the returned guard is dropped, then starts it again and
    /// waits until it is ready. Waits first until no other test uses it; other tests wait
    /// while it is stopped.
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::stop`](crate::Executor::stop).
    pub fn stopped(&self) -> Result<SharedStopped<'_>, Error> {
        self.read.borrow_mut().take();
        let write = self.owner.gate.write().unwrap_or_else(|p| p.into_inner());
        match self.fixture.stopped() {
            Ok(restart) => {
                Ok(SharedStopped { guard: self, restart: Some(restart), write: Some(write) })
            }
            Err(err) => {
                drop(write);
                self.reacquire();
                Err(err)
            }
        }
    }

    fn reacquire(&self) {
        let read = self.owner.gate.read().unwrap_or_else(|p| p.into_inner());
        *self.read.borrow_mut() = Some(read);
    }
}

impl Deref for SharedGuard {
    type Target = Fixture;

    fn deref(&self) -> &Fixture {
        self.fixture
    }
}

impl Drop for SharedGuard {
    /// A failing test shows what the shared service wrote.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprint!("{}", self.fixture.report());
        }
    }
}

impl fmt::Debug for SharedGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.fixture, f)
    }
}

/// A shared service stopped by one test (see [`SharedGuard::stopped`]); dropping it starts
/// the service again and lets the other tests go on.
#[must_use = "the service is restarted when this guard is dropped"]
pub struct SharedStopped<'g> {
    guard: &'g SharedGuard,
    restart: Option<Stopped>,
    write: Option<RwLockWriteGuard<'static, ()>>,
}

impl SharedStopped<'_> {
    /// Starts the service again now and reports the error, instead of when dropped.
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::start`](crate::Executor::start).
    pub fn restart(mut self) -> Result<(), Error> {
        match self.restart.take() {
            Some(restart) => restart.restart(),
            None => Ok(()),
        }
    }
}

impl Drop for SharedStopped<'_> {
    fn drop(&mut self) {
        // Restart first, while still holding the gate: nobody may see the service down.
        let restart = self.restart.take();
        let write = self.write.take();
        let guard = self.guard;
        // Release the gate whether or not the restart panics.
        struct Release<'a>(Option<RwLockWriteGuard<'static, ()>>, &'a SharedGuard);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                drop(self.0.take());
                self.1.reacquire();
            }
        }
        let _release = Release(write, guard);
        drop(restart);
    }
}

impl fmt::Debug for SharedStopped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStopped").field("fixture", &self.guard.fixture.name()).finish()
    }
}
