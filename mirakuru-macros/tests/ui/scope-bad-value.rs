#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port}", scope = "run")]
static REDIS: mirakuru::SharedFixture;

#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port}", scope = binary)]
static OTHER: mirakuru::SharedFixture;

fn main() {}
