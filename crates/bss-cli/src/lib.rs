//! The `bss` operations toolkit: the deployment procedures of `docs/deployment.md` as commands.
//!
//! Every command reads the storer's configuration ([`Context`]); reports go to stdout, JSON logs and
//! progress to stderr. Commands that change something take `--dry-run`.

pub mod catalog;
pub mod columnar;
pub mod compact;
mod context;
pub mod dump;
pub mod erase;
pub mod inspect;
pub mod load;
pub mod offsets;
pub mod organize;
mod progress;
pub mod prune;
mod time;
pub mod verify;

pub use context::Context;

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Did what was asked.
    Done,
    /// Ran to the end and found problems (`verify`): exit status 1.
    ProblemsFound,
    /// Stopped by Ctrl-C / SIGTERM after saving its position: exit status 130.
    Interrupted,
}
