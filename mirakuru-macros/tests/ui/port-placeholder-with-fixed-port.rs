#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = 6390)]
#[test]
fn reads() {}

fn main() {}
