#[mirakuru::fixture(cmd = "postgres", stop_signal = SIGFAST)]
#[test]
fn reads() {}

fn main() {}
