//! Progress of long operations: a bar on an interactive terminal, otherwise a JSON log line every few
//! seconds (so Kubernetes Jobs and CI logs show it too).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress of one phase of a command.
pub struct Progress {
    phase: &'static str,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// Starts a phase counting `unit`s, out of `total` when known.
    pub fn new(phase: &'static str, unit: &'static str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})"
            } else {
                "{prefix} {spinner} {pos} {msg} ({elapsed}, {per_sec})"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(phase);
            bar.set_message(unit);
            bar
        });
        let now = Instant::now();
        Self {
            phase,
            unit,
            total,
            done: 0,
            bar,
            started: now,
            last_log: now,
        }
    }

    /// Adds `n` units done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                self.log("progress");
            }
            None => {}
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    fn log(&self, message: &str) {
        tracing::info!(
            phase = self.phase,
            unit = self.unit,
            done = self.done,
            total = self.total,
            elapsed_s = self.started.elapsed().as_secs_f64(),
            "{message}"
        );
    }

    /// Ends the phase.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        self.log("phase done");
    }
}
