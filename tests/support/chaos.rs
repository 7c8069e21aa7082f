//! A chaos campaign against `orgops run`: randomized trials of vendor faults (including
//! requests processed but answered by a dropped connection), SIGKILL and SIGSTOP of one of two
//! operator replicas at random moments, random spec edits and deletions — then, once the
//! faults are off, a check of what the vendor holds.
//!
//! One API server is shared by every trial; each trial has its own namespace, connection,
//! Lease, display names and a fresh Rossum simulator (in process, so starting one costs
//! nothing, and each trial's vendor starts empty but for the small template — a campaign of a
//! thousand trials would otherwise make every later trial list thousands of organizations).
//! Each trial draws everything from `fastrand::Rng::with_seed(seed)`; a failure prints the
//! seed, and `--trials 1 --seed S` replays the same choices (timing still differs).
//!
//! Per trial it counts:
//! - **duplicates**: more than one vendor org for one Organization (by ownership marker, or
//!   by any display name the resource ever had), more than one copy of a template object in
//!   one org (by `metadata.orgops.source`; labels and rules by name, e-mail templates by
//!   queue, name and type), more than one user per username, more than one membership per
//!   (user, org);
//! - **lost**: an OrgMembership with `deletionPolicy: Delete` that was deleted (during the
//!   trial or with its namespace) while the vendor still grants its access (an active user's
//!   own organization, or a membership); and, still at the end of the settle bound, a Ready
//!   Organization whose copy is incomplete or whose vendor name is not its displayName, a
//!   Ready OrgMembership without active access at the vendor, an Organization that vanished
//!   without being deleted;
//! - **stuck**: a resource not settled within the bound once the chaos stops (settled = Ready
//!   for the current generation, or Ready=False for a reason this trial explains: `Suspended`
//!   or `DriftDetected` under `suspend`, `DeleteUnsupported` for a deleted Organization with
//!   `Delete` (Rossum cannot delete organizations), `WaitingForOrganization` while the
//!   Organization is not Ready, `AccessBlocked` for a disabled user, `RoleConflict`), and a
//!   namespace not gone within the bound after `delete namespace`.
//!
//! Excused (counted apart, not as lost): an OrgMembership with `Delete` deleted after its
//! Organization was already deleted with `Orphan` — the operator has nothing left to reach
//! the vendor with, and says so in an `AccessNotRemoved` Event.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::cluster::Cluster;

mod trial;
use trial::Trial;

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of trials.
    pub trials: u64,
    /// Trial `i` uses seed `seed + i`.
    pub seed: u64,
    /// Trials run at once (each with its own simulator and two replicas).
    pub parallel: usize,
    /// The chaos window, in milliseconds, drawn per trial.
    pub chaos_ms: (u64, u64),
    /// How long resources may take to settle once the chaos stops.
    pub settle: Duration,
    /// How long `delete namespace` may take.
    pub delete: Duration,
    /// `--lease-duration-seconds` of the replicas.
    pub lease_seconds: u64,
    /// Where a failed trial's operator logs and timeline are kept.
    pub logs: PathBuf,
    /// Force a ClusterVendorConnection (true) or a VendorConnection (false); None: random.
    pub cluster_connection: Option<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            trials: 3,
            seed: 1,
            parallel: 1,
            chaos_ms: (5_000, 10_000),
            settle: Duration::from_secs(60),
            delete: Duration::from_secs(60),
            lease_seconds: 3,
            logs: std::env::temp_dir().join(format!("orgops-chaos-{}", std::process::id())),
            cluster_connection: None,
        }
    }
}

/// What every trial shares: the API server (with the CRDs) and the operator's own namespace,
/// where the Leases and the ClusterVendorConnection Secrets live.
pub struct Env {
    /// The API server.
    pub cluster: Cluster,
    /// The operators' namespace.
    pub ops: String,
}

impl Env {
    /// Starts the API server and installs the CRDs (through the API, no kubectl needed).
    pub async fn start() -> Self {
        let cluster = Cluster::start().await;
        let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
        for (_, yaml) in orgops::api::crdgen::crd_files().unwrap() {
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap();
            match crds.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => panic!("installing {}: {e}", crd.name_any()),
            }
        }
        for crd in crds.list(&ListParams::default()).await.unwrap().items {
            let established = crd
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Established" && c.status == "True");
            assert!(established, "CRD {} not established", crd.name_any());
        }
        let ops = "orgops-chaos".to_string();
        create_namespace(&cluster.client, &ops).await.unwrap();
        Self { cluster, ops }
    }
}

async fn create_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What chaos a trial made.
#[derive(Clone, Debug, Default)]
pub struct Chaos {
    /// Replicas killed with SIGKILL (and restarted).
    pub kills: u32,
    /// … of which the leader.
    pub leader_kills: u32,
    /// Replicas stopped with SIGSTOP (then continued).
    pub stops: u32,
    /// … of which for longer than the Lease.
    pub long_stops: u32,
    /// Replicas that exited by themselves (e.g. a lost Lease) and were restarted.
    pub exits: u32,
    /// Fault specs set (including "off").
    pub fault_changes: u32,
    /// Requests answered with an injected fault.
    pub faults: u64,
    /// … of which processed and then dropped.
    pub dropped: u64,
    /// … of which writes.
    pub dropped_writes: u64,
    /// Spec edits (display name, suspend, role).
    pub edits: u32,
    /// Deletions of Organizations and OrgMemberships.
    pub deletions: u32,
}

/// The outcome of one trial.
#[derive(Clone, Debug, Default)]
pub struct TrialResult {
    /// Index in the campaign.
    pub index: u64,
    /// Its seed.
    pub seed: u64,
    /// Its namespace.
    pub namespace: String,
    /// One line about its resources.
    pub setup: String,
    /// What chaos happened.
    pub chaos: Chaos,
    /// Duplicates found, one line each.
    pub duplicates: Vec<String>,
    /// Lost, one line each.
    pub lost: Vec<String>,
    /// Stuck, one line each.
    pub stuck: Vec<String>,
    /// Access left behind for a documented reason.
    pub excused: Vec<String>,
    /// The campaign itself failed (an API call, a panic): not a finding about the operator.
    pub harness: Vec<String>,
    /// Time from calm to settled.
    pub settled_in: Option<Duration>,
    /// Time from `delete namespace` to gone.
    pub deleted_in: Option<Duration>,
    /// Wall time of the trial.
    pub elapsed: Duration,
    /// Kept logs of a failed trial.
    pub logs: Option<PathBuf>,
}

impl TrialResult {
    /// No duplicate, nothing lost or stuck, and the harness worked.
    pub fn ok(&self) -> bool {
        self.duplicates.is_empty()
            && self.lost.is_empty()
            && self.stuck.is_empty()
            && self.harness.is_empty()
    }

    /// One line for the campaign's output, then one line per finding.
    pub fn lines(&self) -> String {
        let c = &self.chaos;
        let secs = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "never".into())
        };
        let mut out = format!(
            "trial {} seed {} {}: {}; chaos: {} kills ({} leader), {} stops ({} > lease), {} self-exits, {} fault changes ({} faults, {} dropped, {} of them writes), {} edits, {} deletions; settled {}, namespace gone {}; {} dup, {} lost, {} stuck{}; {:.1} s",
            self.index,
            self.seed,
            self.namespace,
            self.setup,
            c.kills,
            c.leader_kills,
            c.stops,
            c.long_stops,
            c.exits,
            c.fault_changes,
            c.faults,
            c.dropped,
            c.dropped_writes,
            c.edits,
            c.deletions,
            secs(self.settled_in),
            secs(self.deleted_in),
            self.duplicates.len(),
            self.lost.len(),
            self.stuck.len(),
            if self.excused.is_empty() {
                String::new()
            } else {
                format!(", {} excused", self.excused.len())
            },
            self.elapsed.as_secs_f64(),
        );
        for (what, items) in [
            ("DUPLICATE", &self.duplicates),
            ("LOST", &self.lost),
            ("STUCK", &self.stuck),
            ("HARNESS", &self.harness),
            ("excused", &self.excused),
        ] {
            for i in items {
                out.push_str(&format!("\n    {what}: {i}"));
            }
        }
        if let Some(l) = &self.logs {
            out.push_str(&format!(
                "\n    logs: {} (replay: --trials 1 --seed {})",
                l.display(),
                self.seed
            ));
        }
        out
    }
}

/// A campaign's totals.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Trials run.
    pub trials: u64,
    /// Duplicates.
    pub duplicates: usize,
    /// Lost.
    pub lost: usize,
    /// Stuck.
    pub stuck: usize,
    /// Excused.
    pub excused: usize,
    /// Harness failures.
    pub harness: usize,
    /// Seeds of failed trials.
    pub failed_seeds: Vec<u64>,
    /// Sum of the chaos.
    pub chaos: Chaos,
    /// Sum of the trials' wall time.
    pub trial_time: Duration,
}

impl Summary {
    fn add(&mut self, r: &TrialResult) {
        self.trials += 1;
        self.duplicates += r.duplicates.len();
        self.lost += r.lost.len();
        self.stuck += r.stuck.len();
        self.excused += r.excused.len();
        self.harness += r.harness.len();
        if !r.ok() {
            self.failed_seeds.push(r.seed);
        }
        let (a, b) = (&mut self.chaos, &r.chaos);
        a.kills += b.kills;
        a.leader_kills += b.leader_kills;
        a.stops += b.stops;
        a.long_stops += b.long_stops;
        a.exits += b.exits;
        a.fault_changes += b.fault_changes;
        a.faults += b.faults;
        a.dropped += b.dropped;
        a.dropped_writes += b.dropped_writes;
        a.edits += b.edits;
        a.deletions += b.deletions;
        self.trial_time += r.elapsed;
    }

    /// `N trials, D duplicates, L lost, S stuck`.
    pub fn line(&self) -> String {
        format!(
            "{} trials, {} duplicates, {} lost, {} stuck",
            self.trials, self.duplicates, self.lost, self.stuck
        )
    }

    /// Totals of the chaos, failed seeds, excused and harness failures.
    pub fn details(&self) -> String {
        let c = &self.chaos;
        format!(
            "chaos in total: {} kills ({} of the leader), {} stops ({} longer than the Lease), {} self-exits, {} fault changes, {} injected faults ({} processed-but-dropped, {} of them writes), {} edits, {} deletions; {} excused, {} harness failures; mean trial {:.1} s; failed seeds: {:?}",
            c.kills,
            c.leader_kills,
            c.stops,
            c.long_stops,
            c.exits,
            c.fault_changes,
            c.faults,
            c.dropped,
            c.dropped_writes,
            c.edits,
            c.deletions,
            self.excused,
            self.harness,
            self.trial_time.as_secs_f64() / self.trials.max(1) as f64,
            self.failed_seeds
        )
    }

    /// No duplicate, nothing lost or stuck, no harness failure.
    pub fn clean(&self) -> bool {
        self.duplicates == 0 && self.lost == 0 && self.stuck == 0 && self.harness == 0
    }
}

/// Runs `opts.trials` trials, `opts.parallel` at a time; `report` sees each result as it ends.
pub async fn campaign(
    env: Arc<Env>,
    opts: Options,
    mut report: impl FnMut(&TrialResult),
) -> Summary {
    std::fs::create_dir_all(&opts.logs).unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..opts.parallel.max(1) {
        let (env, opts, next, tx) = (env.clone(), opts.clone(), next.clone(), tx.clone());
        tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= opts.trials {
                    break;
                }
                let seed = opts.seed.wrapping_add(index);
                let (env2, opts2) = (env.clone(), opts.clone());
                let started = Instant::now();
                let result = match tokio::spawn(async move {
                    Trial::new(env2, opts2, index, seed).await.run().await
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => TrialResult {
                        index,
                        seed,
                        harness: vec![format!("the trial panicked: {e}")],
                        elapsed: started.elapsed(),
                        ..TrialResult::default()
                    },
                };
                if tx.send(result).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut summary = Summary::default();
    while let Some(r) = rx.recv().await {
        report(&r);
        summary.add(&r);
    }
    summary
}
