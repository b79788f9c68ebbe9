//! Progress of long runs on standard error: a bar on a terminal, one line per event
//! elsewhere (a CI log has no use for a redrawn bar, and shows nothing of a hidden one).

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress through `total` items.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    finished: AtomicU64,
    /// The item being worked on, for [`Progress::step`].
    current: Mutex<String>,
}

impl Progress {
    /// Progress through `total` items.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed} {msg}")
                    .expect("a valid template"),
            )
        });
        if let Some(bar) = &bar {
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        Progress {
            bar,
            total: total as u64,
            finished: AtomicU64::new(0),
            current: Mutex::new(String::new()),
        }
    }

    fn line(&self, n: u64, text: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(text.to_string()),
            None => eprintln!("[{n}/{}] {text}", self.total),
        }
    }

    /// Work begins on `item`.
    pub fn begin(&self, item: impl Into<String>) {
        let item = item.into();
        self.line(self.finished.load(Ordering::Relaxed) + 1, &item);
        *self.current.lock().expect("progress lock") = item;
    }

    /// A step of the current item begins (`linux/amd64: running syft`).
    pub fn step(&self, what: &str) {
        let current = self.current.lock().expect("progress lock").clone();
        self.line(
            self.finished.load(Ordering::Relaxed) + 1,
            &format!("{current} {what}"),
        );
    }

    /// An item is done, with how it ended.
    pub fn finish(&self, item: &str, outcome: &str) {
        let n = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(format!("{item}: {outcome}"));
            }
            None => eprintln!("[{n}/{}] {item}: {outcome}", self.total),
        }
    }

    /// Removes the bar, leaving the lines it printed.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
