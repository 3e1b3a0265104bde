//! The job engine: everything the reloader does, with no knowledge of HTTP.
//!
//! - [`plan`]: typed requests ([`ReplayRequest`]) checked and turned into a [`Plan`];
//! - `runner`: the job lifecycle of a replica (start, resume, stop, take over);
//! - `supervisor`: one replay driven to its end (stop requests, hand-back, heartbeat);
//! - [`work`]: jobs shared by replicas through a Kafka consumer group;
//! - [`replay`]: reading the selected objects and publishing their records in offset order;
//! - [`transactions`], [`rate`], [`budget`]: exactly-once publication, the job's rate limit, and the
//!   memory all replays of the replica share;
//! - [`jobs`]: the job records in the bucket; [`preview`]: what a job would do.
//!
//! The HTTP layer (`crate::http`) calls [`Engine`] and maps [`EngineError`] onto statuses.

pub mod budget;
pub mod error;
pub mod jobs;
pub mod plan;
pub mod preview;
pub mod progress;
pub mod rate;
pub mod replay;
mod replica;
mod runner;
mod supervisor;
pub mod transactions;
pub mod work;

pub use error::{promptly, EngineError};
pub use plan::{Plan, ReplayRequest};
pub use replica::{Engine, JobId};
pub use runner::Duties;
