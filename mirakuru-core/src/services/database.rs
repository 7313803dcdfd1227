//! [`Database`]: a database of a test's own on a shared server, removed when it is dropped —
//! at the end of the test, also when the test panics.

use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::Endpoint;
use crate::shared::SharedGuard;
use crate::Error;

/// A test's own database on a PostgreSQL, MariaDB or Redis fixture, made by
/// [`Fixture::database`](crate::Fixture::database) or
/// [`SharedFixture::database`](crate::SharedFixture::database): empty but for the fixture's
/// schema ([`Spec::load`](crate::fixture::Spec::load)), seen by no other test. Dropped (a
/// Redis database flushed) when this value is, whether the test passed or panicked.
///
/// ```no_run
/// #[mirakuru::fixture(service = postgres, load = "tests/schema.sql")]
/// static PG: mirakuru::SharedFixture;
///
/// #[test]
/// fn inserts_land_in_a_clean_database() {
///     let db = PG.database();
///     // connect with db.url(): postgresql://postgres:<password>@127.0.0.1:<port>/mirakuru_<…>
///     # let _ = db;
/// }
/// ```
pub struct Database {
    name: String,
    url: String,
    endpoint: Endpoint,
    remove: Option<Box<dyn Remove>>,
    /// A shared fixture's lease: the server stays up while the database is used.
    guard: Option<SharedGuard>,
}

/// How a database is removed; unwind-safe, as a test that panics drops it.
trait Remove: FnOnce() -> Result<(), Error> + Send + Sync + UnwindSafe + RefUnwindSafe {}

impl<F> Remove for F where
    F: FnOnce() -> Result<(), Error> + Send + Sync + UnwindSafe + RefUnwindSafe
{
}

impl Database {
    pub(crate) fn new(
        name: String,
        endpoint: Endpoint,
        remove: impl FnOnce() -> Result<(), Error> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
    ) -> Database {
        Database {
            name,
            url: endpoint.url(),
            endpoint,
            remove: Some(Box::new(remove)),
            guard: None,
        }
    }

    pub(crate) fn holding(mut self, guard: SharedGuard) -> Database {
        self.guard = Some(guard);
        self
    }

    /// The database's name (for Redis, its index).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL a client connects with: `postgresql://postgres:<password>@127.0.0.1:5432/<name>`,
    /// `mysql://root:<password>@127.0.0.1:3306/<name>`, `redis://default:<password>@127.0.0.1:6379/<index>` (with the
    /// password of an external service's URL, if it had one).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's host.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.endpoint.port
    }

    /// The user to connect as, if the service has users.
    pub fn user(&self) -> Option<&str> {
        self.endpoint.user.as_deref()
    }

    /// The password, for an external service whose URL has one.
    pub fn password(&self) -> Option<&str> {
        self.endpoint.password.as_deref()
    }

    /// Removes the database now, reporting what went wrong (dropping it does the same and
    /// prints the error).
    ///
    /// # Errors
    ///
    /// What the server's client said, e.g. that the server is gone.
    pub fn remove(mut self) -> Result<(), Error> {
        match self.remove.take() {
            Some(remove) => remove(),
            None => Ok(()),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(remove) = self.remove.take() {
            if let Err(err) = remove() {
                eprintln!("mirakuru: the test database {} was not removed: {err}", self.name);
            }
        }
    }
}

impl fmt::Debug for Database {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("url", &super::external::shown(&self.endpoint))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_and_databases_cross_catch_unwind() {
        fn unwind_safe<T: UnwindSafe + RefUnwindSafe + Send>() {}
        unwind_safe::<Database>();
        unwind_safe::<crate::Fixture>();
    }
}
