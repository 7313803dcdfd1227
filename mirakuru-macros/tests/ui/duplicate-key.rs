#[mirakuru::fixture(cmd = "redis-server", timeout = "10s", timeout = "30s")]
#[test]
fn reads() {}

fn main() {}
