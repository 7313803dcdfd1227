#[mirakuru::fixture(cmd = "server", banner = "ready")]
#[test]
fn reads() {}

fn main() {}
