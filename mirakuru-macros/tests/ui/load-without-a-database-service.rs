#[mirakuru::fixture(service = redis, load = "tests/schema.sql")]
#[test]
fn t(_redis: &mirakuru::Fixture) {}

fn main() {}
