//! The OpenLattice row: the OpenLattice simulator with its seeded template org ("Template
//! org": the roles Analyst with a `Manual` grant, Reviewer with an `EmailDomain` grant, and
//! Data steward without one, besides the ADMIN role every organization makes for itself).
//!
//! How OpenLattice objects are read: a role's content is its title, its description and its
//! grants, which the server keeps on the organization (`grants[roleId][grantType]`) and the
//! row reads from there; grant mappings are sets. A role's natural key is its title. Roles
//! hold no reference to another copied object, but every role points at its organization
//! (`organizationId`, `aclKey[0]`, the `<orgId>|` prefix of its principal name) and at itself
//! (`aclKey[1]`): those are the references checked to stay inside the new organization.
//! Memberships are read from the `members` and `role_members` kinds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use orgops::api::Vendor;
use orgops::engine::{DesiredOrg, Mode, TemplateSelector, TemplateSpec};
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::openlattice::seed::TEMPLATE_ORG_TITLE;
use orgops::simulator::openlattice::{OpenLatticeSimulator, Options};
use orgops::simulator::{FaultSpec, ServeOptions};
use orgops::vendors::{Credentials, Owner, VendorClient};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{HandEdit, MemberData, MemberSeen, Reference, Row, Snapshot, Started};

/// The OpenLattice row.
#[derive(Default)]
pub struct OpenLatticeRow;

const SECRET: &str = "tenants/openlattice-admin";
/// Not a JWT at all: the server cannot read a subject from it (a well-formed JWT of an unknown
/// subject would be a new user, whom OpenLattice lets create organizations).
const WRONG_TOKEN: &str = "not-a-jwt-openlattice-4711";

/// The person the membership behaviours add: an Auth0 account that belongs to no organization
/// (added to the simulator by hand, as someone who signed in to OpenLattice once).
const MEMBER_SUBJECT: &str = "auth0|george-member-0001";
const MEMBER_EMAIL: &str = "george@members.example";

const KINDS: &[&str] = &["roles"];

fn credentials(token: &str) -> Credentials {
    let mut values = BTreeMap::new();
    values.insert("token".to_string(), SecretString::from(token));
    Credentials::new(SECRET, values)
}

fn client(base: &str, token: &str) -> Arc<dyn VendorClient> {
    super::test_client(Vendor::OpenLattice, base, credentials(token))
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// The organization of the snapshot (its only `organizations` object).
fn org_of(snap: &Snapshot) -> &Value {
    snap.get("organizations")
        .first()
        .unwrap_or_else(|| panic!("organization {} is not at the vendor", snap.org))
}

/// A role's grants as the organization holds them, mappings as sorted sets.
fn grants_of(snap: &Snapshot, role: &str) -> Value {
    let by_type = org_of(snap)["grants"][role]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let out: Map<String, Value> = by_type
        .into_iter()
        .map(|(t, g)| {
            let mappings: BTreeSet<String> = g["mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect();
            (
                t,
                json!({
                    "grantType": g["grantType"],
                    "attribute": g["attribute"],
                    "mappings": mappings,
                }),
            )
        })
        .collect();
    Value::Object(out)
}

/// The role titled `title` in the snapshot's organization.
fn role<'a>(snap: &'a Snapshot, title: &str) -> &'a Value {
    snap.get("roles")
        .iter()
        .find(|r| r["title"] == title)
        .unwrap_or_else(|| panic!("organization {} has no role {title:?}", snap.org))
}

#[async_trait::async_trait]
impl Row for OpenLatticeRow {
    async fn start(&self, faults: &str) -> Started {
        let options = Options {
            serve: ServeOptions {
                faults: FaultSpec::parse(faults).expect("fault spec"),
                ..ServeOptions::default()
            },
            ..Options::default()
        };
        let sim = OpenLatticeSimulator::start(0, options)
            .await
            .expect("the simulator starts");
        sim.add_user(MEMBER_SUBJECT, MEMBER_EMAIL, "George", "Member");
        let base = sim.base_url.clone();
        // The seeded global admin: it may set auto-approved e-mail domains.
        let good = client(&base, &sim.admin_token);
        Started {
            handle: Box::new(sim),
            client: good,
            wrong_client: client(&base, WRONG_TOKEN),
        }
    }

    fn secret(&self) -> &'static str {
        SECRET
    }

    fn wrong_credential(&self) -> &'static str {
        WRONG_TOKEN
    }

    fn template_org(&self, h: &dyn SimulatorHandle) -> String {
        h.org_id(TEMPLATE_ORG_TITLE)
            .expect("the seed has the template org")
    }

    fn new_org(&self, _h: &dyn SimulatorHandle, key: &str) -> DesiredOrg {
        // OpenLattice creates orgs, with the id the client plans from the owner.
        DesiredOrg {
            owner: Owner {
                key: format!("tenants/{key}"),
                uid: None,
            },
            generation: Some(1),
            vendor: Vendor::OpenLattice,
            display_name: format!("{key} department"),
            external_id: None,
            template: Some(TemplateSpec {
                selector: TemplateSelector::Name(TEMPLATE_ORG_TITLE.into()),
                include: None,
                secrets: Default::default(),
                prune: false,
            }),
            settings: json!({
                "description": format!("The {key} department's data."),
                "autoApprovedEmailDomains": [format!("{key}.tenants.example")],
            }),
            mode: Mode::Apply,
            sync_interval: Duration::from_secs(600),
        }
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn made_by_vendor(&self, snap: &Snapshot, kind: &str, object: &Value) -> bool {
        // Every organization makes its own ADMIN role, named by `adminRoleAclKey`.
        kind == "roles" && org_of(snap)["adminRoleAclKey"][1] == object["id"]
    }

    fn view(&self, snap: &Snapshot, _kind: &str, object: &Value) -> Value {
        json!({
            "title": object["title"],
            "description": object["description"],
            "grants": grants_of(snap, &id(object)),
        })
    }

    fn references(&self, _snap: &Snapshot, _kind: &str, object: &Value) -> Vec<Reference> {
        let org = |at: &str, v: &Value| Reference {
            at: at.to_string(),
            kind: "organizations".to_string(),
            id: v.as_str().unwrap_or("(none)").to_string(),
        };
        let principal = object["principal"]["id"].as_str().unwrap_or_default();
        vec![
            org("organizationId", &object["organizationId"]),
            org("aclKey.0", &object["aclKey"][0]),
            Reference {
                at: "aclKey.1".into(),
                kind: "roles".into(),
                id: object["aclKey"][1].as_str().unwrap_or("(none)").to_string(),
            },
            // The principal name `<orgId>|<title>`: a role named after another organization
            // would clash with that organization's role of the same title.
            org(
                "principal.id",
                &json!(principal.split_once('|').map_or(principal, |(o, _)| o)),
            ),
        ]
    }

    fn id_of(&self, object: &Value) -> String {
        id(object)
    }

    fn drift(&self, snap: &Snapshot) -> Vec<HandEdit> {
        let reviewer = id(role(snap, "Reviewer"));
        vec![
            HandEdit {
                kind: "roles",
                id: id(role(snap, "Analyst")),
                patch: json!({"description": "changed by hand"}),
            },
            HandEdit {
                kind: "organizations",
                id: snap.org.clone(),
                patch: json!({"grants": {reviewer: {"EmailDomain": {
                    "mappings": ["@elsewhere.example"]
                }}}}),
            },
        ]
    }

    fn template_edit(&self, snap: &Snapshot) -> Vec<HandEdit> {
        let reviewer = id(role(snap, "Reviewer"));
        vec![
            HandEdit {
                kind: "roles",
                id: id(role(snap, "Data steward")),
                patch: json!({"description": "Owns data quality, the dictionary and retention."}),
            },
            HandEdit {
                kind: "organizations",
                id: snap.org.clone(),
                patch: json!({"grants": {reviewer: {"EmailDomain": {
                    "mappings": ["@orgops.example", "@partners.example"]
                }}}}),
            },
        ]
    }

    fn members(&self) -> Result<MemberData, &'static str> {
        Ok(MemberData {
            email: MEMBER_EMAIL.into(),
            roles: ["member".to_string(), "Analyst".to_string()].into(),
            other_roles: ["member".to_string(), "Reviewer".to_string()].into(),
            // OpenLattice has no scopes.
            scopes: BTreeSet::new(),
        })
    }

    /// A member of `org` holds `member` and the titles of the roles of `org` granted to them.
    fn member_at_vendor(
        &self,
        h: &dyn SimulatorHandle,
        org: &str,
        email: &str,
    ) -> Option<MemberSeen> {
        // The row's person is known by the subject it gave them.
        assert_eq!(email, MEMBER_EMAIL, "the row knows only its own person");
        let snap = Snapshot::of(h, org);
        let is_them = |v: &Value| v["principal"]["id"] == MEMBER_SUBJECT;
        let member = snap.get("members").iter().any(is_them);
        let mut roles: BTreeSet<String> = snap
            .get("role_members")
            .iter()
            .filter(|rm| is_them(rm))
            .map(|rm| {
                let role = rm["roleId"].as_str().unwrap_or_default();
                snap.get("roles")
                    .iter()
                    .find(|r| id(r) == role)
                    .and_then(|r| r["title"].as_str())
                    .map_or_else(|| format!("(unknown role {role})"), str::to_string)
            })
            .collect();
        if !member {
            // Roles without membership would still be access; show them if there are any.
            return (!roles.is_empty()).then(|| MemberSeen {
                roles,
                scopes: BTreeSet::new(),
            });
        }
        roles.insert("member".to_string());
        Some(MemberSeen {
            roles,
            scopes: BTreeSet::new(),
        })
    }
}
