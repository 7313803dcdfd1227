#[mirakuru::fixture(name = pg, tcp = auto, timeout = "30s", user = "postgres",
    cmd = "postgres -D {tmpdir}/data -p {port} -k {tmpdir}", stop_signal = SIGINT)]
#[mirakuru::fixture(name = cache, tcp = auto, args = ["memcached", "-p", "{port}", "-u", "nobody"])]
#[test]
fn both(pg: &mirakuru::Fixture, cache: &mirakuru::Fixture) {
    assert_ne!(pg.port(), cache.port());
}

// Also in the other order of parameters, and with the other spellings of the path.
#[mirakuru::fixture(name = pg, tcp = auto, cmd = "postgres -p {port}")]
#[::mirakuru::fixture(name = cache, tcp = 11211, args = ["memcached", "-p", "11211"])]
#[mirakuru::fixture(name = web, http = auto, path = "/health", method = "GET", status = "2\\d\\d",
    cmd = "python3 -m http.server {port} --bind {host}", host = "127.0.0.1")]
fn three(cache: &mirakuru::Fixture, web: &mirakuru::Fixture, pg: &mirakuru::Fixture) {
    let _: &str = web.url();
    let _ = (cache.port(), pg.port());
}

fn main() {
    let _: fn() = three;
}
