//! Kafka client metrics under the names Micrometer gives the Java client's metrics, so a Grafana
//! dashboard built for Mia-Platform's services keeps working: derived from librdkafka's statistics
//! (`statistics.interval.ms`, 5 s unless configured), one series per client handle (`client_id` is
//! librdkafka's handle name, unique per client as Java's client ids are).
//!
//! | Metric | Labels | From |
//! |---|---|---|
//! | `kafka_consumer_fetch_manager_records_lag` | client_id, topic, partition | `consumer_lag` |
//! | `kafka_consumer_fetch_manager_records_consumed_total` | client_id, topic | Σ partitions' `rxmsgs` |
//! | `kafka_consumer_fetch_manager_records_consumed_rate` | client_id, topic | its change per second |
//! | `kafka_consumer_fetch_manager_bytes_consumed_total` | client_id, topic | Σ partitions' `rxbytes` |
//! | `kafka_consumer_fetch_manager_bytes_consumed_rate` | client_id, topic | its change per second |
//! | `kafka_producer_record_send_total` | client_id | `txmsgs` |
//! | `kafka_producer_record_send_rate` | client_id | its change per second |
//! | `kafka_producer_outgoing_byte_rate` | client_id | `tx_bytes` per second |

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::statistics::Statistics;

/// Statistics interval when the configuration sets none.
const DEFAULT_INTERVAL_MS: &str = "5000";

struct Collectors {
    lag: IntGaugeVec,
    consumed_total: IntCounterVec,
    consumed_rate: GaugeVec,
    bytes_consumed_total: IntCounterVec,
    bytes_consumed_rate: GaugeVec,
    send_total: IntCounterVec,
    send_rate: GaugeVec,
    outgoing_byte_rate: GaugeVec,
    /// Per client handle: the previous report's time and totals.
    previous: Mutex<HashMap<String, Totals>>,
}

#[derive(Default)]
struct Totals {
    ts_us: i64,
    /// Per topic: records and bytes received.
    consumed: HashMap<String, (u64, u64)>,
    sent: i64,
    sent_bytes: i64,
}

static COLLECTORS: OnceLock<Collectors> = OnceLock::new();

fn collectors() -> &'static Collectors {
    COLLECTORS.get_or_init(|| {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let by_topic = &["client_id", "topic"];
        Collectors {
            lag: IntGaugeVec::new(
                Opts::new(
                    "kafka_consumer_fetch_manager_records_lag",
                    "Records between the consumer's position and the partition's end",
                ),
                &["client_id", "topic", "partition"],
            )
            .expect("valid metric"),
            consumed_total: counter(
                "kafka_consumer_fetch_manager_records_consumed_total",
                "Records consumed",
                by_topic,
            ),
            consumed_rate: gauge(
                "kafka_consumer_fetch_manager_records_consumed_rate",
                "Records consumed per second over the last statistics interval",
                by_topic,
            ),
            bytes_consumed_total: counter(
                "kafka_consumer_fetch_manager_bytes_consumed_total",
                "Bytes consumed",
                by_topic,
            ),
            bytes_consumed_rate: gauge(
                "kafka_consumer_fetch_manager_bytes_consumed_rate",
                "Bytes consumed per second over the last statistics interval",
                by_topic,
            ),
            send_total: counter(
                "kafka_producer_record_send_total",
                "Records sent to brokers",
                &["client_id"],
            ),
            send_rate: gauge(
                "kafka_producer_record_send_rate",
                "Records sent per second over the last statistics interval",
                &["client_id"],
            ),
            outgoing_byte_rate: gauge(
                "kafka_producer_outgoing_byte_rate",
                "Bytes sent to brokers per second over the last statistics interval",
                &["client_id"],
            ),
            previous: Mutex::new(HashMap::new()),
        }
    })
}

/// A service's registry, serving the client metrics (see [`register`]).
pub fn registry() -> Registry {
    let registry = Registry::new();
    register(&registry);
    registry
}

/// Serves the client metrics from `registry` (a service's), and turns statistics on for the
/// clients created afterwards (see [`enable_statistics`]).
pub fn register(registry: &Registry) {
    let c = collectors();
    let all: [Box<dyn prometheus::core::Collector>; 8] = [
        Box::new(c.lag.clone()),
        Box::new(c.consumed_total.clone()),
        Box::new(c.consumed_rate.clone()),
        Box::new(c.bytes_consumed_total.clone()),
        Box::new(c.bytes_consumed_rate.clone()),
        Box::new(c.send_total.clone()),
        Box::new(c.send_rate.clone()),
        Box::new(c.outgoing_byte_rate.clone()),
    ];
    for collector in all {
        // Registered once per registry; a second registration of the same one is refused, harmlessly.
        let _ = registry.register(collector);
    }
}

/// Asks librdkafka for statistics (every 5 s unless `statistics.interval.ms` is set) when the
/// metrics are served.
pub fn enable_statistics(config: &mut ClientConfig) {
    if COLLECTORS.get().is_some() && config.get("statistics.interval.ms").is_none() {
        config.set("statistics.interval.ms", DEFAULT_INTERVAL_MS);
    }
}

/// Updates the metrics from one statistics report.
pub fn record(statistics: &Statistics) {
    let Some(c) = COLLECTORS.get() else {
        return;
    };
    let client = statistics.name.as_str();
    let mut previous = c.previous.lock().unwrap_or_else(|p| p.into_inner());
    let last = previous.entry(client.to_owned()).or_default();
    let seconds = (statistics.ts - last.ts_us) as f64 / 1e6;
    let first_report = last.ts_us == 0;
    let per_second = |delta: f64| {
        if first_report || seconds <= 0.0 {
            0.0
        } else {
            delta / seconds
        }
    };
    match statistics.client_type.as_str() {
        "consumer" => {
            for (topic, stats) in &statistics.topics {
                let (mut records, mut bytes) = (0, 0);
                for partition in stats.partitions.values().filter(|p| p.partition >= 0) {
                    records += partition.rxmsgs;
                    bytes += partition.rxbytes;
                    let labels = [client, topic.as_str(), &partition.partition.to_string()];
                    if partition.consumer_lag >= 0 {
                        c.lag.with_label_values(&labels).set(partition.consumer_lag);
                    } else {
                        // Not (or no longer) consumed here.
                        let _ = c.lag.remove_label_values(&labels);
                    }
                }
                let (was_records, was_bytes) = last.consumed.get(topic).copied().unwrap_or((0, 0));
                // librdkafka's per-partition totals restart when a partition is re-assigned.
                let new_records = records.saturating_sub(was_records);
                let new_bytes = bytes.saturating_sub(was_bytes);
                let labels = [client, topic.as_str()];
                c.consumed_total
                    .with_label_values(&labels)
                    .inc_by(new_records);
                c.bytes_consumed_total
                    .with_label_values(&labels)
                    .inc_by(new_bytes);
                c.consumed_rate
                    .with_label_values(&labels)
                    .set(per_second(new_records as f64));
                c.bytes_consumed_rate
                    .with_label_values(&labels)
                    .set(per_second(new_bytes as f64));
                last.consumed.insert(topic.clone(), (records, bytes));
            }
        }
        "producer" => {
            let sent = (statistics.txmsgs - last.sent).max(0);
            let sent_bytes = (statistics.tx_bytes - last.sent_bytes).max(0);
            c.send_total
                .with_label_values(&[client])
                .inc_by(sent as u64);
            c.send_rate
                .with_label_values(&[client])
                .set(per_second(sent as f64));
            c.outgoing_byte_rate
                .with_label_values(&[client])
                .set(per_second(sent_bytes as f64));
            last.sent = statistics.txmsgs;
            last.sent_bytes = statistics.tx_bytes;
        }
        _ => {}
    }
    last.ts_us = statistics.ts;
}

/// The context of the services' producers: feeds their statistics to the metrics.
#[derive(Clone, Copy, Default)]
pub struct StatisticsContext;

impl ClientContext for StatisticsContext {
    fn stats(&self, statistics: Statistics) {
        record(&statistics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(client_type: &str, ts: i64, json: serde_json::Value) -> Statistics {
        let mut value = serde_json::json!({
            "name": format!("rdkafka#{client_type}-1"), "client_id": "svc", "type": client_type,
            "ts": ts, "time": 0, "age": 0, "replyq": 0, "msg_cnt": 0, "msg_size": 0, "msg_max": 0,
            "msg_size_max": 0, "tx": 0, "tx_bytes": 0, "rx": 0, "rx_bytes": 0, "txmsgs": 0,
            "txmsg_bytes": 0, "rxmsgs": 0, "rxmsg_bytes": 0, "simple_cnt": 0,
            "metadata_cache_cnt": 0, "brokers": {}, "topics": {}
        });
        if let (Some(base), Some(extra)) = (value.as_object_mut(), json.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(value).expect("statistics")
    }

    #[test]
    fn reports_become_micrometer_named_series_with_rates_from_differences() {
        let registry = Registry::new();
        register(&registry);
        let partition = |lag: i64, rx: u64| {
            let mut p = serde_json::json!({"partition": 0, "broker": 1, "leader": 1, "desired": true,
                "unknown": false, "msgq_cnt": 0, "msgq_bytes": 0, "xmit_msgq_cnt": 0,
                "xmit_msgq_bytes": 0, "fetchq_cnt": 0, "fetchq_size": 0, "fetch_state": "active",
                "query_offset": 0, "next_offset": 0, "app_offset": 0, "stored_offset": 0,
                "committed_offset": 0, "eof_offset": 0, "lo_offset": 0, "hi_offset": 0,
                "ls_offset": 0, "consumer_lag": lag, "consumer_lag_stored": lag, "txmsgs": 0,
                "txbytes": 0, "rxmsgs": rx, "rxbytes": rx * 100, "msgs": 0, "rx_ver_drops": 0,
                "msgs_inflight": 0, "next_ack_seq": 0, "next_err_seq": 0, "acked_msgid": 0});
            p["partition"] = 0.into();
            p
        };
        let topics = |lag, rx| {
            serde_json::json!({"topics": {"orders": {"topic": "orders", "age": 0, "metadata_age": 0,
                "batchsize": {"min":0,"max":0,"avg":0,"sum":0,"stddev":0,"p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0,"hdrsize":0,"cnt":0},
                "batchcnt": {"min":0,"max":0,"avg":0,"sum":0,"stddev":0,"p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0,"hdrsize":0,"cnt":0},
                "partitions": {"0": partition(lag, rx)}}}})
        };
        record(&report("consumer", 1_000_000, topics(50, 10)));
        record(&report("consumer", 3_000_000, topics(20, 50)));
        record(&report(
            "producer",
            1_000_000,
            serde_json::json!({"txmsgs": 100, "tx_bytes": 1000}),
        ));
        record(&report(
            "producer",
            2_000_000,
            serde_json::json!({"txmsgs": 400, "tx_bytes": 7000}),
        ));
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        for expected in [
            r#"kafka_consumer_fetch_manager_records_lag{client_id="rdkafka#consumer-1",partition="0",topic="orders"} 20"#,
            r#"kafka_consumer_fetch_manager_records_consumed_total{client_id="rdkafka#consumer-1",topic="orders"} 50"#,
            r#"kafka_consumer_fetch_manager_records_consumed_rate{client_id="rdkafka#consumer-1",topic="orders"} 20"#,
            r#"kafka_consumer_fetch_manager_bytes_consumed_rate{client_id="rdkafka#consumer-1",topic="orders"} 2000"#,
            r#"kafka_producer_record_send_total{client_id="rdkafka#producer-1"} 400"#,
            r#"kafka_producer_record_send_rate{client_id="rdkafka#producer-1"} 300"#,
            r#"kafka_producer_outgoing_byte_rate{client_id="rdkafka#producer-1"} 6000"#,
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
    }
}
