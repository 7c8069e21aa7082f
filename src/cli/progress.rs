//! Progress display for `orgops apply`: a bar per organization and kind on a terminal, plain
//! throttled lines otherwise. Also the CLI's [`Sink`]: it keeps the engine's state in memory and
//! an unfinished create (intent, then the created id) in the [`super::state::StateFile`].

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
    secrets: std::collections::BTreeMap<String, crate::vendors::Credentials>,
    claims: Claims,
}

/// Which resource of this run manages which organization (vendor and id → `namespace/name`),
/// for vendors that cannot mark an organization as managed.
pub type Claims = std::sync::Arc<Mutex<std::collections::BTreeMap<String, String>>>;

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
    /// A sink for organization `org`; create intents and the id they produced are also written
    /// to `durable` under `key`, and what an earlier run left there is where this one starts.
    pub fn new(
        org: &str,
        display: Display,
        durable: std::sync::Arc<super::state::StateFile>,
        key: &str,
    ) -> Self {
        let entry = durable.entry(key);
        Self {
            org: org.to_string(),
            display,
            state: Mutex::new(SinkState {
                // An intent whose org is known is resolved by that id, not by searching.
                pending: entry
                    .as_ref()
                    .filter(|e| e.external_id.is_none())
                    .map(|e| e.pending.clone()),
                external_id: entry.and_then(|e| e.external_id),
                ..SinkState::default()
            }),
            durable,
            key: key.to_string(),
            secrets: Default::default(),
            claims: Default::default(),
        }
    }

    /// Shares `claims` with the other organizations of this run: the first to adopt an
    /// organization of a vendor without ownership markers manages it.
    pub fn with_claims(mut self, claims: Claims) -> Self {
        self.claims = claims;
        self
    }

    /// The manifests' Secrets of the organization's namespace, by name, for
    /// `spec.template.secrets`.
    pub fn with_secrets(
        mut self,
        secrets: std::collections::BTreeMap<String, crate::vendors::Credentials>,
    ) -> Self {
        self.secrets = secrets;
        self
    }

    /// The external id the engine recorded.
    pub fn external_id(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.external_id.clone())
    }

    /// The create intent the engine recorded (and has not cleared).
    pub fn pending_create(&self) -> Option<PendingCreate> {
        self.state.lock().ok().and_then(|s| s.pending.clone())
    }

    /// What the engine resumes from: the id and intent this run (or a killed earlier one)
    /// recorded.
    pub fn org_state(&self) -> crate::engine::OrgState {
        crate::engine::OrgState {
            external_id: self.external_id(),
            pending_create: self.pending_create(),
            // The CLI reads usage on every apply.
            usage_observed_at: None,
        }
    }

    /// Called with each reconcile's report: once the vendor holds the ownership marker (the
    /// settings step succeeded, so the marker was there or has been written), the unfinished
    /// create is over and leaves the state file. Before that, a killed run or a failed marker
    /// PATCH leaves the id on disk for the next run to adopt.
    pub fn settle(&self, report: &crate::engine::OrgReport) -> Result<(), String> {
        let marked = report.external_id.is_some()
            && report
                .conditions
                .iter()
                .any(|c| c.type_ == crate::api::conditions::types::SETTINGS_SYNCED && c.status);
        if marked {
            self.durable.resolve(&self.key)?;
        }
        Ok(())
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

    async fn claim(&self, id: &str) -> Result<(), String> {
        // The key starts with the vendor and endpoint: ids are compared within one of those.
        let scope = self.key.rsplit_once(' ').map(|(s, _)| s).unwrap_or("");
        let owner = self.key.rsplit(' ').next().unwrap_or(&self.key).to_string();
        let mut claims = self
            .claims
            .lock()
            .map_err(|_| "claims lock poisoned".to_string())?;
        let holder = claims
            .entry(format!("{scope} {id}"))
            .or_insert_with(|| owner.clone());
        if *holder == owner {
            Ok(())
        } else {
            Err(format!(
                "organization {id} is already managed by Organization {holder} in these manifests; the vendor cannot mark an organization as managed, so one Organization per organization"
            ))
        }
    }

    async fn template_secret(&self, name: &str) -> Result<crate::vendors::Credentials, String> {
        self.secrets.get(name).cloned().ok_or_else(|| {
            format!("Secret {name} (spec.template.secrets) is not among the manifests")
        })
    }

    async fn save_external_id(&self, id: &str) -> Result<(), String> {
        // Durable first: until the marker is written, this id is all that finds the org again.
        self.durable.set_external_id(&self.key, id)?;
        let mut s = self
            .state
            .lock()
            .map_err(|_| "state lock poisoned".to_string())?;
        s.external_id = Some(id.to_string());
        Ok(())
    }
}
