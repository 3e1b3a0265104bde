//! Kafka helpers: topics, producing test records, reading topics back.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka_brokers;

/// A record as a test produces or expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// Partition.
    pub partition: i32,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Option<Vec<u8>>,
    /// Headers (keys are bytes, as on the wire).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// CreateTime in ms.
    pub timestamp_ms: i64,
}

impl TestRecord {
    /// An archived record as a test compares it (a missing timestamp reads as -1).
    pub fn from_archived(record: &bss_format::Record) -> Self {
        Self {
            partition: record.partition,
            key: record.key.clone(),
            payload: record.payload.clone(),
            headers: record
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            timestamp_ms: record.timestamp_ms.unwrap_or(-1),
        }
    }

    /// A small JSON record.
    pub fn json(partition: i32, n: u64, timestamp_ms: i64) -> Self {
        Self {
            partition,
            key: Some(format!("{{\"id\":{n}}}").into_bytes()),
            payload: Some(
                format!("{{\"id\":{n},\"name\":\"item {n}\",\"qty\":{}}}", n % 7).into_bytes(),
            ),
            headers: vec![("source".into(), Some(b"test".to_vec()))],
            timestamp_ms,
        }
    }
}

/// How a test client reaches one test cluster: bootstrap servers plus any security settings.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// librdkafka properties, `bootstrap.servers` included.
    pub properties: Vec<(String, String)>,
}

impl Cluster {
    /// A plaintext cluster at `brokers`.
    pub fn plain(brokers: &str) -> Self {
        Self::with(brokers, &[])
    }

    /// The cluster at `brokers` with extra client properties (TLS, SASL).
    pub fn with(brokers: &str, properties: &[(&str, &str)]) -> Self {
        let mut all = vec![("bootstrap.servers".to_owned(), brokers.to_owned())];
        all.extend(
            properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self { properties: all }
    }

    /// The secured test broker speaking SASL_SSL (SCRAM enforced), as the test user, with `mechanism`
    /// (`SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`) and the stack's CA.
    pub fn sasl_ssl(mechanism: &str) -> Self {
        let ca = crate::tls_file("ca.pem");
        Self::with(
            &crate::sasl_ssl_brokers(),
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", mechanism),
                ("sasl.username", crate::SCRAM_USER),
                ("sasl.password", crate::SCRAM_PASSWORD),
                ("ssl.ca.location", &ca),
            ],
        )
    }

    /// The test broker that requires a client certificate (mutual TLS), with the stack's client
    /// certificate and its password-protected key.
    pub fn mtls() -> Self {
        let properties = crate::mtls_properties();
        let borrowed: Vec<(&str, &str)> =
            properties.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Self::with(&crate::mtls_brokers(), &borrowed)
    }

    /// A client configuration holding every property.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (name, value) in &self.properties {
            config.set(name, value);
        }
        config
    }
}

/// Creates a topic (retention unlimited, since tests use old timestamps).
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_on(&kafka_brokers(), name, partitions).await;
}

/// [`create_topic`] on the broker at `brokers`.
pub async fn create_topic_on(brokers: &str, name: &str, partitions: i32) {
    create_topic_in(&Cluster::plain(brokers), name, partitions).await;
}

/// [`create_topic`] in `cluster`.
pub async fn create_topic_in(cluster: &Cluster, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics request");
    for result in results {
        if let Err((topic, code)) = result {
            assert_eq!(
                code,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "cannot create topic {topic}"
            );
        }
    }
}

/// A producer for tests (one record per batch, so tansu's watermarks stay right).
pub fn producer() -> FutureProducer {
    producer_on(&kafka_brokers())
}

/// [`producer`] for the broker at `brokers`.
pub fn producer_on(brokers: &str) -> FutureProducer {
    producer_in(&Cluster::plain(brokers))
}

/// [`producer`] for `cluster`.
pub fn producer_in(cluster: &Cluster) -> FutureProducer {
    cluster
        .client_config()
        .set("linger.ms", "5")
        .set("message.max.bytes", "10000000")
        .create()
        .expect("producer")
}

/// Produces records in order and waits for every acknowledgement.
pub async fn produce(producer: &FutureProducer, topic: &str, records: &[TestRecord]) {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let headers: Vec<bss_format::Header> = record
            .headers
            .iter()
            .map(|(key, value)| bss_format::Header {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        // Through librdkafka's C calls: header keys need not be UTF-8.
        let headers = bss_kafka::headers::owned_headers(&headers, &[]);
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(record.partition)
            .timestamp(record.timestamp_ms)
            .headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload.as_slice());
        }
        deliveries.push(producer.send(future_record, Timeout::After(Duration::from_secs(30))));
    }
    for delivery in futures::future::join_all(deliveries).await {
        delivery.expect("record acknowledged");
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The record's content.
    pub record: TestRecord,
    /// When this reader received it (fetches are not held back, so within milliseconds of its
    /// publication): rates of a running job are measured from these.
    pub arrived: Instant,
}

/// Reads `topic` from the beginning (no consumer group) until `expected` records arrived or `timeout`
/// passed; returns what it got, in arrival order per partition.
pub async fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<ReadRecord> {
    read_topic_until(topic, timeout, move |records| records.len() >= expected).await
}

/// Reads `topic` from the beginning until `done(records so far)` or `timeout`.
pub async fn read_topic_until(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[ReadRecord]) -> bool + Send + 'static,
) -> Vec<ReadRecord> {
    read_topic_in(
        &Cluster::plain(&kafka_brokers()),
        topic,
        timeout,
        done,
        false,
    )
    .await
}

/// Reads `topic` of `cluster` from the beginning until `done(records so far)` or `timeout`; with
/// `committed_only`, as a `read_committed` consumer (records of aborted transactions hidden).
pub async fn read_topic_in(
    cluster: &Cluster,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[ReadRecord]) -> bool + Send + 'static,
    committed_only: bool,
) -> Vec<ReadRecord> {
    let topic = topic.to_owned();
    let cluster = cluster.clone();
    // librdkafka calls block; a client-side hang on close was once seen, so bound the whole read.
    let task = tokio::task::spawn_blocking(move || {
        let isolation = if committed_only {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        let consumer: BaseConsumer = cluster
            .client_config()
            .set("isolation.level", isolation)
            .set("group.id", crate::unique("reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.message.max.bytes", "10000000")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer");
        let partitions =
            bss_kafka::partition_count(consumer.client(), &topic, Duration::from_secs(10))
                .expect("metadata")
                .expect("the topic exists");
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while !done(&out) && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                out.push(ReadRecord {
                    arrived: Instant::now(),
                    partition: message.partition(),
                    offset: message.offset(),
                    record: TestRecord {
                        partition: message.partition(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                        headers: bss_kafka::headers::read_headers(&message)
                            .into_iter()
                            .map(|h| (h.key, h.value))
                            .collect(),
                        timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
                    },
                });
            }
        }
        out
    });
    tokio::time::timeout(timeout + Duration::from_secs(20), task)
        .await
        .expect("reading the topic hung")
        .expect("reader task")
}

/// Records of one partition, in order.
pub fn of_partition(records: &[ReadRecord], partition: i32) -> Vec<TestRecord> {
    records
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.record.clone())
        .collect()
}
