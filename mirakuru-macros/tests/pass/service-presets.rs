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

fn main() {
    if std::env::args().count() > 100 {
        uses_presets();
    }
}
