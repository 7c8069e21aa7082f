//! The Rendered.ai row: the Rendered.ai simulator with its seeded template org (`Template Org`:
//! organization rules, three volumes, two workspaces using the shared channels and the
//! template's volumes, graphs whose JSON names volume files as `"<volumeId>:/path"`, workspace
//! rules) and, because organizations come from Rendered.ai sign-up and the API creates none,
//! one organization per key the behaviours use, made by hand at start as sign-up makes them
//! (the admin as `admin`, one default workspace on a shared channel) and adopted by name, with
//! organization rules and limits as settings.
//!
//! How Rendered.ai objects are read (the simulator's own shape, not the client's):
//! - ids, owners, timestamps, a graph's `hash`/`previewId`/`showPreview`, a workspace's
//!   `status` are the vendor's bookkeeping and dropped; tags starting `orgops:` (the copies'
//!   markers) are dropped, the other tags kept in order;
//! - a workspace's volumes, a graph's workspace and the `"<volumeId>:/path"` strings anywhere
//!   in a graph's JSON become the referenced object's name within the org (anything outside it
//!   visibly so); channels shared with every organization (and volumes owned by a third org,
//!   shared in) are kept as their ids, since a copy must use the same ones, and the org's own
//!   channels become names;
//! - a workspace's `rules` are part of the workspace (workspace rules are copied as their own
//!   kind by the client, but stored on the workspace here); its GAN models, annotation maps and
//!   services are not part of the view: they are not among the kinds Rendered.ai copies
//!   (uploads through presigned URLs), so the copy leaves them empty;
//! - the default workspace sign-up made in each adopted org is the vendor's own.
//!
//! Graphs cannot be edited through the API (the client reports a drifted graph instead of
//! changing it), so the hand edits touch volumes and workspaces: fields, rules and volume
//! lists (a reference the engine must remap).
//! Members are read from the `members` kind (an invitation is no access; a 3.3.4 workspace
//! guest place shows as a scope, the workspace's name); Rendered.ai invites an e-mail without
//! an account, so the row accepts invitations by hand. The scopes given are a workspace the
//! copy made.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use orgops::api::Vendor;
use orgops::engine::{DesiredOrg, Mode, TemplateSelector, TemplateSpec};
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::renderedai::seed::{
    ADMIN_EMAIL, API_KEY, TEMPLATE_ORG_ID, TEMPLATE_ORG_NAME,
};
use orgops::simulator::renderedai::state::{
    CHANNELS, Caller, GRAPHS, MEMBERS, ORGS, VOLUMES, WORKSPACES,
};
use orgops::simulator::renderedai::{Options, RenderedAiSimulator, Scope, State};
use orgops::simulator::{FaultSpec, ServeOptions};
use orgops::vendors::{Credentials, Owner, VendorClient};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{HandEdit, MemberData, MemberSeen, Reference, Row, Snapshot, Started};

/// The Rendered.ai row; holds the simulator's state for what the trait has no words for
/// (accepting an invitation, objects outside one org: shared channels) and the ids of the
/// default workspaces it made.
#[derive(Default)]
pub struct RenderedAiRow {
    state: OnceLock<Arc<Mutex<State>>>,
    default_workspaces: Mutex<BTreeSet<String>>,
}

const SECRET: &str = "tenants/renderedai-admin";
const WRONG_KEY: &str = "wrong-renderedai-api-key-4711";

/// The person the membership behaviours invite: no Rendered.ai account yet.
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

/// Workspace rules are compared as the workspaces' `rules` field: the simulator keeps them
/// there.
const KINDS: &[&str] = &[VOLUMES, WORKSPACES, GRAPHS];

/// The default workspace sign-up makes.
const DEFAULT_WORKSPACE: &str = "Default workspace";

/// The organization settings every behaviour asks for.
const ORG_RULES: &str = "Render only what the customer licensed.";

/// Fields that are the vendor's bookkeeping, not setup.
const VOLATILE: &[&str] = &[
    "volumeId",
    "workspaceId",
    "graphId",
    "organizationId",
    "organization",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
    "status",
    "hash",
    "previewId",
    "showPreview",
    // Not copied kinds (see the module doc).
    "ganIds",
    "mapIds",
    "serviceIds",
];

fn org_name(key: &str) -> String {
    format!("{key} renders")
}

fn credentials(key: &str) -> Credentials {
    let mut values = BTreeMap::new();
    values.insert("apiKey".to_string(), SecretString::from(key));
    Credentials::new(SECRET, values)
}

fn client(base: &str, key: &str) -> Arc<dyn VendorClient> {
    super::test_client(Vendor::RenderedAi, base, credentials(key))
}

/// The object's id, whatever its kind calls it (a graph also names its workspace).
fn id(v: &Value) -> String {
    ["graphId", "volumeId", "workspaceId", "channelId"]
        .iter()
        .find_map(|k| v[*k].as_str())
        .unwrap_or_default()
        .to_string()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn without_volatile(object: &Value) -> Map<String, Value> {
    let mut m = object.as_object().cloned().unwrap_or_default();
    for k in VOLATILE {
        m.remove(*k);
    }
    m
}

/// Tags without the copies' markers, in their order.
fn tags(v: &Value) -> Value {
    json!(
        strs(v)
            .into_iter()
            .filter(|t| !t.starts_with("orgops:"))
            .collect::<Vec<_>>()
    )
}

/// The object of `kind` named `name` in the snapshot's org.
fn named<'a>(snap: &'a Snapshot, kind: &str, name: &str) -> &'a Value {
    snap.get(kind)
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("organization {} has no {kind} {name:?}", snap.org))
}

/// The name of the object of `kind` with id `target` in the snapshot's org, or a visible
/// "outside" marker.
fn name_in(snap: &Snapshot, kind: &str, target: &str) -> String {
    snap.get(kind)
        .iter()
        .find(|o| id(o) == target)
        .map(|o| o["name"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| format!("(outside: {kind} {target})"))
}

/// A volume file reference `"<volumeId>:/path"`: the id and the path.
fn volume_file(s: &str) -> Option<(&str, &str)> {
    let (volume, path) = s.split_once(':')?;
    (path.starts_with('/') && !volume.is_empty()).then_some((volume, path))
}

/// Who owns a referenced object, as the row sees it across organizations.
enum Owned {
    /// The snapshot's organization.
    Here,
    /// Shared with every organization, or owned by a third org that shares it: kept as is.
    Shared,
    /// Another organization's own object (the template's, say): must not be referenced.
    Elsewhere,
    /// No such object.
    Unknown,
}

impl RenderedAiRow {
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let state = self.state.get().expect("the row started its simulator");
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st)
    }

    /// Who owns channel or volume `target`, seen from `org`. A channel is shared when the
    /// platform shares it with every org; a volume when a third org (neither `org` nor the
    /// template) owns it: the template's own objects are never shared into a copy.
    fn owner(&self, org: &str, kind: &str, target: &str) -> Owned {
        self.with_state(|st| match st.store.get(kind, target) {
            None => Owned::Unknown,
            Some(r) if r.org == org => Owned::Here,
            Some(r) if kind == CHANNELS && r.value["shared"] == true => Owned::Shared,
            Some(r) if kind == VOLUMES && r.org != TEMPLATE_ORG_ID => Owned::Shared,
            Some(_) => Owned::Elsewhere,
        })
    }

    /// A channel as the view shows it: a shared one by id (the copy must use the very same),
    /// the org's own (or anything else) by name within the org.
    fn channel_view(&self, snap: &Snapshot, channel: &str) -> Value {
        match self.owner(&snap.org, CHANNELS, channel) {
            Owned::Shared => json!(format!("shared {channel}")),
            _ => json!(name_in(snap, CHANNELS, channel)),
        }
    }

    /// A volume as the view shows it: by name within the org; a shared one by id.
    fn volume_view(&self, snap: &Snapshot, volume: &str) -> String {
        match self.owner(&snap.org, VOLUMES, volume) {
            Owned::Shared => format!("shared {volume}"),
            _ => name_in(snap, VOLUMES, volume),
        }
    }

    /// The graph JSON with every volume file's id replaced by the volume's view.
    fn graph_view(&self, snap: &Snapshot, v: &Value) -> Value {
        match v {
            Value::String(s) => match volume_file(s) {
                Some((volume, path))
                    if !matches!(self.owner(&snap.org, VOLUMES, volume), Owned::Unknown) =>
                {
                    json!(format!("{}:{path}", self.volume_view(snap, volume)))
                }
                _ => v.clone(),
            },
            Value::Array(a) => Value::Array(a.iter().map(|x| self.graph_view(snap, x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.graph_view(snap, x)))
                    .collect(),
            ),
            _ => v.clone(),
        }
    }

    /// Every volume file id in a graph's JSON, with where it is.
    fn graph_volumes(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => {
                if let Some((volume, _)) = volume_file(s) {
                    out.push((at.to_string(), volume.to_string()));
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    Self::graph_volumes(x, &format!("{at}.{i}"), out);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    Self::graph_volumes(x, &format!("{at}.{k}"), out);
                }
            }
            _ => {}
        }
    }

    /// A reference to a channel or volume that must be inside the org, or `None` for one that
    /// is shared (kept as it is: the check is that it is still the shared one).
    fn must_be_inside(
        &self,
        snap: &Snapshot,
        at: String,
        kind: &str,
        target: &str,
    ) -> Option<Reference> {
        match self.owner(&snap.org, kind, target) {
            Owned::Shared => None,
            _ => Some(Reference {
                at,
                kind: kind.to_string(),
                id: target.to_string(),
            }),
        }
    }
}

fn parse_graph(object: &Value) -> Value {
    match &object["graph"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        other => other.clone(),
    }
}

#[async_trait::async_trait]
impl Row for RenderedAiRow {
    async fn start(&self, faults: &str) -> Started {
        let options = Options {
            serve: ServeOptions {
                faults: FaultSpec::parse(faults).expect("fault spec"),
                ..ServeOptions::default()
            },
            ..Options::default()
        };
        let sim = RenderedAiSimulator::start(0, options)
            .await
            .expect("the simulator starts");
        let _ = self.state.set(sim.state.clone());
        // The orgs to adopt, made as sign-up makes them (and as the seed makes its target
        // org): the admin as `admin` and a default workspace on a shared channel. Not API
        // writes: the counters start from zero.
        let defaults = self.with_state(|st| {
            let shared = st
                .store
                .list(CHANNELS)
                .into_iter()
                .find(|(_, r)| r.value["shared"] == true)
                .map(|(id, _)| id.to_string())
                .expect("the seed shares channels");
            let admin = Caller {
                user_id: st.users[ADMIN_EMAIL].user_id.clone(),
                email: ADMIN_EMAIL.into(),
                scope: Scope::User,
                session: true,
            };
            let mut defaults = BTreeSet::new();
            for key in KEYS {
                let org = st.store.new_id();
                st.store
                    .create_uncounted(
                        ORGS,
                        Some(org.clone()),
                        &org,
                        json!({
                            "organizationId": org, "name": org_name(key), "expired": false,
                            "expirationDate": "2099-12-31T23:59:59.000Z", "rules": "",
                        }),
                    )
                    .expect("a new org");
                st.join_org(&org, ADMIN_EMAIL, "admin")
                    .expect("the admin joins");
                let args = json!({
                    "organizationId": org, "name": DEFAULT_WORKSPACE,
                    "description": "Made at sign-up.", "objective": "", "tags": [],
                    "channelIds": [shared], "volumeIds": [], "code": "",
                });
                let ws = st
                    .create_workspace(&admin, args.as_object().expect("object"))
                    .expect("the default workspace");
                defaults.insert(ws.as_str().expect("an id").to_string());
            }
            st.store.reset_counters();
            defaults
        });
        *self
            .default_workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = defaults;
        let base = sim.graphql_url.clone();
        Started {
            client: client(&base, API_KEY),
            wrong_client: client(&base, WRONG_KEY),
            handle: Box::new(sim),
        }
    }

    fn secret(&self) -> &'static str {
        SECRET
    }

    fn wrong_credential(&self) -> &'static str {
        WRONG_KEY
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
        DesiredOrg {
            owner: Owner {
                key: format!("tenants/{key}"),
                uid: None,
            },
            generation: Some(1),
            vendor: Vendor::RenderedAi,
            display_name: org_name(key),
            external_id: None,
            template: Some(TemplateSpec {
                selector: TemplateSelector::Name(TEMPLATE_ORG_NAME.into()),
                include: None,
                secrets: BTreeMap::new(),
                prune: false,
            }),
            settings: json!({
                "rules": ORG_RULES,
                "limits": {"Workspaces": 10, "Managed Volumes": 20},
            }),
            mode: Mode::Apply,
            sync_interval: Duration::from_secs(600),
        }
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn made_by_vendor(&self, _snap: &Snapshot, kind: &str, object: &Value) -> bool {
        kind == WORKSPACES
            && self
                .default_workspaces
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&id(object))
    }

    fn view(&self, snap: &Snapshot, kind: &str, object: &Value) -> Value {
        let mut m = without_volatile(object);
        m.insert("tags".into(), tags(&object["tags"]));
        match kind {
            WORKSPACES => {
                let mut channels: Vec<Value> = strs(&object["channelIds"])
                    .iter()
                    .map(|c| self.channel_view(snap, c))
                    .collect();
                channels.sort_by_key(Value::to_string);
                m.insert("channelIds".into(), json!(channels));
                let mut volumes: Vec<String> = strs(&object["volumeIds"])
                    .iter()
                    .map(|v| self.volume_view(snap, v))
                    .collect();
                volumes.sort();
                m.insert("volumeIds".into(), json!(volumes));
            }
            GRAPHS => {
                let ws = object["workspaceId"].as_str().unwrap_or_default();
                m.insert("workspace".into(), json!(name_in(snap, WORKSPACES, ws)));
                let channel = object["channelId"].as_str().unwrap_or_default();
                m.insert("channelId".into(), self.channel_view(snap, channel));
                m.insert("graph".into(), self.graph_view(snap, &parse_graph(object)));
            }
            _ => {}
        }
        Value::Object(m)
    }

    fn references(&self, snap: &Snapshot, kind: &str, object: &Value) -> Vec<Reference> {
        let org = Reference {
            at: "organizationId".into(),
            kind: ORGS.into(),
            id: object["organizationId"]
                .as_str()
                .unwrap_or("(none)")
                .to_string(),
        };
        match kind {
            VOLUMES => vec![org],
            WORKSPACES => {
                let mut r = vec![org];
                for (i, c) in strs(&object["channelIds"]).iter().enumerate() {
                    r.extend(self.must_be_inside(snap, format!("channelIds.{i}"), CHANNELS, c));
                }
                for (i, v) in strs(&object["volumeIds"]).iter().enumerate() {
                    r.extend(self.must_be_inside(snap, format!("volumeIds.{i}"), VOLUMES, v));
                }
                r
            }
            GRAPHS => {
                let mut r = vec![Reference {
                    at: "workspaceId".into(),
                    kind: WORKSPACES.into(),
                    id: object["workspaceId"]
                        .as_str()
                        .unwrap_or("(none)")
                        .to_string(),
                }];
                let channel = object["channelId"].as_str().unwrap_or("(none)");
                r.extend(self.must_be_inside(snap, "channelId".into(), CHANNELS, channel));
                let mut files = Vec::new();
                Self::graph_volumes(&parse_graph(object), "graph", &mut files);
                for (at, volume) in files {
                    r.extend(self.must_be_inside(snap, at, VOLUMES, &volume));
                }
                r
            }
            _ => Vec::new(),
        }
    }

    fn id_of(&self, object: &Value) -> String {
        id(object)
    }

    fn drift(&self, snap: &Snapshot) -> Vec<HandEdit> {
        let textures = id(named(snap, VOLUMES, "Textures"));
        vec![
            HandEdit {
                kind: VOLUMES,
                id: textures.clone(),
                patch: json!({"description": "changed by hand", "permission": "view"}),
            },
            HandEdit {
                kind: WORKSPACES,
                id: id(named(snap, WORKSPACES, "Vehicle detection")),
                // One of its volumes taken away, and its rules rewritten.
                patch: json!({
                    "objective": "Something else entirely.",
                    "volumeIds": [id(named(snap, VOLUMES, "Backgrounds"))],
                    "rules": "Anything goes.",
                }),
            },
            {
                // A tag added by hand; the marker tag stays (without it the copy is no longer
                // recognised as one: that is a lost marker, not drift).
                let study = named(snap, WORKSPACES, "Texture study");
                let mut tags = strs(&study["tags"]);
                tags.push("by hand".into());
                HandEdit {
                    kind: WORKSPACES,
                    id: id(study),
                    patch: json!({ "tags": tags }),
                }
            },
        ]
    }

    fn template_edit(&self, snap: &Snapshot) -> Vec<HandEdit> {
        vec![
            HandEdit {
                kind: VOLUMES,
                id: id(named(snap, VOLUMES, "Backgrounds")),
                patch: json!({"description": "Street, sky and harbour backgrounds."}),
            },
            HandEdit {
                kind: WORKSPACES,
                id: id(named(snap, WORKSPACES, "Texture study")),
                // It now uses the backgrounds too, and gets rules of its own.
                patch: json!({
                    "description": "How textures and backgrounds change detector recall.",
                    "volumeIds": [
                        id(named(snap, VOLUMES, "Textures")),
                        id(named(snap, VOLUMES, "Backgrounds")),
                    ],
                    "rules": "Vary one texture at a time.",
                }),
            },
        ]
    }

    fn members(&self) -> Result<MemberData, &'static str> {
        Ok(MemberData {
            email: MEMBER_EMAIL.into(),
            roles: ["member".to_string()].into(),
            other_roles: ["admin".to_string()].into(),
            // A workspace of the template, which the copy made in the org.
            scopes: ["Vehicle detection".to_string()].into(),
        })
    }

    fn accept_invitation(&self, h: &dyn SimulatorHandle, org: &str, email: &str) {
        assert_eq!(h.vendor(), "renderedai");
        self.with_state(|st| st.accept_invitation(org, email))
            .unwrap_or_else(|e| panic!("{email} accepts the invitation to {org}: {e}"));
    }

    /// A member of `org` holds their one org role; a workspace guest place (3.3.4) in one of
    /// its workspaces shows as a scope, the workspace's name, so a leftover is visible.
    fn member_at_vendor(
        &self,
        h: &dyn SimulatorHandle,
        org: &str,
        email: &str,
    ) -> Option<MemberSeen> {
        let snap = Snapshot::of(h, org);
        let email = email.to_ascii_lowercase();
        let mine: Vec<&Value> = snap
            .get(MEMBERS)
            .iter()
            .filter(|m| m["email"] == email.as_str())
            .collect();
        let roles: BTreeSet<String> = mine
            .iter()
            .filter(|m| m["organizationId"] == org)
            .filter_map(|m| m["role"].as_str().map(str::to_string))
            .collect();
        let scopes: BTreeSet<String> = mine
            .iter()
            .filter(|m| m["organizationId"].is_null())
            .map(|m| {
                let ws = m["workspaceId"].as_str().unwrap_or_default();
                name_in(&snap, WORKSPACES, ws)
            })
            .collect();
        (!roles.is_empty() || !scopes.is_empty()).then_some(MemberSeen { roles, scopes })
    }
}
