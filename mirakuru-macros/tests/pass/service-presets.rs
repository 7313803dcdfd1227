//! `service = ...` on a function and on shared statics of both scopes, with `load`.
#![deny(warnings)]

#[mirakuru::fixture(service = postgres, load = "tests/schema.sql", scope = run)]
static PG: mirakuru::SharedFixture;

#[mirakuru::fixture(service = redis)]
static REDIS: mirakuru::SharedFixture;

#[mirakuru::fixture(service = mariadb, name = db, timeout = "120s")]
#[mirakuru::fixture(service = nginx, name = web)]
fn uses_presets(db: &mirakuru::Fixture, web: &mirakuru::Fixture) {
    let _ = (db.url(), web.port(), PG.database(), REDIS.database());
}

// The unix-socket forms of the protocol checks.
#[mirakuru::fixture(name = redis, redis = "{tmpdir}/r.sock", cmd = "redis-server --port 0 --unixsocket {tmpdir}/r.sock")]
#[mirakuru::fixture(name = pg, service = postgres, postgres = "{tmpdir}/.s.PGSQL.{port}")]
#[mirakuru::fixture(name = my, service = mariadb, mysql = "{tmpdir}/mysql.sock")]
#[mirakuru::fixture(name = other, mysql = auto, cmd = "mariadbd --port={port}")]
fn over_sockets(redis: &mirakuru::Fixture, pg: &mirakuru::Fixture, my: &mirakuru::Fixture, other: &mirakuru::Fixture) {
    let _ = (redis.socket(), pg.socket(), my.socket(), other.port());
}

fn main() {
    if std::env::args().count() > 100 {
        over_sockets();
    }
    if std::env::args().count() > 100 {
        uses_presets();
    }
}
