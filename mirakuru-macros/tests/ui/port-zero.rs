#[mirakuru::fixture(cmd = "redis-server", tcp = 0)]
#[test]
fn reads() {}

fn main() {}
