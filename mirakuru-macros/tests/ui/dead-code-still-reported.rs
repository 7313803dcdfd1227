#![deny(dead_code)]

// The expansion must not silence the user's own lints on the user's own code.
#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = auto)]
fn never_called(redis: &mirakuru::Fixture) {
    let _ = redis.port();
}

fn main() {}
