#[mirakuru::fixture(cmd = "redis-server", args = ["redis-server"])]
#[test]
fn reads() {}

fn main() {}
