#[mirakuru::fixture(args = ["server", "--port", "{port}"], output = "ready")]
#[test]
fn reads() {}

fn main() {}
