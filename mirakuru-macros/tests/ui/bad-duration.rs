#[mirakuru::fixture(cmd = "server", timeout = "30 seconds")]
#[test]
fn reads() {}

fn main() {}
