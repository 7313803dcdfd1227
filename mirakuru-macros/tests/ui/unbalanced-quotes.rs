#[mirakuru::fixture(cmd = "redis-server --save '", tcp = 6379)]
#[test]
fn reads() {}

fn main() {}
