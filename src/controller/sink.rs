//! The engine's [`Sink`] in the cluster: the create intent goes into an annotation (written
//! before the vendor POST), the external id into status at once, and copy progress into status
//! at most every two seconds — only while the Organization is not Ready yet (a re-sync of a
//! Ready one keeps showing Ready N/N until its result says otherwise), one write at a time, and
//! never after [`ResourceSink::finish`], so no progress write can land after the final status.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
        }
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
}

/// The create intent recorded on `org`, if any.
pub fn pending_create(org: &Organization) -> Option<PendingCreate> {
    org.metadata
        .annotations
        .as_ref()?
        .get(CREATE_PENDING)
        .and_then(|v| serde_json::from_str(v).ok())
}
