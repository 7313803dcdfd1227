//! Shared fixtures: one service for all the tests of a binary. Declared as a static, started
//! by the first test that asks for it (exactly once, however many ask at the same moment),
//! used by any number of tests in parallel, and stopped when the binary exits — Rust never
//! drops statics (rstest#132, testcontainers-rs#707), so an exit hook does it.
//!
//! Services are spawned by mirakuru's supervisor thread, which lives as long as the binary:
//! that the first user is a short-lived test thread does not matter to `PR_SET_PDEATHSIG`.
//!
//! Under `cargo nextest`, which runs every test in a process of its own, a shared fixture is
//! started once per test process; its fixed ports are held for the process's life, so that
//! two processes never run it on the same port at once. A run-scoped one
//! ([`SharedFixture::in_run`], `scope = run` in the attribute) is started once for the whole
//! run instead, by a keeper process (see `run/`).

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::fixture::{claim_all, Claims, Fixture, Spec, CLAIM_WAIT};
use crate::process::at_exit;
use crate::run::{self, KeptStopped};
use crate::{Error, Stopped};

/// How long a test waits for a shared service that another test stopped with `stopped!`, and
/// `stopped!` for the other tests to finish using it, before it gives up with a message.
const SHARED_WAIT: Duration = Duration::from_secs(300);

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
    /// For a run-scoped fixture, its path in the test crate (`module_path!()` and its name).
    run_path: Option<&'static str>,
    started: OnceLock<Result<Fixture, String>>,
    /// Its fixed ports, held for the life of the process.
    claims: Mutex<Option<Claims>>,
    /// Tests use the service through it; `stopped!` takes it alone.
    gate: Gate,
}

impl SharedFixture {
    /// A shared fixture described by `spec`, called once, at the first use.
    pub const fn new(spec: fn() -> Spec) -> SharedFixture {
        SharedFixture {
            spec,
            run_path: None,
            started: OnceLock::new(),
            claims: Mutex::new(None),
            gate: Gate::new(),
        }
    }

    /// The fixture lives for the whole test run — every test process of one
    /// `cargo nextest run`, every test binary of one `cargo test` — instead of one process:
    /// started by the first test that asks, exactly once, by a keeper process that stops it
    /// when the run ends. A binary run on its own (not by nextest or cargo) starts one for
    /// itself, as without this.
    ///
    /// `path` is the static's path, `concat!(module_path!(), "::NAME")`; the keeper is the
    /// test binary run again on a test that must exist beside the static, named
    /// `__mirakuru_keep_NAME`, whose body is [`SharedFixture::keep`].
    /// `#[mirakuru::fixture(scope = run, ...)]` writes both.
    pub const fn in_run(mut self, path: &'static str) -> SharedFixture {
        self.run_path = Some(path);
        self
    }

    /// The body of a run-scoped fixture's keeper test (see [`SharedFixture::in_run`]): keeps
    /// the service when the test binary was started as its keeper, and does nothing
    /// otherwise.
    #[doc(hidden)]
    pub fn keep(&'static self) {
        if let Some((path, _)) = self.run_names() {
            run::keep(self, path);
        }
    }

    /// The running fixture, started now if no test did before.
    ///
    /// # Panics
    ///
    /// If it could not start, with the original error — in every test that asks, not only the
    /// first; or if another test keeps it stopped for longer than 5 minutes.
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
    /// The message of the error the first start failed with, or of a wait that lasted too
    /// long.
    pub fn try_get(&'static self) -> Result<SharedGuard, String> {
        let fixture = self.fixture()?;
        report_on_panic(self);
        let thread = self.gate.enter(fixture.name())?;
        if let Some(kept) = fixture.as_kept() {
            if let Err(message) = kept.enter() {
                self.gate.leave(thread);
                return Err(message);
            }
        }
        Ok(SharedGuard { owner: self, fixture, thread })
    }

    /// A database of the test's own on the shared server of a PostgreSQL, MariaDB or Redis
    /// preset (see [`Fixture::database`]), removed when it is dropped. It holds the server
    /// as [`get`](SharedFixture::get) does: a `stopped!` elsewhere waits for it.
    ///
    /// ```no_run
    /// #[mirakuru::fixture(service = postgres, scope = run)]
    /// static PG: mirakuru::SharedFixture;
    ///
    /// #[test]
    /// fn writes_land_in_a_database_of_its_own() {
    ///     let db = PG.database();
    ///     println!("connect to {}", db.url());
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`get`](SharedFixture::get) does, and when the database cannot be made, with the
    /// server's client's message.
    #[track_caller]
    pub fn database(&'static self) -> crate::services::Database {
        match self.try_database() {
            Ok(db) => db,
            Err(message) => panic!("{message}"),
        }
    }

    /// [`SharedFixture::database`] that returns what went wrong as text.
    ///
    /// # Errors
    ///
    /// The start's error, or why the database could not be made.
    pub fn try_database(&'static self) -> Result<crate::services::Database, String> {
        let guard = self.try_get()?;
        match guard.database() {
            Ok(db) => Ok(db.holding(guard)),
            Err(err) => Err(format!("fixture `{}`: {err}", guard.name())),
        }
    }

    /// Stops the shared service until the returned guard is dropped, then starts it again and
    /// waits until it is ready — what `mirakuru::stopped!(SHARED, { ... })` does. Waits first
    /// until no other test uses it (its own uses do not count); other tests wait while it is
    /// stopped.
    ///
    /// # Errors
    ///
    /// The errors of [`Executor::stop`](crate::Executor::stop); a start that failed; a wait
    /// for the other tests that lasted more than 5 minutes (as [`Error::Io`]).
    pub fn stopped(&'static self) -> Result<SharedStopped, Error> {
        let fixture = self.fixture().map_err(|message| Error::Io {
            command: String::new(),
            action: "starting the shared fixture for".into(),
            source: std::io::Error::other(message),
        })?;
        self.gate.close(fixture.name()).map_err(|message| Error::Io {
            // Not the executor's command: a run-scoped or external fixture has none here.
            command: fixture.name().to_string(),
            action: "waiting for the other tests to stop".into(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, message),
        })?;
        let down = match fixture.as_kept() {
            Some(kept) => kept.stop().map(Down::Kept),
            None => fixture.stopped().map(Down::Here),
        };
        match down {
            Ok(down) => Ok(SharedStopped { owner: self, restart: Some(down) }),
            Err(err) => {
                self.gate.open();
                Err(err)
            }
        }
    }

    /// The fixture, started (once) if it was not: by the run's keeper for a run-scoped one
    /// in a run, here otherwise.
    fn fixture(&'static self) -> Result<&'static Fixture, String> {
        let started = self.started.get_or_init(|| match self.attach() {
            Some(kept) => kept.map(|kept| {
                let fixture = Fixture::kept(kept);
                let spec = (self.spec)();
                // Its socket too: administration goes through it, where the server trusts its
                // owner, instead of TCP, where it asks for a password.
                let details = fixture.details();
                let preset = spec.preset_use(details.url.as_deref(), details.socket.clone());
                fixture.using(preset)
            }),
            None => self.start(),
        });
        started.as_ref().map_err(Clone::clone)
    }

    /// The run's keeper of a run-scoped fixture, started if no process of the run did;
    /// `None` for a fixture of this process (not run-scoped, or no run).
    fn attach(&'static self) -> Option<Result<run::Kept, String>> {
        let (path, keeper_test) = self.run_names()?;
        let spec = (self.spec)();
        // An external service is shared by nature: each process attaches to it itself, and
        // there is nothing for a keeper to run.
        if spec.is_external() {
            return None;
        }
        run::attach(path, spec.fingerprint(), &keeper_test)
    }

    /// A run-scoped fixture's path in the test crate, the same in every test binary of it
    /// (`common::PG`, where `module_path!()` says `a::common` in `tests/a.rs`), and the name
    /// of its keeper test.
    fn run_names(&self) -> Option<(&'static str, String)> {
        let path = self.run_path?;
        let in_crate = path.split_once("::").map_or(path, |(_, rest)| rest);
        let keeper_test = match in_crate.rsplit_once("::") {
            Some((module, name)) => format!("{module}::__mirakuru_keep_{name}"),
            None => format!("__mirakuru_keep_{in_crate}"),
        };
        Some((in_crate, keeper_test))
    }

    /// The fixture started in this process (once): what the keeper of a run-scoped one runs.
    pub(crate) fn start_here(&'static self) -> Result<&'static Fixture, String> {
        self.started.get_or_init(|| self.start()).as_ref().map_err(Clone::clone)
    }

    /// Starts the fixture in this process.
    fn start(&'static self) -> Result<Fixture, String> {
        let spec = (self.spec)();
        let name = spec.name().to_string();
        // Its fixed ports are this process's for as long as it lives: another test process
        // (nextest) waits for them instead of running a second service there.
        let mut keys: Vec<String> =
            spec.fixed_ports().iter().map(|p| format!("port-{p}")).collect();
        keys.sort();
        let claims = claim_all(&keys, CLAIM_WAIT)
            .map_err(|err| format!("shared mirakuru fixture `{name}` could not start: {err}"))?;
        *self.claims.lock().unwrap_or_else(|p| p.into_inner()) = Some(claims);
        let fixture = spec
            .start()
            .map_err(|err| format!("shared mirakuru fixture `{name}` could not start: {err}"))?;
        at_exit(move || self.shut_down());
        Ok(fixture)
    }

    /// At exit (and when a keeper's run ends): waits briefly for tests still using it, then
    /// stops it gracefully.
    pub(crate) fn shut_down(&'static self) {
        self.gate.close_at_exit();
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
/// not stopped by another test's `stopped!`. It may be sent to another thread.
pub struct SharedGuard {
    owner: &'static SharedFixture,
    fixture: &'static Fixture,
    /// The thread that took it: its uses count as one user.
    thread: ThreadId,
}

impl SharedGuard {
    /// Stops the shared service until the returned guard is dropped (see
    /// [`SharedFixture::stopped`]).
    ///
    /// # Errors
    ///
    /// The errors of [`SharedFixture::stopped`].
    pub fn stopped(&self) -> Result<SharedStopped, Error> {
        self.owner.stopped()
    }
}

impl Deref for SharedGuard {
    type Target = Fixture;

    fn deref(&self) -> &Fixture {
        self.fixture
    }
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        if let Some(kept) = self.fixture.as_kept() {
            kept.leave();
        }
        self.owner.gate.leave(self.thread);
    }
}

impl fmt::Debug for SharedGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.fixture, f)
    }
}

/// A shared service stopped by one test (see [`SharedFixture::stopped`]); dropping it starts
/// the service again and lets the other tests go on.
#[must_use = "the service is restarted when this guard is dropped"]
pub struct SharedStopped {
    owner: &'static SharedFixture,
    restart: Option<Down>,
}

/// A shared service stopped: here, or by the run's keeper.
enum Down {
    Here(Stopped),
    Kept(KeptStopped),
}

impl Down {
    fn restart(self) -> Result<(), Error> {
        match self {
            Down::Here(stopped) => stopped.restart(),
            Down::Kept(stopped) => stopped.restart(),
        }
    }
}

impl SharedStopped {
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

impl Drop for SharedStopped {
    fn drop(&mut self) {
        // Restart first, while the gate is closed: nobody may see the service down. The gate
        // opens whether or not the restart panics.
        struct Open(&'static SharedFixture);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.gate.open();
            }
        }
        let _open = Open(self.owner);
        drop(self.restart.take());
    }
}

impl fmt::Debug for SharedStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStopped").finish_non_exhaustive()
    }
}

/// Who uses a shared service: tests enter and leave; `stopped!` closes it for itself once the
/// others left. Uses are counted per thread, so a test that takes the fixture again (a helper
/// calls `get()`) never waits for itself — with a plain read-write lock, that second read
/// waited behind a waiting `stopped!`, which waited for the first read: a deadlock.
#[derive(Debug)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug)]
struct GateState {
    /// Threads using the service, and how many uses each holds.
    users: Vec<(ThreadId, usize)>,
    /// The thread that stopped the service, while it is stopped.
    closed_by: Option<ThreadId>,
    /// Threads waiting to stop it: newcomers wait behind them, so they are not starved.
    closers: usize,
}

impl Gate {
    const fn new() -> Gate {
        Gate {
            state: Mutex::new(GateState { users: Vec::new(), closed_by: None, closers: 0 }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits while `blocked` says so, up to [`SHARED_WAIT`]; false if it still does.
    fn wait_while<'a>(
        &'a self,
        mut state: MutexGuard<'a, GateState>,
        blocked: impl Fn(&GateState) -> bool,
    ) -> (MutexGuard<'a, GateState>, bool) {
        let deadline = Instant::now() + SHARED_WAIT;
        while blocked(&state) {
            let now = Instant::now();
            if now >= deadline {
                return (state, false);
            }
            state = match self.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        (state, true)
    }

    /// A test starts using the service; returns its thread.
    fn enter(&self, name: &str) -> Result<ThreadId, String> {
        let me = std::thread::current().id();
        let mut state = self.lock();
        // Already a user, or the one that stopped it: never waits for itself.
        let mine = state.closed_by == Some(me) || state.users.iter().any(|(t, _)| *t == me);
        if !mine {
            let others_stopping = |s: &GateState| s.closed_by.is_some() || s.closers > 0;
            let (waited, in_time) = self.wait_while(state, others_stopping);
            state = waited;
            if !in_time {
                return Err(format!(
                    "the shared mirakuru fixture `{name}` stayed stopped by another test's \
                     `stopped!` for more than {SHARED_WAIT:?}; a test that holds it stopped \
                     while it waits for something else blocks all its other users"
                ));
            }
        }
        match state.users.iter_mut().find(|(t, _)| *t == me) {
            Some((_, uses)) => *uses += 1,
            None => state.users.push((me, 1)),
        }
        Ok(me)
    }

    /// A use by `thread` ends.
    fn leave(&self, thread: ThreadId) {
        let mut state = self.lock();
        if let Some(i) = state.users.iter().position(|(t, _)| *t == thread) {
            state.users[i].1 -= 1;
            if state.users[i].1 == 0 {
                state.users.swap_remove(i);
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// `stopped!`: waits until no other thread uses the service, and keeps them out.
    fn close(&self, name: &str) -> Result<(), String> {
        let me = std::thread::current().id();
        let mut state = self.lock();
        state.closers += 1;
        let others_use = |s: &GateState| {
            s.closed_by.is_some_and(|t| t != me) || s.users.iter().any(|(t, _)| *t != me)
        };
        let (mut state, in_time) = self.wait_while(state, others_use);
        state.closers -= 1;
        if !in_time {
            let users = state.users.iter().filter(|(t, _)| *t != me).count();
            drop(state);
            self.changed.notify_all();
            return Err(format!(
                "`stopped!` on the shared mirakuru fixture `{name}` waited {SHARED_WAIT:?} for \
                 {users} other test(s) still using it; a test that uses it while waiting for \
                 this one blocks both"
            ));
        }
        state.closed_by = Some(me);
        Ok(())
    }

    /// The service is back: waiting tests go on.
    fn open(&self) {
        self.lock().closed_by = None;
        self.changed.notify_all();
    }

    /// At exit: waits a moment for tests still using the service, never long.
    fn close_at_exit(&self) {
        let state = self.lock();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut state = state;
        while !state.users.is_empty() && Instant::now() < deadline {
            state = match self.changed.wait_timeout(state, Duration::from_millis(10)) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

thread_local! {
    /// The shared fixtures the current thread used: their logs go with its failure.
    static USED: RefCell<Vec<&'static SharedFixture>> = const { RefCell::new(Vec::new()) };
}

/// Notes that the current thread used `fixture`, so that if the thread panics — a failing
/// test — the service's last lines are printed with the failure, whether or not the test
/// still holds it (`SHARED.get().port()` drops its guard at once).
fn report_on_panic(fixture: &'static SharedFixture) {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let used = USED.with(|u| std::mem::take(&mut *u.borrow_mut()));
            for shared in used {
                if let Some(Ok(fixture)) = shared.started.get() {
                    eprint!("{}", fixture.report());
                }
            }
        }));
    });
    USED.with(|u| {
        let mut used = u.borrow_mut();
        if !used.iter().any(|f| std::ptr::eq(*f, fixture)) {
            used.push(fixture);
        }
    });
}
