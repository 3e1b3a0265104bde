//! Job records, kept in the bucket so every replica sees and stops every job without a database.
//!
//! - `.bss-jobs/<yyyy-mm-dd>/<id>.json`: the record, under the day its id was made (ids start with
//!   their creation time, so a record is found by id with one GET and a day is listed or pruned as a
//!   whole). Written only by the replica running the job (created with a write-once put, then
//!   rewritten with progress and a heartbeat every [`HEARTBEAT`]).
//! - `.bss-jobs/running/<id>`: an index entry while the job runs, so listing running jobs and
//!   stopping a topic's jobs cost O(running jobs), never O(every job ever).
//! - `.bss-jobs/<yyyy-mm-dd>/<id>.stop`: a stop request, created by whichever replica receives it;
//!   the running replica checks for it every [`STOP_POLL`], so a stop takes effect within a second.
//! - A record still "running" whose heartbeat is older than [`STALE_AFTER`] belongs to a replica that
//!   died: it is reported as "failed" ("its replica stopped responding"). Such jobs, and jobs handed
//!   back at a shutdown ("interrupted"), stay in the running index until a replica takes them over
//!   (`.bss-jobs/<day>/<id>.run-<n>`, write-once, decides which) and resumes them from their
//!   checkpoints.
//! - Finished jobs are deleted a retention period after their day ([`JobStore::prune`]).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

/// How often a running job's record is rewritten.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often a running job looks for a stop request.
pub const STOP_POLL: Duration = Duration::from_millis(250);
/// A running record without a heartbeat for this long is reported failed (and taken over).
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How a stale job's error starts.
const STALE_REASON: &str = "its replica stopped responding";

/// What a job replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// One object.
    File,
    /// A topic's folder, optionally within a time window.
    Topic,
    /// The records of one key.
    Key,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// In progress.
    Running,
    /// Every message published and acknowledged.
    Completed,
    /// Stopped on request.
    Stopped,
    /// Ended with an error (see `error`), or its replica died.
    Failed,
    /// Its replica shut down (a scale-down, a rolling update): resume it from its checkpoints with
    /// `POST /reingestion/jobs/{id}/resume`.
    Interrupted,
    /// A part of a shared job that no replica of the work group has started yet.
    Queued,
}

impl JobState {
    /// Whether nothing more happens without a new request (`resume`).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Stopped | Self::Failed)
    }
}

/// A job record, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Job id (= Mia-Platform's `requestId`).
    pub id: String,
    /// Kind.
    pub kind: JobKind,
    /// The source topic or folder (for stop-by-topic).
    pub topic: String,
    /// The request body as accepted.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    /// State.
    pub state: JobState,
    /// Objects selected after pruning (known once listing is done).
    pub objects_total: u64,
    /// Objects fully published.
    pub objects_done: u64,
    /// Messages acknowledged by Kafka.
    pub messages_published: u64,
    /// Replica running it.
    pub replica: String,
    /// ISO-8601 times.
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Last heartbeat of its replica.
    pub heartbeat_at: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Per source partition, the offset from which nothing is acknowledged yet (everything before
    /// it is published): where a resumed run starts.
    #[serde(default)]
    pub checkpoints: std::collections::BTreeMap<i32, i64>,
    /// How many times it was resumed.
    #[serde(default)]
    pub run: u32,
    /// A job shared by the replicas of the work group (`RELOADER_WORK_TOPIC`): its source
    /// partitions, each replayed by whichever replica the group assigns it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<i32>>,
    /// The progress of each part of a shared job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_progress: Vec<Part>,
}

/// One source partition of a shared job, as the replica running it records it
/// (`<day>/<id>.parts/<partition>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Source partition.
    pub partition: i32,
    /// The job run it belongs to.
    pub run: u32,
    /// State (`queued` until a replica starts it; `interrupted` while the group hands it over).
    pub state: JobState,
    /// Replica running it.
    pub replica: String,
    /// Objects selected.
    pub objects_total: u64,
    /// Objects fully published.
    pub objects_done: u64,
    /// Messages acknowledged by Kafka.
    pub messages_published: u64,
    /// The offset from which nothing is acknowledged yet.
    pub checkpoint: Option<i64>,
    /// When this replica started publishing it (its objects selected).
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Last heartbeat of its replica.
    pub heartbeat_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Part {
    /// A part not started yet.
    pub fn queued(partition: i32, run: u32) -> Self {
        Self {
            partition,
            run,
            state: JobState::Queued,
            replica: String::new(),
            objects_total: 0,
            objects_done: 0,
            messages_published: 0,
            checkpoint: None,
            started_at: None,
            ended_at: None,
            heartbeat_at: None,
            error: None,
        }
    }

    /// Copies a running replay's counters into the record.
    pub fn record_progress(&mut self, progress: &super::progress::ReplayProgress) {
        use std::sync::atomic::Ordering;
        self.objects_total = progress.objects_total.load(Ordering::SeqCst);
        self.objects_done = progress.objects_done.load(Ordering::SeqCst);
        self.messages_published = progress.published.load(Ordering::SeqCst);
        let checkpoints = progress
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(at) = checkpoints.get(&self.partition) {
            self.checkpoint = Some(*at);
        }
        if let Some(since) = progress.publishing_since.get() {
            self.started_at = Some(bss_format::time::format_iso_ms(*since));
        }
    }

    /// Ends the part.
    pub fn end(&mut self, state: JobState, error: Option<String>) {
        self.state = state;
        self.error = error;
        self.ended_at = Some(now_iso());
    }
}

/// Now, as the API writes times.
pub(crate) fn now_iso() -> String {
    bss_format::time::format_iso_ms(now_ms())
}

/// Now, in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A new job id: 24 hex digits, time-ordered like Mia-Platform's MongoDB ObjectIds.
pub fn new_job_id() -> String {
    let seconds = (now_ms() / 1000) as u32;
    format!("{seconds:08x}{:016x}", rand::random::<u64>())
}

/// Whether `id` looks like a job id (so it is safe in a path).
pub fn is_job_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Job {
    /// A running job owned by `replica`.
    pub fn start(
        id: String,
        kind: JobKind,
        topic: String,
        request: serde_json::Value,
        replica: String,
    ) -> Self {
        let now = now_iso();
        Self {
            id,
            kind,
            topic,
            request,
            state: JobState::Running,
            objects_total: 0,
            objects_done: 0,
            messages_published: 0,
            replica,
            started_at: now.clone(),
            ended_at: None,
            heartbeat_at: now,
            error: None,
            checkpoints: Default::default(),
            run: 0,
            parts: None,
            part_progress: Vec::new(),
        }
    }

    /// Whether it can be resumed: it ended without completing, or its replica stopped responding.
    pub fn resumable(&self) -> bool {
        matches!(
            self.state,
            JobState::Interrupted | JobState::Failed | JobState::Stopped
        )
    }

    /// Copies a running replay's counters into the record.
    pub fn record_progress(&mut self, progress: &super::progress::ReplayProgress) {
        use std::sync::atomic::Ordering;
        self.objects_total = progress.objects_total.load(Ordering::SeqCst);
        self.objects_done = progress.objects_done.load(Ordering::SeqCst);
        self.messages_published = progress.published.load(Ordering::SeqCst);
        let acknowledged = progress
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.checkpoints.extend(acknowledged);
    }

    /// Ends the job.
    pub fn end(&mut self, state: JobState, error: Option<String>) {
        self.state = state;
        self.error = error;
        self.ended_at = Some(now_iso());
    }

    /// Whether it is a running job whose replica stopped responding (as [`Self::with_liveness`]
    /// shows it).
    pub fn is_stale(&self) -> bool {
        self.state == JobState::Failed
            && self
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(STALE_REASON))
    }

    /// A running job whose replica stopped heart-beating is shown as failed (a shared job lives
    /// in its parts, which the work group hands over).
    fn with_liveness(mut self) -> Self {
        if self.state == JobState::Running && self.parts.is_none() {
            let last = bss_format::time::parse_iso_ms(&self.heartbeat_at).unwrap_or(0);
            if now_ms() - last > STALE_AFTER.as_millis() as i64 {
                self.state = JobState::Failed;
                self.error = Some(format!(
                    "{STALE_REASON} (replica {}, last heartbeat {}); another replica takes it over from its checkpoints",
                    self.replica, self.heartbeat_at
                ));
            }
        }
        self
    }
}

/// Job records in the bucket.
#[derive(Clone)]
pub struct JobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// The day (UTC) a job id was made, from its leading seconds.
fn day_of(id: &str) -> String {
    day_of_ms(id_ms(id))
}

fn day_of_ms(ms: i64) -> String {
    bss_format::time::format_iso_ms(ms)[..10].to_owned()
}

impl JobStore {
    fn record_path(&self, id: &str) -> Path {
        Path::from(format!("{}/{}/{id}.json", self.prefix, day_of(id)))
    }

    fn stop_path(&self, id: &str) -> Path {
        Path::from(format!("{}/{}/{id}.stop", self.prefix, day_of(id)))
    }

    fn running_path(&self, id: &str) -> Path {
        Path::from(format!("{}/running/{id}", self.prefix))
    }

    fn run_path(&self, id: &str, run: u32) -> Path {
        Path::from(format!("{}/{}/{id}.run-{run}", self.prefix, day_of(id)))
    }

    fn parts_path(&self, id: &str) -> Path {
        Path::from(format!("{}/{}/{id}.parts", self.prefix, day_of(id)))
    }
}

/// Records fetched at once when listing.
const READ_CONCURRENCY: usize = 32;

impl JobStore {
    /// Job records live in `store` under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
        }
    }

    /// Creates a record (write-once: ids never collide silently) and its running index entry.
    pub async fn create(&self, job: &Job) -> Result<(), object_store::Error> {
        let body = serde_json::to_vec(job).expect("job serializes");
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.record_path(&job.id), PutPayload::from(body), options)
            .await?;
        self.store
            .put(
                &self.running_path(&job.id),
                PutPayload::from(job.topic.clone()),
            )
            .await
            .map(|_| ())
    }

    /// Rewrites a record with a fresh heartbeat (only the owner does this); a record that is no
    /// longer running leaves the running index.
    pub async fn save(&self, job: &mut Job) -> Result<(), object_store::Error> {
        job.heartbeat_at = now_iso();
        let body = serde_json::to_vec(job).expect("job serializes");
        self.store
            .put(&self.record_path(&job.id), PutPayload::from(body))
            .await?;
        // An interrupted job stays indexed: another replica takes it over from there.
        if !matches!(job.state, JobState::Running | JobState::Interrupted) {
            self.unindex(&job.id).await?;
        }
        Ok(())
    }

    async fn unindex(&self, id: &str) -> Result<(), object_store::Error> {
        self.delete_if_present(&self.running_path(id)).await
    }

    async fn delete_if_present(&self, path: &Path) -> Result<(), object_store::Error> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One job, `None` if unknown.
    pub async fn get(&self, id: &str) -> Result<Option<Job>, object_store::Error> {
        // Versions before the day folders wrote `.bss-jobs/<id>.json`.
        let flat = Path::from(format!("{}/{id}.json", self.prefix));
        for path in [self.record_path(id), flat] {
            match self.store.get(&path).await {
                Ok(result) => {
                    let bytes = result.bytes().await?;
                    let Ok(mut job) = serde_json::from_slice::<Job>(&bytes) else {
                        return Ok(None);
                    };
                    if job.state == JobState::Running && job.parts.is_some() {
                        self.gather_parts(&mut job).await?;
                    }
                    return Ok(Some(job.with_liveness()));
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Rewrites a part's record with a fresh heartbeat (only the replica running it does this).
    pub async fn save_part(&self, id: &str, part: &mut Part) -> Result<(), object_store::Error> {
        part.heartbeat_at = Some(now_iso());
        let body = serde_json::to_vec(part).expect("part serializes");
        let path = Path::from(format!("{}/{}.json", self.parts_path(id), part.partition));
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map(|_| ())
    }

    /// A part's record, `None` before a replica started it.
    pub async fn get_part(
        &self,
        id: &str,
        partition: i32,
    ) -> Result<Option<Part>, object_store::Error> {
        let path = Path::from(format!("{}/{partition}.json", self.parts_path(id)));
        match self.store.get(&path).await {
            Ok(result) => Ok(serde_json::from_slice(&result.bytes().await?).ok()),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fills a shared job's progress in from its parts' records (of its current run).
    async fn gather_parts(&self, job: &mut Job) -> Result<(), object_store::Error> {
        let partitions = job.parts.clone().unwrap_or_default();
        let (id, run) = (job.id.as_str(), job.run);
        job.part_progress = futures::stream::iter(partitions)
            .map(|partition| async move {
                let part = self.get_part(id, partition).await?;
                Ok::<_, object_store::Error>(
                    part.filter(|p| p.run == run)
                        .unwrap_or_else(|| Part::queued(partition, run)),
                )
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        job.objects_done = job.part_progress.iter().map(|p| p.objects_done).sum();
        job.messages_published = job.part_progress.iter().map(|p| p.messages_published).sum();
        for part in &job.part_progress {
            if let Some(at) = part.checkpoint {
                job.checkpoints.insert(part.partition, at);
            }
        }
        Ok(())
    }

    /// The jobs to take over, oldest first: handed back at a shutdown (`interrupted`), or whose
    /// replica stopped responding (a stale heartbeat, shown `failed`).
    pub async fn orphans(&self) -> Result<Vec<Job>, object_store::Error> {
        let mut orphans: Vec<Job> = self
            .indexed()
            .await?
            .into_iter()
            .filter(|job| job.state != JobState::Running)
            .collect();
        orphans.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(orphans)
    }

    /// The records of the running index (liveness applied): running jobs and jobs waiting to be
    /// taken over. Entries of jobs that ended are dropped from the index on the way.
    pub async fn indexed(&self) -> Result<Vec<Job>, object_store::Error> {
        let ids = self.running_ids().await?;
        self.indexed_among(ids).await
    }

    async fn indexed_among(&self, ids: Vec<String>) -> Result<Vec<Job>, object_store::Error> {
        let found: Vec<(String, Option<Job>)> = futures::stream::iter(ids)
            .map(|id| async move { self.get(&id).await.map(|job| (id, job)) })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut indexed = Vec::new();
        for (id, job) in found {
            match job {
                Some(job)
                    if job.state == JobState::Running
                        || job.state == JobState::Interrupted
                        || job.is_stale() =>
                {
                    indexed.push(job)
                }
                _ => self.unindex(&id).await?,
            }
        }
        Ok(indexed)
    }

    /// Whether another replica claimed a later run of the job (took it over).
    pub async fn superseded(&self, id: &str, run: u32) -> Result<bool, object_store::Error> {
        let marker = self.run_path(id, run + 1);
        match self.store.head(&marker).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn running_ids(&self) -> Result<Vec<String>, object_store::Error> {
        self.store
            .list(Some(&Path::from(format!("{}/running", self.prefix))))
            .map_ok(|meta| meta.location.filename().unwrap_or_default().to_owned())
            .try_filter(|id| std::future::ready(is_job_id(id)))
            .try_collect()
            .await
    }

    /// Running jobs, then the newest `limit` jobs started since `since_ms` (and before the job id
    /// `before`, to page): newest first. Lists the days since then (names only) and reads only the
    /// records it returns, never the whole history.
    pub async fn list(
        &self,
        since_ms: i64,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, object_store::Error> {
        // The running index (running jobs and jobs waiting to be taken over) heads the first page,
        // and only it.
        let index = self.running_ids().await?;
        let known: std::collections::HashSet<String> = index.iter().cloned().collect();
        let mut jobs = if before.is_none() {
            let mut indexed = self.indexed_among(index).await?;
            indexed.sort_by(|a, b| b.id.cmp(&a.id));
            indexed
        } else {
            Vec::new()
        };
        let mut ids = Vec::new();
        let mut day = since_ms;
        let today = day_of_ms(now_ms());
        while day_of_ms(day) <= today {
            let prefix = Path::from(format!("{}/{}", self.prefix, day_of_ms(day)));
            let listed: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            ids.extend(
                listed
                    .into_iter()
                    .filter_map(|m| {
                        m.location
                            .filename()?
                            .strip_suffix(".json")
                            .map(str::to_owned)
                    })
                    .filter(|id| {
                        is_job_id(id)
                            && id_ms(id) >= since_ms - 999
                            && before.is_none_or(|b| id.as_str() < b)
                            && !known.contains(id)
                    }),
            );
            day += 86_400_000;
        }
        ids.sort_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        let mut page: Vec<Job> = futures::stream::iter(ids)
            .map(|id| async move { self.get(&id).await })
            .buffered(READ_CONCURRENCY)
            .try_collect::<Vec<Option<Job>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        jobs.append(&mut page);
        Ok(jobs)
    }

    /// Deletes the records (and stop requests) of the days that ended `retention` ago, except
    /// those of jobs in the running index (running or waiting to be taken over). Returns how many
    /// records it deleted.
    pub async fn prune(&self, retention: Duration) -> Result<usize, object_store::Error> {
        let cutoff = day_of_ms(now_ms() - retention.as_millis() as i64);
        let top = self
            .store
            .list_with_delimiter(Some(&Path::from(self.prefix.as_str())))
            .await?;
        let indexed: std::collections::HashSet<String> =
            self.running_ids().await?.into_iter().collect();
        // Records of versions before the day folders sit at the top, dated by their id.
        let mut expired: Vec<Path> = top
            .objects
            .into_iter()
            .map(|meta| meta.location)
            .filter(|path| {
                let id = path
                    .filename()
                    .and_then(|f| f.split('.').next())
                    .unwrap_or_default();
                is_job_id(id) && day_of(id) < cutoff
            })
            .collect();
        for day in top.common_prefixes {
            let name = day.filename().unwrap_or_default();
            // Day folders only (`yyyy-mm-dd` sorts as text), never the running index.
            if name.len() != 10 || name.as_bytes()[4] != b'-' || name >= cutoff.as_str() {
                continue;
            }
            let listed: Vec<_> = self.store.list(Some(&day)).try_collect().await?;
            expired.extend(listed.into_iter().map(|meta| meta.location));
        }
        let mut deleted = 0;
        for path in expired {
            // Of `<day>/<id>.json`, `<day>/<id>.stop`, `<day>/<id>.parts/<p>.json`…
            let Some(id) = path.parts().find_map(|part| {
                part.as_ref()
                    .get(..24)
                    .filter(|s| is_job_id(s))
                    .map(str::to_owned)
            }) else {
                continue;
            };
            if indexed.contains(&id) {
                continue;
            }
            self.delete_if_present(&path).await?;
            deleted += usize::from(path.filename() == Some(format!("{id}.json").as_str()));
        }
        Ok(deleted)
    }

    /// Claims run `run` of a job for this replica: write-once, so of replicas resuming the same
    /// job at once exactly one wins (`false` for the others).
    pub async fn claim_run(&self, id: &str, run: u32) -> Result<bool, object_store::Error> {
        let marker = self.run_path(id, run);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&marker, PutPayload::from_static(b"claimed"), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Puts a resumed job back in the running index, and clears an earlier stop request.
    pub async fn reopen(&self, id: &str, topic: &str) -> Result<(), object_store::Error> {
        self.delete_if_present(&self.stop_path(id)).await?;
        self.store
            .put(&self.running_path(id), PutPayload::from(topic.to_owned()))
            .await
            .map(|_| ())
    }

    /// Asks the job's replica to stop it.
    pub async fn request_stop(&self, id: &str) -> Result<(), object_store::Error> {
        self.store
            .put(&self.stop_path(id), PutPayload::from_static(b"stop"))
            .await
            .map(|_| ())
    }

    /// Whether a stop was requested.
    pub async fn stop_requested(&self, id: &str) -> Result<bool, object_store::Error> {
        match self.store.head(&self.stop_path(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// When a job id was made, epoch ms (second precision).
fn id_ms(id: &str) -> i64 {
    id.get(..8)
        .and_then(|h| i64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
        * 1000
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn records_round_trip_and_stale_running_jobs_show_as_failed() {
        let jobs = JobStore::new(Arc::new(InMemory::new()), ".bss-jobs");
        let id = new_job_id();
        assert!(is_job_id(&id) && !is_job_id("../x") && !is_job_id(&"g".repeat(24)));
        let mut job = Job::start(
            id.clone(),
            JobKind::Topic,
            "t".into(),
            serde_json::json!({"topic": "t"}),
            "r1".into(),
        );
        jobs.create(&job).await.expect("create");
        assert!(jobs.create(&job).await.is_err(), "write-once");
        job.messages_published = 5;
        jobs.save(&mut job).await.expect("save");
        assert_eq!(jobs.get(&id).await.expect("get"), Some(job.clone()));
        assert!(!jobs.stop_requested(&id).await.expect("head"));
        jobs.request_stop(&id).await.expect("stop");
        assert!(jobs.stop_requested(&id).await.expect("head"));

        job.heartbeat_at = "2020-01-01T00:00:00.000Z".into();
        let stale = job.with_liveness();
        assert_eq!(stale.state, JobState::Failed);
        assert!(stale.error.as_deref().is_some_and(|e| e.contains("r1")));
        assert_eq!(
            jobs.list(now_ms() - 3_600_000, None, 10)
                .await
                .expect("list")
                .len(),
            1
        );
    }

    fn job_started_at(ms: i64, state: JobState) -> Job {
        let id = format!("{:08x}{:016x}", ms / 1000, rand::random::<u64>());
        let mut job = Job::start(
            id,
            JobKind::Topic,
            "t".into(),
            serde_json::json!({}),
            "r".into(),
        );
        job.state = state;
        job
    }

    #[tokio::test]
    async fn running_jobs_are_indexed_and_old_finished_ones_pruned_by_day() {
        let jobs = JobStore::new(Arc::new(InMemory::new()), ".bss-jobs");
        let day = 86_400_000;
        let now = now_ms();
        let mut created = Vec::new();
        for (age, state) in [
            (40 * day, JobState::Completed),
            (40 * day, JobState::Running),
            (10 * day, JobState::Failed),
            (3_600_000, JobState::Completed),
            (0, JobState::Running),
        ] {
            let mut job = job_started_at(now - age, state);
            jobs.create(&job).await.expect("create");
            jobs.save(&mut job).await.expect("save");
            created.push(job);
        }
        let mut running: Vec<String> = jobs
            .indexed()
            .await
            .expect("indexed")
            .into_iter()
            .map(|j| j.id)
            .collect();
        running.sort_by(|a, b| b.cmp(a));
        let mut want = vec![created[4].id.clone(), created[1].id.clone()];
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(running, want, "only running jobs are in the index");
        let ids = |jobs: Vec<Job>| -> Vec<String> { jobs.into_iter().map(|j| j.id).collect() };
        let listed = ids(jobs.list(now - day, None, 10).await.expect("list"));
        assert_eq!(
            listed.len(),
            3,
            "today's two and the 40-day-old running one: {listed:?}"
        );
        let page = ids(jobs
            .list(now - day, Some(&created[4].id), 10)
            .await
            .expect("page"));
        assert_eq!(
            page,
            vec![created[3].id.clone()],
            "the next page: older jobs only"
        );

        assert_eq!(
            jobs.prune(Duration::from_secs(30 * 86_400))
                .await
                .expect("prune"),
            1
        );
        assert!(
            jobs.get(&created[0].id).await.expect("get").is_none(),
            "old and finished: pruned"
        );
        assert!(
            jobs.get(&created[1].id).await.expect("get").is_some(),
            "old but running: kept"
        );
        assert!(
            jobs.get(&created[2].id).await.expect("get").is_some(),
            "within retention: kept"
        );
    }
}
