#[mirakuru::fixture(cmd = "redis-server", tcp = auto)]
#[test]
fn reads() {}

fn main() {}
