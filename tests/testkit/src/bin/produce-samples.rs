//! `produce-samples TOPIC COUNT [PARTITIONS] [FIRST_TIMESTAMP_MS]`: creates TOPIC if needed and
//! produces COUNT sample JSON records over its partitions, the n-th (key `{"id":n}`) timestamped
//! FIRST_TIMESTAMP_MS + n (default: now + n); used by the local demo, `deploy/local/run.sh`.

use bss_testkit::kafka::{create_topic, produce, producer, TestRecord};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(topic), Some(count)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: produce-samples TOPIC COUNT [PARTITIONS] [FIRST_TIMESTAMP_MS]");
    };
    let count: u64 = count.parse()?;
    let partitions: i32 = args.get(2).map_or(Ok(3), |p| p.parse())?;
    create_topic(topic, partitions).await;
    let now = match args.get(3) {
        Some(ms) => ms.parse()?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    };
    let records: Vec<TestRecord> = (0..count)
        .map(|n| TestRecord::json((n % partitions as u64) as i32, n, now + n as i64))
        .collect();
    produce(&producer(), topic, &records).await;
    println!("produced {count} records to {topic} ({partitions} partitions)");
    Ok(())
}
