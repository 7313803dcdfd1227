#[mirakuru::fixture(cmd = "server", ready_fd = 1)]
#[test]
fn reads() {}

fn main() {}
