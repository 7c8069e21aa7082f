//! One trial of the campaign: two replicas, the resources, the chaos, settling, deleting the
//! namespace. The replicas are in `replicas`, the chaos in `actions`, the manifests in
//! `resources`, and what counts as settled, lost or duplicated in `checks`.

mod actions;
mod checks;
mod replicas;
mod resources;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use orgops::api::{ClusterVendorConnection, OrgMembership, Organization, VendorConnection};
use orgops::simulator::rossum::{RossumSimulator, Seed};
use orgops::simulator::{FaultSpec, ServeOptions};
use serde_json::json;

use super::super::{ADMIN, CREATE_KEY, PASSWORD, SMALL_TEMPLATE, admin};
use super::{Env, Options, TrialResult, create_namespace};
use checks::{describe, ready};

/// Name of the template org in [`SMALL_TEMPLATE`].
const TEMPLATE: &str = "Small template";
/// Roles a membership may ask for.
const ROLES: &[&str] = &["viewer", "annotator", "manager", "admin"];

/// One Organization of a trial.
#[derive(Clone, Debug)]
struct OrgPlan {
    name: String,
    /// Every displayName it had.
    names: Vec<String>,
    policy: &'static str,
    template: bool,
    first_user: Option<String>,
    suspend: bool,
    created: bool,
    /// Sequence number of its deletion.
    deleted: Option<u64>,
}

/// One OrgMembership of a trial.
#[derive(Clone, Debug)]
struct MemberPlan {
    name: String,
    org: usize,
    email: String,
    role: String,
    policy: &'static str,
    created: bool,
    deleted: Option<u64>,
}

/// One operator replica, restarted like a kubelet would.
struct Replica {
    identity: String,
    child: Option<tokio::process::Child>,
    port: u16,
    stopped_until: Option<Instant>,
    restart_at: Option<Instant>,
}

pub(super) struct Trial {
    env: Arc<Env>,
    opts: Options,
    client: Client,
    rng: fastrand::Rng,
    result: TrialResult,
    ns: String,
    lease: String,
    cluster_connection: bool,
    connection: String,
    sim: RossumSimulator,
    orgs: Vec<OrgPlan>,
    members: Vec<MemberPlan>,
    replicas: Vec<Replica>,
    /// Resources still to create: (0 connection | 1 org | 2 orgm, index).
    pending: Vec<(u8, usize)>,
    seq: u64,
    started: Instant,
    timeline: Vec<String>,
    log: PathBuf,
}

type Failed = String;

fn fail<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> Failed {
    move |e| format!("{what}: {e}")
}

impl Trial {
    pub(super) async fn new(env: Arc<Env>, opts: Options, index: u64, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let ns = format!("chaos-{index}-{:08x}", seed as u32);
        let seed_json = Seed::from_json(SMALL_TEMPLATE).unwrap();
        // Some latency stretches creates and copies, so that kills land in the middle of them.
        let latency = Duration::from_millis(rng.u64(0..=20));
        let options = ServeOptions {
            latency,
            ..ServeOptions::default()
        };
        let sim = RossumSimulator::start(0, &seed_json, &[admin()], options)
            .await
            .unwrap();
        let n_orgs = rng.usize(2..=4);
        let orgs: Vec<OrgPlan> = (0..n_orgs)
            .map(|i| OrgPlan {
                name: format!("org-{i}"),
                names: vec![format!("Chaos {ns} org {i}")],
                policy: if rng.bool() { "Delete" } else { "Orphan" },
                template: rng.f64() < 0.6,
                first_user: (rng.f64() < 0.7).then(|| format!("first-{i}-{ns}@chaos.example")),
                suspend: false,
                created: false,
                deleted: None,
            })
            .collect();
        // A person in several organizations, and a few in one.
        let mut members = Vec::new();
        let shared_role = ROLES[rng.usize(..ROLES.len())];
        let mut in_orgs: Vec<usize> = (0..n_orgs).collect();
        rng.shuffle(&mut in_orgs);
        in_orgs.truncate(rng.usize(2..=n_orgs));
        for &o in &in_orgs {
            let role = if rng.f64() < 0.8 {
                shared_role
            } else {
                ROLES[rng.usize(..ROLES.len())]
            };
            members.push(MemberPlan {
                name: format!("shared-{}", orgs[o].name),
                org: o,
                email: format!("shared-{ns}@chaos.example"),
                role: role.into(),
                policy: if rng.bool() { "Delete" } else { "Orphan" },
                created: false,
                deleted: None,
            });
        }
        for p in 0..rng.usize(1..=3) {
            let o = rng.usize(..n_orgs);
            members.push(MemberPlan {
                name: format!("solo-{p}-{}", orgs[o].name),
                org: o,
                email: format!("solo-{p}-{ns}@chaos.example"),
                role: ROLES[rng.usize(..ROLES.len())].into(),
                policy: if rng.bool() { "Delete" } else { "Orphan" },
                created: false,
                deleted: None,
            });
        }
        let drawn = rng.bool();
        let cluster_connection = opts.cluster_connection.unwrap_or(drawn);
        let setup = format!(
            "{} orgs ({} with template, {} Delete), {} memberships ({} Delete), {}, {} ms latency",
            orgs.len(),
            orgs.iter().filter(|o| o.template).count(),
            orgs.iter().filter(|o| o.policy == "Delete").count(),
            members.len(),
            members.iter().filter(|m| m.policy == "Delete").count(),
            if cluster_connection {
                "ClusterVendorConnection"
            } else {
                "VendorConnection"
            },
            latency.as_millis()
        );
        let log = opts.logs.join(format!("{ns}.log"));
        let replicas = ["replica-a", "replica-b"]
            .iter()
            .map(|id| Replica {
                identity: id.to_string(),
                child: None,
                port: 0,
                stopped_until: None,
                restart_at: None,
            })
            .collect();
        Self {
            client: env.cluster.client.clone(),
            env,
            opts,
            rng,
            result: TrialResult {
                index,
                seed,
                namespace: ns.clone(),
                setup,
                ..TrialResult::default()
            },
            lease: format!("orgops-{ns}"),
            connection: if cluster_connection {
                ns.clone()
            } else {
                "rossum".into()
            },
            cluster_connection,
            ns,
            sim,
            orgs,
            members,
            replicas,
            pending: Vec::new(),
            seq: 0,
            started: Instant::now(),
            timeline: Vec::new(),
            log,
        }
    }

    fn note(&mut self, what: impl std::fmt::Display) {
        self.timeline.push(format!(
            "{:8.3} {what}",
            self.started.elapsed().as_secs_f64()
        ));
    }

    pub(super) async fn run(mut self) -> TrialResult {
        if let Err(e) = self.play().await {
            self.result.harness.push(e);
        }
        for i in 0..self.replicas.len() {
            self.kill(i).await;
        }
        self.cleanup_shared().await;
        self.result.elapsed = self.started.elapsed();
        if self.result.ok() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            let timeline = self.opts.logs.join(format!("{}.timeline", self.ns));
            let _ = std::fs::write(&timeline, self.timeline.join("\n") + "\n");
            self.result.logs = Some(self.log.clone());
        }
        self.result
    }

    async fn play(&mut self) -> Result<(), Failed> {
        create_namespace(&self.client, &self.ns)
            .await
            .map_err(fail("creating the namespace"))?;
        for i in 0..self.replicas.len() {
            self.spawn(i)?;
        }
        self.wait_ready().await?;
        if self.rng.f64() < 0.7 {
            self.set_random_faults();
        }
        // The connection, each Organization and each OrgMembership, in random order, a few
        // at a time while the chaos goes on.
        let mut order: Vec<(u8, usize)> = vec![(0, 0)];
        order.extend((0..self.orgs.len()).map(|i| (1, i)));
        order.extend((0..self.members.len()).map(|i| (2, i)));
        self.rng.shuffle(&mut order);
        order.reverse();
        self.pending = order;
        let window =
            Duration::from_millis(self.rng.u64(self.opts.chaos_ms.0..=self.opts.chaos_ms.1));
        let end = Instant::now() + window;
        while Instant::now() < end || !self.pending.is_empty() {
            for _ in 0..self.rng.usize(1..=3) {
                self.create_next().await?;
            }
            self.maintain().await;
            tokio::time::sleep(Duration::from_millis(self.rng.u64(250..900))).await;
            self.maintain().await;
            self.act().await?;
        }
        self.calm().await;
        self.settle().await?;
        self.delete_namespace().await?;
        for i in 0..self.replicas.len() {
            self.kill(i).await;
        }
        self.vendor_checks();
        let stats = &self.sim.running.stats;
        self.result.chaos.faults = stats.faults.load(Ordering::Relaxed);
        self.result.chaos.dropped = stats.dropped.load(Ordering::Relaxed);
        self.result.chaos.dropped_writes = stats.dropped_writes.load(Ordering::Relaxed);
        Ok(())
    }

    // ---- settling ----

    async fn calm(&mut self) {
        self.faults_off();
        let now = Instant::now();
        for r in &mut self.replicas {
            if r.stopped_until.is_some() {
                r.stopped_until = Some(now);
            }
            if r.child.is_none() {
                r.restart_at = Some(now);
            }
        }
        self.maintain().await;
        self.note("calm: faults off, every replica running");
    }

    /// Waits until every resource is settled and what Ready resources claim holds at the vendor;
    /// at the bound, what is not settled is stuck and what does not hold is lost.
    async fn settle(&mut self) -> Result<(), Failed> {
        let start = Instant::now();
        loop {
            self.maintain().await;
            let (orgs, members) = self.list().await?;
            let unsettled = self.unsettled(&orgs, &members).await;
            let claims = self.claims(&orgs, &members);
            if unsettled.is_empty() && claims.is_empty() {
                self.result.settled_in = Some(start.elapsed());
                self.note("settled");
                self.snapshot(&orgs, &members);
                return Ok(());
            }
            if start.elapsed() >= self.opts.settle {
                self.note("not settled");
                self.snapshot(&orgs, &members);
                let bound = self.opts.settle.as_secs();
                for u in unsettled {
                    self.result
                        .stuck
                        .push(format!("not settled {bound} s after the chaos: {u}"));
                }
                for c in claims {
                    self.result
                        .lost
                        .push(format!("still {bound} s after the chaos: {c}"));
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn list(&self) -> Result<(Vec<Organization>, Vec<OrgMembership>), Failed> {
        let lp = ListParams::default();
        let orgs = Api::<Organization>::namespaced(self.client.clone(), &self.ns)
            .list(&lp)
            .await
            .map_err(fail("listing Organizations"))?
            .items;
        let members = Api::<OrgMembership>::namespaced(self.client.clone(), &self.ns)
            .list(&lp)
            .await
            .map_err(fail("listing OrgMemberships"))?
            .items;
        Ok((orgs, members))
    }

    async fn delete_namespace(&mut self) -> Result<(), Failed> {
        self.seq += 1;
        let seq = self.seq;
        for m in &mut self.members {
            m.deleted.get_or_insert(seq);
        }
        for o in &mut self.orgs {
            o.deleted.get_or_insert(seq);
        }
        let api = Api::<Namespace>::all(self.client.clone());
        api.delete(&self.ns, &DeleteParams::default())
            .await
            .map_err(fail("deleting the namespace"))?;
        self.note("delete namespace");
        let start = Instant::now();
        while start.elapsed() < self.opts.delete {
            self.maintain().await;
            match api.get_opt(&self.ns).await {
                Ok(None) => {
                    self.result.deleted_in = Some(start.elapsed());
                    self.note("namespace gone");
                    return Ok(());
                }
                Ok(Some(_)) => {}
                Err(e) => return Err(format!("reading the namespace: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (orgs, members) = self.list().await.unwrap_or_default();
        let left: Vec<String> = orgs
            .iter()
            .map(|o| {
                let c = o
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or(&[]);
                format!("org {} ({})", o.name_any(), describe(ready(c)))
            })
            .chain(members.iter().map(|m| {
                let c = m
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or(&[]);
                format!("orgm {} ({})", m.name_any(), describe(ready(c)))
            }))
            .collect();
        self.result.stuck.push(format!(
            "namespace not gone {} s after delete: {}",
            self.opts.delete.as_secs(),
            left.join(", ")
        ));
        Ok(())
    }

    async fn cleanup_shared(&mut self) {
        let dp = DeleteParams::default();
        if self.cluster_connection {
            let _ = Api::<ClusterVendorConnection>::all(self.client.clone())
                .delete(&self.connection, &dp)
                .await;
            let _ = Api::<Secret>::namespaced(self.client.clone(), &self.env.ops)
                .delete(&format!("{}-admin", self.ns), &dp)
                .await;
        }
        let _ = Api::<Lease>::namespaced(self.client.clone(), &self.env.ops)
            .delete(&self.lease, &dp)
            .await;
    }
}
