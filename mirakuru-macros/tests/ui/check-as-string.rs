#[mirakuru::fixture(cmd = "server", check = "my_check")]
#[test]
fn reads() {}

fn main() {}
