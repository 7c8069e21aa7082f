//! Deterministic lost-response cases: the vendor carries out a create, but the answer never
//! arrives. The engine must find what was made instead of making it again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use orgops::engine::{EngineOptions, reconcile_org};
use orgops::vendors::http::HttpError;
use orgops::vendors::{
    Capabilities, KindSpec, OrgDesired, OrgInfo, RefCodec, RefTarget, VendorClient, VendorError,
};
use reqwest::Method;
use serde_json::Value;
use support::*;

/// Forwards to a real client; the first `lose_orgs` org creates and the first `lose_objects`
/// object creates succeed at the vendor but report a lost response.
struct LosingVendor {
    inner: Arc<dyn VendorClient>,
    lose_orgs: AtomicU32,
    lose_objects: AtomicU32,
}

fn lost(path: &str) -> VendorError {
    VendorError::Http(HttpError::OutcomeUnknown {
        method: Method::POST,
        path: path.into(),
        cause: "connection closed before the response (test)".into(),
    })
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl RefCodec for LosingVendor {
    fn decode_ref(&self, value: &Value) -> Option<String> {
        self.inner.decode_ref(value)
    }
    fn encode_ref(&self, target: RefTarget, id: &str) -> Value {
        self.inner.encode_ref(target, id)
    }
}

#[async_trait::async_trait]
impl VendorClient for LosingVendor {
    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
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
        let created = self.inner.create_org(desired).await?;
        if take(&self.lose_orgs) {
            return Err(lost("/organizations/create"));
        }
        Ok(created)
    }
    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
        self.inner.org_patch(desired, observed)
    }
    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError> {
        self.inner.patch_org(id, patch).await
    }
    async fn delete_org(&self, id: &str) -> Result<(), VendorError> {
        self.inner.delete_org(id).await
    }
    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        self.inner.list_objects(org, kind).await
    }
    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError> {
        let created = self.inner.create_object(org, kind, body).await?;
        if take(&self.lose_objects) {
            return Err(lost(kind.name));
        }
        Ok(created)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_response_is_resolved_by_observing_not_by_creating_again() {
    let sim = simulator("").await;
    let endpoints = orgops::vendors::Endpoints::default();
    let vendor = LosingVendor {
        inner: client(&sim, &endpoints),
        lose_orgs: AtomicU32::new(1),
        // Every object create of the first pass "loses" its response.
        lose_objects: AtomicU32::new(10_000),
    };
    let sink = MemorySink::default();
    let d = desired("lossy", "Lossy department");
    let report = reconcile_org(&vendor, &d, &sink.state(), &sink, &EngineOptions::default()).await;
    assert!(
        report.ready,
        "{}: {}",
        report.ready_reason(),
        report.ready_message()
    );
    assert_eq!(
        sink.state().pending_create,
        None,
        "the pending create is resolved"
    );

    let orgs = sim.org_ids("Lossy department").len();
    assert_eq!(orgs, 1);
    let target: u64 = report.external_id.unwrap().parse().unwrap();
    let template = sim.org_id("Template org").unwrap();
    for kind in ALL_KINDS {
        let copies = sim.objects(kind, target);
        let n = if MARKER_KINDS.contains(kind) {
            copies
                .iter()
                .filter(|c| c.pointer("/metadata/orgops").is_some())
                .count()
        } else {
            copies.len()
        };
        assert_eq!(n, sim.objects(kind, template).len(), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmarked_org_with_the_same_name_is_not_adopted_without_a_pending_create() {
    let sim = simulator("").await;
    let endpoints = orgops::vendors::Endpoints::default();
    let c = client(&sim, &endpoints);
    // Someone made an org with the same name by hand, before orgops ever ran.
    sim.with_db(|db| {
        db.create_org(1, "Twin department", serde_json::json!({}), None)
            .unwrap()
    });
    let sink = MemorySink::default();
    let report = reconcile(c.as_ref(), &desired("twin", "Twin department"), &sink).await;
    assert!(report.ready && report.org_created);
    let orgs = sim.org_ids("Twin department").len();
    assert_eq!(
        orgs, 2,
        "names are not identity at Rossum: orgops made its own org"
    );
}
