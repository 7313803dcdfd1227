#[mirakuru::fixture(tcp = 6379, timeout = "10s")]
#[test]
fn reads() {}

fn main() {}
