#[mirakuru::fixture(service = mongodb)]
#[test]
fn t(_db: &mirakuru::Fixture) {}

fn main() {}
