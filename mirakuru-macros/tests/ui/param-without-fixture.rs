#[mirakuru::fixture(name = pg, cmd = "postgres -p {port}", tcp = auto)]
#[mirakuru::fixture(name = cache, cmd = "memcached -p {port}", tcp = auto)]
#[test]
fn reads(pg: &mirakuru::Fixture, redis: &mirakuru::Fixture) {
    let _ = (pg.port(), redis.port());
}

fn main() {}
