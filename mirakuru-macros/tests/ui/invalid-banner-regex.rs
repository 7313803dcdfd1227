#[mirakuru::fixture(cmd = "server", output = "listening on (port")]
#[test]
fn reads() {}

fn main() {}
