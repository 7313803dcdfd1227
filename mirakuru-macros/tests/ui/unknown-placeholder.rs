#[mirakuru::fixture(cmd = "postgres -D {tempdir}/data")]
#[test]
fn reads() {}

fn main() {}
