//! Progress display for `orgops apply`: a bar per organization and kind on a terminal, plain
//! throttled lines otherwise. Also the CLI's [`Sink`]: it keeps the engine's state in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::PendingCreate;
use crate::engine::copy::{KindProgress, ProgressSink};
use crate::engine::org::Sink;

/// How progress is shown.
#[derive(Clone)]
pub enum Display {
    /// Bars (stderr is a terminal).
    Bars(MultiProgress),
    /// Plain lines on stderr, at most every few seconds per org.
    Lines,
    /// Nothing.
    Quiet,
}

impl Display {
    /// Bars on a terminal, lines otherwise.
    pub fn detect(quiet: bool) -> Self {
        use std::io::IsTerminal;
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Display::Lines
        }
    }

    /// Prints a line without tearing the bars.
    pub fn println(&self, line: &str) {
        match self {
            Display::Bars(m) => {
                let _ = m.println(line);
            }
            Display::Lines => eprintln!("{line}"),
            Display::Quiet => {}
        }
    }
}

/// The engine's sink for one organization in the CLI.
pub struct CliSink {
    org: String,
    display: Display,
    state: Mutex<SinkState>,
    durable: std::sync::Arc<super::state::StateFile>,
    key: String,
}

#[derive(Default)]
struct SinkState {
    pending: Option<PendingCreate>,
    external_id: Option<String>,
    bars: HashMap<&'static str, ProgressBar>,
    last_line: Option<Instant>,
    finished_kinds: Vec<&'static str>,
}

const LINE_INTERVAL: Duration = Duration::from_secs(2);

impl CliSink {
    /// A sink for organization `org`; create intents are also written to `durable` under `key`.
    pub fn new(
        org: &str,
        display: Display,
        durable: std::sync::Arc<super::state::StateFile>,
        key: &str,
    ) -> Self {
        let pending = durable.pending(key);
        Self {
            org: org.to_string(),
            display,
            state: Mutex::new(SinkState {
                pending,
                ..SinkState::default()
            }),
            durable,
            key: key.to_string(),
        }
    }

    /// The external id the engine recorded.
    pub fn external_id(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.external_id.clone())
    }

    /// The create intent the engine recorded (and has not cleared).
    pub fn pending_create(&self) -> Option<PendingCreate> {
        self.state.lock().ok().and_then(|s| s.pending.clone())
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Ok(mut s) = self.state.lock() {
            for (_, bar) in s.bars.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

impl ProgressSink for CliSink {
    fn copy_progress(&self, kinds: &BTreeMap<&'static str, KindProgress>) {
        let Ok(mut s) = self.state.lock() else { return };
        match &self.display {
            Display::Quiet => {}
            Display::Bars(multi) => {
                for (kind, p) in kinds {
                    let bar = s.bars.entry(kind).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new(u64::from(p.total)));
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix:>28} {bar:30} {pos:>4}/{len:4} {msg}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.set_prefix(format!("{} {kind}", self.org));
                        bar
                    });
                    bar.set_length(u64::from(p.total));
                    bar.set_position(u64::from(p.done));
                    if p.failed > 0 {
                        bar.set_message(format!("{} failed", p.failed));
                    }
                }
            }
            Display::Lines => {
                let mut lines = Vec::new();
                for (kind, p) in kinds {
                    if p.total > 0
                        && p.done + p.failed == p.total
                        && !s.finished_kinds.contains(kind)
                    {
                        s.finished_kinds.push(kind);
                        lines.push(format!(
                            "{}: {kind} {}/{} copied, {} failed",
                            self.org, p.done, p.total, p.failed
                        ));
                    }
                }
                let due = s.last_line.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
                if lines.is_empty() && due {
                    let (done, total) = kinds
                        .values()
                        .fold((0, 0), |(d, t), p| (d + p.done, t + p.total));
                    lines.push(format!("{}: copying {done}/{total}", self.org));
                }
                if !lines.is_empty() {
                    s.last_line = Some(Instant::now());
                    for l in lines {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Sink for CliSink {
    async fn save_pending_create(&self, pending: Option<&PendingCreate>) -> Result<(), String> {
        // Durable first: the create request must not leave before the intent is on disk.
        self.durable.set_pending(&self.key, pending)?;
        let mut s = self
            .state
            .lock()
            .map_err(|_| "state lock poisoned".to_string())?;
        s.pending = pending.cloned();
        Ok(())
    }

    async fn save_external_id(&self, id: &str) -> Result<(), String> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| "state lock poisoned".to_string())?;
        s.external_id = Some(id.to_string());
        Ok(())
    }
}
