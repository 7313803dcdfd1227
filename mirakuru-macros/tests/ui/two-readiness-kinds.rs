#[mirakuru::fixture(cmd = "server --port {port}", tcp = auto, http = auto)]
#[test]
fn reads() {}

fn main() {}
