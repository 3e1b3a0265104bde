//! Job records, kept in the bucket so every replica sees and stops every job without a database.
//!
//! - `.bss-jobs/<id>.json`: the record, written only by the replica running the job (created with a
//!   write-once put, then rewritten with progress and a heartbeat every [`HEARTBEAT`]).
//! - `.bss-jobs/<id>.stop`: a stop request, created by whichever replica receives it; the running
//!   replica checks for it every [`STOP_POLL`], so a stop takes effect within a second.
//! - A record still "running" whose heartbeat is older than [`STALE_AFTER`] belongs to a replica that
//!   died: it is reported as "failed" ("replica … stopped responding"). Re-running a job is a new job.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

/// Prefix of job records and stop requests.
pub const JOBS_PREFIX: &str = ".bss-jobs";
/// How often a running job's record is rewritten.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often a running job looks for a stop request.
pub const STOP_POLL: Duration = Duration::from_millis(250);
/// A running record without a heartbeat for this long is reported failed.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

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
}

fn now_iso() -> String {
    bss_format::time::format_iso_ms(now_ms())
}

fn now_ms() -> i64 {
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
        }
    }

    /// Copies a running replay's counters into the record.
    pub fn record_progress(&mut self, progress: &crate::replay::ReplayProgress) {
        use std::sync::atomic::Ordering;
        self.objects_total = progress.objects_total.load(Ordering::SeqCst);
        self.objects_done = progress.objects_done.load(Ordering::SeqCst);
        self.messages_published = progress.published.load(Ordering::SeqCst);
    }

    /// Ends the job.
    pub fn end(&mut self, state: JobState, error: Option<String>) {
        self.state = state;
        self.error = error;
        self.ended_at = Some(now_iso());
    }

    /// A running job whose replica stopped heart-beating is shown as failed.
    fn with_liveness(mut self) -> Self {
        if self.state == JobState::Running {
            let last = bss_format::time::parse_iso_ms(&self.heartbeat_at).unwrap_or(0);
            if now_ms() - last > STALE_AFTER.as_millis() as i64 {
                self.state = JobState::Failed;
                self.error = Some(format!(
                    "replica {} stopped responding (last heartbeat {}); the job can be started again",
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
}

fn record_path(id: &str) -> Path {
    Path::from(format!("{JOBS_PREFIX}/{id}.json"))
}

fn stop_path(id: &str) -> Path {
    Path::from(format!("{JOBS_PREFIX}/{id}.stop"))
}

impl JobStore {
    /// Job records live in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Creates a record (write-once: ids never collide silently).
    pub async fn create(&self, job: &Job) -> Result<(), object_store::Error> {
        let body = serde_json::to_vec(job).expect("job serializes");
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&record_path(&job.id), PutPayload::from(body), options)
            .await
            .map(|_| ())
    }

    /// Rewrites a record with a fresh heartbeat (only the owner does this).
    pub async fn save(&self, job: &mut Job) -> Result<(), object_store::Error> {
        job.heartbeat_at = now_iso();
        let body = serde_json::to_vec(job).expect("job serializes");
        self.store
            .put(&record_path(&job.id), PutPayload::from(body))
            .await
            .map(|_| ())
    }

    /// One job, `None` if unknown.
    pub async fn get(&self, id: &str) -> Result<Option<Job>, object_store::Error> {
        match self.store.get(&record_path(id)).await {
            Ok(result) => {
                let bytes = result.bytes().await?;
                Ok(serde_json::from_slice::<Job>(&bytes)
                    .ok()
                    .map(Job::with_liveness))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every job, newest first.
    pub async fn list(&self) -> Result<Vec<Job>, object_store::Error> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(JOBS_PREFIX)))
            .try_collect()
            .await?;
        let mut jobs = Vec::new();
        for meta in metas
            .iter()
            .filter(|m| m.location.as_ref().ends_with(".json"))
        {
            let id = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .unwrap_or_default();
            if let Some(job) = self.get(id).await? {
                jobs.push(job);
            }
        }
        jobs.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(jobs)
    }

    /// Asks the job's replica to stop it.
    pub async fn request_stop(&self, id: &str) -> Result<(), object_store::Error> {
        self.store
            .put(&stop_path(id), PutPayload::from_static(b"stop"))
            .await
            .map(|_| ())
    }

    /// Whether a stop was requested.
    pub async fn stop_requested(&self, id: &str) -> Result<bool, object_store::Error> {
        match self.store.head(&stop_path(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn records_round_trip_and_stale_running_jobs_show_as_failed() {
        let jobs = JobStore::new(Arc::new(InMemory::new()));
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
        assert_eq!(jobs.list().await.expect("list").len(), 1);
    }
}
