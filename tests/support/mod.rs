//! Shared helpers for the integration tests: a Rossum simulator on loopback, a client for it,
//! and an in-memory engine sink that plays the role the CR status plays in the controller.
#![allow(dead_code)]

pub mod chaos;
pub mod cluster;
pub mod e2e;
pub mod operator;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orgops::api::Vendor;
use orgops::engine::copy::{KindProgress, ProgressSink};
use orgops::engine::org::Sink;
use orgops::engine::{
    DesiredOrg, EngineOptions, Mode, OrgReport, OrgState, PendingCreate, TemplateSelector,
    TemplateSpec, reconcile_org,
};
use orgops::simulator::rossum::{Admin, RossumSimulator, Seed, TEMPLATE_ORG};
use orgops::simulator::{FaultSpec, ServeOptions};
use orgops::vendors::{Credentials, Endpoints, HttpConfig, Owner, VendorClient, connect};
use secrecy::SecretString;
use serde_json::Value;

pub const ADMIN: &str = "group-admin@acme.example";
pub const PASSWORD: &str = "s3cr3t-admin-password-xyz";
pub const CREATE_KEY: &str = "create-key-0f9e8d7c";

/// A small template org ("Small template": a label, a workspace, a schema, two queues with
/// inboxes, a hook: 18 objects to copy with the queues' default e-mail templates).
pub const SMALL_TEMPLATE: &str = r#"{
 "organization_group": {"name": "Bench"},
 "organizations": [{"name": "Small template",
  "labels": [{"key": "l", "name": "Urgent", "color": "red"}],
  "workspaces": [{"key": "w", "name": "Inbound"}],
  "schemas": [{"key": "s", "name": "Invoice", "content": [{"category": "section", "id": "basic", "label": "Basic", "children": [{"category": "datapoint", "id": "document_id", "label": "Invoice number", "type": "string"}]}]}],
  "queues": [
   {"key": "q1", "name": "Invoices", "workspace": "w", "schema": "s", "inbox": {"name": "Invoices inbox", "email_prefix": "bench-invoices"}},
   {"key": "q2", "name": "Credit notes", "workspace": "w", "schema": "s", "inbox": {"name": "Credit inbox", "email_prefix": "bench-credit"}}
  ],
  "hooks": [{"key": "h", "name": "Export", "type": "webhook", "queues": ["q1", "q2"], "events": ["annotation_content.export"], "config": {"url": "https://example.com/x"}}]
 }]
}"#;

pub fn admin() -> Admin {
    Admin {
        username: ADMIN.into(),
        password: PASSWORD.into(),
        create_key: CREATE_KEY.into(),
    }
}

pub async fn simulator(faults: &str) -> RossumSimulator {
    let options = ServeOptions {
        faults: FaultSpec::parse(faults).expect("fault spec"),
        ..ServeOptions::default()
    };
    RossumSimulator::start(0, &Seed::template().unwrap(), &[admin()], options)
        .await
        .expect("simulator starts")
}

pub fn credentials(password: &str) -> Credentials {
    let mut values = BTreeMap::new();
    values.insert("username".to_string(), SecretString::from(ADMIN));
    values.insert("password".to_string(), SecretString::from(password));
    values.insert("createKey".to_string(), SecretString::from(CREATE_KEY));
    Credentials::new("tenants/rossum-admin", values)
}

/// A fast-retrying client of the simulator.
pub fn client(sim: &RossumSimulator, endpoints: &Endpoints) -> Arc<dyn VendorClient> {
    let config = HttpConfig {
        rate_per_second: 1000,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
        ..HttpConfig::default()
    };
    connect(
        Vendor::Rossum,
        Some(&sim.base_url),
        credentials(PASSWORD),
        config,
        endpoints,
    )
    .unwrap()
}

pub fn desired(name: &str, display: &str) -> DesiredOrg {
    DesiredOrg {
        owner: Owner {
            key: format!("tenants/{name}"),
            uid: None,
        },
        generation: Some(1),
        vendor: Vendor::Rossum,
        display_name: display.into(),
        external_id: None,
        template: Some(TemplateSpec {
            selector: TemplateSelector::Name(TEMPLATE_ORG.into()),
            include: None,
            secrets: Default::default(),
            prune: false,
        }),
        settings: serde_json::json!({"firstUser": {"email": format!("{name}@tenants.example"), "fullName": "First User"}}),
        mode: Mode::Apply,
        sync_interval: Duration::from_secs(600),
    }
}

/// Keeps what the controller would keep in status; records progress.
#[derive(Default)]
pub struct MemorySink {
    pub pending: Mutex<Option<PendingCreate>>,
    pub external_id: Mutex<Option<String>>,
    pub progress_calls: Mutex<u64>,
    pub last_progress: Mutex<BTreeMap<&'static str, KindProgress>>,
    /// Secrets `spec.template.secrets` may name, by name.
    pub secrets: Mutex<BTreeMap<String, orgops::vendors::Credentials>>,
}

impl MemorySink {
    pub fn state(&self) -> OrgState {
        OrgState {
            external_id: self.external_id.lock().unwrap().clone(),
            pending_create: self.pending.lock().unwrap().clone(),
            usage_observed_at: None,
        }
    }
}

impl ProgressSink for MemorySink {
    fn copy_progress(&self, kinds: &BTreeMap<&'static str, KindProgress>) {
        *self.progress_calls.lock().unwrap() += 1;
        *self.last_progress.lock().unwrap() = kinds.clone();
    }
}

#[async_trait::async_trait]
impl Sink for MemorySink {
    async fn save_pending_create(&self, pending: Option<&PendingCreate>) -> Result<(), String> {
        *self.pending.lock().unwrap() = pending.cloned();
        Ok(())
    }
    async fn save_external_id(&self, id: &str) -> Result<(), String> {
        *self.external_id.lock().unwrap() = Some(id.to_string());
        Ok(())
    }
    async fn template_secret(&self, name: &str) -> Result<orgops::vendors::Credentials, String> {
        self.secrets
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| format!("Secret {name} does not exist"))
    }
}

pub async fn reconcile(
    client: &dyn VendorClient,
    desired: &DesiredOrg,
    sink: &MemorySink,
) -> OrgReport {
    reconcile_org(
        client,
        desired,
        &sink.state(),
        sink,
        &EngineOptions::default(),
    )
    .await
}

/// Reconciles like the controller does: again while failures are transient.
pub async fn reconcile_until_ready(
    client: &dyn VendorClient,
    desired: &DesiredOrg,
    sink: &MemorySink,
    max: usize,
) -> OrgReport {
    let mut last = None;
    for _ in 0..max {
        let r = reconcile(client, desired, sink).await;
        if r.ready {
            return r;
        }
        last = Some(r);
    }
    let r = last.unwrap();
    panic!(
        "not Ready after {max} reconciles: {} {}",
        r.ready_reason(),
        r.ready_message()
    );
}

/// Kinds whose copies carry the `metadata.orgops` marker.
pub const MARKER_KINDS: &[&str] = &[
    "workspaces",
    "schemas",
    "connectors",
    "queues",
    "inboxes",
    "hooks",
];
/// Every copied kind.
pub const ALL_KINDS: &[&str] = &[
    "labels",
    "workspaces",
    "schemas",
    "connectors",
    "queues",
    "inboxes",
    "hooks",
    "email_templates",
    "rules",
];

/// Template URL → copy URL for every copied object, found independently of the engine:
/// by marker where there is one, else by name within the mapped parent.
pub fn url_map(sim: &RossumSimulator, template: u64, target: u64) -> HashMap<String, String> {
    let mut map = HashMap::new();
    map.insert(
        format!("{}/organizations/{template}", sim.base_url),
        format!("{}/organizations/{target}", sim.base_url),
    );
    for kind in MARKER_KINDS {
        for copy in sim.objects(kind, target) {
            if let Some(src) = copy
                .pointer("/metadata/orgops/source")
                .and_then(Value::as_str)
            {
                map.insert(
                    format!("{}/{kind}/{src}", sim.base_url),
                    copy["url"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    for kind in ["labels", "rules"] {
        let copies = sim.objects(kind, target);
        for t in sim.objects(kind, template) {
            if let Some(c) = copies.iter().find(|c| c["name"] == t["name"]) {
                map.insert(
                    t["url"].as_str().unwrap().into(),
                    c["url"].as_str().unwrap().into(),
                );
            }
        }
    }
    let copies = sim.objects("email_templates", target);
    for t in sim.objects("email_templates", template) {
        let queue = map.get(t["queue"].as_str().unwrap()).cloned();
        if let Some(c) = copies.iter().find(|c| {
            c["queue"].as_str() == queue.as_deref()
                && c["name"] == t["name"]
                && c["type"] == t["type"]
        }) {
            map.insert(
                t["url"].as_str().unwrap().into(),
                c["url"].as_str().unwrap().into(),
            );
        }
    }
    map
}

/// Replaces every template URL in `v` by its copy's URL.
pub fn rewrite(v: &Value, map: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(map.get(s).cloned().unwrap_or_else(|| s.clone())),
        Value::Array(a) => Value::Array(a.iter().map(|x| rewrite(x, map)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), rewrite(x, map)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every URL string inside `v`.
pub fn urls_in(v: &Value, base: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with(base) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| urls_in(x, base, out)),
        Value::Object(o) => o.values().for_each(|x| urls_in(x, base, out)),
        _ => {}
    }
}
