//! The engine's [`Sink`] in the cluster: the create intent goes into an annotation (written
//! before the vendor POST), the external id into status at once, and copy progress into status
//! at most every two seconds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

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
    last_progress: Mutex<Option<Instant>>,
}

impl ResourceSink {
    /// A sink for `name` through `api`.
    pub fn new(api: Api<Organization>, name: &str) -> Self {
        Self {
            api,
            name: name.to_string(),
            last_progress: Mutex::new(None),
        }
    }
}

impl ProgressSink for ResourceSink {
    fn copy_progress(&self, kinds: &BTreeMap<&'static str, KindProgress>) {
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
        // Progress is best effort: the final status is written after the reconcile.
        tokio::spawn(async move {
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(%name, error = %e, "progress status write failed");
            }
        });
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
