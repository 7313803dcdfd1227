#[mirakuru::fixture(cmd = "server", env = ["MODE=test", "DEBUG", "1ST=x"])]
#[test]
fn reads() {}

fn main() {}
