//! End-to-end: topics and partitions to the bucket with exact content, events and forwarding.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bss_layout::{index, FileWrittenEvent, FileWrittenKey};
use bss_testkit::bucket::{assert_exactly_once, s3_settings};
use bss_testkit::kafka::{create_topic, of_partition, produce, producer, read_topic, TestRecord};
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};

/// Records that exercise every encoding path: text, binary, null key, tombstone, odd headers, 1 MiB.
fn tricky_records(partition: i32, base_ts: i64) -> Vec<TestRecord> {
    let mut records: Vec<TestRecord> = (0..20)
        .map(|n| TestRecord::json(partition, n, base_ts + n as i64))
        .collect();
    records.push(TestRecord {
        partition,
        key: Some(vec![0, 1, 2, 0xff, 0xfe]),
        payload: Some(vec![0x80, 0x81, b'"', b'\n', 0]),
        headers: vec![
            ("bin".into(), Some(vec![0, 1, 2, 0xff])),
            ("null".into(), None),
            ("bin".into(), Some(b"duplicate name".to_vec())),
        ],
        timestamp_ms: base_ts + 100,
    });
    records.push(TestRecord {
        partition,
        key: None,
        payload: Some(b"{\"no\":\"key\"}".to_vec()),
        headers: vec![],
        timestamp_ms: base_ts + 101,
    });
    records.push(TestRecord {
        partition,
        key: Some(b"deleted".to_vec()),
        payload: None,
        headers: vec![],
        timestamp_ms: base_ts + 102,
    });
    records.push(TestRecord {
        partition,
        key: Some(b"huge".to_vec()),
        payload: Some((0..(1 << 20)).map(|i| b'a' + (i % 26) as u8).collect()),
        headers: vec![("size".into(), Some(b"1MiB".to_vec()))],
        timestamp_ms: base_ts + 103,
    });
    records.extend((20..25).map(|n| TestRecord::json(partition, n, base_ts + 200 + n as i64)));
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_topics_and_partitions_with_exact_content_events_and_forwarding() {
    let orders = unique("orders");
    let orders_post = unique("orders-post");
    let customers = unique("customers");
    let customers_folder = unique("customers-folder");
    let events = unique("events");
    create_topic(&orders, 3).await;
    create_topic(&orders_post, 3).await;
    create_topic(&customers, 2).await;
    create_topic(&events, 1).await;

    let base_ts = 1_700_000_000_000;
    let producer = producer();
    let mut produced: BTreeMap<(String, i32), Vec<TestRecord>> = BTreeMap::new();
    for partition in 0..3 {
        let records = tricky_records(partition, base_ts);
        produce(&producer, &orders, &records).await;
        produced.insert((orders.clone(), partition), records);
    }
    for partition in 0..2 {
        let records: Vec<_> = (0..15)
            .map(|n| TestRecord::json(partition, n, base_ts + 5_000 + n as i64))
            .collect();
        produce(&producer, &customers, &records).await;
        produced.insert((customers.clone(), partition), records);
    }

    let s3 = s3_settings();
    let setup = StorerSetup::new(
        &unique("group"),
        &events,
        &[
            (&orders, None, &[&orders_post]),
            (&customers, Some(&customers_folder), &[]),
        ],
        "max-bytes-per-file: 64KiB\nflush-interval: 1s\ncompression: zstd",
        s3.service_env(),
    );
    let mut storer = setup.start_ready("archive");
    let store = s3.store();

    let orders_expected: BTreeMap<i32, i64> = (0..3)
        .map(|p| (p, produced[&(orders.clone(), p)].len() as i64))
        .collect();
    let customers_expected: BTreeMap<i32, i64> = (0..2).map(|p| (p, 15)).collect();
    let order_objects =
        wait_for_offsets(&store, &orders, &orders_expected, Duration::from_secs(60)).await;
    let customer_objects = wait_for_offsets(
        &store,
        &customers_folder,
        &customers_expected,
        Duration::from_secs(60),
    )
    .await;
    assert_exactly_once(&order_objects, &orders_expected);
    assert_exactly_once(&customer_objects, &customers_expected);

    // Exact content, per partition, in offset order; one partition and one topic per object.
    for (topic, objects) in [(&orders, &order_objects), (&customers, &customer_objects)] {
        for object in objects.iter() {
            assert_eq!(&object.name.topic, topic);
            assert!(object.path.ends_with(".txt.zst"), "{}", object.path);
            let first = &object.records[0];
            assert_eq!(
                (object.name.partition, object.name.first_offset),
                (first.partition, first.offset)
            );
            assert!(object
                .records
                .iter()
                .all(|r| r.partition == first.partition && *r.topic == **topic));
        }
        let mut by_partition: BTreeMap<i32, Vec<(i64, TestRecord)>> = BTreeMap::new();
        for record in objects.iter().flat_map(|o| &o.records) {
            by_partition
                .entry(record.partition)
                .or_default()
                .push((record.offset, TestRecord::from_archived(record)));
        }
        for (partition, mut records) in by_partition {
            records.sort_by_key(|(offset, _)| *offset);
            let stored: Vec<TestRecord> = records.into_iter().map(|(_, r)| r).collect();
            assert_eq!(
                stored,
                produced[&(topic.clone(), partition)],
                "{topic}/{partition}"
            );
        }
    }
    // The 1 MiB record exceeds the 64 KiB limit: it is alone in its object.
    assert!(order_objects
        .iter()
        .any(|o| o.records.len() == 1 && o.records[0].key.as_deref() == Some(&b"huge"[..])));

    // Every object has a key-index sidecar that describes it and finds each of its keys.
    for object in order_objects.iter().chain(&customer_objects) {
        let sidecar = object_store::ObjectStoreExt::get(
            store.as_ref(),
            &object_store::path::Path::from(index::index_path(&object.path)),
        )
        .await
        .expect("sidecar exists")
        .bytes()
        .await
        .expect("bytes");
        let header = index::IndexHeader::parse(&sidecar).expect("sidecar header");
        assert_eq!(header.records, object.records.len() as u64);
        assert_eq!(
            (header.first_offset, header.last_offset),
            (
                object.records[0].offset,
                object.records.last().expect("records").offset
            )
        );
        for key in object.records.iter().filter_map(|r| r.key.as_deref()) {
            let range = header.block_range(key).expect("non-empty filter");
            assert!(index::block_may_contain(
                &sidecar[range.start as usize..range.end as usize],
                key
            ));
        }
    }

    // Events: one per object, matching it.
    let all_objects: Vec<_> = order_objects.iter().chain(&customer_objects).collect();
    let event_records = read_topic(&events, all_objects.len(), Duration::from_secs(30)).await;
    assert_eq!(
        event_records.len(),
        all_objects.len(),
        "one event per object"
    );
    for event_record in &event_records {
        let key: FileWrittenKey =
            serde_json::from_slice(event_record.record.key.as_deref().expect("key"))
                .expect("key json");
        let event: FileWrittenEvent =
            serde_json::from_slice(event_record.record.payload.as_deref().expect("value"))
                .expect("event json");
        let object = all_objects
            .iter()
            .find(|o| o.path == event.file_path)
            .unwrap_or_else(|| panic!("no object {}", event.file_path));
        let first = &object.records[0];
        let last = object.records.last().expect("records");
        assert_eq!(
            (key.topic.as_str(), key.partition),
            (&*first.topic, first.partition)
        );
        assert_eq!(
            (event.batch_offset_start, event.batch_offset_end),
            (first.offset, last.offset)
        );
        assert_eq!(event.batch_size, object.records.len() as u64);
        assert_eq!(event.byte_size, object.stored_bytes);
        assert_eq!(event.bucket, s3.bucket);
        assert_eq!(event.compression, "zstd");
        assert_eq!(
            event
                .batch_time_start
                .as_deref()
                .map(bss_format::time::parse_iso_ms),
            Some(first.timestamp_ms)
        );
        assert_eq!(
            event
                .batch_time_end
                .as_deref()
                .map(bss_format::time::parse_iso_ms),
            Some(last.timestamp_ms)
        );
        let stored = object_store::ObjectStoreExt::get(
            store.as_ref(),
            &object_store::path::Path::from(object.path.as_str()),
        )
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
        assert_eq!(event.checksum, format!("crc32c:{:08x}", crc32c_of(&stored)));
    }

    // Forwarding: orders only, exactly the stored records, same partition, same order.
    let total_orders: usize = (0..3).map(|p| produced[&(orders.clone(), p)].len()).sum();
    let forwarded = read_topic(&orders_post, total_orders, Duration::from_secs(30)).await;
    assert_eq!(forwarded.len(), total_orders);
    for partition in 0..3 {
        assert_eq!(
            of_partition(&forwarded, partition),
            produced[&(orders.clone(), partition)]
        );
    }

    // Mia-Platform's dashboard metrics count what was written.
    assert_eq!(
        storer.metric("bss_bucket_upload_requests_total{status=\"OK\"}"),
        Some(all_objects.len() as f64)
    );
    let total_records: usize = all_objects.iter().map(|o| o.records.len()).sum();
    assert_eq!(
        storer.metric("bss_bucket_messages_written_total"),
        Some(total_records as f64)
    );

    let status = storer.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean stop; log:\n{}", storer.log());
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
