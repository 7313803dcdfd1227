//! Implementation detail of the `mirakuru` crate: the `#[mirakuru::fixture(...)]` attribute.
//! Use it as `mirakuru::fixture`; its expansion calls into `mirakuru` only.
//!
//! The attribute goes through phases, one concern a module, all written on `proc_macro2` so
//! that they are unit-tested; `expand::fixture` is the pipeline:
//!
//! - reading: `ast` (the item under the attribute) and `args` (its `key = value` arguments,
//!   as written);
//! - checking: `keys` (the table of keys, and which were given), `values`, `command` and
//!   `readiness` (each value typed), `placeholders` (the `{...}` in strings), `draft` (what
//!   has been read so far), `valid` (the rules that involve several keys), `def` (the order
//!   of all that for one attribute) and `bind` (the test's parameters bound to its
//!   fixtures); every mistake is reported at once, on its token (`errors`);
//! - emitting: `expand` (the generated code), or `fallback` (the item next to the errors).

#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod args;
mod ast;
mod bind;
mod command;
mod def;
mod draft;
mod errors;
mod expand;
mod fallback;
mod keys;
mod placeholders;
mod readiness;
mod valid;
mod values;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Starts the services a test depends on before its body, waits until each is ready, and
/// stops them — whole process trees — after it, whatever happens to the test. On a `static`,
/// declares a service shared by the tests of the binary.
///
/// ```no_run
/// #[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
/// #[test]
/// fn counts(redis: &mirakuru::Fixture) {
///     let port = redis.port(); // the free port chosen for it
///     # let _ = port;
/// }
/// # fn main() {}
/// ```
///
/// # Where it goes
///
/// - On a test function, **above** `#[test]` (or `#[tokio::test]` for an `async fn`):
///   attributes expand from the top, and the test attribute must see the function after the
///   fixture parameters are gone. Written below the test attribute, it fails to compile
///   ("functions used as tests can not have any arguments").
/// - Several fixture attributes may be stacked. They start in order, top to bottom, and stop
///   in reverse.
/// - On a `static` without initializer: a [shared fixture](#shared-fixtures).
///
/// # Fixture parameters
///
/// Each parameter of the test receives a fixture, and the attribute removes it from the
/// signature. A parameter binds the fixture whose `name` is the parameter's name; a test with
/// one fixture and one parameter binds them whatever the names. Write the parameter as
/// `name: &mirakuru::Fixture`: it gives the service's `port()`, `host()`, `url()`, `socket()`,
/// `pid()`, `output()`, `tmpdir()`, `captures()`, `readiness_times()`, `check_alive()`, and
/// works with `mirakuru::stopped!(name, { ... })`.
///
/// ```no_run
/// #[mirakuru::fixture(name = pg, tcp = auto, timeout = "30s", user = "postgres",
///     cmd = "postgres -D {tmpdir}/data -p {port} -k {tmpdir}")]
/// #[mirakuru::fixture(name = cache, tcp = auto, args = ["memcached", "-p", "{port}", "-u", "nobody"])]
/// #[test]
/// fn both(pg: &mirakuru::Fixture, cache: &mirakuru::Fixture) -> Result<(), String> {
///     assert_ne!(pg.port(), cache.port());
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// A test returning `Err` fails like any other, and the last lines each fixture wrote are
/// printed; so they are when the test panics. A fixture that cannot start panics too, with
/// the reason: give `#[should_panic]` an `expected = "..."` message, or such a failure would
/// pass the test.
///
/// # Arguments
///
/// `key = value`, separated by commas.
///
/// **The command**, exactly one of:
///
/// | key | value |
/// |---|---|
/// | `cmd` | `"program --flag 'an argument'"`: a command line, split as a POSIX shell would (unbalanced quotes are a compile error) |
/// | `args` | `["program", "--flag", "an argument"]`: the arguments, as they are |
/// | `service` | `postgres`, `redis`, `mariadb`, `memcached` or `nginx`: a ready-made server that finds its binaries, prepares its data once, waits by protocol and gives `url()` and `database()` (see `mirakuru::services`); with `load = "tests/schema.sql"`, the schema of every `database()` of `postgres` and `mariadb` |
///
/// **Readiness**: what the fixture waits for. Without any, it is ready once the program runs.
/// Several may be given with `ready = all` (ready when every one is, all checked at the same
/// time) or `ready = any` (ready when the first one is); without `ready`, two readiness kinds
/// are a compile error, since one of them is usually a slip.
///
/// | key | ready when |
/// |---|---|
/// | `tcp = auto` or `tcp = 6379` | the port accepts TCP connections; `auto` picks a free port, written where `{port}` appears |
/// | `tcp = discover` | the service listens on some TCP port, found in `/proc` without guessing: start it on port 0; `port()` gives the port found |
/// | `http = auto` or `http = 8080` | `http://{host}:{port}/` answers with a 2xx status; with `path = "/health"`, or `url = "http://{host}:{port}/health"`; `method = "GET"` (default `HEAD`), `status = 200` or `status = "2\\d\\d"` (a regex matching the whole code) |
/// | `unix = auto` or `unix = "path"` | the unix socket accepts connections; `auto` is `{socket}` |
/// | `pid = "path"` | the pid file names a running process |
/// | `output = "regex"` | a line of stdout or stderr matches (checked at compile time); its groups are `captures()`, a group named `port` is `port()` |
/// | `notify = true` | the service sends `READY=1` over `NOTIFY_SOCKET` (sd_notify: PostgreSQL, `redis-server --supervised systemd`, …); `ERRNO=` fails at once, `EXTEND_TIMEOUT_USEC=` extends the timeout |
/// | `ready_fd = 3` | the service writes a newline to its fd 3 (s6 style) |
/// | `exec = "pg_isready -h {host} -p {port}"` or `exec = ["redis-cli", "-p", "{port}", "ping"]` | the command exits 0; with `exec_output = "^PONG"` its output must match too; each run may take `exec_timeout` (default 5 s) |
/// | `redis = auto`, `redis = 6379` or `redis = "{tmpdir}/redis.sock"` | Redis answers `PING` with `PONG` (`-LOADING` is not ready), over TCP or its unix socket |
/// | `postgres = auto`, `postgres = 5432` or `postgres = "{tmpdir}/.s.PGSQL.{port}"` | PostgreSQL accepts connections, as `pg_isready` decides (starting up is not ready) |
/// | `mysql = auto`, `mysql = 3306` or `mysql = "{tmpdir}/mysql.sock"` | MariaDB or MySQL sends its handshake |
/// | `file = "path"` | the file exists; with `file_matches = "regex"`, its content (or its line `file_line = 8`) matches. A file left from an earlier run counts only once rewritten |
/// | `check = my_check` or `check = \|cx\| ...` | a function or closure taking `&mirakuru::ready::Context` says `mirakuru::ready::Status::Ready` |
///
/// Checks on a port (`tcp`, `http`, `redis`, `postgres`, `mysql`) share the fixture's one port: write
/// `auto` for all of them, or the same number. With `owned = true`, only a listener of the
/// service's own processes counts on that port, never a foreign process answering there.
///
/// ```no_run
/// #[mirakuru::fixture(ready = all, notify = true, redis = auto, owned = true,
///     cmd = "redis-server --port {port} --save '' --supervised systemd")]
/// #[test]
/// fn announced(redis: &mirakuru::Fixture) {
///     for (check, after) in redis.readiness_times() {
///         println!("{check} after {after:?}");
///     }
/// }
/// # fn main() {}
/// ```
///
/// A fixture whose service dies during the test fails the test when it ends, with how it
/// died and its last lines; call `fixture.check_alive()?` to fail at that point instead.
///
/// **Options**:
///
/// | key | value | default |
/// |---|---|---|
/// | `name` | an identifier: binds the parameter of that name, and names the fixture in messages | the program's file name |
/// | `host` | `"127.0.0.1"`, `"::1"`, `"localhost"`: where TCP and HTTP checks connect, and `{host}` | `"127.0.0.1"` |
/// | `timeout` | how long it may take to be ready: `"500ms"`, `"30s"`, `"1.5s"`, `"2m"`, `"1h"`, or a number of seconds (`30`) | 60 s |
/// | `stop_timeout` | how long it may take to stop before it is killed, written the same way | 10 s |
/// | `env` | `["KEY=value", ...]` | the test's environment |
/// | `cwd` | the working directory | the test's |
/// | `shell` | `true` runs `cmd` with `sh -c` | `false` |
/// | `user` | `"postgres"`, a uid or `"uid:gid"`: run as that user (only root can); `{tmpdir}` is given to them | the test's user |
/// | `stop_signal` | `SIGINT`, `INT` or `"SIGINT"`: a POSIX signal name | `SIGTERM` |
/// | `kill_signal` | the signal after the stop timeout | `SIGKILL` |
/// | `expected_returncode` | the exit code that counts as a clean stop: `143`, `-15` | stopped by the stop signal, or 0 |
///
/// **Placeholders**, in `cmd`, `args`, `env` values, `url`, `path`, `cwd`, `pid`, `unix`,
/// `exec` and `file`: `{port}` (only with `auto` ports: with a fixed port, write the port
/// itself), `{host}`, `{tmpdir}` (a private directory, removed afterwards), `{socket}` (a
/// socket path inside it). Any other `{word}` is an error; `${VAR}` is left to the shell.
///
/// From Python mirakuru: `envvars` is `env`, `banner` is `output`, `sig_stop` is
/// `stop_signal`; `timeout` and `expected_returncode` keep their names.
///
/// # Shared fixtures
///
/// On a `static` of type `mirakuru::SharedFixture`, without initializer: one service for all
/// the tests of the binary, started by the first test that calls `.get()`, stopped when the
/// binary exits. It is named in messages after the static, in lower case, unless `name` says
/// otherwise.
///
/// ```no_run
/// #[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
/// static REDIS: mirakuru::SharedFixture;
///
/// #[test]
/// fn counts() {
///     let redis = REDIS.get(); // started here if no test did before
///     let _port = redis.port();
/// }
/// # fn main() {}
/// ```
///
/// # Equivalent code without the attribute
///
/// The first example is the same as:
///
/// ```no_run
/// use mirakuru::fixture::{Fixtures, Port, Spec};
///
/// #[test]
/// fn counts() {
///     let fixtures = Fixtures::start(vec![
///         Spec::new("redis-server", "redis-server --port {port} --save ''").tcp(Port::Auto),
///     ]);
///     let redis: &mirakuru::Fixture = fixtures.get(0);
///     let body = || {
///         let port = redis.port();
///         # let _ = port;
///     };
///     body();
///     fixtures.finish(false); // true prints the output of the fixtures; stops them, last first
/// }
/// # fn main() {}
/// ```
///
/// and the shared fixture is:
///
/// ```no_run
/// use mirakuru::fixture::{Port, Spec};
///
/// static REDIS: mirakuru::SharedFixture = mirakuru::SharedFixture::new(|| {
///     Spec::new("redis", "redis-server --port {port} --save ''").tcp(Port::Auto)
/// });
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn fixture(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::fixture(args.into(), item.into()).into()
}
