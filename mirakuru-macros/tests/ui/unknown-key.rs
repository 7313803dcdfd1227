#[mirakuru::fixture(cmd = "redis-server --port 6379", prot = 6379)]
#[test]
fn reads() {}

fn main() {}
