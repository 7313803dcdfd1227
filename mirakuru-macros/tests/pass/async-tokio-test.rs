// The supported order: the fixture attribute above `#[tokio::test]`.
#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
#[tokio::test]
async fn reads(redis: &mirakuru::Fixture) -> Result<(), std::io::Error> {
    let _stream = std::net::TcpStream::connect((redis.host(), redis.port()))?;
    tokio::task::yield_now().await;
    Ok(())
}

#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
async fn checked(redis: &mirakuru::Fixture) -> Result<(), Box<dyn std::error::Error>> {
    let _stream = std::net::TcpStream::connect((redis.host(), redis.port()))?;
    tokio::task::yield_now().await;
    let _n: u16 = "1".parse()?;
    Ok(())
}

#[mirakuru::fixture(output = "hi", args = ["sh", "-c", "echo hi; exec sleep 30"])]
async fn unit(service: &mirakuru::Fixture) {
    tokio::task::yield_now().await;
    let _ = service.pid();
}

fn main() {
    // Futures that are never polled: nothing starts.
    drop(checked());
    drop(unit());
}
