//! The behaviour suite every vendor runs (`tests/behaviour.rs`): the [`Row`] a vendor provides,
//! the behaviours as functions generic over it, and [`behaviour_suite!`], which turns one row
//! into one `#[tokio::test]` per behaviour.
//!
//! What the suite checks at the vendor it checks through the simulator's
//! [`SimulatorHandle`] and the row's own reading of the vendor's objects ([`Row::view`],
//! [`Row::references`], [`Row::member_at_vendor`]), never through the engine's plan or diff
//! code: a bug in the engine's idea of "equal" cannot hide itself.

pub mod dataloop;
pub mod openlattice;
pub mod renderedai;
pub mod rossum;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use orgops::api::MembershipPhase;
use orgops::api::conditions::types;
use orgops::engine::membership::reconcile_member;
use orgops::engine::{DesiredOrg, EngineOptions, Mode, OrgReport, reconcile_org};
use orgops::simulator::FaultSpec;
use orgops::simulator::kit::SimulatorHandle;
use orgops::vendors::{MemberDesired, Presence, VendorClient};
use serde_json::Value;

use crate::support::MemorySink;

/// A client of `vendor` at `base` for the suite: retries fast, and a `429` pauses for
/// milliseconds, not the second it asks for.
pub fn test_client(
    vendor: orgops::api::Vendor,
    base: &str,
    credentials: orgops::vendors::Credentials,
) -> Arc<dyn VendorClient> {
    let config = orgops::vendors::HttpConfig {
        rate_per_second: 10_000,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        max_retry_after: Duration::from_millis(20),
        timeout: Duration::from_secs(10),
        ..orgops::vendors::HttpConfig::default()
    };
    orgops::vendors::connect(
        vendor,
        Some(base),
        credentials,
        config,
        &orgops::vendors::Endpoints::default(),
    )
    .expect("the test Secret has every key the vendor needs")
}

/// A running simulator and clients of it.
pub struct Started {
    /// The simulator.
    pub handle: Box<dyn SimulatorHandle>,
    /// A client with the simulator's test credentials.
    pub client: Arc<dyn VendorClient>,
    /// A client whose credentials the vendor rejects (same Secret name).
    pub wrong_client: Arc<dyn VendorClient>,
}

/// A hand edit of one vendor object (a JSON merge patch).
#[derive(Clone, Debug)]
pub struct HandEdit {
    /// The simulator's kind.
    pub kind: &'static str,
    /// The object's id.
    pub id: String,
    /// JSON merge patch.
    pub patch: Value,
}

/// A reference found in a vendor object: what it points at.
#[derive(Clone, Debug)]
pub struct Reference {
    /// Where in the object (for messages).
    pub at: String,
    /// The simulator kind it points into (`organizations` for the org itself).
    pub kind: String,
    /// The referenced object's id.
    pub id: String,
}

/// Membership test data.
#[derive(Clone, Debug)]
pub struct MemberData {
    /// The person.
    pub email: String,
    /// Roles first given.
    pub roles: BTreeSet<String>,
    /// Roles they are changed to.
    pub other_roles: BTreeSet<String>,
    /// Vendor scopes (names of objects the copy made), empty where the vendor has none.
    pub scopes: BTreeSet<String>,
}

/// What the vendor holds for a person in one org, read through the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSeen {
    /// Roles, by the vendor's names.
    pub roles: BTreeSet<String>,
    /// Scopes, by name.
    pub scopes: BTreeSet<String>,
}

/// Every object of every simulator kind in one organization, read once.
pub struct Snapshot {
    /// The organization's id.
    pub org: String,
    /// The simulator's base URL.
    pub base_url: String,
    /// Objects by simulator kind.
    pub objects: BTreeMap<&'static str, Vec<Value>>,
}

impl Snapshot {
    /// Reads organization `org`.
    pub fn of(h: &dyn SimulatorHandle, org: &str) -> Self {
        let objects = h
            .kinds()
            .into_iter()
            .map(|k| {
                let objs = h
                    .objects(k, org)
                    .unwrap_or_else(|e| panic!("the simulator lists its own kind {k}: {e}"));
                (k, objs)
            })
            .collect();
        Self {
            org: org.to_string(),
            base_url: h.base_url().to_string(),
            objects,
        }
    }

    /// Objects of `kind` (none for a kind the simulator does not have).
    pub fn get(&self, kind: &str) -> &[Value] {
        self.objects.get(kind).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// One vendor in the suite: how to start its simulator and how to read its objects.
#[async_trait::async_trait]
pub trait Row: Default + Send + Sync + 'static {
    /// Starts the simulator with `faults` (a [`FaultSpec`] string) and clients of it.
    async fn start(&self, faults: &str) -> Started;

    /// `namespace/name` of the Secret the clients' credentials come from.
    fn secret(&self) -> &'static str;

    /// The credential value of the wrong client, which no message may echo.
    fn wrong_credential(&self) -> &'static str;

    /// The template organization's id.
    fn template_org(&self, h: &dyn SimulatorHandle) -> String;

    /// A new organization for `key` (distinct keys give distinct orgs): created where the
    /// vendor creates orgs, else one the simulator holds, to adopt.
    fn new_org(&self, h: &dyn SimulatorHandle, key: &str) -> DesiredOrg;

    /// The simulator kinds the copy is compared on; empty when the vendor copies nothing.
    fn kinds(&self) -> &'static [&'static str];

    /// Objects the vendor itself puts into every organization (not copies, and never copied),
    /// left out of the comparison on both sides.
    fn made_by_vendor(&self, snap: &Snapshot, kind: &str, object: &Value) -> bool;

    /// The object as a comparable view: ids dropped, references replaced by the referenced
    /// object's natural key within `snap`'s organization (anything outside it visibly so).
    fn view(&self, snap: &Snapshot, kind: &str, object: &Value) -> Value;

    /// Every reference the object holds.
    fn references(&self, snap: &Snapshot, kind: &str, object: &Value) -> Vec<Reference>;

    /// The id of an object, as [`Reference::id`] spells it.
    fn id_of(&self, object: &Value) -> String;

    /// Hand edits that make a copy in `snap`'s organization differ from its template.
    fn drift(&self, snap: &Snapshot) -> Vec<HandEdit>;

    /// Hand edits of the template that its copies must follow.
    fn template_edit(&self, snap: &Snapshot) -> Vec<HandEdit>;

    /// Membership test data, or why the vendor has no memberships (then the suite checks the
    /// vendor says `Unsupported`).
    fn members(&self) -> Result<MemberData, &'static str>;

    /// The Secrets `spec.template.secrets` may name (write-only values of the copies), by
    /// name; every sink the suite makes holds them. None by default.
    fn template_secrets(&self) -> BTreeMap<String, orgops::vendors::Credentials> {
        BTreeMap::new()
    }

    /// The person invited as `email` to `org` accepts (a hand hook of the simulator), for
    /// vendors whose memberships start as invitations ([`MembershipPhase::Invited`]).
    fn accept_invitation(&self, h: &dyn SimulatorHandle, org: &str, email: &str) {
        panic!(
            "{}: {email} was invited to {org}, but the row cannot accept invitations",
            h.vendor()
        );
    }

    /// What the vendor holds for `email` in `org` (`None`: no access), read through the
    /// simulator.
    fn member_at_vendor(
        &self,
        h: &dyn SimulatorHandle,
        org: &str,
        email: &str,
    ) -> Option<MemberSeen>;
}

/// Expands to one `#[tokio::test]` per behaviour for a row, in a module named after the vendor:
/// `behaviour_suite!(rossum, RossumRow);`.
macro_rules! behaviour_suite {
    ($vendor:ident, $row:ty) => {
        mod $vendor {
            // The row type is named where the macro is invoked.
            use super::*;
            behaviour_suite!(@tests $row;
                create_or_adopt,
                copy_equals_template,
                references_stay_inside,
                reapply_writes_nothing,
                drift_repaired,
                template_change_propagated,
                lost_responses_never_duplicate,
                mixed_faults_converge,
                kill_mid_copy,
                suspend_writes_nothing,
                bad_credentials_name_the_secret,
                member_added,
                member_role_changed,
                member_removed,
            );
        }
    };
    (@tests $row:ty; $($behaviour:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                $crate::behaviour::$behaviour::<$row>().await;
            }
        )+
    };
}

/// A started vendor, with the helpers every behaviour uses.
pub struct Env<R: Row> {
    /// The row.
    pub row: R,
    /// The simulator.
    pub h: Box<dyn SimulatorHandle>,
    /// A client with good credentials.
    pub client: Arc<dyn VendorClient>,
    /// A client with rejected credentials.
    pub wrong_client: Arc<dyn VendorClient>,
    /// The template org's id.
    pub template: String,
}

/// Faults that lose many responses after the vendor acted on the request.
const LOSSY: &str = "drop=0.3,seed=3";
/// ~20 % of requests fail, split evenly across the five kinds of fault (as `0.2` would), with
/// a short `slow` so the test stays fast.
const MIXED: &str = "5xx=0.04,429=0.04,reset=0.04,slow=0.04,drop=0.04,slow_ms=30,seed=5";

impl<R: Row> Env<R> {
    /// Starts the row's simulator with `faults`.
    pub async fn start(faults: &str) -> Self {
        let row = R::default();
        let Started {
            handle,
            client,
            wrong_client,
        } = row.start(faults).await;
        let template = row.template_org(handle.as_ref());
        Self {
            row,
            h: handle,
            client,
            wrong_client,
            template,
        }
    }

    /// A sink as a new process would have it: no state, the row's Secrets readable.
    pub fn sink(&self) -> MemorySink {
        let sink = MemorySink::default();
        *sink.secrets.lock().unwrap() = self.row.template_secrets();
        sink
    }

    /// The desired org for `key`.
    pub fn desired(&self, key: &str) -> DesiredOrg {
        self.row.new_org(self.h.as_ref(), key)
    }

    /// One reconcile with the sink's persisted state.
    pub async fn reconcile(&self, d: &DesiredOrg, sink: &MemorySink) -> OrgReport {
        self.reconcile_with(self.client.as_ref(), d, sink).await
    }

    async fn reconcile_with(
        &self,
        client: &dyn VendorClient,
        d: &DesiredOrg,
        sink: &MemorySink,
    ) -> OrgReport {
        reconcile_org(client, d, &sink.state(), sink, &EngineOptions::default()).await
    }

    /// Reconciles, as the controller would, until Ready (at most `max` times); panics with the
    /// last reason otherwise. Only transient failures may come before Ready.
    pub async fn until_ready(&self, d: &DesiredOrg, sink: &MemorySink, max: usize) -> OrgReport {
        let mut last = None;
        for _ in 0..max {
            let r = self.reconcile(d, sink).await;
            if r.ready {
                return r;
            }
            last = Some(r);
        }
        let r = last.expect("max > 0");
        panic!(
            "{}: not Ready after {max} reconciles: {}: {}",
            self.h.vendor(),
            r.ready_reason(),
            r.ready_message()
        );
    }

    /// A Ready org for `key`: its id.
    pub async fn ready_org(&self, key: &str, sink: &MemorySink) -> (DesiredOrg, String) {
        let d = self.desired(key);
        let r = self.until_ready(&d, sink, 1).await;
        let id = r.external_id.expect("a Ready report names the org");
        (d, id)
    }

    /// Kind → sorted comparable views of the objects of `org` (vendor-made objects left out).
    pub fn views(&self, org: &str) -> BTreeMap<&'static str, Vec<String>> {
        let snap = Snapshot::of(self.h.as_ref(), org);
        self.row
            .kinds()
            .iter()
            .map(|kind| {
                let mut views: Vec<String> = snap
                    .get(kind)
                    .iter()
                    .filter(|o| !self.row.made_by_vendor(&snap, kind, o))
                    .map(|o| {
                        serde_json::to_string_pretty(&self.row.view(&snap, kind, o)).expect("JSON")
                    })
                    .collect();
                views.sort();
                (*kind, views)
            })
            .collect()
    }

    /// Kinds whose copies in `org` differ from the template, as multisets of views, with what
    /// only one side has.
    pub fn copy_differences(&self, org: &str) -> Vec<String> {
        let template = self.views(&self.template);
        let copy = self.views(org);
        let mut out = Vec::new();
        for kind in self.row.kinds() {
            let (t, c) = (&template[kind], &copy[kind]);
            if t != c {
                let only_t = multiset_minus(t, c);
                let only_c = multiset_minus(c, t);
                out.push(format!(
                    "{kind}: template has {} objects, the copy {}; only in the template ({}): {}; only in the copy ({}): {}",
                    t.len(),
                    c.len(),
                    only_t.len(),
                    first(&only_t),
                    only_c.len(),
                    first(&only_c)
                ));
            }
        }
        out
    }

    /// Panics unless every compared kind's copies equal the template's objects as multisets.
    pub fn assert_copy_equals_template(&self, org: &str) {
        let diff = self.copy_differences(org);
        assert!(
            diff.is_empty(),
            "{}: the copy in {org} differs from template {}:\n{}",
            self.h.vendor(),
            self.template,
            diff.join("\n")
        );
    }

    /// Panics unless every reference of every compared object in `org` points inside `org`;
    /// returns how many references were checked.
    pub fn assert_references_inside(&self, org: &str) -> usize {
        let snap = Snapshot::of(self.h.as_ref(), org);
        let mut checked = 0;
        let mut outside = Vec::new();
        for kind in self.row.kinds() {
            for object in snap.get(kind) {
                for r in self.row.references(&snap, kind, object) {
                    checked += 1;
                    if !self.inside(&snap, &r) {
                        outside.push(format!(
                            "{kind} {} at {}: {} {}",
                            self.row.id_of(object),
                            r.at,
                            r.kind,
                            r.id
                        ));
                    }
                }
            }
        }
        assert!(
            outside.is_empty(),
            "{}: references leave organization {org}:\n{}",
            self.h.vendor(),
            outside.join("\n")
        );
        checked
    }

    /// Whether `r` points at the snapshot's org or at an object in it.
    pub fn inside(&self, snap: &Snapshot, r: &Reference) -> bool {
        if r.kind == "organizations" {
            r.id == snap.org
        } else {
            snap.get(&r.kind).iter().any(|o| self.row.id_of(o) == r.id)
        }
    }

    /// Applies hand edits through the simulator (not counted as API writes).
    pub fn apply(&self, edits: &[HandEdit]) {
        assert!(!edits.is_empty(), "the row gives at least one hand edit");
        for e in edits {
            self.h
                .patch_object(e.kind, &e.id, &e.patch)
                .unwrap_or_else(|err| panic!("hand edit of {} {}: {err}", e.kind, e.id));
        }
    }

    /// Organizations named like `d` at the vendor.
    pub fn orgs_named(&self, d: &DesiredOrg) -> Vec<String> {
        self.h.org_ids(&d.display_name)
    }

    /// Waits until the simulator has received no request for a while: requests a killed
    /// reconcile already sent land before the next one starts. (A wait, not an assertion.)
    pub async fn settle(&self) {
        let requests = || {
            self.h
                .stats()
                .requests
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        let mut last = requests();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = requests();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Reconciles faults away: the faults are turned off and one more reconcile must be Ready
    /// and write nothing.
    pub async fn assert_converged(&self, d: &DesiredOrg, sink: &MemorySink, org: &str) {
        self.h.set_faults(FaultSpec::none());
        let before = self.h.total_writes();
        let r = self.reconcile(d, sink).await;
        assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
        assert_eq!(
            self.h.total_writes(),
            before,
            "once converged, a reconcile writes nothing"
        );
        assert_eq!(r.external_id.as_deref(), Some(org));
    }
}

fn multiset_minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut rest: Vec<&String> = b.iter().collect();
    a.iter()
        .filter(|x| match rest.iter().position(|y| y == x) {
            Some(i) => {
                rest.swap_remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

fn first(items: &[String]) -> String {
    match items.first() {
        Some(x) => x.replace('\n', " ").chars().take(600).collect(),
        None => "-".into(),
    }
}

fn condition<'a>(r: &'a OrgReport, type_: &str) -> (bool, &'a str) {
    r.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason.as_str()))
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", r.conditions))
}

/// For a vendor that copies nothing, the suite checks that it says so: it declares no kinds,
/// and asking for one is `Unsupported`.
async fn assert_copy_unsupported<R: Row>(env: &Env<R>) {
    assert!(
        env.client.capabilities().kinds.is_empty(),
        "{}: the row compares no kinds, but the vendor declares some",
        env.h.vendor()
    );
    let mut d = env.desired("no-copy");
    let t = d
        .template
        .get_or_insert_with(|| orgops::engine::TemplateSpec {
            selector: orgops::engine::TemplateSelector::Id(env.template.clone()),
            include: None,
            secrets: Default::default(),
            prune: false,
        });
    t.include = Some(vec!["anything".into()]);
    let r = env.reconcile(&d, &env.sink()).await;
    assert_eq!(r.ready_reason(), "Unsupported", "{}", r.ready_message());
}

// ---------------------------------------------------------------------------------------------
// The behaviours.

/// The org is created (or, where the vendor cannot create orgs, adopted) once: a second
/// reconcile, and a fresh process without state, find the same org.
pub async fn create_or_adopt<R: Row>() {
    let env = Env::<R>::start("").await;
    let d = env.desired("alpha");
    let sink = env.sink();
    let writes = env.h.total_writes();
    let r = env.until_ready(&d, &sink, 1).await;
    let id = r.external_id.clone().unwrap();
    assert!(env.h.total_writes() > writes, "the first reconcile writes");
    if env.client.capabilities().create_org {
        assert!(r.org_created);
        assert_eq!(condition(&r, types::CREATED), (true, "Created"));
        assert_eq!(env.orgs_named(&d), vec![id.clone()]);
    } else {
        assert!(!r.org_created);
        assert_eq!(condition(&r, types::CREATED), (true, "Adopted"));
        // An org that would have to be created: the vendor says it cannot.
        let mut missing = d.clone();
        missing.external_id = None;
        missing.display_name = "No such organization anywhere".into();
        let r = env.reconcile(&missing, &env.sink()).await;
        assert_eq!(r.ready_reason(), "Unsupported", "{}", r.ready_message());
    }
    assert_eq!(sink.state().external_id.as_deref(), Some(id.as_str()));
    assert_eq!(sink.state().pending_create, None);
    for (what, sink) in [("again", &sink), ("fresh process", &env.sink())] {
        let again = env.reconcile(&d, sink).await;
        assert!(again.ready, "{what}: {}", again.ready_message());
        assert!(!again.org_created, "{what}: created a second org");
        assert_eq!(again.external_id.as_deref(), Some(id.as_str()), "{what}");
    }
    if env.client.capabilities().create_org {
        assert_eq!(env.orgs_named(&d), vec![id], "one org at the vendor");
    }
}

/// Every compared kind: the new org's objects equal the template's, as multisets of views.
pub async fn copy_equals_template<R: Row>() {
    let env = Env::<R>::start("").await;
    if env.row.kinds().is_empty() {
        return assert_copy_unsupported(&env).await;
    }
    // The comparison can fail: the template has something of every compared kind, and a new
    // org has none of it before the copy.
    let template = env.views(&env.template);
    for kind in env.row.kinds() {
        assert!(
            !template[kind].is_empty(),
            "the template has no {kind}: nothing to compare"
        );
    }
    let sink = env.sink();
    let (_, org) = env.ready_org("copy", &sink).await;
    env.assert_copy_equals_template(&org);
}

/// Every reference inside the new org's copies points inside the new org.
pub async fn references_stay_inside<R: Row>() {
    let env = Env::<R>::start("").await;
    if env.row.kinds().is_empty() {
        return assert_copy_unsupported(&env).await;
    }
    let sink = env.sink();
    let (_, org) = env.ready_org("refs", &sink).await;
    let checked = env.assert_references_inside(&org);
    assert!(checked > 0, "the copies hold no reference: nothing checked");
    // The check can fail: every reference of the template's objects is outside the new org.
    let template = Snapshot::of(env.h.as_ref(), &env.template);
    let copy = Snapshot::of(env.h.as_ref(), &org);
    let template_refs: Vec<Reference> = env
        .row
        .kinds()
        .iter()
        .flat_map(|k| {
            template
                .get(k)
                .iter()
                .flat_map(|o| env.row.references(&template, k, o))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!template_refs.is_empty());
    for r in &template_refs {
        assert!(
            !env.inside(&copy, r),
            "template reference at {} ({} {}) counts as inside the copy",
            r.at,
            r.kind,
            r.id
        );
    }
}

/// A second reconcile of a Ready org writes nothing, nor does one from a fresh process.
pub async fn reapply_writes_nothing<R: Row>() {
    let env = Env::<R>::start("").await;
    let sink = env.sink();
    let before = env.h.total_writes();
    let (d, org) = env.ready_org("again", &sink).await;
    assert!(env.h.total_writes() > before, "the first apply writes");
    for (what, sink) in [("again", &sink), ("fresh process", &env.sink())] {
        let writes = env.h.total_writes();
        let r = env.reconcile(&d, sink).await;
        assert!(r.ready, "{what}: {}", r.ready_message());
        assert!(!r.org_created && !r.settings_updated, "{what}");
        if let Some(c) = &r.copy {
            assert_eq!((c.created, c.updated), (0, 0), "{what}");
        }
        assert_eq!(env.h.total_writes(), writes, "{what}: a re-apply wrote");
        assert_eq!(r.external_id.as_deref(), Some(org.as_str()));
    }
}

/// Copies edited by hand at the vendor are put back.
pub async fn drift_repaired<R: Row>() {
    let env = Env::<R>::start("").await;
    if env.row.kinds().is_empty() {
        return assert_copy_unsupported(&env).await;
    }
    let sink = env.sink();
    let (d, org) = env.ready_org("drift", &sink).await;
    let edits = env.row.drift(&Snapshot::of(env.h.as_ref(), &org));
    env.apply(&edits);
    assert!(
        !env.copy_differences(&org).is_empty(),
        "the hand edit is visible to the comparison"
    );
    let writes = env.h.total_writes();
    let r = env.reconcile(&d, &sink).await;
    assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
    assert!(r.copy.as_ref().unwrap().updated >= 1);
    assert!(env.h.total_writes() > writes);
    env.assert_copy_equals_template(&org);
}

/// A change to a template object reaches its copy.
pub async fn template_change_propagated<R: Row>() {
    let env = Env::<R>::start("").await;
    if env.row.kinds().is_empty() {
        return assert_copy_unsupported(&env).await;
    }
    let sink = env.sink();
    let (d, org) = env.ready_org("follow", &sink).await;
    let edits = env
        .row
        .template_edit(&Snapshot::of(env.h.as_ref(), &env.template));
    env.apply(&edits);
    assert!(
        !env.copy_differences(&org).is_empty(),
        "the template edit is visible to the comparison"
    );
    let r = env.reconcile(&d, &sink).await;
    assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
    assert!(r.copy.as_ref().unwrap().updated >= 1);
    env.assert_copy_equals_template(&org);
}

/// Many responses are lost after the vendor acted: reconciling until Ready makes nothing twice.
pub async fn lost_responses_never_duplicate<R: Row>() {
    faulty::<R>(LOSSY, "lossy", |s| {
        s.dropped_writes.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
}

/// ~20 % of requests fail in every way a vendor fails: the result is the same, without
/// duplicates.
pub async fn mixed_faults_converge<R: Row>() {
    faulty::<R>(MIXED, "mixed", |s| {
        s.faults.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
}

async fn faulty<R: Row>(
    faults: &str,
    key: &str,
    injected: fn(&orgops::simulator::ServeStats) -> u64,
) {
    let env = Env::<R>::start(faults).await;
    let d = env.desired(key);
    let sink = env.sink();
    let r = env.until_ready(&d, &sink, 60).await;
    let org = r.external_id.unwrap();
    assert!(
        injected(env.h.stats()) > 0,
        "no fault was injected: the test proved nothing"
    );
    if env.client.capabilities().create_org {
        assert_eq!(env.orgs_named(&d), vec![org.clone()], "one org");
    }
    env.assert_copy_equals_template(&org);
    env.assert_references_inside(&org);
    env.assert_converged(&d, &sink, &org).await;
}

/// A reconcile killed after some vendor writes (right after the org's create, and halfway
/// through the copy), then run again from the persisted state: complete, no duplicates.
pub async fn kill_mid_copy<R: Row>() {
    // Every request takes 15 ms more, so the 1 ms watch below stops the reconcile at the write
    // it aims for even on a fast machine or a short apply (OpenLattice's is a few writes).
    let env = Env::<R>::start("slow=1,slow_ms=15,seed=1").await;
    let options = EngineOptions {
        concurrency: 2,
        ..EngineOptions::default()
    };
    // How many writes a whole apply takes, measured on another org.
    let before = env.h.total_writes();
    let m = env.desired("measure");
    let ms = env.sink();
    let r = reconcile_org(env.client.as_ref(), &m, &ms.state(), &ms, &options).await;
    assert!(r.ready, "{}", r.ready_message());
    let whole = env.h.total_writes() - before;
    assert!(
        whole >= 4,
        "an apply of {whole} writes cannot be cut in the middle"
    );

    for (key, after) in [("killed-early", 1), ("killed-mid", whole / 2)] {
        let d = env.desired(key);
        let sink = env.sink();
        let start = env.h.total_writes();
        {
            let state = sink.state();
            let run = reconcile_org(env.client.as_ref(), &d, &state, &sink, &options);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    r = &mut run => panic!(
                        "{key}: the reconcile ended before {after} writes ({}: {})",
                        r.ready_reason(), r.ready_message()
                    ),
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {
                        if env.h.total_writes() >= start + after {
                            break;
                        }
                    }
                }
            }
            // Leaving the block drops the reconcile future: killed mid-flight.
        }
        env.settle().await;
        let done = env.h.total_writes() - start;
        assert!(
            done < whole,
            "{key}: killed after {after} writes, it still made all {whole}"
        );
        // Run again with what was persisted before the kill.
        let r = env.until_ready(&d, &sink, 3).await;
        let org = r.external_id.unwrap();
        if env.client.capabilities().create_org {
            assert_eq!(env.orgs_named(&d), vec![org.clone()], "{key}: one org");
        }
        env.assert_copy_equals_template(&org);
        env.assert_references_inside(&org);
    }
}

/// Suspended: nothing is created, and drift is reported, not repaired.
pub async fn suspend_writes_nothing<R: Row>() {
    let env = Env::<R>::start("").await;
    if env.client.capabilities().create_org {
        let mut d = env.desired("never");
        d.mode = Mode::ObserveOnly;
        let writes = env.h.total_writes();
        let r = env.reconcile(&d, &env.sink()).await;
        assert!(!r.ready);
        assert_eq!(r.ready_reason(), "Suspended", "{}", r.ready_message());
        assert_eq!(env.h.total_writes(), writes, "suspend created something");
        assert!(env.orgs_named(&d).is_empty());
    }
    let sink = env.sink();
    let (mut d, org) = env.ready_org("suspended", &sink).await;
    let copies = !env.row.kinds().is_empty();
    if copies {
        env.apply(&env.row.drift(&Snapshot::of(env.h.as_ref(), &org)));
    }
    d.mode = Mode::ObserveOnly;
    d.display_name = format!("{} renamed while suspended", d.display_name);
    let writes = env.h.total_writes();
    let r = env.reconcile(&d, &sink).await;
    assert_eq!(env.h.total_writes(), writes, "suspend must not write");
    assert!(!r.ready);
    assert_eq!(r.ready_reason(), "DriftDetected", "{}", r.ready_message());
    assert_eq!(
        condition(&r, types::SETTINGS_SYNCED),
        (false, "DriftDetected")
    );
    if copies {
        assert_eq!(
            condition(&r, types::TEMPLATE_COPIED),
            (false, "DriftDetected")
        );
        assert!(r.copy.as_ref().unwrap().drifted >= 1);
        assert!(
            !env.copy_differences(&org).is_empty(),
            "the drift is still there"
        );
    }
}

/// Rejected credentials: a condition naming the Secret (never the credential), no writes.
pub async fn bad_credentials_name_the_secret<R: Row>() {
    let env = Env::<R>::start("").await;
    let d = env.desired("locked-out");
    let writes = env.h.total_writes();
    let r = env
        .reconcile_with(env.wrong_client.as_ref(), &d, &env.sink())
        .await;
    assert!(!r.ready);
    assert_eq!(
        r.ready_reason(),
        "CredentialsInvalid",
        "{}",
        r.ready_message()
    );
    assert_eq!(
        condition(&r, types::CREDENTIALS_VALID),
        (false, "CredentialsInvalid")
    );
    let secret = env.row.secret();
    let wrong = env.row.wrong_credential();
    for c in &r.conditions {
        assert!(
            !c.message.contains(wrong),
            "{}: echoes the credential",
            c.type_
        );
    }
    assert!(r.ready_message().contains(secret), "{}", r.ready_message());
    if env.row.members().is_ok() {
        let m = member(&env.row, &env.template, false);
        let r = reconcile_member(env.wrong_client.as_ref(), &m, Mode::Apply).await;
        assert_eq!(
            r.ready_reason(),
            "CredentialsInvalid",
            "{}",
            r.ready_message()
        );
        assert!(r.ready_message().contains(secret));
        assert!(!r.ready_message().contains(wrong));
    }
    assert_eq!(env.h.total_writes(), writes, "rejected credentials wrote");
}

fn member<R: Row>(row: &R, org: &str, other_roles: bool) -> MemberDesired {
    let m = row.members().expect("the row has memberships");
    MemberDesired {
        org: org.to_string(),
        email: m.email.clone(),
        first_name: Some("George".into()),
        last_name: Some("Member".into()),
        roles: if other_roles { m.other_roles } else { m.roles },
        scopes: Some(m.scopes),
    }
}

/// For a vendor without memberships, the suite checks that it says so.
async fn assert_members_unsupported<R: Row>(env: &Env<R>, why: &str) {
    assert!(
        env.client.members().is_none(),
        "{}: the row says no memberships ({why}), but the client has them",
        env.h.vendor()
    );
    let writes = env.h.total_writes();
    let m = MemberDesired {
        org: env.template.clone(),
        email: "nobody@example.com".into(),
        first_name: None,
        last_name: None,
        roles: ["member".to_string()].into(),
        scopes: Some(BTreeSet::new()),
    };
    let r = reconcile_member(env.client.as_ref(), &m, Mode::Apply).await;
    assert_eq!(r.ready_reason(), "Unsupported", "{}", r.ready_message());
    assert_eq!(env.h.total_writes(), writes);
}

/// A Ready org and the membership test data, or `None` after checking the vendor says
/// memberships are unsupported.
async fn member_env<R: Row>() -> Option<(Env<R>, String)> {
    let env = Env::<R>::start("").await;
    if let Err(why) = env.row.members() {
        assert_members_unsupported(&env, why).await;
        return None;
    }
    let (_, org) = env.ready_org("members", &env.sink()).await;
    Some((env, org))
}

async fn add<R: Row>(env: &Env<R>, org: &str) -> MemberDesired {
    let m = member(&env.row, org, false);
    assert_eq!(
        env.row.member_at_vendor(env.h.as_ref(), org, &m.email),
        None,
        "the person has no access before"
    );
    let mut r = reconcile_member(env.client.as_ref(), &m, Mode::Apply).await;
    assert!(r.changed, "{}: {}", r.ready_reason(), r.ready_message());
    if r.phase == MembershipPhase::Invited {
        // A vendor that invites: the person has no access until they accept, and asking
        // again sends nothing new.
        assert!(!r.ready);
        assert!(r.external_id.is_some(), "the invitation is named");
        assert_eq!(
            env.row.member_at_vendor(env.h.as_ref(), org, &m.email),
            None,
            "an invitation is no access"
        );
        let writes = env.h.total_writes();
        let again = reconcile_member(env.client.as_ref(), &m, Mode::Apply).await;
        assert_eq!(
            again.phase,
            MembershipPhase::Invited,
            "{}",
            again.ready_message()
        );
        assert!(!again.changed);
        assert_eq!(env.h.total_writes(), writes, "a second invitation was sent");
        env.row.accept_invitation(env.h.as_ref(), org, &m.email);
        r = reconcile_member(env.client.as_ref(), &m, Mode::Apply).await;
    }
    assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
    assert_eq!(
        env.row.member_at_vendor(env.h.as_ref(), org, &m.email),
        Some(MemberSeen {
            roles: m.roles.clone(),
            scopes: m.scopes_to_give()
        }),
        "at the vendor"
    );
    m
}

/// A person is given access with roles and scopes; again, nothing is written.
pub async fn member_added<R: Row>() {
    let Some((env, org)) = member_env::<R>().await else {
        return;
    };
    let m = add(&env, &org).await;
    let writes = env.h.total_writes();
    let r = reconcile_member(env.client.as_ref(), &m, Mode::Apply).await;
    assert!(r.ready && !r.changed, "{}", r.ready_message());
    assert_eq!(
        env.h.total_writes(),
        writes,
        "re-applying a membership wrote"
    );
}

/// A person's roles change to other roles; their scopes stay.
pub async fn member_role_changed<R: Row>() {
    let Some((env, org)) = member_env::<R>().await else {
        return;
    };
    let first = add(&env, &org).await;
    let m = member(&env.row, &org, true);
    assert_ne!(
        m.roles, first.roles,
        "the row gives two different role sets"
    );
    let r = reconcile_member(env.client.as_ref(), &m, Mode::Apply).await;
    assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
    assert!(r.changed);
    assert_eq!(
        env.row.member_at_vendor(env.h.as_ref(), &org, &m.email),
        Some(MemberSeen {
            roles: m.roles.clone(),
            scopes: m.scopes_to_give()
        })
    );
}

/// A person's access is removed; removing again is a no-op.
pub async fn member_removed<R: Row>() {
    let Some((env, org)) = member_env::<R>().await else {
        return;
    };
    let m = add(&env, &org).await;
    let members = env.client.members().expect("the client has memberships");
    let observed = members.observe_member(&m).await.unwrap();
    assert_eq!(observed.presence, Presence::Active);
    members.remove_member(&org, &observed).await.unwrap();
    assert_eq!(
        env.row.member_at_vendor(env.h.as_ref(), &org, &m.email),
        None,
        "still has access at the vendor"
    );
    let gone = members.observe_member(&m).await.unwrap();
    assert_eq!(gone.presence, Presence::Absent);
    let writes = env.h.total_writes();
    members.remove_member(&org, &gone).await.unwrap();
    assert_eq!(env.h.total_writes(), writes, "removing nothing wrote");
}
