//! Crash injection for the durability tests: `BSS_FAILPOINT=<name>[:<n>]` aborts the process (as abruptly
//! as SIGKILL: no flush, no commit, no leave) the `n`-th time (default 1st) the named point is reached.
//! Points of the storer: `before-upload`, `after-upload`, `after-event`, `after-forward`,
//! `after-commit`; of an erasure (`bss erase`): `erase-planned`, `erase-written`, `erase-repointed`;
//! of the Parquet organizer: `parquet-file-written`.
//!
//! Compiled in only with the `armed` feature, which the test builds enable through their
//! dev-dependencies: a release build has no crash hook an environment variable could arm.

#[cfg(feature = "armed")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "armed")]
use std::sync::OnceLock;

#[cfg(feature = "armed")]
struct Armed {
    name: String,
    hit_on: u64,
    hits: AtomicU64,
}

#[cfg(feature = "armed")]
fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("BSS_FAILPOINT").ok()?;
            let (name, n) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            Some(Armed {
                name: name.to_owned(),
                hit_on: n.parse().unwrap_or(1),
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Marks that execution reached point `name`; aborts if it is armed and due.
#[cfg(feature = "armed")]
pub fn reached(name: &str) {
    if let Some(armed) = armed() {
        if armed.name == name && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.hit_on {
            eprintln!("failpoint {name} reached: aborting");
            std::process::abort();
        }
    }
}

/// Marks that execution reached point `name`: nothing, in builds without the `armed` feature.
#[cfg(not(feature = "armed"))]
#[inline(always)]
pub fn reached(_name: &str) {}
