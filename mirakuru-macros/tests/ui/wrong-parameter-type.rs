#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = auto)]
fn reads(redis: mirakuru::Fixture) {
    let _ = redis.port();
}

fn main() {
    reads();
}
