#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port}", scope = run)]
#[test]
fn uses_redis(redis: &mirakuru::Fixture) {
    let _ = redis.port();
}

fn main() {}
