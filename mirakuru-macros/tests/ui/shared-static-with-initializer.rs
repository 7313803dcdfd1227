#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = auto)]
static mut REDIS: mirakuru::SharedFixture = mirakuru::SharedFixture::new(|| todo!());

fn main() {}
