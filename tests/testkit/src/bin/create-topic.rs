//! `create-topic TOPIC [PARTITIONS]`: creates a topic on the test broker (idempotent).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(topic) = args.first() else {
        anyhow::bail!("usage: create-topic TOPIC [PARTITIONS]");
    };
    let partitions: i32 = args.get(1).map_or(Ok(1), |p| p.parse())?;
    bss_testkit::kafka::create_topic(topic, partitions).await;
    Ok(())
}
