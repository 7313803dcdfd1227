#[mirakuru::fixture(service = postgres, cmd = "postgres -D {tmpdir}")]
#[test]
fn t(_pg: &mirakuru::Fixture) {}

fn main() {}
