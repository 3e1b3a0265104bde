//! `read-topic TOPIC COUNT [SHOW]`: reads TOPIC from the beginning until COUNT records arrived (or
//! 30 s passed), prints how many arrived and the first SHOW of them (used by the local demo,
//! `deploy/local/run.sh`).

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(topic), Some(count)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: read-topic TOPIC COUNT [SHOW]");
    };
    let count: usize = count.parse()?;
    let show: usize = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let records = bss_testkit::kafka::read_topic(topic, count, Duration::from_secs(30)).await;
    println!("{} records on {topic}", records.len());
    let text = |bytes: &Option<Vec<u8>>| {
        bytes.as_deref().map_or("null".to_owned(), |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    };
    for read in records.iter().take(show) {
        let r = &read.record;
        println!(
            "  partition {} timestamp {} key {} value {}",
            r.partition,
            r.timestamp_ms,
            text(&r.key),
            text(&r.payload)
        );
    }
    anyhow::ensure!(
        records.len() >= count,
        "expected {count} records on {topic}"
    );
    Ok(())
}
