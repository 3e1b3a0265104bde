//! `bss load`: a System-of-Record dump into a topic, as an initial load. Rows are produced in file
//! order by one idempotent producer and placed by key, so the order of each key is kept. The count of
//! rows acknowledged in sequence is saved to a position file, so an interrupted load resumes there.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bss_format::{decode_line, Record, TimestampType};
use clap::ValueEnum;
use futures::FutureExt;
use rdkafka::producer::DeliveryFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::progress::Progress;
use crate::{Context, Outcome};

/// Deliveries awaited at most at once; bounds memory and the rows re-sent after a crash.
const IN_FLIGHT: usize = 10_000;
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `bss load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Topic to load into (it must exist).
    #[arg(long)]
    topic: String,
    /// The dump file; a `.gz` file is decompressed.
    #[arg(long)]
    input: PathBuf,
    /// Input format [default: csv for `.csv`/`.csv.gz`, else ndjson].
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// Key of each row: a field name (`id`), a JSON Pointer (`/customer/id`) or a template of
    /// either (`${tenant}:${/order/id}`). Strings are used as they are, other values as compact JSON.
    #[arg(long, conflicts_with = "key_fields")]
    key: Option<String>,
    /// Key as a JSON object of these fields, in this order: `--key-fields id,tenant` gives
    /// `{"id":…,"tenant":…}` (the shape CDC connectors give keys).
    #[arg(long, value_delimiter = ',')]
    key_fields: Vec<String>,
    /// Messages per second at most; 0 = no limit.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Where the position is saved [default: `<input>.bss-load.json`].
    #[arg(long)]
    position: Option<PathBuf>,
    /// Start from the first row even when a saved position exists.
    #[arg(long)]
    restart: bool,
    /// `records` format only: keep the archived timestamps instead of letting the producer stamp the
    /// current time (old timestamps fall outside time-based retention at once).
    #[arg(long)]
    keep_timestamps: bool,
    /// Read and check every row (keys included) and produce nothing.
    #[arg(long)]
    dry_run: bool,
}

/// What the input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One JSON document per line; it becomes the value as it is.
    Ndjson,
    /// A header row, then rows; each becomes a JSON object of strings, in column order.
    Csv,
    /// The archive's line format (`bss dump --format records`, `bss inspect read`): key, value and
    /// headers exactly as archived.
    Records,
}

/// The saved position of a load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Position {
    input: String,
    input_bytes: u64,
    topic: String,
    format: InputFormat,
    key: String,
    /// Rows acknowledged by the broker, counted from the first without a hole.
    rows_done: u64,
    complete: bool,
}

/// Runs `bss load`.
pub async fn run(context: &Context, args: LoadArgs) -> anyhow::Result<Outcome> {
    let (format, key) = format_and_key(&args)?;
    let input_bytes = std::fs::metadata(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?
        .len();
    let position_path = args.position.clone().unwrap_or_else(|| {
        let mut name = args.input.clone().into_os_string();
        name.push(".bss-load.json");
        PathBuf::from(name)
    });
    let Some(mut position) = starting_position(&args, format, input_bytes, &position_path)? else {
        return Ok(Outcome::Done);
    };

    let counter = Arc::new(AtomicU64::new(0));
    let file =
        File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let counted = CountingReader {
        inner: file,
        count: Arc::clone(&counter),
    };
    let plain: Box<dyn Read> = if args.input.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(counted))
    } else {
        Box::new(counted)
    };
    let mut rows = Rows::new(
        BufReader::with_capacity(1 << 20, plain),
        format,
        key,
        &args.topic,
    )?;

    let interrupted = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&interrupted));
    if !args.dry_run {
        let consumer = context.consumer(context.group())?;
        let topic = args.topic.clone();
        tokio::task::spawn_blocking(move || {
            bss_kafka::probe(&consumer, Some(&topic), Duration::from_secs(15))
        })
        .await
        .context("Kafka probe task")?
        .map_err(anyhow::Error::msg)?;
    }
    let producer = (!args.dry_run).then(|| context.producer()).transpose()?;
    let mut progress = Progress::new("load", "input bytes", Some(input_bytes));
    let resumed_at = position.rows_done;
    let produced = produce(
        &args,
        &mut rows,
        producer.as_ref(),
        &mut position,
        &position_path,
        Reading {
            interrupted: &interrupted,
            bytes_read: &counter,
            progress: &mut progress,
        },
    )
    .await?;
    let (row_number, mut failure, stopped, mut in_flight) = (
        produced.rows_read,
        produced.failure,
        produced.stopped,
        produced.in_flight,
    );
    progress.finish();
    if args.dry_run {
        if let Some(e) = failure {
            return Err(e);
        }
        println!("Dry run: {row_number} rows read, every key found; nothing produced.");
        return Ok(Outcome::Done);
    }
    // Whatever happened, what was sent is awaited so the saved position is exact.
    while let Some(delivery) = in_flight.pop_front() {
        if let Err(e) = settle(delivery.await, &mut position, &args.topic) {
            failure.get_or_insert(e);
            break;
        }
    }
    position.complete = failure.is_none() && !stopped;
    save_position(&position_path, &position)?;
    if let Some(e) = failure {
        return Err(e.context(format!(
            "load stopped; {} rows are acknowledged and saved in {}: re-run the same command to resume",
            position.rows_done,
            position_path.display()
        )));
    }
    if stopped {
        eprintln!(
            "bss: interrupted; {} rows acknowledged, position saved in {}: re-run the same command to resume",
            position.rows_done,
            position_path.display()
        );
        return Ok(Outcome::Interrupted);
    }
    println!(
        "Loaded {} rows into {} ({} this run{}).",
        position.rows_done,
        args.topic,
        position.rows_done - resumed_at,
        if resumed_at > 0 {
            format!(", resumed after row {resumed_at}")
        } else {
            String::new()
        }
    );
    Ok(Outcome::Done)
}

/// How reading the input is followed: a stop signal, the bytes read so far, the progress line.
struct Reading<'a> {
    interrupted: &'a AtomicBool,
    bytes_read: &'a AtomicU64,
    progress: &'a mut Progress,
}

/// Where the produce loop ended.
struct Produced {
    /// Rows read (with the ones skipped as already loaded).
    rows_read: u64,
    /// Why it stopped early, if it failed.
    failure: Option<anyhow::Error>,
    /// Whether a signal stopped it.
    stopped: bool,
    /// Deliveries not awaited yet.
    in_flight: VecDeque<DeliveryFuture>,
}

/// Reads the rows and produces those after the position (none in a dry run), keeping at most
/// [`IN_FLIGHT`] unacknowledged and saving the position every [`SAVE_EVERY`].
async fn produce<R: BufRead>(
    args: &LoadArgs,
    rows: &mut Rows<R>,
    producer: Option<&bss_kafka::Producer>,
    position: &mut Position,
    position_path: &Path,
    reading: Reading<'_>,
) -> anyhow::Result<Produced> {
    let resumed_at = position.rows_done;
    let mut sent = 0u64;
    let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut row_number = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    let mut stopped = false;
    loop {
        if reading.interrupted.load(Ordering::SeqCst) {
            stopped = true;
            break;
        }
        let row = match rows.next() {
            None => break,
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
            Some(Ok(row)) => row,
        };
        row_number += 1;
        let before = reading.progress.done();
        reading.progress.inc(
            reading
                .bytes_read
                .load(Ordering::Relaxed)
                .saturating_sub(before),
        );
        if row_number <= resumed_at {
            continue;
        }
        let Some(producer) = producer else {
            continue;
        };
        let mut record = row;
        if !args.keep_timestamps {
            record.timestamp_ms = None;
        }
        if args.rate > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / f64::from(args.rate));
            tokio::time::sleep_until(due.into()).await;
        }
        match bss_kafka::enqueue(producer, &args.topic, &record, None, &[]).await {
            Ok(delivery) => in_flight.push_back(delivery),
            Err(e) => {
                failure = Some(
                    anyhow::Error::new(e)
                        .context(format!("producing row {row_number} to {}", args.topic)),
                );
                break;
            }
        }
        sent += 1;
        if in_flight.len() >= IN_FLIGHT {
            if let Some(delivery) = in_flight.pop_front() {
                if let Err(e) = settle(delivery.await, position, &args.topic) {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Count what is already acknowledged, in order, without waiting.
        while let Some(result) = in_flight.front_mut().and_then(|d| d.now_or_never()) {
            in_flight.pop_front();
            if let Err(e) = settle(result, position, &args.topic) {
                failure = Some(e);
                break;
            }
        }
        if failure.is_some() {
            break;
        }
        if last_save.elapsed() >= SAVE_EVERY {
            save_position(position_path, position)?;
            last_save = Instant::now();
        }
    }
    Ok(Produced {
        rows_read: row_number,
        failure,
        stopped,
        in_flight,
    })
}

/// The input's format (from `--format` or the file name) and the key of its rows.
fn format_and_key(args: &LoadArgs) -> anyhow::Result<(InputFormat, Option<KeyExpr>)> {
    let format = args.format.unwrap_or_else(|| {
        let name = args.input.to_string_lossy();
        if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            InputFormat::Csv
        } else {
            InputFormat::Ndjson
        }
    });
    let key = match (&args.key, args.key_fields.is_empty(), format) {
        (None, true, InputFormat::Records) => None,
        (_, _, InputFormat::Records) => {
            bail!("--key and --key-fields do not apply to records: their keys are kept")
        }
        (Some(expression), _, _) => Some(KeyExpr::parse(expression)?),
        (None, false, _) => Some(KeyExpr::Fields(args.key_fields.clone())),
        (None, true, _) => {
            bail!("give --key or --key-fields: every row needs a key so its updates stay in order")
        }
    };
    if args.keep_timestamps && format != InputFormat::Records {
        bail!("--keep-timestamps applies to --format records only");
    }
    Ok((format, key))
}

/// Where this load starts: from the saved position of the same load (same input, size, topic,
/// format and key), else from the first row; `None` when that load is already complete. A saved
/// position of another load is refused rather than overwritten.
fn starting_position(
    args: &LoadArgs,
    format: InputFormat,
    input_bytes: u64,
    position_path: &Path,
) -> anyhow::Result<Option<Position>> {
    let mut position = Position {
        input: args.input.to_string_lossy().into_owned(),
        input_bytes,
        topic: args.topic.clone(),
        format,
        key: args
            .key
            .clone()
            .unwrap_or_else(|| args.key_fields.join(",")),
        rows_done: 0,
        complete: false,
    };
    if args.restart || args.dry_run {
        return Ok(Some(position));
    }
    let Some(saved) = read_position(position_path)? else {
        return Ok(Some(position));
    };
    let same_load = Position {
        rows_done: 0,
        complete: false,
        ..saved.clone()
    } == position;
    if !same_load {
        bail!(
            "{} holds the position of another load ({} into {}, {} bytes); pass --restart to start over or --position for a new file",
            position_path.display(),
            saved.input,
            saved.topic,
            saved.input_bytes
        );
    }
    if saved.complete {
        println!(
            "{} was already loaded into {} ({} rows); --restart loads it again",
            saved.input, saved.topic, saved.rows_done
        );
        return Ok(None);
    }
    position.rows_done = saved.rows_done;
    Ok(Some(position))
}

/// Counts an acknowledged row, or says why it was not.
fn settle(
    result: <DeliveryFuture as std::future::Future>::Output,
    position: &mut Position,
    topic: &str,
) -> anyhow::Result<()> {
    match result {
        Ok(Ok(_)) => {
            position.rows_done += 1;
            Ok(())
        }
        Ok(Err((e, _))) => Err(anyhow::Error::new(e).context(format!(
            "row {} was refused by {topic}",
            position.rows_done + 1
        ))),
        Err(_) => bail!(
            "the producer went away before row {} was acknowledged",
            position.rows_done + 1
        ),
    }
}

fn watch_signals(flag: Arc<AtomicBool>) {
    tokio::spawn(async move {
        bss_telemetry::service::stop_signal().await;
        flag.store(true, Ordering::SeqCst);
    });
}

fn read_position(path: &Path) -> anyhow::Result<Option<Position>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a load position file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written to a temporary file then renamed, so a crash leaves the old position or the new one.
fn save_position(path: &Path, position: &Position) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let bytes = serde_json::to_vec_pretty(position)?;
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("saving the load position to {}", path.display()))
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How a row's key is made.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyExpr {
    /// Text and JSON Pointers, concatenated.
    Template(Vec<KeyPart>),
    /// A JSON object of these top-level fields.
    Fields(Vec<String>),
}

/// A piece of a key template.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPart {
    /// Literal text.
    Text(String),
    /// A JSON Pointer into the row.
    Pointer(String),
}

fn field_pointer(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{}", name.replace('~', "~0").replace('/', "~1"))
    }
}

impl KeyExpr {
    /// Parses `--key`.
    pub fn parse(expression: &str) -> anyhow::Result<Self> {
        if expression.trim().is_empty() {
            bail!("--key is empty");
        }
        if !expression.contains("${") {
            return Ok(Self::Template(vec![KeyPart::Pointer(field_pointer(
                expression,
            ))]));
        }
        let mut parts = Vec::new();
        let mut rest = expression;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(KeyPart::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .with_context(|| format!("--key {expression:?}: a `${{` is not closed"))?;
            let field = &after[..end];
            if field.is_empty() {
                bail!("--key {expression:?}: empty `${{}}`");
            }
            parts.push(KeyPart::Pointer(field_pointer(field)));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(KeyPart::Text(rest.to_owned()));
        }
        Ok(Self::Template(parts))
    }

    /// The key of `row`, or why it has none.
    pub fn evaluate(&self, row: &Value) -> Result<Vec<u8>, String> {
        let lookup = |pointer: &str| match row.pointer(pointer) {
            None | Some(Value::Null) => Err(format!("key field {pointer} is missing or null")),
            // CSV has no null: an empty cell is how a missing value shows there.
            Some(Value::String(s)) if s.is_empty() => Err(format!("key field {pointer} is empty")),
            Some(value) => Ok(value),
        };
        match self {
            Self::Template(parts) => {
                let mut key = String::new();
                for part in parts {
                    match part {
                        KeyPart::Text(text) => key.push_str(text),
                        KeyPart::Pointer(pointer) => match lookup(pointer)? {
                            Value::String(s) => key.push_str(s),
                            other => key.push_str(&other.to_string()),
                        },
                    }
                }
                Ok(key.into_bytes())
            }
            Self::Fields(fields) => {
                let mut key = String::from("{");
                for (index, field) in fields.iter().enumerate() {
                    if index > 0 {
                        key.push(',');
                    }
                    key.push_str(&Value::String(field.clone()).to_string());
                    key.push(':');
                    key.push_str(&lookup(&field_pointer(field))?.to_string());
                }
                key.push('}');
                Ok(key.into_bytes())
            }
        }
    }
}

/// The rows of the input as records to produce (topic and offsets unused).
struct Rows<R: BufRead> {
    source: Source<R>,
    format: InputFormat,
    key: Option<KeyExpr>,
    topic: Arc<str>,
    /// Line (ndjson, records) or row (csv) number of the last row read, for error messages.
    line: u64,
}

enum Source<R: BufRead> {
    Lines(R),
    Csv {
        reader: csv::Reader<R>,
        headers: Vec<String>,
    },
}

impl<R: BufRead> Rows<R> {
    fn new(
        input: R,
        format: InputFormat,
        key: Option<KeyExpr>,
        topic: &str,
    ) -> anyhow::Result<Self> {
        let source = match format {
            InputFormat::Ndjson | InputFormat::Records => Source::Lines(input),
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .from_reader(input);
                let headers = reader
                    .headers()
                    .context("reading the CSV header row")?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                Source::Csv { reader, headers }
            }
        };
        Ok(Self {
            source,
            format,
            key,
            topic: Arc::from(topic),
            line: 0,
        })
    }

    fn record(&self, key: Option<Vec<u8>>, value: Vec<u8>) -> Record {
        Record {
            topic: Arc::clone(&self.topic),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            timestamp_type: TimestampType::CreateTime,
            key,
            payload: Some(value),
            headers: Vec::new(),
        }
    }

    fn keyed(&self, value: Vec<u8>, document: &Value) -> anyhow::Result<Record> {
        let key = match &self.key {
            Some(expression) => Some(
                expression
                    .evaluate(document)
                    .map_err(|reason| anyhow::anyhow!("row {}: {reason}", self.line))?,
            ),
            None => None,
        };
        Ok(self.record(key, value))
    }

    fn next_row(&mut self) -> anyhow::Result<Option<Record>> {
        match &mut self.source {
            Source::Lines(input) => loop {
                let mut line = Vec::new();
                if input
                    .read_until(b'\n', &mut line)
                    .context("reading the input")?
                    == 0
                {
                    return Ok(None);
                }
                self.line += 1;
                let trimmed = line.trim_ascii();
                if trimmed.is_empty() {
                    continue;
                }
                if self.format == InputFormat::Records {
                    // Records: everything as archived (the timestamp is dropped later unless kept).
                    return decode_line(trimmed, None)
                        .map(Some)
                        .map_err(|e| anyhow::anyhow!("line {}: {e}", self.line));
                }
                let document: Value = serde_json::from_slice(trimmed)
                    .map_err(|e| anyhow::anyhow!("line {}: not JSON: {e}", self.line))?;
                let value = trimmed.to_vec();
                return self.keyed(value, &document).map(Some);
            },
            Source::Csv { reader, headers } => {
                let mut row = csv::StringRecord::new();
                if !reader
                    .read_record(&mut row)
                    .context("reading the CSV input")?
                {
                    return Ok(None);
                }
                self.line += 1;
                if row.len() != headers.len() {
                    bail!(
                        "row {}: {} columns, the header has {}",
                        self.line,
                        row.len(),
                        headers.len()
                    );
                }
                let mut object = serde_json::Map::new();
                let mut value = String::from("{");
                for (index, (name, cell)) in headers.iter().zip(row.iter()).enumerate() {
                    if index > 0 {
                        value.push(',');
                    }
                    value.push_str(&Value::String(name.clone()).to_string());
                    value.push(':');
                    value.push_str(&Value::String(cell.to_owned()).to_string());
                    object.insert(name.clone(), Value::String(cell.to_owned()));
                }
                value.push('}');
                self.keyed(value.into_bytes(), &Value::Object(object))
                    .map(Some)
            }
        }
    }
}

impl<R: BufRead> Iterator for Rows<R> {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(input: &str) -> LoadArgs {
        LoadArgs {
            topic: "t".into(),
            input: input.into(),
            format: None,
            key: Some("id".into()),
            key_fields: Vec::new(),
            rate: 0,
            position: None,
            restart: false,
            keep_timestamps: false,
            dry_run: false,
        }
    }

    #[test]
    fn the_format_follows_the_name_and_every_row_needs_a_key() {
        let (format, key) = format_and_key(&args("dump.csv.gz")).expect("valid");
        assert_eq!(format, InputFormat::Csv);
        assert!(key.is_some());
        assert_eq!(
            format_and_key(&args("dump.ndjson")).expect("valid").0,
            InputFormat::Ndjson
        );
        let keyless = LoadArgs {
            key: None,
            ..args("dump.ndjson")
        };
        assert!(format_and_key(&keyless)
            .expect_err("no key")
            .to_string()
            .contains("--key"));
        let records = LoadArgs {
            format: Some(InputFormat::Records),
            ..args("archive.jsonl")
        };
        assert!(format_and_key(&records)
            .expect_err("records keep their keys")
            .to_string()
            .contains("do not apply to records"));
        let stamped = LoadArgs {
            keep_timestamps: true,
            ..args("dump.ndjson")
        };
        assert!(format_and_key(&stamped)
            .expect_err("records only")
            .to_string()
            .contains("--keep-timestamps"));
    }

    #[test]
    fn a_load_resumes_only_its_own_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saved_at = dir.path().join("position.json");
        let load = args("dump.ndjson");
        let fresh = starting_position(&load, InputFormat::Ndjson, 100, &saved_at)
            .expect("no position yet")
            .expect("starts");
        assert_eq!(fresh.rows_done, 0);
        // Half done: resumed after the saved row.
        let half = Position {
            rows_done: 40,
            ..fresh.clone()
        };
        save_position(&saved_at, &half).expect("save");
        let resumed = starting_position(&load, InputFormat::Ndjson, 100, &saved_at)
            .expect("same load")
            .expect("resumes");
        assert_eq!(resumed.rows_done, 40);
        // --restart starts over; a different input is refused, naming the position file.
        let restart = LoadArgs {
            restart: true,
            ..args("dump.ndjson")
        };
        assert_eq!(
            starting_position(&restart, InputFormat::Ndjson, 100, &saved_at)
                .expect("restart")
                .expect("starts")
                .rows_done,
            0
        );
        let grown = starting_position(&load, InputFormat::Ndjson, 200, &saved_at)
            .expect_err("another load")
            .to_string();
        assert!(
            grown.contains("position.json") && grown.contains("--restart"),
            "{grown}"
        );
        // Complete: nothing to do.
        let done = Position {
            complete: true,
            ..half
        };
        save_position(&saved_at, &done).expect("save");
        assert!(
            starting_position(&load, InputFormat::Ndjson, 100, &saved_at)
                .expect("same load")
                .is_none()
        );
    }

    fn key(expression: &str, row: &str) -> Result<String, String> {
        let row: Value = serde_json::from_str(row).expect("json");
        KeyExpr::parse(expression)
            .map_err(|e| e.to_string())?
            .evaluate(&row)
            .map(|k| String::from_utf8(k).expect("utf8"))
    }

    #[test]
    fn key_expressions() {
        assert_eq!(key("id", r#"{"id":"a1"}"#), Ok("a1".into()));
        assert_eq!(key("id", r#"{"id":7}"#), Ok("7".into()));
        assert_eq!(key("/o/id", r#"{"o":{"id":"x"}}"#), Ok("x".into()));
        assert_eq!(
            key("${t}:${/o/id}!", r#"{"t":"acme","o":{"id":3}}"#),
            Ok("acme:3!".into())
        );
        assert!(key("id", r#"{"id":null}"#)
            .expect_err("an error")
            .contains("/id"));
        assert!(key("${id", "{}")
            .expect_err("an error")
            .contains("not closed"));
        let fields = KeyExpr::Fields(vec!["id".into(), "t".into()]);
        let row: Value = serde_json::from_str(r#"{"t":"a\"b","id":1,"x":0}"#).expect("json");
        assert_eq!(
            fields.evaluate(&row),
            Ok(br#"{"id":1,"t":"a\"b"}"#.to_vec())
        );
    }

    #[test]
    fn csv_rows_become_json_objects_in_column_order() {
        let input = "name,id\n\"Rossi, M\",42\n";
        let mut rows = Rows::new(
            input.as_bytes(),
            InputFormat::Csv,
            Some(KeyExpr::parse("id").expect("key")),
            "t",
        )
        .expect("rows");
        let record = rows.next().expect("a row").expect("valid");
        assert_eq!(record.key.as_deref(), Some(&b"42"[..]));
        assert_eq!(
            record.payload.as_deref(),
            Some(&br#"{"name":"Rossi, M","id":"42"}"#[..])
        );
        assert!(rows.next().is_none());
        let mut short = Rows::new(
            "a,b\n1\n".as_bytes(),
            InputFormat::Csv,
            Some(KeyExpr::parse("a").expect("key")),
            "t",
        )
        .expect("rows");
        assert!(short.next().expect("row").is_err());
    }
}
