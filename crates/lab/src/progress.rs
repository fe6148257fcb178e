//! Progress of long work: an indicatif bar with ETA on a terminal, plain periodic lines on
//! stderr otherwise (CI logs, files).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of one loop of `total` steps.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    started: Instant,
    last_line: u64,
}

impl Progress {
    /// Starts reporting `label` over `total` steps.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{prefix:>24} {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total: total.max(1),
            started: Instant::now(),
            last_line: 0,
        }
    }

    /// Reports that `done` steps are finished, with a short message (e.g. the loss).
    pub fn set(&mut self, done: u64, msg: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(msg.to_string());
            }
            None => {
                // a line at every 10 % (and at the end)
                let tenth = done * 10 / self.total;
                if tenth > self.last_line {
                    self.last_line = tenth;
                    let elapsed = self.started.elapsed().as_secs_f64();
                    let eta = if done > 0 {
                        elapsed * (self.total - done.min(self.total)) as f64 / done as f64
                    } else {
                        0.0
                    };
                    eprintln!(
                        "{}: {done}/{} ({elapsed:.0} s, ETA {eta:.0} s) {msg}",
                        self.label, self.total
                    );
                }
            }
        }
    }

    /// Ends the bar.
    pub fn finish(self, msg: &str) {
        match self.bar {
            Some(bar) => bar.finish_with_message(msg.to_string()),
            None => eprintln!(
                "{}: done in {:.1} s {msg}",
                self.label,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }
}
