//! `bss load` into the test broker: order per key, exact values, resumption after an interruption,
//! CSV rows, errors that name the row.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bss_testkit::kafka::{create_topic, read_topic};
use bss_testkit::{kafka_brokers, unique};
use common::Setup;

fn ndjson(rows: usize, keys: usize) -> String {
    (0..rows)
        .map(|seq| {
            format!(
                "{{\"id\":\"c{}\",\"seq\":{seq},\"note\":\"caf\\u00e9 \\\"x\\\"\"}}\n",
                seq % keys
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_load_resumes_and_every_row_arrives_once_in_key_order() {
    let topic = unique("load");
    create_topic(&topic, 3).await;
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("g"),
        "unused",
        &[(&topic, &topic)],
    );
    let input = setup.path("dump.ndjson");
    let text = ndjson(1500, 40);
    std::fs::write(&input, &text).expect("dump");

    // Slowed down so the interruption lands in the middle.
    let child = setup
        .command(&[
            "load", "--topic", &topic, "--input", &input, "--key", "id", "--rate", "500",
        ])
        .spawn()
        .expect("bss starts");
    // Interrupt once a first position is saved (not after a fixed delay, which a slow start outlasts).
    let position_path = format!("{input}.bss-load.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&position_path).is_ok_and(|p| !p.contains("\"rowsDone\": 0,")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no position saved within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().expect("pid");
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("stops after the interruption")
        .expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("re-run the same command to resume"),
        "{stderr}"
    );
    let position: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{input}.bss-load.json")).expect("position file"),
    )
    .expect("position json");
    let done = position["rowsDone"].as_u64().expect("rowsDone");
    assert!(done > 0 && done < 1500, "interrupted after {done} rows");
    assert_eq!(position["complete"], false);

    let resumed = setup
        .bss(&["load", "--topic", &topic, "--input", &input, "--key", "id"])
        .await
        .ok();
    assert!(
        resumed
            .stdout
            .contains(&format!("resumed after row {done}")),
        "{resumed:#?}"
    );
    let again = setup
        .bss(&["load", "--topic", &topic, "--input", &input, "--key", "id"])
        .await
        .ok();
    assert!(again.stdout.contains("already loaded"), "{again:#?}");

    let read = read_topic(&topic, 1500, Duration::from_secs(60)).await;
    assert_eq!(read.len(), 1500, "every row exactly once");
    let expected: Vec<&str> = text.lines().collect();
    let mut by_key: BTreeMap<Vec<u8>, (i32, Vec<u64>)> = BTreeMap::new();
    let mut values = Vec::new();
    for r in &read {
        let value = r.record.payload.clone().expect("a value");
        let doc: serde_json::Value = serde_json::from_slice(&value).expect("json");
        let seq = doc["seq"].as_u64().expect("seq");
        assert_eq!(
            value,
            expected[seq as usize].as_bytes(),
            "the value is the row as it was"
        );
        assert_eq!(
            r.record.key.as_deref(),
            Some(doc["id"].as_str().expect("id").as_bytes())
        );
        let entry = by_key
            .entry(r.record.key.clone().expect("key"))
            .or_insert((r.partition, Vec::new()));
        assert_eq!(entry.0, r.partition, "a key stays on one partition");
        entry.1.push(seq);
        values.push(seq);
    }
    for (key, (_, seqs)) in &by_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "order of key {key:?}: {seqs:?}"
        );
    }
    values.sort_unstable();
    assert_eq!(values, (0..1500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_rows_load_with_json_keys_and_bad_rows_are_named() {
    let topic = unique("load-csv");
    create_topic(&topic, 2).await;
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("g"),
        "unused",
        &[(&topic, &topic)],
    );
    let input = setup.path("customers.csv");
    std::fs::write(
        &input,
        "id,tenant,name\n1,acme,\"Rossi, Mario\"\n2,acme,Bianchi\n,acme,Nobody\n3,acme,Late\n",
    )
    .expect("csv");

    let dry = setup
        .bss(&[
            "load",
            "--topic",
            &topic,
            "--input",
            &input,
            "--key-fields",
            "tenant,id",
            "--dry-run",
        ])
        .await;
    assert_eq!(dry.code, 2, "{dry:#?}");
    assert!(dry.stderr.contains("row 3"), "{dry:#?}");

    // Without the row whose key is empty.
    std::fs::write(
        &input,
        "id,tenant,name\n1,acme,\"Rossi, Mario\"\n2,acme,Bianchi\n",
    )
    .expect("csv");
    let loaded = setup
        .bss(&[
            "load",
            "--topic",
            &topic,
            "--input",
            &input,
            "--key-fields",
            "tenant,id",
        ])
        .await
        .ok();
    assert!(loaded.stdout.contains("Loaded 2 rows"), "{loaded:#?}");
    let read = read_topic(&topic, 2, Duration::from_secs(30)).await;
    let mut pairs: Vec<(String, String)> = read
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.record.key.clone().expect("key")).expect("utf8"),
                String::from_utf8(r.record.payload.clone().expect("value")).expect("utf8"),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            (
                r#"{"tenant":"acme","id":"1"}"#.to_owned(),
                r#"{"id":"1","tenant":"acme","name":"Rossi, Mario"}"#.to_owned()
            ),
            (
                r#"{"tenant":"acme","id":"2"}"#.to_owned(),
                r#"{"id":"2","tenant":"acme","name":"Bianchi"}"#.to_owned()
            ),
        ]
    );

    // NDJSON with a row lacking its key: the rows before it are loaded and the error names the row.
    let input = setup.path("broken.ndjson");
    std::fs::write(
        &input,
        "{\"id\":1}\n{\"id\":2}\n{\"other\":3}\n{\"id\":4}\n",
    )
    .expect("ndjson");
    let broken = setup
        .bss(&["load", "--topic", &topic, "--input", &input, "--key", "id"])
        .await;
    assert_eq!(broken.code, 2, "{broken:#?}");
    assert!(
        broken.stderr.contains("row 3: key field /id is missing"),
        "{broken:#?}"
    );
    assert!(
        broken.stderr.contains("2 rows are acknowledged"),
        "{broken:#?}"
    );

    // The saved position belongs to that load: another target is refused until told to restart.
    let other = setup
        .bss(&[
            "load",
            "--topic",
            "no-such-topic-y",
            "--input",
            &input,
            "--key",
            "id",
        ])
        .await;
    assert_eq!(other.code, 2, "{other:#?}");
    assert!(
        other.stderr.contains("holds the position of another load"),
        "{other:#?}"
    );
    let missing_topic = setup
        .bss(&[
            "load",
            "--topic",
            "no-such-topic-y",
            "--input",
            &input,
            "--key",
            "id",
            "--restart",
        ])
        .await;
    assert_eq!(missing_topic.code, 2, "{missing_topic:#?}");
    assert!(
        missing_topic.stderr.contains("no-such-topic-y"),
        "{missing_topic:#?}"
    );
}
