//! The thin executor of copy plans: lists, runs creates/updates concurrently under the
//! vendor's rate limit, re-observes after unknown outcomes, and reports progress.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use futures::{StreamExt, stream};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use super::plan::{Action, CopyContext, IdMap, Pass, Planned, plan_kind, prune_candidates};
use crate::engine::Mode;
use crate::engine::changes::{Change, object_name};
use crate::vendors::{Credentials, KindSpec, VendorClient, VendorError};

/// Rounds of observe → act per kind before giving up on objects whose outcome stays unknown.
const MAX_ROUNDS: usize = 5;
/// Failure messages kept for the status message.
const MAX_FAILURE_MESSAGES: usize = 5;

/// Progress of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindProgress {
    /// Template objects of this kind.
    pub total: u32,
    /// Copies that exist and match.
    pub done: u32,
    /// Copies that failed (or cannot be made).
    pub failed: u32,
}

/// Receives progress while a copy runs. Called often; implementations throttle.
pub trait ProgressSink: Send + Sync {
    /// The current progress of every kind.
    fn copy_progress(&self, kinds: &BTreeMap<&'static str, KindProgress>);
}

/// What a copy pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CopyReport {
    /// Final progress per kind.
    pub kinds: BTreeMap<&'static str, KindProgress>,
    /// Copies created.
    pub created: u32,
    /// Copies patched (drift repaired or template change propagated).
    pub updated: u32,
    /// Observe-only: copies missing or differing.
    pub drifted: u32,
    /// Copies deleted because their template object is gone (`spec.template.prune`).
    pub pruned: u32,
    /// Copies that should have been pruned but could not be deleted.
    pub prune_failed: u32,
    /// Kinds that could not be listed in the template or the target: what they need is
    /// unknown (a plan of them is incomplete).
    pub unlisted: u32,
    /// Observe-only: what applying would do, object by object.
    pub changes: Vec<Change>,
    /// The first failure messages, `kind/id: reason`.
    pub failures: Vec<String>,
    /// Some failure may go away by itself (vendor unavailable, outcome unknown): retry soon.
    pub transient: bool,
}

impl CopyReport {
    /// Sum over kinds.
    pub fn totals(&self) -> KindProgress {
        self.kinds
            .values()
            .fold(KindProgress::default(), |a, k| KindProgress {
                total: a.total + k.total,
                done: a.done + k.done,
                failed: a.failed + k.failed,
            })
    }
}

/// Write-only values for copies, per template object (`kind/name`): a Secret's keys, or why
/// they could not be read.
#[derive(Debug, Default)]
pub struct CopyInputs {
    by_object: HashMap<String, Result<Credentials, String>>,
}

impl CopyInputs {
    /// Records the values (or the failure to read them) for `object`.
    pub fn insert(&mut self, object: String, values: Result<Credentials, String>) {
        self.by_object.insert(object, values);
    }

    /// The values for the copy of `name` of `kind`: `Err` says what is missing.
    fn get(&self, kind: &str, name: &str) -> Result<&Credentials, String> {
        match self.by_object.get(&format!("{kind}/{name}")) {
            Some(Ok(c)) => Ok(c),
            Some(Err(why)) => Err(format!("waiting for credentials: {why}")),
            None => Err(format!(
                "waiting for credentials: the vendor never returns this object's secret values; name a Secret for {kind}/{name} in spec.template.secrets"
            )),
        }
    }
}

#[derive(Clone, Debug)]
enum State {
    Pending,
    Done,
    /// Failed, and whether trying again soon may help (a vendor outage) or not (a blocked
    /// copy, a rejected body: retried at the next sync, not with backoff).
    Failed(String, bool),
}

/// One copy of a template organization into another.
#[derive(Clone, Copy)]
pub struct CopyJob<'a> {
    /// The template organization's id.
    pub template_org: &'a str,
    /// The target organization's id; `None` when it does not exist yet (the plan of a
    /// create, observe-only): every copy is then one to create, and nothing is listed there.
    pub target_org: Option<&'a str>,
    /// Owner key written into markers.
    pub owner: &'a str,
    /// The kinds to copy.
    pub kinds: &'a [&'static KindSpec],
    /// Apply, or only record what applying would do.
    pub mode: Mode,
    /// Delete marked copies whose template object is gone.
    pub prune: bool,
    /// Requests in flight.
    pub concurrency: usize,
    /// Write-only values per template object.
    pub inputs: &'a CopyInputs,
    /// Shared template listings (the operator); `None`: the template is listed here.
    pub templates: Option<&'a super::TemplateSource>,
}

/// Stands in for the id of an organization that does not exist yet, in planned bodies.
const NEW_ORG: &str = "(new organization)";

struct Shared<'a> {
    vendor: &'a dyn VendorClient,
    template_org: &'a str,
    target_org: &'a str,
    target_exists: bool,
    owner: &'a str,
    mode: Mode,
    prune: bool,
    templates: Option<&'a super::TemplateSource>,
    permits: Semaphore,
    concurrency: usize,
    inputs: &'a CopyInputs,
    progress: Mutex<BTreeMap<&'static str, KindProgress>>,
    sink: &'a dyn ProgressSink,
}

impl Shared<'_> {
    async fn list_target(&self, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        if !self.target_exists {
            return Ok(Vec::new());
        }
        let _permit = self.permits.acquire().await;
        self.vendor.list_objects(self.target_org, kind).await
    }

    fn publish(&self, kind: &'static str, states: &HashMap<String, State>) {
        let p = KindProgress {
            total: states.len() as u32,
            done: states.values().filter(|s| matches!(s, State::Done)).count() as u32,
            failed: states
                .values()
                .filter(|s| matches!(s, State::Failed(..)))
                .count() as u32,
        };
        let snapshot = match self.progress.lock() {
            Ok(mut all) => {
                all.insert(kind, p);
                all.clone()
            }
            Err(_) => return,
        };
        self.sink.copy_progress(&snapshot);
    }
}

/// Copies the setup of the template into the target: every selected kind, each as soon as
/// the kinds it references are done.
pub async fn copy_template(
    vendor: &dyn VendorClient,
    job: &CopyJob<'_>,
    sink: &dyn ProgressSink,
) -> Result<CopyReport, VendorError> {
    let kinds = job.kinds;
    let shared = Shared {
        inputs: job.inputs,
        vendor,
        template_org: job.template_org,
        target_org: job.target_org.unwrap_or(NEW_ORG),
        target_exists: job.target_org.is_some(),
        owner: job.owner,
        mode: job.mode,
        prune: job.prune,
        templates: job.templates,
        permits: Semaphore::new(job.concurrency.max(1)),
        concurrency: job.concurrency.max(1),
        progress: Mutex::new(BTreeMap::new()),
        sink,
    };
    // List the template first so every kind's total is known from the start.
    let shared_ref = &shared;
    // Futures built by a named fn, not a closure: the operator needs these futures `Send`,
    // which closures returning async blocks over borrowed kinds cannot prove.
    let listings: Vec<_> = kinds.iter().map(|k| list_source(shared_ref, k)).collect();
    let listed: Vec<(&'static KindSpec, Result<Vec<Value>, VendorError>)> = stream::iter(listings)
        .buffered(shared.concurrency.min(8))
        .collect()
        .await;
    // A kind that cannot be listed fails alone; the others copy (what depends on it is
    // blocked by the missing references).
    let mut unlisted: HashMap<&'static str, VendorError> = HashMap::new();
    let mut sources: HashMap<&'static str, Vec<Value>> = HashMap::new();
    for (k, listing) in listed {
        match listing {
            Ok(v) => {
                let live = v
                    .into_iter()
                    .filter(|o| k.skip.is_none_or(|skip| !skip(o)))
                    .collect();
                sources.insert(k.name, live);
            }
            Err(e) => {
                sources.insert(k.name, Vec::new());
                unlisted.insert(k.name, e);
            }
        }
    }
    if let Ok(mut all) = shared.progress.lock() {
        for k in kinds {
            let total = sources[k.name].len() as u32;
            all.insert(
                k.name,
                KindProgress {
                    total,
                    done: 0,
                    failed: u32::from(unlisted.contains_key(k.name)),
                },
            );
        }
        sink.copy_progress(&all);
    }

    // Each kind starts as soon as the kinds it references are done (no wave barriers), so the
    // rate limit, not the slowest kind of a wave, sets the pace.
    let ids = Mutex::new(IdMap::default());
    let mut done_tx: HashMap<&'static str, watch::Sender<bool>> = HashMap::new();
    let mut done_rx: HashMap<&'static str, watch::Receiver<bool>> = HashMap::new();
    for k in kinds {
        let (tx, rx) = watch::channel(false);
        done_tx.insert(k.name, tx);
        done_rx.insert(k.name, rx);
    }
    let selected: Vec<&'static str> = kinds.iter().map(|k| k.name).collect();
    let results = futures::future::join_all(kinds.iter().map(|k| {
        let deps: Vec<watch::Receiver<bool>> = k
            .dependencies()
            .filter(|d| selected.contains(d))
            .filter_map(|d| done_rx.get(d).cloned())
            .collect();
        let tx = done_tx.remove(k.name);
        let (shared, sources, ids, unlisted) = (&shared, &sources, &ids, &unlisted);
        async move {
            for mut rx in deps {
                let _ = rx.wait_for(|done| *done).await;
            }
            let snapshot = ids.lock().map(|m| m.clone()).unwrap_or_default();
            let result = match unlisted.get(k.name) {
                Some(e) => KindResult::unlisted(k.name, "the template", e),
                None => copy_kind(shared, k, &sources[k.name], &snapshot).await,
            };
            if let Ok(mut all) = ids.lock() {
                let kind = &result;
                for (s, t) in &kind.mapped {
                    all.insert(kind.name, s.clone(), t.clone());
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(true);
            }
            result
        }
    }))
    .await;
    let mut report = CopyReport::default();
    for kind in results {
        report.transient |= kind.transient;
        report.created += kind.created;
        report.updated += kind.updated;
        report.drifted += kind.drifted;
        report.pruned += kind.pruned;
        report.prune_failed += kind.prune_failed;
        report.unlisted += u32::from(kind.unlisted);
        report.changes.extend(kind.changes);
        for f in kind.failures {
            if report.failures.len() < MAX_FAILURE_MESSAGES {
                report.failures.push(f);
            }
        }
    }
    report.kinds = shared
        .progress
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    Ok(report)
}

struct KindResult {
    name: &'static str,
    mapped: Vec<(String, String)>,
    created: u32,
    updated: u32,
    drifted: u32,
    pruned: u32,
    prune_failed: u32,
    unlisted: bool,
    changes: Vec<Change>,
    failures: Vec<String>,
    transient: bool,
}

impl KindResult {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            mapped: Vec::new(),
            created: 0,
            updated: 0,
            drifted: 0,
            pruned: 0,
            prune_failed: 0,
            unlisted: false,
            changes: Vec::new(),
            failures: Vec::new(),
            transient: false,
        }
    }

    /// A kind whose objects could not be listed in `org_role` (the template or the target).
    fn unlisted(name: &'static str, org_role: &str, e: &VendorError) -> Self {
        let mut r = Self::new(name);
        r.unlisted = true;
        r.failures
            .push(format!("{name}: cannot list them in {org_role}: {e}"));
        r.transient = e.is_transient();
        r
    }
}

enum ExecOutcome {
    Done(Value),
    Retry,
    Failed(String),
}

async fn copy_kind(
    shared: &Shared<'_>,
    kind: &'static KindSpec,
    sources: &[Value],
    known: &IdMap,
) -> KindResult {
    let vendor = shared.vendor;
    let mut ids = known.clone();
    let mut targets = match shared.list_target(kind).await {
        Ok(t) => t,
        Err(e) => {
            let states = sources
                .iter()
                .enumerate()
                .map(|(n, o)| {
                    let id = vendor.object_id(o).unwrap_or_else(|| format!("#{n}"));
                    (id, State::Failed("not listed".into(), e.is_transient()))
                })
                .collect();
            shared.publish(kind.name, &states);
            return KindResult::unlisted(kind.name, "the target", &e);
        }
    };
    let mut states: HashMap<String, State> = sources
        .iter()
        .filter_map(|o| vendor.object_id(o))
        .map(|id| (id, State::Pending))
        .collect();
    let mut result = KindResult::new(kind.name);
    let has_deferred = kind.refs.iter().any(|r| r.deferred);
    let passes: &[Pass] = if has_deferred {
        &[Pass::First, Pass::Deferred]
    } else {
        &[Pass::First]
    };
    for &pass in passes {
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                // Some outcomes are unknown: observe again before deciding anything.
                match shared.list_target(kind).await {
                    Ok(t) => targets = t,
                    Err(e) => {
                        result.transient |= e.is_transient();
                        break;
                    }
                }
            }
            let ctx = CopyContext {
                codec: vendor,
                owner: shared.owner,
                template_org: shared.template_org,
                target_org: shared.target_org,
                ids: &ids,
            };
            let plan = plan_kind(kind, sources, &targets, &ctx, pass);
            let made_with_new: HashSet<String> = if shared.mode == Mode::ObserveOnly {
                plan.iter()
                    .filter(|p| matches!(p.action, Action::Blocked(_)))
                    .filter(|p| made_with_a_new_copy(kind, &p.source_id, sources, &ctx, pass))
                    .map(|p| p.source_id.clone())
                    .collect()
            } else {
                HashSet::new()
            };
            let mut work: Vec<Planned> = Vec::new();
            for p in plan {
                match &p.action {
                    Action::InSync { target_id } => {
                        ids.insert(kind.name, p.source_id.clone(), target_id.clone());
                        states.insert(p.source_id.clone(), State::Done);
                    }
                    Action::Blocked(reason) => {
                        if shared.mode == Mode::ObserveOnly
                            && !matches!(states.get(&p.source_id), Some(State::Failed(..)))
                            && !made_with_new.contains(&p.source_id)
                        {
                            result.changes.push(Change::Blocked {
                                kind: kind.name,
                                source: p.source_id.clone(),
                                reason: reason.clone(),
                            });
                        }
                        states.insert(p.source_id.clone(), State::Failed(reason.clone(), false));
                    }
                    Action::Update { target_id, .. } => {
                        ids.insert(kind.name, p.source_id.clone(), target_id.clone());
                        work.push(p);
                    }
                    Action::Create(_) => work.push(p),
                }
            }
            shared.publish(kind.name, &states);
            if shared.mode == Mode::ObserveOnly {
                for p in &work {
                    let first = !matches!(states.get(&p.source_id), Some(State::Failed(..)));
                    result.drifted += u32::from(first);
                    record_change(&mut result.changes, kind, p, sources, &targets, vendor);
                    if matches!(p.action, Action::Create(_)) {
                        // What depends on it is planned against the copy to come.
                        ids.insert(
                            kind.name,
                            p.source_id.clone(),
                            format!("{NEW_COPY}{}/{}", kind.name, p.source_id),
                        );
                    }
                    states.insert(
                        p.source_id.clone(),
                        State::Failed("drifted (suspended: not repaired)".into(), false),
                    );
                }
                break;
            }
            if work.is_empty() {
                break;
            }
            let runs: Vec<_> = work
                .into_iter()
                .map(|p| execute_planned(shared, kind, p))
                .collect();
            let outcomes: Vec<(Planned, ExecOutcome)> = stream::iter(runs)
                .buffer_unordered(shared.concurrency)
                .collect()
                .await;
            let mut retry = false;
            for (p, outcome) in outcomes {
                match outcome {
                    ExecOutcome::Done(object) => {
                        let target_id = vendor.object_id(&object).unwrap_or_default();
                        match p.action {
                            Action::Create(_) => result.created += 1,
                            _ => result.updated += 1,
                        }
                        ids.insert(kind.name, p.source_id.clone(), target_id.clone());
                        match targets
                            .iter_mut()
                            .find(|t| vendor.object_id(t).as_deref() == Some(&target_id))
                        {
                            Some(slot) => *slot = object,
                            None => targets.push(object),
                        }
                        states.insert(p.source_id, State::Done);
                    }
                    ExecOutcome::Retry => {
                        retry = true;
                        states.insert(p.source_id, State::Pending);
                    }
                    ExecOutcome::Failed(reason) => {
                        states.insert(p.source_id, State::Failed(reason, false));
                    }
                }
                shared.publish(kind.name, &states);
            }
            if !retry {
                break;
            }
        }
    }
    if shared.prune {
        prune(shared, kind, sources, &targets, &ids, &mut result).await;
    }
    for (source, state) in &states {
        match state {
            State::Failed(reason, transient) => {
                result.transient |= transient;
                if result.failures.len() < MAX_FAILURE_MESSAGES {
                    result
                        .failures
                        .push(format!("{}/{source}: {reason}", kind.name));
                }
            }
            State::Pending => {
                result.transient = true;
                if result.failures.len() < MAX_FAILURE_MESSAGES {
                    result.failures.push(format!(
                        "{}/{source}: vendor kept failing; will retry on the next reconcile",
                        kind.name
                    ));
                }
            }
            State::Done => {}
        }
    }
    let pending_as_failed: HashMap<String, State> = states
        .into_iter()
        .map(|(k, s)| match s {
            State::Pending => (k, State::Failed("unresolved".into(), true)),
            other => (k, other),
        })
        .collect();
    shared.publish(kind.name, &pending_as_failed);
    result.mapped = ids
        .get_kind(kind.name)
        .map(|m| m.iter().map(|(s, t)| (s.clone(), t.clone())).collect())
        .unwrap_or_default();
    result
}

async fn list_source(
    shared: &Shared<'_>,
    kind: &'static KindSpec,
) -> (&'static KindSpec, Result<Vec<Value>, VendorError>) {
    let _permit = shared.permits.acquire().await;
    let listing = match shared.templates {
        Some(source) => source
            .cache
            .list(&source.scope, shared.vendor, shared.template_org, kind)
            .await
            .map(|objects| objects.as_ref().clone()),
        None => shared.vendor.list_objects(shared.template_org, kind).await,
    };
    (kind, listing)
}

async fn execute_planned(
    shared: &Shared<'_>,
    kind: &'static KindSpec,
    planned: Planned,
) -> (Planned, ExecOutcome) {
    let outcome = execute(shared, kind, &planned.action).await;
    (planned, outcome)
}

async fn execute(shared: &Shared<'_>, kind: &'static KindSpec, action: &Action) -> ExecOutcome {
    let Ok(_permit) = shared.permits.acquire().await else {
        return ExecOutcome::Retry;
    };
    let vendor = shared.vendor;
    let result = match action {
        Action::Create(body) => match kind.input {
            None => {
                vendor
                    .create_object(shared.target_org, kind, body.clone())
                    .await
            }
            // An object of an input kind that needs no write-only values is created as usual.
            Some(name_of) if name_of(body).is_none() => {
                vendor
                    .create_object(shared.target_org, kind, body.clone())
                    .await
            }
            Some(name_of) => {
                let name = name_of(body).unwrap_or_default();
                match shared.inputs.get(kind.name, &name) {
                    Ok(input) => {
                        vendor
                            .create_object_with_input(shared.target_org, kind, body.clone(), input)
                            .await
                    }
                    // Waits by name; the rest of the copy goes on.
                    Err(why) => return ExecOutcome::Failed(why),
                }
            }
        },
        Action::Update { target_id, patch } => {
            vendor
                .update_object(shared.target_org, kind, target_id, patch.clone())
                .await
        }
        Action::InSync { .. } | Action::Blocked(_) => return ExecOutcome::Retry,
    };
    match result {
        Ok(object) => ExecOutcome::Done(object),
        Err(e) if e.is_outcome_unknown() || e.is_transient() => {
            tracing::debug!(kind = kind.name, error = %e, "will observe and retry");
            ExecOutcome::Retry
        }
        Err(e) => ExecOutcome::Failed(e.to_string()),
    }
}

/// Starts the stand-in id of a copy an observe-only plan would create: a character no vendor
/// text carries (DEL), so template text such as "Invoices (new format)" cannot look like one.
const NEW_COPY: &str = "\u{7f}orgops-new-copy:";

/// Observe-only: whether a template object that cannot be created on its own references a
/// copy the plan creates, so the vendor makes it together with that one (Rossum creates a
/// queue's email templates with the queue); the plan then has nothing to say about it.
fn made_with_a_new_copy(
    kind: &KindSpec,
    source_id: &str,
    sources: &[Value],
    ctx: &CopyContext<'_>,
    pass: Pass,
) -> bool {
    sources
        .iter()
        .find(|o| ctx.codec.object_id(o).as_deref() == Some(source_id))
        .and_then(|o| super::plan::desired_copy(kind, o, ctx, pass).ok())
        .is_some_and(|body| body.to_string().contains(NEW_COPY))
}

/// Records what applying `p` would do, once per object (a deferred pass adds its fields to
/// the first pass's line).
fn record_change(
    changes: &mut Vec<Change>,
    kind: &'static KindSpec,
    p: &Planned,
    sources: &[Value],
    targets: &[Value],
    vendor: &dyn VendorClient,
) {
    match &p.action {
        Action::Create(_) => {
            if changes.iter().any(|c| {
                matches!(c, Change::CreateCopy { kind: k, source, .. } if *k == kind.name && *source == p.source_id)
            }) {
                return;
            }
            let name = sources
                .iter()
                .find(|o| vendor.object_id(o).as_deref() == Some(p.source_id.as_str()))
                .and_then(object_name);
            changes.push(Change::CreateCopy {
                kind: kind.name,
                source: p.source_id.clone(),
                name,
            });
        }
        Action::Update { target_id, patch } => {
            let fields = patch
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let existing = changes.iter_mut().find_map(|c| match c {
                Change::UpdateCopy {
                    kind: k,
                    target,
                    fields,
                    ..
                } if *k == kind.name && target == target_id => Some(fields),
                _ => None,
            });
            match existing {
                Some(have) => have.extend(fields),
                None => {
                    let name = targets
                        .iter()
                        .find(|o| vendor.object_id(o).as_deref() == Some(target_id.as_str()))
                        .and_then(object_name);
                    changes.push(Change::UpdateCopy {
                        kind: kind.name,
                        target: target_id.clone(),
                        name,
                        fields,
                    });
                }
            }
        }
        Action::InSync { .. } | Action::Blocked(_) => {}
    }
}

/// Deletes (or, observe-only, records) the marked copies whose template object is gone.
async fn prune(
    shared: &Shared<'_>,
    kind: &'static KindSpec,
    sources: &[Value],
    targets: &[Value],
    ids: &IdMap,
    result: &mut KindResult,
) {
    let ctx = CopyContext {
        codec: shared.vendor,
        owner: shared.owner,
        template_org: shared.template_org,
        target_org: shared.target_org,
        ids,
    };
    let doomed = prune_candidates(kind, sources, targets, &ctx);
    if doomed.is_empty() {
        return;
    }
    if sources.is_empty() {
        // An empty template listing would delete every copy of the kind; a vendor answering
        // `[]` by mistake (lost permissions, a glitch) must not do that (as Argo CD refuses to
        // prune to nothing unless told to). A human deletes them, or excludes the kind.
        let why = format!(
            "not pruned: the template lists no {} now, and pruning would delete all {} copies; delete them by hand if that is intended",
            kind.name,
            doomed.len()
        );
        if shared.mode == Mode::ObserveOnly {
            result.changes.push(Change::Blocked {
                kind: kind.name,
                source: "*".into(),
                reason: why,
            });
        } else {
            result.prune_failed += 1;
            if result.failures.len() < MAX_FAILURE_MESSAGES {
                result.failures.push(format!("{}: {why}", kind.name));
            }
        }
        return;
    }
    if shared.mode == Mode::ObserveOnly {
        for (target, why) in doomed {
            result.changes.push(Change::PruneCopy {
                kind: kind.name,
                target: shared.vendor.object_id(target).unwrap_or_default(),
                name: object_name(target),
                why,
            });
        }
        return;
    }
    let deletes: Vec<_> = doomed
        .into_iter()
        .filter_map(|(target, _)| shared.vendor.object_id(target))
        .map(|id| delete_copy(shared, kind, id))
        .collect();
    let outcomes: Vec<(String, Result<(), VendorError>)> = stream::iter(deletes)
        .buffer_unordered(shared.concurrency)
        .collect()
        .await;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(()) => result.pruned += 1,
            Err(e) => {
                result.prune_failed += 1;
                result.transient |= e.is_transient() || e.is_outcome_unknown();
                if result.failures.len() < MAX_FAILURE_MESSAGES {
                    result
                        .failures
                        .push(format!("{}/{id}: not pruned: {e}", kind.name));
                }
            }
        }
    }
}

async fn delete_copy(
    shared: &Shared<'_>,
    kind: &'static KindSpec,
    id: String,
) -> (String, Result<(), VendorError>) {
    let _permit = shared.permits.acquire().await;
    let outcome = shared
        .vendor
        .delete_object(shared.target_org, kind, &id)
        .await;
    (id, outcome)
}
