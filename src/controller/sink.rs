//! The engine's [`Sink`] in the cluster: the create intent goes into an annotation (written
//! before the vendor POST), the external id into status at once, and copy progress into status
//! at most every two seconds — only while the Organization is not Ready yet (a re-sync of a
//! Ready one keeps showing Ready N/N until its result says otherwise), one write at a time, and
//! never after [`ResourceSink::finish`], so no progress write can land after the final status.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::watched::Watched;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::api::Organization;
use crate::engine::PendingCreate;
use crate::engine::copy::{KindProgress, ProgressSink};
use crate::engine::org::Sink;

/// Annotation holding an unresolved create intent.
pub const CREATE_PENDING: &str = "orgops.io/create-pending";
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Writes engine state to one Organization.
pub struct ResourceSink {
    api: Api<Organization>,
    name: String,
    report_progress: bool,
    last_progress: Mutex<Option<Instant>>,
    /// The progress write in flight, if any; `None` once finished.
    writer: Mutex<Option<Option<JoinHandle<()>>>>,
    wrote_progress: AtomicBool,
    claims: Option<(Organization, Watched<Organization>)>,
    /// Secrets of the Organization's namespace, for `spec.template.secrets`.
    secrets: Option<Api<Secret>>,
}

impl ResourceSink {
    /// A sink for `name` through `api`; `report_progress: false` (a Ready Organization being
    /// re-synced) writes no intermediate progress.
    pub fn new(api: Api<Organization>, name: &str, report_progress: bool) -> Self {
        Self {
            api,
            name: name.to_string(),
            report_progress,
            last_progress: Mutex::new(None),
            writer: Mutex::new(Some(None)),
            wrote_progress: AtomicBool::new(false),
            claims: None,
            secrets: None,
        }
    }

    /// Reads `spec.template.secrets` through `secrets` (the Organization's namespace).
    pub fn with_secrets(mut self, secrets: Api<Secret>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Answers [`Sink::claim`] for `this` Organization from every Organization the controllers
    /// watch (in every watched namespace); before they start, claims are granted.
    pub fn with_claims(mut self, this: Organization, watched: Watched<Organization>) -> Self {
        self.claims = Some((this, watched));
        self
    }

    /// Stops progress writes and waits for the one in flight; true when any progress was
    /// written (so the final status must be written even if it equals the start snapshot).
    pub async fn finish(&self) -> bool {
        let inflight = match self.writer.lock() {
            Ok(mut w) => w.take().flatten(),
            Err(_) => None,
        };
        if let Some(handle) = inflight {
            let _ = handle.await;
        }
        self.wrote_progress.load(Ordering::SeqCst)
    }
}

impl ProgressSink for ResourceSink {
    fn copy_progress(&self, kinds: &BTreeMap<&'static str, KindProgress>) {
        if !self.report_progress {
            return;
        }
        let due = match self.last_progress.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if !due {
            return;
        }
        let (done, total, failed) = kinds.values().fold((0, 0, 0), |(d, t, f), k| {
            (d + k.done, t + k.total, f + k.failed)
        });
        let per_kind: BTreeMap<&str, serde_json::Value> = kinds
            .iter()
            .map(|(k, p)| {
                (
                    *k,
                    json!({"total": p.total, "done": p.done, "failed": p.failed}),
                )
            })
            .collect();
        let patch = json!({"status": {"phase": "Copying", "progress": format!("{done}/{total}"),
            "copy": {"total": total, "done": done, "failed": failed, "kinds": per_kind}}});
        let (api, name) = (self.api.clone(), self.name.clone());
        let Ok(mut writer) = self.writer.lock() else {
            return;
        };
        // Finished: the final status is being written; nothing may land after it.
        let Some(slot) = writer.as_mut() else {
            return;
        };
        // One write at a time; a newer snapshot comes with the next interval.
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.wrote_progress.store(true, Ordering::SeqCst);
        // Progress is best effort: the final status is written after the reconcile.
        *slot = Some(tokio::spawn(async move {
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(%name, error = %e, "progress status write failed");
            }
        }));
    }
}

#[async_trait::async_trait]
impl Sink for ResourceSink {
    async fn save_pending_create(&self, pending: Option<&PendingCreate>) -> Result<(), String> {
        let value = match pending {
            Some(p) => json!(serde_json::to_string(p).map_err(|e| e.to_string())?),
            None => serde_json::Value::Null,
        };
        let patch = json!({"metadata": {"annotations": {CREATE_PENDING: value}}});
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot record the create intent on the resource: {e}"))
    }

    async fn save_external_id(&self, id: &str) -> Result<(), String> {
        let patch = json!({"status": {"externalId": id}});
        self.api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot record the external id in status: {e}"))
    }

    async fn template_secret(&self, name: &str) -> Result<crate::vendors::Credentials, String> {
        let Some(api) = &self.secrets else {
            return Err(format!("Secret {name}: not readable here"));
        };
        let ns = api.namespace().unwrap_or("default").to_string();
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(crate::api::credentials_from_secret(
                &format!("{ns}/{name}"),
                &secret,
            )),
            Ok(None) => Err(format!(
                "Secret {ns}/{name} (spec.template.secrets) does not exist"
            )),
            Err(e) => Err(format!(
                "Secret {ns}/{name} cannot be read by the operator: {e}"
            )),
        }
    }

    async fn claim(&self, id: &str) -> Result<(), String> {
        let Some((this, watched)) = &self.claims else {
            return Ok(());
        };
        let all = watched.state();
        match claimed_by_other(this, all.iter().map(|o| o.as_ref()), id) {
            Some(other) => Err(format!(
                "organization {id} is already managed by Organization {other}; the vendor cannot mark an organization as managed, so only the oldest Organization naming it manages it"
            )),
            None => Ok(()),
        }
    }
}

/// The Organization that ranks first among those claiming org `id` of `this` one's vendor, if
/// it is not `this`: the oldest not being deleted; among those created in the same second
/// (creation times have one-second resolution), the one that already manages the org (its
/// status holds the id), then by namespace/name.
pub fn claimed_by_other<'a>(
    this: &Organization,
    all: impl IntoIterator<Item = &'a Organization>,
    id: &str,
) -> Option<String> {
    let rank = |o: &Organization| {
        (
            o.metadata.creation_timestamp.clone().map(|t| t.0),
            o.status.as_ref().and_then(|s| s.external_id.as_deref()) != Some(id),
            o.namespace().unwrap_or_default(),
            o.name_any(),
        )
    };
    let claims = |o: &Organization| {
        o.spec.external_id.as_deref() == Some(id)
            || o.status.as_ref().and_then(|s| s.external_id.as_deref()) == Some(id)
    };
    let mine = rank(this);
    all.into_iter()
        .filter(|o| o.uid() != this.uid() && o.metadata.deletion_timestamp.is_none())
        .filter(|o| o.spec.vendor == this.spec.vendor && claims(o))
        .filter(|o| rank(o) < mine)
        .min_by_key(|o| rank(o))
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
}

/// The create intent recorded on `org`, if any.
pub fn pending_create(org: &Organization) -> Option<PendingCreate> {
    org.metadata
        .annotations
        .as_ref()?
        .get(CREATE_PENDING)
        .and_then(|v| serde_json::from_str(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn org(name: &str, age_s: i64, spec_id: Option<&str>, status_id: Option<&str>) -> Organization {
        let mut o: Organization = serde_json::from_value(json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": name, "namespace": "t", "uid": format!("uid-{name}")},
            "spec": {"vendor": "dataloop", "displayName": name,
                     "connectionRef": {"name": "c"}},
        }))
        .unwrap();
        o.metadata.creation_timestamp = Some(Time(
            jiff::Timestamp::from_second(1_000_000 - age_s).unwrap(),
        ));
        o.spec.external_id = spec_id.map(str::to_string);
        if let Some(id) = status_id {
            o.status = Some(crate::api::OrganizationStatus {
                external_id: Some(id.into()),
                ..Default::default()
            });
        }
        o
    }

    #[test]
    fn the_oldest_resource_naming_an_org_manages_it() {
        let old = org("old", 100, Some("X"), None);
        let young = org("young", 10, None, Some("X"));
        let unrelated = org("other", 500, Some("Y"), None);
        let all = [old.clone(), young.clone(), unrelated];
        assert_eq!(claimed_by_other(&young, &all, "X"), Some("t/old".into()));
        assert_eq!(claimed_by_other(&old, &all, "X"), None);
        // A resource being deleted no longer claims; nor does one of another vendor.
        let mut leaving = old.clone();
        leaving.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert_eq!(claimed_by_other(&young, [&leaving], "X"), None);
        let mut other_vendor = old;
        other_vendor.spec.vendor = crate::api::Vendor::Rossum;
        assert_eq!(claimed_by_other(&young, [&other_vendor], "X"), None);
    }

    #[test]
    fn in_the_same_second_the_one_that_already_manages_the_org_keeps_it() {
        // "b" adopted X; "a" (first by name) arrives within the same second.
        let holder = org("b", 100, None, Some("X"));
        let newcomer = org("a", 100, None, None);
        let all = [holder.clone(), newcomer.clone()];
        assert_eq!(claimed_by_other(&newcomer, &all, "X"), Some("t/b".into()));
        assert_eq!(claimed_by_other(&holder, &all, "X"), None);
    }
}
