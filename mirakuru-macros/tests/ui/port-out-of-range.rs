#[mirakuru::fixture(cmd = "redis-server --port 70000", tcp = 70000)]
#[test]
fn reads() {}

fn main() {}
