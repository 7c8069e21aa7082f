//! The Dataloop row: the Dataloop simulator with its seeded template org (`orgops-template`:
//! groups, integrations of six types, projects with group roles, drivers, ontologies and
//! recipes) and, because Dataloop's API creates no organizations, one empty organization per
//! key the behaviours use, made by hand at start (as Dataloop's sales team would) and adopted
//! by name.
//!
//! How Dataloop objects are read: ids, timestamps, creators and URLs are dropped; references
//! (`projectId`, `integrationId`, `projectIds`, `ontologyIds`, a project's group roles from the
//! `project_groups` kind) become the referenced object's name or title within the org; the
//! system project every org has is the vendor's own (never copied, left out of `projectIds`).
//! Groups are compared by name (their members are people, not setup). Integrations' write-only
//! options are not part of the view: the simulator never serves them.
//! Members are read from the `members` (active ones only: an invitation is no access) and
//! `project_members` kinds; Dataloop invites, so the row accepts invitations by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use orgops::api::Vendor;
use orgops::engine::{DesiredOrg, Mode, TemplateSelector, TemplateSpec};
use orgops::simulator::dataloop::seed::{ADMIN_EMAIL, SYSTEM_PROJECT, TEMPLATE_ORG_NAME};
use orgops::simulator::dataloop::state::State;
use orgops::simulator::dataloop::{DataloopSimulator, Options};
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::{FaultSpec, ServeOptions};
use orgops::vendors::{Credentials, Owner, VendorClient};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{HandEdit, MemberData, MemberSeen, Reference, Row, Snapshot, Started};

/// The Dataloop row; holds the simulator's state for the hand hooks the trait has no words for
/// (accepting an invitation).
#[derive(Default)]
pub struct DataloopRow {
    state: OnceLock<Arc<Mutex<State>>>,
}

const SECRET: &str = "tenants/dataloop-admin";
const WRONG_PASSWORD: &str = "wrong-dataloop-password-4711";

/// The person the membership behaviours invite: a Dataloop user in no organization.
const MEMBER_EMAIL: &str = "george@members.example";

/// Keys of the organizations the behaviours adopt (one each, so no two share an org).
const KEYS: &[&str] = &[
    "alpha",
    "copy",
    "refs",
    "again",
    "drift",
    "follow",
    "lossy",
    "mixed",
    "measure",
    "killed-early",
    "killed-mid",
    "suspended",
    "locked-out",
    "members",
];

const KINDS: &[&str] = &[
    "groups",
    "integrations",
    "projects",
    "drivers",
    "ontologies",
    "recipes",
];

/// Fields that are the vendor's bookkeeping, not setup.
const VOLATILE: &[&str] = &[
    "id",
    "createdAt",
    "updatedAt",
    "updatedBy",
    "creator",
    "url",
    "org",
    "orgId",
    "account",
    "owner",
];

fn org_name(key: &str) -> String {
    format!("{key} vision")
}

fn credentials(password: &str) -> Credentials {
    let mut values = BTreeMap::new();
    values.insert("username".to_string(), SecretString::from(ADMIN_EMAIL));
    values.insert("password".to_string(), SecretString::from(password));
    Credentials::new(SECRET, values)
}

fn client(base: &str, password: &str) -> Arc<dyn VendorClient> {
    super::test_client(Vendor::Dataloop, base, credentials(password))
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The name (or title) of the object of `kind` with id `target` in the snapshot's org, or a
/// visible "outside" marker.
fn name_in(snap: &Snapshot, kind: &str, target: &str) -> Value {
    snap.get(kind)
        .iter()
        .find(|o| id(o) == target)
        .map(|o| {
            o.get("name")
                .or_else(|| o.get("title"))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .unwrap_or_else(|| json!(format!("(outside: {kind} {target})")))
}

fn is_system_project(snap: &Snapshot, project: &str) -> bool {
    snap.get("projects")
        .iter()
        .any(|p| id(p) == project && p["systemProject"] == true)
}

/// Project ids as a sorted list of names, the system project left out.
fn project_names(snap: &Snapshot, ids: &Value) -> Value {
    let mut names: Vec<String> = strs(ids)
        .iter()
        .filter(|p| !is_system_project(snap, p))
        .map(|p| {
            name_in(snap, "projects", p)
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    json!(names)
}

fn without_volatile(object: &Value) -> serde_json::Map<String, Value> {
    let mut m = object.as_object().cloned().unwrap_or_default();
    for k in VOLATILE {
        m.remove(*k);
    }
    m
}

/// The object of `kind` whose name or title is `name` in the snapshot's org.
fn named<'a>(snap: &'a Snapshot, kind: &str, name: &str) -> &'a Value {
    snap.get(kind)
        .iter()
        .find(|o| o["name"] == name || o["title"] == name)
        .unwrap_or_else(|| panic!("organization {} has no {kind} {name:?}", snap.org))
}

impl DataloopRow {
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let state = self.state.get().expect("the row started its simulator");
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st)
    }
}

#[async_trait::async_trait]
impl Row for DataloopRow {
    async fn start(&self, faults: &str) -> Started {
        let options = Options {
            serve: ServeOptions {
                faults: FaultSpec::parse(faults).expect("fault spec"),
                ..ServeOptions::default()
            },
            ..Options::default()
        };
        let sim = DataloopSimulator::start(0, options)
            .await
            .expect("the simulator starts");
        sim.add_user(MEMBER_EMAIL, "George", "Member", None);
        let _ = self.state.set(sim.state.clone());
        // The orgs to adopt, made as the seed makes the target (owner: the admin, with its
        // system project); not API writes, so the counters start from zero.
        self.with_state(|st| {
            for key in KEYS {
                let org = st.new_id();
                st.create_org(&org, &org_name(key), "freemium", ADMIN_EMAIL);
                st.insert_project(&org, SYSTEM_PROJECT, ADMIN_EMAIL, true);
            }
            st.reset_counters();
        });
        let base = sim.base_url.clone();
        Started {
            client: client(&base, orgops::simulator::dataloop::seed::ADMIN_PASSWORD),
            wrong_client: client(&base, WRONG_PASSWORD),
            handle: Box::new(sim),
        }
    }

    fn secret(&self) -> &'static str {
        SECRET
    }

    fn wrong_credential(&self) -> &'static str {
        WRONG_PASSWORD
    }

    fn template_org(&self, h: &dyn SimulatorHandle) -> String {
        h.org_id(TEMPLATE_ORG_NAME)
            .expect("the seed has the template org")
    }

    fn new_org(&self, h: &dyn SimulatorHandle, key: &str) -> DesiredOrg {
        assert!(
            h.org_id(&org_name(key)).is_some(),
            "the row made no org for key {key:?}: add it to KEYS"
        );
        // Adopted by its (unique) name; the integrations' credentials come from Secrets.
        let secrets = self
            .template_secrets()
            .into_keys()
            .map(|secret| (format!("integrations/{secret}"), secret))
            .collect();
        DesiredOrg {
            owner: Owner {
                key: format!("tenants/{key}"),
                uid: None,
            },
            generation: Some(1),
            vendor: Vendor::Dataloop,
            display_name: org_name(key),
            external_id: None,
            template: Some(TemplateSpec {
                selector: TemplateSelector::Name(TEMPLATE_ORG_NAME.into()),
                include: None,
                secrets,
                prune: false,
            }),
            settings: json!({"plan": "premium"}),
            mode: Mode::Apply,
            sync_interval: Duration::from_secs(600),
        }
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn made_by_vendor(&self, _snap: &Snapshot, kind: &str, object: &Value) -> bool {
        kind == "projects" && object["systemProject"] == true
    }

    fn view(&self, snap: &Snapshot, kind: &str, object: &Value) -> Value {
        let mut m = without_volatile(object);
        match kind {
            "groups" => json!({"name": object["name"]}),
            "integrations" => {
                let mut meta: BTreeMap<String, Value> = BTreeMap::new();
                for e in object["metadata"].as_array().into_iter().flatten() {
                    if e["name"] != "status" {
                        meta.insert(
                            e["name"].as_str().unwrap_or_default().to_string(),
                            e["value"].clone(),
                        );
                    }
                }
                json!({"name": object["name"], "type": object["type"], "metadata": meta})
            }
            "projects" => {
                let mut roles: Vec<String> = snap
                    .get("project_groups")
                    .iter()
                    .filter(|pg| pg["projectId"] == object["id"])
                    .map(|pg| {
                        let group = pg["groupId"].as_str().unwrap_or_default();
                        format!(
                            "{}:{}",
                            name_in(snap, "groups", group).as_str().unwrap_or_default(),
                            pg["role"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                roles.sort();
                json!({"name": object["name"], "systemProject": object["systemProject"],
                       "archived": object["archived"], "groupRoles": roles})
            }
            "drivers" => {
                let project = object["projectId"].as_str().unwrap_or_default();
                m.insert("projectId".into(), name_in(snap, "projects", project));
                let integration = object["integrationId"].as_str().unwrap_or_default();
                m.insert(
                    "integrationId".into(),
                    name_in(snap, "integrations", integration),
                );
                if let Some(p) = object["metadata"]["system"]["projectId"].as_str() {
                    m.insert(
                        "metadata".into(),
                        json!({"system": {"projectId": name_in(snap, "projects", p)}}),
                    );
                }
                Value::Object(m)
            }
            "ontologies" => {
                let mut metadata = object["metadata"].clone();
                metadata["system"]["projectIds"] =
                    project_names(snap, &object["metadata"]["system"]["projectIds"]);
                m.insert("metadata".into(), metadata);
                Value::Object(m)
            }
            "recipes" => {
                m.insert(
                    "projectIds".into(),
                    project_names(snap, &object["projectIds"]),
                );
                let mut metadata = object["metadata"].clone();
                metadata["system"]["projectIds"] =
                    project_names(snap, &object["metadata"]["system"]["projectIds"]);
                m.insert("metadata".into(), metadata);
                let mut ontologies: Vec<Value> = strs(&object["ontologyIds"])
                    .iter()
                    .map(|o| name_in(snap, "ontologies", o))
                    .collect();
                ontologies.sort_by_key(Value::to_string);
                m.insert("ontologyIds".into(), json!(ontologies));
                Value::Object(m)
            }
            _ => Value::Object(m),
        }
    }

    fn references(&self, snap: &Snapshot, kind: &str, object: &Value) -> Vec<Reference> {
        let to = |at: &str, kind: &str, v: &Value| Reference {
            at: at.to_string(),
            kind: kind.to_string(),
            id: v.as_str().unwrap_or("(none)").to_string(),
        };
        let many = |at: &str, kind: &str, v: &Value| -> Vec<Reference> {
            strs(v)
                .into_iter()
                .enumerate()
                .map(|(i, x)| to(&format!("{at}.{i}"), kind, &json!(x)))
                .collect()
        };
        match kind {
            "groups" | "integrations" => vec![to("org", "organizations", &object["org"])],
            "projects" => snap
                .get("project_groups")
                .iter()
                .filter(|pg| pg["projectId"] == object["id"])
                .map(|pg| to("groupRoles", "groups", &pg["groupId"]))
                .collect(),
            "drivers" => vec![
                to("orgId", "organizations", &object["orgId"]),
                to("projectId", "projects", &object["projectId"]),
                to("integrationId", "integrations", &object["integrationId"]),
                to(
                    "metadata.system.projectId",
                    "projects",
                    &object["metadata"]["system"]["projectId"],
                ),
            ],
            "ontologies" => many(
                "metadata.system.projectIds",
                "projects",
                &object["metadata"]["system"]["projectIds"],
            ),
            "recipes" => {
                let mut r = many("projectIds", "projects", &object["projectIds"]);
                r.extend(many(
                    "metadata.system.projectIds",
                    "projects",
                    &object["metadata"]["system"]["projectIds"],
                ));
                r.extend(many("ontologyIds", "ontologies", &object["ontologyIds"]));
                r
            }
            _ => Vec::new(),
        }
    }

    fn id_of(&self, object: &Value) -> String {
        id(object)
    }

    fn drift(&self, snap: &Snapshot) -> Vec<HandEdit> {
        vec![
            HandEdit {
                kind: "recipes",
                id: id(named(snap, "recipes", "Traffic annotation")),
                patch: json!({"description": "changed by hand"}),
            },
            HandEdit {
                kind: "drivers",
                id: id(named(snap, "drivers", "traffic-raw")),
                patch: json!({"path": "elsewhere/"}),
            },
        ]
    }

    fn template_edit(&self, snap: &Snapshot) -> Vec<HandEdit> {
        vec![
            HandEdit {
                kind: "recipes",
                id: id(named(snap, "recipes", "Shelf audit")),
                patch: json!({"description": "Mark products, price tags, gaps and damage."}),
            },
            HandEdit {
                kind: "drivers",
                id: id(named(snap, "drivers", "retail-images")),
                patch: json!({"path": "shelves/2025/"}),
            },
        ]
    }

    fn members(&self) -> Result<MemberData, &'static str> {
        Ok(MemberData {
            email: MEMBER_EMAIL.into(),
            roles: ["member".to_string()].into(),
            other_roles: ["admin".to_string()].into(),
            scopes: ["Traffic cameras:annotator".to_string()].into(),
        })
    }

    /// One Secret per template integration, named like it, with new credentials for the copy.
    fn template_secrets(&self) -> BTreeMap<String, Credentials> {
        let names = self.with_state(|st| {
            st.store
                .in_org(
                    "integrations",
                    orgops::simulator::dataloop::seed::TEMPLATE_ORG_ID,
                )
                .into_iter()
                .map(|(_, r)| r.value["name"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        });
        names
            .into_iter()
            .map(|name| {
                let mut values = BTreeMap::new();
                values.insert("key".to_string(), SecretString::from(format!("{name}-key")));
                values.insert(
                    "secret".to_string(),
                    SecretString::from(format!("{name}-secret")),
                );
                (name.clone(), Credentials::new(name, values))
            })
            .collect()
    }

    fn accept_invitation(&self, h: &dyn SimulatorHandle, org: &str, email: &str) {
        assert_eq!(h.vendor(), "dataloop");
        self.with_state(|st| st.accept_invitation(org, email))
            .unwrap_or_else(|e| panic!("{email} accepts the invitation to {org}: {e}"));
    }

    /// An active member of `org` holds their org role; their scopes are their roles in the
    /// org's projects (`"<project>:<role>"`).
    fn member_at_vendor(
        &self,
        h: &dyn SimulatorHandle,
        org: &str,
        email: &str,
    ) -> Option<MemberSeen> {
        let snap = Snapshot::of(h, org);
        let email = email.to_ascii_lowercase();
        let roles: BTreeSet<String> = snap
            .get("members")
            .iter()
            .filter(|m| m["email"] == email.as_str() && m["status"] == "active")
            .filter_map(|m| m["role"].as_str().map(str::to_string))
            .collect();
        let scopes: BTreeSet<String> = snap
            .get("project_members")
            .iter()
            .filter(|pm| pm["email"] == email.as_str())
            .map(|pm| {
                let project = pm["projectId"].as_str().unwrap_or_default();
                format!(
                    "{}:{}",
                    name_in(&snap, "projects", project)
                        .as_str()
                        .unwrap_or_default(),
                    pm["role"].as_str().unwrap_or_default()
                )
            })
            .collect();
        (!roles.is_empty() || !scopes.is_empty()).then_some(MemberSeen { roles, scopes })
    }
}
