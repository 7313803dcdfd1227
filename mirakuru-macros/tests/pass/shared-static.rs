/// One redis for every test of the binary.
#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
static REDIS: mirakuru::SharedFixture;

#[mirakuru::fixture(name = cache, tcp = auto, cmd = "memcached -p {port}")]
pub(crate) static MEMCACHED: mirakuru::SharedFixture;

/// One redis for every test process of a `cargo nextest run`.
#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''", scope = run)]
static RUN_REDIS: mirakuru::SharedFixture;

#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''", scope = process)]
static PROCESS_REDIS: mirakuru::SharedFixture;

#[test]
fn counts() {
    let redis = REDIS.get();
    assert!(redis.port() > 0);
}

fn main() {
    let _: &'static mirakuru::SharedFixture = &REDIS;
    let _: &'static mirakuru::SharedFixture = &MEMCACHED;
    let _: &'static mirakuru::SharedFixture = &RUN_REDIS;
    let _: &'static mirakuru::SharedFixture = &PROCESS_REDIS;
}
