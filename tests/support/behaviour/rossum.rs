//! The Rossum row: the Rossum simulator with its shipped template org ("Template org": labels,
//! workspaces, schemas, connectors, 24 queues with inboxes, hooks, e-mail templates, rules).
//!
//! How Rossum objects are read: references are absolute URLs `<base>/<kind>/<id>`; an object's
//! natural key is its name (a user's username, an e-mail template's queue + type + name);
//! arrays of references are sets. Copies carry the ownership marker under
//! `metadata.orgops`, which is bookkeeping, not content, and is left out of the view.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use orgops::api::Vendor;
use orgops::engine::DesiredOrg;
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::rossum::TEMPLATE_ORG;
use orgops::vendors::{Credentials, VendorClient};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{HandEdit, MemberData, MemberSeen, Reference, Row, Snapshot, Started};
use crate::support;

/// The Rossum row.
#[derive(Default)]
pub struct RossumRow;

const SECRET: &str = "tenants/rossum-admin";
const WRONG_PASSWORD: &str = "not-the-admin-password-4711";

/// The kinds a copy carries, compared field by field.
const KINDS: &[&str] = &[
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

/// Fields that make up an object's content at Rossum (design/vendors/rossum.md §3), including
/// the reverse links the API renders (`workspace.queues`, `queue.hooks`, …): those check the
/// structure between the copies from both ends. Never compared: ids, URLs, timestamps, counts,
/// vendor-generated values (an inbox's `email`, a hook's `token_owner`), write-only secrets.
fn fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "labels" => &["name", "color"],
        "workspaces" => &["name", "organization", "metadata", "queues"],
        "schemas" => &["name", "content", "metadata", "queues"],
        "connectors" => &[
            "name",
            "service_url",
            "params",
            "asynchronous",
            "authorization_type",
            "metadata",
            "queues",
        ],
        "queues" => &[
            "name",
            "workspace",
            "schema",
            "connector",
            "settings",
            "metadata",
            "locale",
            "session_timeout",
            "automation_enabled",
            "automation_level",
            "default_score_threshold",
            "use_confirmed_state",
            "document_lifetime",
            "rir_params",
            "hooks",
            "rules",
        ],
        "inboxes" => &[
            "name",
            "queues",
            "email_prefix",
            "bounce_email_to",
            "bounce_unprocessable_attachments",
            "bounce_deleted_annotations",
            "bounce_postponed_annotations",
            "bounce_email_with_no_attachments",
            "filters",
            "metadata",
            "dmarc_check_action",
        ],
        "hooks" => &[
            "name",
            "type",
            "queues",
            "run_after",
            "events",
            "config",
            "sideload",
            "active",
            "metadata",
            "settings",
            "test",
            "description",
            "settings_schema",
            "secrets_schema",
            "token_lifetime_s",
        ],
        "email_templates" => &[
            "name", "queue", "type", "subject", "message", "automate", "to", "cc", "bcc",
        ],
        "rules" => &["name", "enabled", "queues", "trigger_condition", "actions"],
        _ => &[],
    }
}

fn credentials(password: &str) -> Credentials {
    let mut values = BTreeMap::new();
    values.insert("username".to_string(), SecretString::from(support::ADMIN));
    values.insert("password".to_string(), SecretString::from(password));
    values.insert(
        "createKey".to_string(),
        SecretString::from(support::CREATE_KEY),
    );
    Credentials::new(SECRET, values)
}

fn client(base: &str, password: &str) -> Arc<dyn VendorClient> {
    super::test_client(Vendor::Rossum, base, credentials(password))
}

/// `(kind, id)` of a URL of this simulator.
fn parse_ref(snap: &Snapshot, s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix(&snap.base_url)?.strip_prefix('/')?;
    let (kind, id) = rest.trim_end_matches('/').rsplit_once('/')?;
    Some((kind.to_string(), id.to_string()))
}

fn name_of(v: &Value) -> String {
    v["name"].as_str().unwrap_or("?").to_string()
}

/// The natural key of a referenced object within the snapshot's org, or a value that says it
/// is elsewhere (and so never equals anything inside).
fn resolve(snap: &Snapshot, kind: &str, id: &str) -> String {
    if kind == "organizations" {
        return if id == snap.org {
            "organization:this".into()
        } else {
            format!("OUTSIDE:organizations/{id}")
        };
    }
    let Some(target) = snap
        .get(kind)
        .iter()
        .find(|o| o["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
    else {
        return format!("OUTSIDE:{kind}/{id}");
    };
    let key = match kind {
        "users" => target["username"].as_str().unwrap_or("?").to_string(),
        "email_templates" => {
            let queue = target["queue"]
                .as_str()
                .and_then(|q| parse_ref(snap, q))
                .map(|(k, i)| resolve(snap, &k, &i))
                .unwrap_or_default();
            format!(
                "{queue}|{}|{}",
                target["type"].as_str().unwrap_or("?"),
                name_of(target)
            )
        }
        _ => name_of(target),
    };
    format!("{kind}:{key}")
}

/// `v` with every reference replaced by its natural key; arrays of references become sorted
/// sets.
fn resolved(snap: &Snapshot, v: &Value) -> Value {
    match v {
        Value::String(s) => match parse_ref(snap, s) {
            Some((kind, id)) => Value::String(resolve(snap, &kind, &id)),
            None => v.clone(),
        },
        Value::Array(items) => {
            let all_refs = !items.is_empty()
                && items
                    .iter()
                    .all(|x| x.as_str().is_some_and(|s| parse_ref(snap, s).is_some()));
            let mut out: Vec<Value> = items.iter().map(|x| resolved(snap, x)).collect();
            if all_refs {
                out.sort_by_key(|x| x.to_string());
            }
            Value::Array(out)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), resolved(snap, x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn collect_refs(snap: &Snapshot, v: &Value, at: &str, out: &mut Vec<Reference>) {
    match v {
        Value::String(s) => {
            if let Some((kind, id)) = parse_ref(snap, s) {
                out.push(Reference {
                    at: at.to_string(),
                    kind,
                    id,
                });
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                collect_refs(snap, x, &format!("{at}.{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                collect_refs(snap, x, &path, out);
            }
        }
        _ => {}
    }
}

fn id(v: &Value) -> String {
    v["id"].as_u64().map(|n| n.to_string()).unwrap_or_default()
}

fn first<'a>(snap: &'a Snapshot, kind: &str) -> &'a Value {
    snap.get(kind)
        .first()
        .unwrap_or_else(|| panic!("organization {} has no {kind}", snap.org))
}

#[async_trait::async_trait]
impl Row for RossumRow {
    async fn start(&self, faults: &str) -> Started {
        let sim = support::simulator(faults).await;
        let base = sim.base_url.clone();
        Started {
            handle: Box::new(sim),
            client: client(&base, support::PASSWORD),
            wrong_client: client(&base, WRONG_PASSWORD),
        }
    }

    fn secret(&self) -> &'static str {
        SECRET
    }

    fn wrong_credential(&self) -> &'static str {
        WRONG_PASSWORD
    }

    fn template_org(&self, h: &dyn SimulatorHandle) -> String {
        h.org_id(TEMPLATE_ORG)
            .expect("the seed has the template org")
    }

    fn new_org(&self, _h: &dyn SimulatorHandle, key: &str) -> DesiredOrg {
        // Rossum creates orgs; the template is found by its name.
        support::desired(key, &format!("{key} department"))
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn made_by_vendor(&self, snap: &Snapshot, kind: &str, object: &Value) -> bool {
        // Creating an org with a first user gives it a workspace named after the org.
        let org_name = snap
            .get("organizations")
            .first()
            .map(name_of)
            .unwrap_or_default();
        kind == "workspaces"
            && object["name"].as_str() == Some(&format!("{org_name} workspace"))
            && object.pointer("/metadata/orgops").is_none()
    }

    fn view(&self, snap: &Snapshot, kind: &str, object: &Value) -> Value {
        let mut out = Map::new();
        for f in fields(kind) {
            let mut v = resolved(snap, object.get(*f).unwrap_or(&Value::Null));
            if *f == "metadata"
                && let Value::Object(m) = &mut v
            {
                m.remove("orgops");
            }
            out.insert((*f).to_string(), v);
        }
        Value::Object(out)
    }

    fn references(&self, snap: &Snapshot, _kind: &str, object: &Value) -> Vec<Reference> {
        let mut out = Vec::new();
        collect_refs(snap, object, "", &mut out);
        out
    }

    fn id_of(&self, object: &Value) -> String {
        id(object)
    }

    fn drift(&self, snap: &Snapshot) -> Vec<HandEdit> {
        vec![
            HandEdit {
                kind: "queues",
                id: id(first(snap, "queues")),
                patch: json!({"name": "renamed by hand"}),
            },
            HandEdit {
                kind: "hooks",
                id: id(first(snap, "hooks")),
                patch: json!({"config": {"url": "https://elsewhere.example/hook"}}),
            },
        ]
    }

    fn template_edit(&self, snap: &Snapshot) -> Vec<HandEdit> {
        vec![
            HandEdit {
                kind: "schemas",
                id: id(first(snap, "schemas")),
                patch: json!({"name": "Invoice (EU) v2"}),
            },
            HandEdit {
                kind: "labels",
                id: id(first(snap, "labels")),
                patch: json!({"color": "purple"}),
            },
        ]
    }

    fn members(&self) -> Result<MemberData, &'static str> {
        Ok(MemberData {
            email: "george@members.example".into(),
            roles: ["annotator".to_string()].into(),
            other_roles: ["manager".to_string()].into(),
            // Queues the copy made in the new org.
            scopes: ["AP Invoices DE".to_string(), "AP Invoices FR".to_string()].into(),
        })
    }

    /// A person who is a user of `org` itself: their role groups and queues. (The suite's
    /// person is new everywhere, so `org` becomes their own organization.)
    fn member_at_vendor(
        &self,
        h: &dyn SimulatorHandle,
        org: &str,
        email: &str,
    ) -> Option<MemberSeen> {
        let snap = Snapshot::of(h, org);
        let user = snap
            .get("users")
            .iter()
            .find(|u| u["username"].as_str() == Some(email) && u["is_active"] != json!(false))?;
        let names = |field: &str| -> BTreeSet<String> {
            user[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().and_then(|s| parse_ref(&snap, s)))
                .map(|(kind, id)| {
                    let key = resolve(&snap, &kind, &id);
                    key.split_once(':')
                        .map(|(_, n)| n.to_string())
                        .unwrap_or(key)
                })
                .collect()
        };
        Some(MemberSeen {
            roles: names("groups"),
            scopes: names("queues"),
        })
    }
}
