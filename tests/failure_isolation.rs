//! Failures stay where they happen: a settings error does not hold back the copy, a kind that
//! cannot be listed does not hold back the other kinds, and a copy blocked for good is retried
//! at the next sync instead of with backoff.

mod support;

use std::sync::Arc;

use orgops::engine::report::Requeue;
use orgops::engine::{EngineOptions, reconcile_org};
use orgops::vendors::http::HttpError;
use orgops::vendors::{
    Capabilities, Credentials, KindSpec, OrgDesired, OrgInfo, RefCodec, RefTarget, VendorClient,
    VendorError,
};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use support::*;

/// Forwards to a real client, except: listing `broken_kind` in the template fails with
/// `list_error`, (when `settings_fail`) every org patch is refused, and (when `inputs`)
/// connectors take their `authorization_token` from a Secret, as Dataloop integrations do.
struct PartlyBroken {
    inner: Arc<dyn VendorClient>,
    template: String,
    broken_kind: &'static str,
    list_error: fn() -> VendorError,
    settings_fail: bool,
    inputs: bool,
}

/// Rossum's kinds, with connectors declared as taking write-only values by name.
fn kinds_with_inputs() -> &'static [KindSpec] {
    let kinds: Vec<KindSpec> = orgops::vendors::rossum::kinds::ALL
        .iter()
        .map(|k| {
            let mut k = *k;
            if k.name == "connectors" {
                k.input = Some(|o| o["name"].as_str().map(str::to_string));
            }
            k
        })
        .collect();
    Box::leak(kinds.into_boxed_slice())
}

impl RefCodec for PartlyBroken {
    fn decode_ref(&self, value: &Value) -> Option<String> {
        self.inner.decode_ref(value)
    }
    fn encode_ref(&self, target: RefTarget, id: &str) -> Value {
        self.inner.encode_ref(target, id)
    }
}

#[async_trait::async_trait]
impl VendorClient for PartlyBroken {
    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }
    fn capabilities(&self) -> Capabilities {
        let mut caps = self.inner.capabilities();
        if self.inputs {
            caps.kinds = kinds_with_inputs();
        }
        caps
    }
    async fn verify_credentials(&self) -> Result<(), VendorError> {
        self.inner.verify_credentials().await
    }
    async fn get_org(&self, id: &str) -> Result<Option<OrgInfo>, VendorError> {
        self.inner.get_org(id).await
    }
    async fn find_orgs(&self, name: Option<&str>) -> Result<Vec<OrgInfo>, VendorError> {
        self.inner.find_orgs(name).await
    }
    async fn create_org(&self, desired: &OrgDesired) -> Result<OrgInfo, VendorError> {
        self.inner.create_org(desired).await
    }
    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
        if self.settings_fail {
            return Some(json!({"settings": {"plan": "premium"}}));
        }
        self.inner.org_patch(desired, observed)
    }
    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError> {
        if self.settings_fail {
            return Err(VendorError::Forbidden(
                "changing the plan needs a superuser".into(),
            ));
        }
        self.inner.patch_org(id, patch).await
    }
    async fn delete_org(&self, id: &str) -> Result<(), VendorError> {
        self.inner.delete_org(id).await
    }
    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        if org == self.template && kind.name == self.broken_kind {
            return Err((self.list_error)());
        }
        self.inner.list_objects(org, kind).await
    }
    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError> {
        self.inner.create_object(org, kind, body).await
    }
    async fn create_object_with_input(
        &self,
        org: &str,
        kind: &KindSpec,
        mut body: Value,
        input: &Credentials,
    ) -> Result<Value, VendorError> {
        let token = input.require("token")?.expose_secret().to_string();
        body["authorization_token"] = json!(token);
        self.inner.create_object(org, kind, body).await
    }
    async fn update_object(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: Value,
    ) -> Result<Value, VendorError> {
        self.inner.update_object(org, kind, id, patch).await
    }
}

fn rejected() -> VendorError {
    VendorError::Rejected("hooks cannot be read with these credentials' plan".into())
}

fn unavailable() -> VendorError {
    VendorError::Http(HttpError::Transport {
        method: Method::GET,
        path: "/api/v1/hooks".into(),
        cause: "connection reset (test)".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_error_and_an_unlistable_kind_leave_the_rest_of_the_copy_done() {
    let sim = simulator("").await;
    let endpoints = orgops::vendors::Endpoints::default();
    let template = sim.org_id("Template org").unwrap();
    let vendor = PartlyBroken {
        inner: client(&sim, &endpoints),
        template: template.to_string(),
        broken_kind: "hooks",
        list_error: rejected,
        settings_fail: true,
        inputs: false,
    };
    let sink = MemorySink::default();
    let d = desired("isolated", "Isolated department");
    let report = reconcile_org(&vendor, &d, &sink.state(), &sink, &EngineOptions::default()).await;
    assert!(!report.ready);
    assert_eq!(
        report.ready_reason(),
        "PermissionDenied",
        "{}",
        report.ready_message()
    );
    assert!(report.ready_message().contains("superuser"));
    let copy = report
        .copy
        .as_ref()
        .expect("the copy ran despite the settings error");
    let target: u64 = report.external_id.clone().unwrap().parse().unwrap();
    for kind in ALL_KINDS.iter().filter(|k| **k != "hooks") {
        let progress = copy.kinds[kind];
        assert_eq!(progress.done, progress.total, "{kind}: {progress:?}");
        assert_eq!(
            copies(&sim, kind, target),
            sim.objects(kind, template).len(),
            "{kind}"
        );
    }
    assert_eq!(copy.kinds["hooks"].failed, 1);
    assert!(
        copy.failures
            .iter()
            .any(|f| f.contains("hooks: cannot list them in the template")),
        "{:?}",
        copy.failures
    );
    assert!(!copy.transient);
    // Permanent: nothing to retry until something changes.
    assert_eq!(report.requeue, Requeue::OnChange);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_copies_wait_for_the_next_sync_and_outages_back_off() {
    let sim = simulator("").await;
    let endpoints = orgops::vendors::Endpoints::default();
    let template = sim.org_id("Template org").unwrap();
    let run = |list_error: fn() -> VendorError| PartlyBroken {
        inner: client(&sim, &endpoints),
        template: template.to_string(),
        broken_kind: "hooks",
        list_error,
        settings_fail: false,
        inputs: false,
    };
    let sink = MemorySink::default();
    let d = desired("blocked", "Blocked department");
    let options = EngineOptions::default();
    let blocked = reconcile_org(&run(rejected), &d, &sink.state(), &sink, &options).await;
    assert!(!blocked.ready);
    assert_eq!(
        blocked.ready_reason(),
        "CopyIncomplete",
        "{}",
        blocked.ready_message()
    );
    assert!(
        matches!(blocked.requeue, Requeue::After(_)),
        "{:?}",
        blocked.requeue
    );

    let outage = reconcile_org(&run(unavailable), &d, &sink.state(), &sink, &options).await;
    assert_eq!(outage.ready_reason(), "CopyIncomplete");
    assert!(outage.copy.as_ref().unwrap().transient);
    assert_eq!(outage.requeue, Requeue::Backoff);
    // Nothing was copied twice by the second reconcile.
    let target: u64 = outage.external_id.clone().unwrap().parse().unwrap();
    assert_eq!(
        copies(&sim, "queues", target),
        sim.objects("queues", template).len()
    );
}

/// Objects of `kind` in `org` that are copies (marker kinds: those carrying a marker; the
/// vendor makes a default workspace of its own).
fn copies(sim: &orgops::simulator::rossum::RossumSimulator, kind: &str, org: u64) -> usize {
    sim.objects(kind, org)
        .iter()
        .filter(|c| !MARKER_KINDS.contains(&kind) || c.pointer("/metadata/orgops").is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_only_values_come_from_the_named_secret_and_objects_without_one_wait_by_name() {
    let sim = simulator("").await;
    let endpoints = orgops::vendors::Endpoints::default();
    let template = sim.org_id("Template org").unwrap();
    let connectors = sim.objects("connectors", template);
    assert!(connectors.len() >= 2, "the fixture has several connectors");
    let named = connectors[0]["name"].as_str().unwrap().to_string();
    let vendor = PartlyBroken {
        inner: client(&sim, &endpoints),
        template: template.to_string(),
        broken_kind: "none",
        list_error: rejected,
        settings_fail: false,
        inputs: true,
    };
    let sink = MemorySink::default();
    sink.secrets.lock().unwrap().insert(
        "connector-token".into(),
        Credentials::new(
            "t/connector-token",
            [(
                "token".to_string(),
                "s3cr3t-from-the-secret".to_string().into(),
            )]
            .into(),
        ),
    );
    let mut d = desired("inputs", "Inputs department");
    d.template
        .as_mut()
        .unwrap()
        .secrets
        .insert(format!("connectors/{named}"), "connector-token".into());
    let report = reconcile_org(&vendor, &d, &sink.state(), &sink, &EngineOptions::default()).await;
    let copy = report.copy.as_ref().unwrap();
    let target: u64 = report.external_id.clone().unwrap().parse().unwrap();
    // The named connector was made with the Secret's value; the others wait, by name.
    let made = sim.objects("connectors", target);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["name"], json!(named));
    let stored = sim.with_db(|db| {
        db.find("connectors", |r| {
            r.value["name"] == json!(named) && r.org == target
        })
        .map(|r| r.value["authorization_token"].clone())
    });
    assert_eq!(stored, Some(json!("s3cr3t-from-the-secret")));
    assert_eq!(
        copy.kinds["connectors"].failed as usize,
        connectors.len() - 1
    );
    assert!(
        copy.failures
            .iter()
            .any(|f| f.contains("waiting for credentials") && f.contains("spec.template.secrets")),
        "{:?}",
        copy.failures
    );
    assert!(!report.ready_message().contains("s3cr3t"));
    // Everything that does not depend on a waiting connector copied.
    assert_eq!(copy.kinds["schemas"].done, copy.kinds["schemas"].total);
    assert!(
        matches!(report.requeue, Requeue::After(_)),
        "{:?}",
        report.requeue
    );
}
