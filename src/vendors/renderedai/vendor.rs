//! Rendered.ai behind the vendor-neutral contract (design/vendors/renderedai.md §4):
//! organizations adopted (never created or deleted), their name, rules and legacy limits kept
//! in sync from `spec.settings.renderedai`; volumes, workspaces, graphs and workspace rules
//! copied from a template; members added by e-mail with one organization role.
//!
//! How Rendered.ai's shapes meet the contract:
//! - **Read shape = copy shape.** `list_objects` returns every kind with an `id` and the fields
//!   that copy, normalised so a template object and its copy compare field by field: an empty
//!   `description`/`objective` reads as `null` (writes send `""` to clear one, since `null`
//!   means "unchanged" to `editWorkspace`), reference lists sorted.
//! - **Recognising copies after a crash.** Rendered.ai objects have no free metadata map, but
//!   volumes, workspaces and graphs carry `tags`: a copy carries the tag
//!   `orgops:<template org>:<kind>:<source id>` ([`MarkerAt::Tag`]), written in the same
//!   create call, so a create whose answer was lost is found again by its tag, never made
//!   twice. Workspace rules belong to their workspace: they are matched by the (copied)
//!   workspace id, a natural key.
//! - **Workspaces** list their channels and volumes through `getChannels(workspaceId)` and
//!   `getVolumes(workspaceId)` (the Workspace type has no id lists). Channels are shared
//!   platform objects, never copied ([`RefTarget::Shared`]: kept as they are). Volumes owned by
//!   the organization are `volumeIds` and remapped to their copies; volumes another
//!   organization shares into it are `sharedVolumeIds`, kept as they are (both go to the
//!   server as one `volumeIds` list).
//! - **Graphs** are read with `getGraphs` per workspace and `downloadGraph` for their JSON;
//!   the volume files they use (`"<volumeId>:/path"` strings anywhere in it) are rewritten to
//!   the copied volumes ([`RefField::embedded`]). A graph that uses a volume the template does
//!   not own waits, naming it. anatools 6.1.2 has `editGraph`, but this client (and the
//!   simulator's schema) does not use it yet, so a copy that drifted is reported, not changed.
//! - **Volumes** copy their metadata (name, description, permission, tags); their files are the
//!   opt-in kind `volume_data` ([`VOLUME_DATA`], copied only when `spec.template.include`
//!   names it): one object per file, matched by (copied volume, key), uploaded again only when
//!   its size or hash differs ([`super::volume_data`]).
//! - **Limits** are the legacy 3.3.4 `getOrganizationLimits`/`setOrganizationLimits`. Where the
//!   server answers that the operation does not exist, `status.usage` says so and a limits
//!   setting is an `Unsupported` settings condition (no retry loop).
//! - **Members**: one role, `admin` or `member`; `addMember` invites an unknown e-mail. A
//!   member's role changes with `editMember`; an invitation's role (which `editMember` does not
//!   reach) by removing it and inviting again.
//! - **Scopes are workspace guest places** (3.3.4 `workspaceId` on the member calls, design
//!   §2.5): `spec.scopes` names the organization's workspaces the person is a guest of. Reading
//!   them costs one `getMembers(workspaceId)` per workspace, so `observe_member` reads them
//!   only when the desired membership has `spec.scopes` (otherwise an active member's scopes
//!   are reported empty, which the engine ignores without `spec.scopes`). A membership
//!   without scopes never sends a guest call. Where the server no longer serves guests
//!   (`workspaceId` an unknown argument), no guest places are read (an empty set), and a
//!   non-empty `spec.scopes` is `Unsupported`. Removing a person ends their guest places in the
//!   organization's workspaces first, then their membership or invitation.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::RenderedAiApi;
use super::models::*;
use crate::vendors::http::HttpConfig;
use crate::vendors::{
    AccountInfo, Capabilities, CopyFields, Credentials, Endpoints, Identity, KindSpec, MarkerAt,
    MemberChange, MemberClient, MemberDesired, MemberObserved, OrgDesired, OrgIdentity, OrgInfo,
    Presence, RefCodec, RefField, RefTarget, RoleModel, VendorClient, VendorError,
};

const VENDOR: &str = "renderedai";

/// Most limit entries reported in status (a hostile server cannot flood it).
const MAX_LIMITS: usize = 100;

/// Most workspaces of one organization whose guests are read for a person (one `getMembers`
/// each): the bound on what observing a membership with scopes costs.
pub const MAX_GUEST_WORKSPACES: usize = 500;

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)?.as_str()
}

/// Every kind needs a non-empty name to be created.
fn named(v: &Value) -> Result<(), &'static str> {
    match str_at(v, "name") {
        Some(n) if !n.trim().is_empty() => Ok(()),
        _ => Err("the template object has no name"),
    }
}

/// A graph needs a name and a channel to be created.
fn graph_creatable(v: &Value) -> Result<(), &'static str> {
    named(v)?;
    match str_at(v, "channelId") {
        Some(c) if !c.is_empty() => Ok(()),
        _ => Err("the template graph names no channel"),
    }
}

/// Volumes another organization shares into the listed one are not copied.
fn is_shared(v: &Value) -> bool {
    v.get("shared") == Some(&Value::Bool(true))
}

/// Workspace rules are one per workspace.
fn rules_key(v: &Value) -> Option<String> {
    str_at(v, "workspaceId").map(str::to_string)
}

/// Volumes (metadata; their files are the opt-in kind [`VOLUME_DATA`]).
pub const VOLUMES: KindSpec = KindSpec {
    name: "volumes",
    refs: &[],
    fields: CopyFields::Only(&["name", "description", "permission", "tags"]),
    identity: Identity::Marker(MarkerAt::Tag("tags")),
    creatable: Some(named),
    skip: Some(is_shared),
    input: None,
    opt_in: false,
};

/// Workspaces: name, description, objective, tags, the channels they use (shared) and their
/// volumes (remapped; shared ones kept).
pub const WORKSPACES: KindSpec = KindSpec {
    name: "workspaces",
    refs: &[
        RefField::to("channelIds.*", RefTarget::Shared),
        RefField::to("volumeIds.*", RefTarget::Kind("volumes")),
        RefField::to("sharedVolumeIds.*", RefTarget::Shared),
    ],
    fields: CopyFields::Only(&[
        "name",
        "description",
        "objective",
        "tags",
        "channelIds",
        "volumeIds",
        "sharedVolumeIds",
    ]),
    identity: Identity::Marker(MarkerAt::Tag("tags")),
    creatable: Some(named),
    skip: None,
    input: None,
    opt_in: false,
};

/// Graphs of the workspaces: name, description, channel (shared), whether staged
/// (read-only), tags, and the graph JSON with its volume files remapped.
pub const GRAPHS: KindSpec = KindSpec {
    name: "graphs",
    refs: &[
        RefField::to("workspaceId", RefTarget::Kind("workspaces")),
        RefField::to("channelId", RefTarget::Shared),
        RefField::to("graph.**", RefTarget::Kind("volumes")).embedded(volume_file_ref),
    ],
    fields: CopyFields::Only(&[
        "name",
        "description",
        "workspaceId",
        "channelId",
        "staged",
        "tags",
        "graph",
    ]),
    identity: Identity::Marker(MarkerAt::Tag("tags")),
    creatable: Some(graph_creatable),
    skip: None,
    input: None,
    opt_in: false,
};

/// The rules (free text for agents) of each copied workspace.
pub const WORKSPACE_RULES: KindSpec = KindSpec {
    name: "workspace_rules",
    refs: &[RefField::to("workspaceId", RefTarget::Kind("workspaces"))],
    fields: CopyFields::Only(&["workspaceId", "rules"]),
    identity: Identity::NaturalKey(rules_key),
    creatable: None,
    skip: None,
    input: None,
    opt_in: false,
};

/// A file is one per (volume, key).
fn file_key(v: &Value) -> Option<String> {
    Some(super::volume_data::file_id(
        str_at(v, "volumeId")?,
        str_at(v, "key")?,
    ))
}

/// A file is copied when it has a key and a size orgops copies.
fn file_creatable(v: &Value) -> Result<(), &'static str> {
    match (str_at(v, "key"), v.get("size").and_then(Value::as_u64)) {
        (Some(k), Some(n)) if !k.is_empty() && n <= super::volume_data::MAX_FILE_BYTES => Ok(()),
        (Some(k), Some(_)) if !k.is_empty() => {
            Err("the template file is larger than orgops copies")
        }
        _ => Err("the template file has no key or size"),
    }
}

/// Files in the volumes (opt-in: heavy): key, size and hash, in the copied volume.
pub const VOLUME_DATA: KindSpec = KindSpec {
    name: "volume_data",
    refs: &[RefField::to("volumeId", RefTarget::Kind("volumes"))],
    fields: CopyFields::Only(&["volumeId", "key", "size", "hash"]),
    identity: Identity::NaturalKey(file_key),
    creatable: Some(file_creatable),
    skip: None,
    input: None,
    opt_in: true,
};

/// What Rendered.ai can do through its API.
pub const CAPABILITIES: Capabilities = Capabilities {
    create_org: false,
    delete_org: false,
    org_identity: OrgIdentity::None,
    settings: &["rules", "limits"],
    members: Some(RoleModel {
        roles: ORG_ROLES,
        org_roles: false,
        scopes: Some("workspaces"),
    }),
    usage: Some("limits and usage (legacy getOrganizationLimits)"),
    kinds: &[VOLUMES, WORKSPACES, GRAPHS, WORKSPACE_RULES, VOLUME_DATA],
};

/// `spec.settings.renderedai` as the client reads it.
#[derive(Debug, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    limits: BTreeMap<String, i64>,
    rules: Option<String>,
}

fn settings(desired: &OrgDesired) -> Settings {
    serde_json::from_value(desired.settings.clone()).unwrap_or_default()
}

/// What was seen of an organization's legacy limits.
#[derive(Clone, Debug, PartialEq)]
pub enum LimitsSeen {
    /// Not read (a listing, or the read failed).
    Unread,
    /// The server does not serve the limits operations.
    NotServed,
    /// The limits.
    Served(Vec<OrgLimit>),
}

impl PartialEq for OrgLimit {
    fn eq(&self, other: &Self) -> bool {
        self.setting == other.setting && self.limit == other.limit && self.usage == other.usage
    }
}

/// An organization in the contract's terms: `raw` holds `{id, name, rules, limits,
/// limitsServed}` (`rules`/`limits` `null` when not read), `usage` the limits and their usage.
pub fn org_info(org: &Organization, rules: Option<String>, limits: &LimitsSeen) -> OrgInfo {
    let (limit_map, served, usage) = match limits {
        LimitsSeen::Unread => (Value::Null, Value::Null, None),
        LimitsSeen::NotServed => (
            Value::Null,
            json!(false),
            Some(json!({
                "limitsServed": false,
                "message": "this Rendered.ai server does not serve organization limits (getOrganizationLimits)"
            })),
        ),
        LimitsSeen::Served(list) => {
            let mut limits = Map::new();
            let mut usage = Map::new();
            for l in list.iter().take(MAX_LIMITS) {
                let Some(setting) = l.setting.as_deref().filter(|s| !s.is_empty()) else {
                    continue;
                };
                let setting = clip(setting);
                limits.insert(setting.clone(), json!(l.limit_int()));
                usage.insert(setting, json!({ "limit": l.limit, "usage": l.usage }));
            }
            (
                Value::Object(limits),
                json!(true),
                Some(json!({ "limitsServed": true, "limits": usage })),
            )
        }
    };
    OrgInfo {
        id: org.organization_id.clone(),
        name: org.name().to_string(),
        owner: None,
        created_at: None,
        usage,
        raw: json!({
            "id": org.organization_id,
            "name": org.name(),
            "role": org.role,
            "rules": rules,
            "limits": limit_map,
            "limitsServed": served,
        }),
    }
}

/// `Workspaces 2/5, Members 3/10`: each legacy limit's usage of its limit, by setting name;
/// `limits not served` where the server has none.
pub fn limits_summary(usage: &Value) -> Option<String> {
    if usage.get("limitsServed") == Some(&Value::Bool(false)) {
        return Some("limits not served".into());
    }
    let limits = usage.get("limits")?.as_object()?;
    let number = |v: &Value| match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| n.as_f64().map(|f| format!("{f}"))),
        Value::String(s) => Some(clip(s)),
        _ => None,
    };
    let parts: Vec<String> = limits
        .iter()
        .take(MAX_LIMITS)
        .map(|(setting, l)| {
            let used = l
                .get("usage")
                .and_then(number)
                .unwrap_or_else(|| "?".into());
            match l.get("limit").and_then(number) {
                Some(limit) => format!("{setting} {used}/{limit}"),
                None => format!("{setting} {used}"),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The settings patch for `desired` against `observed` (see [`org_info`] for `raw`). Pure.
pub fn settings_patch(desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
    let s = settings(desired);
    let mut patch = Map::new();
    if observed.name != desired.display_name {
        patch.insert("name".into(), json!(desired.display_name));
    }
    if let Some(rules) = &s.rules
        // Unread rules are read again before they are written. Trailing whitespace does not
        // count: a YAML `|` block ends with "\n", which a server may trim (a write every pass).
        && observed.raw["rules"].as_str().map(str::trim_end) != Some(rules.trim_end())
    {
        patch.insert("rules".into(), json!(rules));
    }
    if !s.limits.is_empty() {
        let seen = &observed.raw["limits"];
        let differ: Map<String, Value> = match observed.raw["limitsServed"].as_bool() {
            // Not served: the whole setting goes to patch_org, which says so as a condition.
            Some(false) | None => s
                .limits
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
            Some(true) => s
                .limits
                .iter()
                .filter(|(k, v)| seen.get(k.as_str()).and_then(Value::as_i64) != Some(**v))
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        };
        if !differ.is_empty() {
            patch.insert("limits".into(), Value::Object(differ));
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// The condition a limits setting gets where the server serves no limits.
fn limits_not_served() -> VendorError {
    VendorError::Unsupported {
        vendor: VENDOR,
        what: "spec.settings.renderedai.limits: this Rendered.ai server no longer serves organization limits (getOrganizationLimits/setOrganizationLimits, last in anatools 3.3.4); Rendered.ai enforces its own, so remove the setting".into(),
    }
}

/// An empty text reads as `null` (Rendered.ai answers either for "none").
fn text(v: Option<String>) -> Value {
    match v {
        Some(s) if !s.is_empty() => Value::String(s),
        _ => Value::Null,
    }
}

/// A text field of a write: `null` is sent as `""`, which clears it (`null` = unchanged).
fn write_text(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        _ => json!(""),
    }
}

/// Strings of a list field of a body.
fn string_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// A volume in the copy shape; `shared` when another organization owns it. A null
/// `permission` is left out: `editVolume` reads null as "unchanged", so planning it would be a
/// write that changes nothing, every pass.
pub fn volume_object(v: Volume, org: &str) -> Value {
    let shared = v.organization_id.as_deref().is_some_and(|o| o != org);
    let mut out = json!({
        "id": v.volume_id,
        "name": v.name,
        "description": text(v.description),
        "tags": v.tags,
        "shared": shared,
    });
    if let Some(permission) = v.permission {
        out["permission"] = json!(permission);
    }
    out
}

/// A workspace in the copy shape, with its channels and its volumes split into the org's own
/// and shared ones.
pub fn workspace_object(
    w: Workspace,
    org: &str,
    channels: Vec<String>,
    volumes: &[Volume],
) -> Value {
    let (shared, own): (Vec<&Volume>, Vec<&Volume>) = volumes
        .iter()
        .partition(|v| v.organization_id.as_deref().is_some_and(|o| o != org));
    let ids = |list: Vec<&Volume>| sorted(list.into_iter().map(|v| v.volume_id.clone()).collect());
    json!({
        "id": w.workspace_id,
        "name": w.name,
        "description": text(w.description),
        "objective": text(w.objective),
        "tags": w.tags,
        "channelIds": sorted(channels),
        "volumeIds": ids(own),
        "sharedVolumeIds": ids(shared),
    })
}

/// A graph in the copy shape: its JSON parsed (left as text when it is not JSON).
pub fn graph_object(g: Graph, workspace: &str, json_text: String) -> Value {
    let graph = serde_json::from_str::<Value>(&json_text).unwrap_or(Value::String(json_text));
    json!({
        "id": g.graph_id,
        "workspaceId": workspace,
        "name": g.name,
        "description": text(g.description),
        "channelId": g.channel_id,
        "staged": g.staged,
        "tags": g.tags,
        "graph": graph,
    })
}

/// The one organization role of a desired membership.
fn one_role(desired: &MemberDesired) -> Result<&str, VendorError> {
    let roles: Vec<&String> = desired.roles.iter().collect();
    match roles.as_slice() {
        [one] if ORG_ROLES.contains(&one.as_str()) => Ok(one.as_str()),
        _ => Err(VendorError::Rejected(format!(
            "a Rendered.ai member has exactly one organization role ({}); got {}",
            ORG_ROLES.join(", "),
            roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The failure of a non-empty `spec.scopes` where the server serves no workspace guests.
fn guests_not_served(org: &str) -> VendorError {
    VendorError::Unsupported {
        vendor: VENDOR,
        what: format!(
            "spec.scopes: this Rendered.ai server no longer serves workspace guests (getMembers/addMember/removeMember with workspaceId, last in anatools 3.3.4), so the workspaces of organization {org} have none; remove spec.scopes"
        ),
    }
}

/// What makes a person's guest places the desired ones: workspace ids to join and to leave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestPlan {
    /// Workspaces to become a guest of.
    pub add: Vec<String>,
    /// Workspaces to stop being a guest of.
    pub remove: Vec<String>,
}

/// The guest changes that make `places` (workspace ids the person is a guest of) the
/// workspaces named `want`, among the organization's `workspaces` (`(id, name)`). Pure.
/// A name no workspace has is `NotFound` (the workspace may be made later, by a copy); a name
/// two workspaces share is refused (which one is meant cannot be told).
pub fn guest_plan(
    org: &str,
    workspaces: &[(String, String)],
    places: &BTreeSet<String>,
    want: &BTreeSet<String>,
) -> Result<GuestPlan, VendorError> {
    let mut wanted_ids = BTreeSet::new();
    for name in want {
        let ids: Vec<&String> = workspaces
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(id, _)| id)
            .collect();
        match ids.as_slice() {
            [one] => {
                wanted_ids.insert((*one).clone());
            }
            [] => {
                return Err(VendorError::NotFound(format!(
                    "spec.scopes: Rendered.ai organization {org} has no workspace named {:?}",
                    clip(name)
                )));
            }
            many => {
                return Err(VendorError::Rejected(format!(
                    "spec.scopes: {} workspaces in Rendered.ai organization {org} are named {:?}; rename one",
                    many.len(),
                    clip(name)
                )));
            }
        }
    }
    Ok(GuestPlan {
        add: wanted_ids.difference(places).cloned().collect(),
        remove: places.difference(&wanted_ids).cloned().collect(),
    })
}

/// A person's guest places in an organization's workspaces, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum GuestsSeen {
    /// The server serves no workspace guests.
    NotServed,
    /// The organization's workspaces (`(id, name)`) and those the person is a guest of (ids).
    Served {
        workspaces: Vec<(String, String)>,
        places: BTreeSet<String>,
    },
}

impl GuestsSeen {
    /// The scopes: names of the workspaces the person is a guest of.
    fn scopes(&self) -> BTreeSet<String> {
        match self {
            GuestsSeen::NotServed => BTreeSet::new(),
            GuestsSeen::Served { workspaces, places } => workspaces
                .iter()
                .filter(|(id, _)| places.contains(id))
                .map(|(_, name)| name.clone())
                .collect(),
        }
    }
}

fn check_kind(kind: &KindSpec) -> Result<(), VendorError> {
    if CAPABILITIES.kinds.iter().any(|k| k.name == kind.name) {
        return Ok(());
    }
    Err(VendorError::Unsupported {
        vendor: VENDOR,
        what: format!("copying {}", kind.name),
    })
}

/// The Rendered.ai [`VendorClient`].
#[derive(Debug)]
pub struct RenderedAiClient {
    api: RenderedAiApi,
}

impl RenderedAiClient {
    /// A client for `endpoint` (default: Rendered.ai's production GraphQL API) with the
    /// Secret's `apiKey`, or its `email` + `password`.
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, VendorError> {
        Ok(Self {
            api: RenderedAiApi::new(endpoint, credentials, config, endpoints)?,
        })
    }

    /// `email`'s guest places in the workspaces of `org`: one `getWorkspaces` (paged) and one
    /// `getMembers(workspaceId)` per workspace, at most [`MAX_GUEST_WORKSPACES`].
    async fn guest_places(&self, org: &str, email: &str) -> Result<GuestsSeen, VendorError> {
        let workspaces: Vec<(String, String)> = self
            .api
            .workspaces(org)
            .await?
            .into_iter()
            .map(|w| (w.workspace_id, clip(w.name.as_deref().unwrap_or_default())))
            .collect();
        if workspaces.len() > MAX_GUEST_WORKSPACES {
            return Err(VendorError::Rejected(format!(
                "spec.scopes: Rendered.ai organization {org} has {} workspaces; orgops reads the guests of at most {MAX_GUEST_WORKSPACES} (one request each)",
                workspaces.len()
            )));
        }
        let mut places = BTreeSet::new();
        for (id, _) in &workspaces {
            let guests = match self.api.workspace_guests(id).await {
                Ok(Some(guests)) => guests,
                Ok(None) => return Ok(GuestsSeen::NotServed),
                // Deleted since it was listed: no guests there.
                Err(VendorError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if guests
                .iter()
                .any(|g| g.email.as_deref().is_some_and(|e| same_email(e, email)))
            {
                places.insert(id.clone());
            }
        }
        Ok(GuestsSeen::Served { workspaces, places })
    }

    /// Makes `email` a guest of exactly the workspaces of `org` named `want`.
    async fn set_guest_places(
        &self,
        org: &str,
        email: &str,
        want: &BTreeSet<String>,
    ) -> Result<(), VendorError> {
        let (workspaces, places) = match self.guest_places(org, email).await? {
            // Nothing to give where nothing is wanted.
            GuestsSeen::NotServed if want.is_empty() => return Ok(()),
            GuestsSeen::NotServed => return Err(guests_not_served(org)),
            GuestsSeen::Served { workspaces, places } => (workspaces, places),
        };
        let plan = guest_plan(org, &workspaces, &places, want)?;
        let not_served = |e: VendorError| match e {
            VendorError::Unsupported { .. } => guests_not_served(org),
            other => other,
        };
        for ws in &plan.remove {
            match self.api.remove_guest(ws, email).await {
                // Gone already (by hand, or a repeat after a lost answer).
                Err(VendorError::NotFound(_)) => {}
                other => other.map_err(not_served)?,
            }
        }
        for ws in &plan.add {
            self.api.add_guest(ws, email).await.map_err(not_served)?;
        }
        Ok(())
    }

    /// Ends every guest place of `email` in the workspaces of `org` (none where the server
    /// serves no guests).
    async fn leave_workspaces(&self, org: &str, email: &str) -> Result<(), VendorError> {
        let GuestsSeen::Served { places, .. } = self.guest_places(org, email).await? else {
            return Ok(());
        };
        for ws in &places {
            match self.api.remove_guest(ws, email).await {
                Err(VendorError::NotFound(_)) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// The typed API underneath.
    pub fn api(&self) -> &RenderedAiApi {
        &self.api
    }

    /// The organization with its rules and limits read.
    async fn full_info(&self, org: &Organization) -> Result<OrgInfo, VendorError> {
        let id = &org.organization_id;
        let rules = match self.api.organization_rules(id).await {
            Ok(r) => Some(r),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::debug!(org = %id, error = %e, "cannot read the organization rules");
                None
            }
        };
        let limits = match self.api.organization_limits(id).await {
            Ok(Some(list)) => LimitsSeen::Served(list),
            Ok(None) => LimitsSeen::NotServed,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::debug!(org = %id, error = %e, "cannot read the organization limits");
                LimitsSeen::Unread
            }
        };
        Ok(org_info(org, rules, &limits))
    }

    async fn apply_limits(&self, id: &str, want: &Map<String, Value>) -> Result<(), VendorError> {
        let Some(current) = self.api.organization_limits(id).await? else {
            return Err(limits_not_served());
        };
        for (setting, limit) in want {
            let Some(limit) = limit.as_i64() else {
                continue;
            };
            let have = current
                .iter()
                .find(|l| l.setting.as_deref() == Some(setting.as_str()))
                .and_then(OrgLimit::limit_int);
            if have == Some(limit) {
                continue;
            }
            match self.api.set_organization_limit(id, setting, limit).await {
                Err(VendorError::Unsupported { .. }) => return Err(limits_not_served()),
                Err(e) => {
                    return Err(match e {
                        VendorError::Rejected(m) => VendorError::Rejected(format!(
                            "spec.settings.renderedai.limits.{setting}: {m}"
                        )),
                        VendorError::Forbidden(m) => VendorError::Forbidden(format!(
                            "spec.settings.renderedai.limits.{setting}: setting limits needs an organization admin: {m}"
                        )),
                        other => other,
                    });
                }
                Ok(()) => {}
            }
        }
        Ok(())
    }

    async fn list_workspaces(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        let mut out = Vec::new();
        for w in self.api.workspaces(org).await? {
            let channels = self.api.workspace_channels(&w.workspace_id).await?;
            let volumes = self.api.volumes(None, Some(&w.workspace_id)).await?;
            out.push(workspace_object(w, org, channels, &volumes));
        }
        Ok(out)
    }

    async fn list_graphs(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        let mut out = Vec::new();
        for w in self.api.workspaces(org).await? {
            for g in self.api.graphs(&w.workspace_id).await? {
                let text = self
                    .api
                    .download_graph(&w.workspace_id, &g.graph_id)
                    .await?;
                out.push(graph_object(g, &w.workspace_id, text));
            }
        }
        Ok(out)
    }

    /// Every file of the organization's own volumes (at most [`super::volume_data::MAX_FILES`]).
    async fn list_volume_data(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        let mut out = Vec::new();
        for v in self.api.volumes(Some(org), None).await? {
            if v.organization_id.as_deref().is_some_and(|o| o != org) {
                continue;
            }
            let room = super::volume_data::MAX_FILES - out.len();
            for f in self.api.volume_files(&v.volume_id, room).await? {
                out.extend(super::volume_data::file_object(&v.volume_id, &f));
            }
        }
        Ok(out)
    }

    async fn list_workspace_rules(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        let mut out = Vec::new();
        for w in self.api.workspaces(org).await? {
            let rules = self.api.workspace_rules(&w.workspace_id).await?;
            // Trailing whitespace does not count (a server may trim what it stores): without
            // this a template's "rules\n" against a stored "rules" is a write every pass.
            let rules = rules.trim_end();
            out.push(
                json!({ "id": w.workspace_id, "workspaceId": w.workspace_id, "rules": rules }),
            );
        }
        Ok(out)
    }

    /// The workspace's current volume split, for an edit that changes one half.
    async fn workspace_volumes(
        &self,
        org: &str,
        id: &str,
    ) -> Result<(Vec<String>, Vec<String>), VendorError> {
        let volumes = self.api.volumes(None, Some(id)).await?;
        let (shared, own): (Vec<Volume>, Vec<Volume>) = volumes
            .into_iter()
            .partition(|v| v.organization_id.as_deref().is_some_and(|o| o != org));
        Ok((
            own.into_iter().map(|v| v.volume_id).collect(),
            shared.into_iter().map(|v| v.volume_id).collect(),
        ))
    }

    async fn workspace_now(&self, org: &str, id: &str) -> Result<Value, VendorError> {
        let w = self
            .api
            .workspace(id)
            .await?
            .ok_or_else(|| VendorError::NotFound(format!("workspace {id} vanished")))?;
        let channels = self.api.workspace_channels(id).await?;
        let volumes = self.api.volumes(None, Some(id)).await?;
        Ok(workspace_object(w, org, channels, &volumes))
    }
}

impl RefCodec for RenderedAiClient {
    fn decode_ref(&self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    fn encode_ref(&self, _target: RefTarget, id: &str) -> Value {
        json!(id)
    }
}

#[async_trait::async_trait]
impl VendorClient for RenderedAiClient {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn verify_credentials(&self) -> Result<(), VendorError> {
        self.api.verify().await
    }

    async fn describe_account(&self) -> Result<AccountInfo, VendorError> {
        let orgs = self.api.organizations().await?;
        let who = match self.api.login_email() {
            Some(email) => format!("user {}", clip(email)),
            None => "an API key".to_string(),
        };
        let mut details = BTreeMap::from([("organizations".to_string(), orgs.len().to_string())]);
        if let Some(email) = self.api.login_email() {
            details.insert("user".into(), clip(email));
        }
        Ok(AccountInfo {
            summary: format!("{who}, {} organizations visible", orgs.len()),
            details,
        })
    }

    async fn get_org(&self, id: &str) -> Result<Option<OrgInfo>, VendorError> {
        let id = id.trim();
        if id.is_empty() {
            return Ok(None);
        }
        match self.api.organization(id).await? {
            Some(org) => Ok(Some(self.full_info(&org).await?)),
            None => Ok(None),
        }
    }

    fn usage_summary(&self, usage: &Value) -> Option<String> {
        limits_summary(usage)
    }

    async fn find_orgs(&self, name: Option<&str>) -> Result<Vec<OrgInfo>, VendorError> {
        let orgs: Vec<Organization> = self
            .api
            .organizations()
            .await?
            .into_iter()
            .filter(|o| name.is_none_or(|n| o.name() == n))
            .collect();
        // A lookup by name is an adoption (or a template): one or two orgs, read in full so the
        // settings compare against what is there. A full listing stays a listing.
        if name.is_some() && orgs.len() <= 3 {
            let mut out = Vec::with_capacity(orgs.len());
            for o in &orgs {
                out.push(self.full_info(o).await?);
            }
            return Ok(out);
        }
        Ok(orgs
            .iter()
            .map(|o| org_info(o, None, &LimitsSeen::Unread))
            .collect())
    }

    async fn create_org(&self, _desired: &OrgDesired) -> Result<OrgInfo, VendorError> {
        Err(VendorError::Unsupported {
            vendor: VENDOR,
            what: "creating organizations (they come from Rendered.ai sign-up; the API has no such call); sign up or ask Rendered.ai for one, then set spec.externalId to its organizationId (or spec.displayName to its exact name)".into(),
        })
    }

    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
        settings_patch(desired, observed)
    }

    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError> {
        let mut errors: Vec<VendorError> = Vec::new();
        if let Some(name) = str_at(&patch, "name")
            && let Err(e) = self.api.edit_organization(id, name).await
        {
            errors.push(e);
        }
        if let Some(rules) = str_at(&patch, "rules") {
            // Read first: a patch built from a listing did not see the rules.
            let result = match self.api.organization_rules(id).await {
                Ok(have) if have == rules => Ok(()),
                _ => self.api.edit_organization_rules(id, rules).await,
            };
            if let Err(e) = result {
                errors.push(match e {
                    VendorError::Forbidden(m) => VendorError::Forbidden(format!(
                        "spec.settings.renderedai.rules: editing the rules needs an organization admin: {m}"
                    )),
                    other => other,
                });
            }
        }
        if let Some(Value::Object(limits)) = patch.get("limits")
            && let Err(e) = self.apply_limits(id, limits).await
        {
            errors.push(e);
        }
        if !errors.is_empty() {
            // The first failure; the other settings were still tried.
            return Err(errors.remove(0));
        }
        self.get_org(id)
            .await?
            .ok_or_else(|| VendorError::NotFound(format!("organization {id} vanished")))
    }

    async fn delete_org(&self, _id: &str) -> Result<(), VendorError> {
        Err(VendorError::Unsupported {
            vendor: VENDOR,
            what: "deleting organizations (the API has no such call); close it through Rendered.ai"
                .into(),
        })
    }

    fn members(&self) -> Option<&dyn MemberClient> {
        Some(self)
    }

    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        check_kind(kind)?;
        match kind.name {
            "volumes" => Ok(self
                .api
                .volumes(Some(org), None)
                .await?
                .into_iter()
                .map(|v| volume_object(v, org))
                .collect()),
            "workspaces" => self.list_workspaces(org).await,
            "graphs" => self.list_graphs(org).await,
            "volume_data" => self.list_volume_data(org).await,
            _ => self.list_workspace_rules(org).await,
        }
    }

    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError> {
        check_kind(kind)?;
        if kind.name == "volume_data" {
            let (Some(volume), Some(key)) = (str_at(&body, "volumeId"), str_at(&body, "key"))
            else {
                return Err(VendorError::Rejected(
                    "a volume file needs a volume and a key".into(),
                ));
            };
            return self.api.copy_volume_file(org, volume, key, &body).await;
        }
        let name = str_at(&body, "name").unwrap_or_default();
        let tags = string_list(&body, "tags");
        match kind.name {
            "volumes" => {
                let id = self
                    .api
                    .create_volume(
                        org,
                        name,
                        str_at(&body, "description"),
                        str_at(&body, "permission"),
                        &tags,
                    )
                    .await?;
                let mut out = body;
                out["id"] = json!(id);
                out["shared"] = json!(false);
                Ok(out)
            }
            "workspaces" => {
                let mut volumes = string_list(&body, "volumeIds");
                volumes.extend(string_list(&body, "sharedVolumeIds"));
                let id = self
                    .api
                    .create_workspace(
                        org,
                        name,
                        str_at(&body, "description"),
                        str_at(&body, "objective"),
                        &tags,
                        &string_list(&body, "channelIds"),
                        &volumes,
                    )
                    .await?;
                let mut out = body;
                out["id"] = json!(id);
                Ok(out)
            }
            "graphs" => {
                let workspace = str_at(&body, "workspaceId")
                    .ok_or_else(|| VendorError::Rejected("a graph needs a workspace".into()))?;
                let channel = str_at(&body, "channelId")
                    .ok_or_else(|| VendorError::Rejected("a graph needs a channel".into()))?;
                let graph = match body.get("graph") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) if !v.is_null() => v.to_string(),
                    _ => "{}".to_string(),
                };
                let id = self
                    .api
                    .create_graph(
                        workspace,
                        channel,
                        &graph,
                        name,
                        str_at(&body, "description"),
                        body.get("staged") == Some(&Value::Bool(true)),
                        &tags,
                    )
                    .await?;
                let mut out = body;
                out["id"] = json!(id);
                Ok(out)
            }
            _ => {
                let workspace = str_at(&body, "workspaceId").ok_or_else(|| {
                    VendorError::Rejected("workspace rules need a workspace".into())
                })?;
                let rules = str_at(&body, "rules").unwrap_or_default();
                self.api.edit_workspace_rules(workspace, rules).await?;
                Ok(json!({ "id": workspace, "workspaceId": workspace, "rules": rules }))
            }
        }
    }

    async fn update_object(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: Value,
    ) -> Result<Value, VendorError> {
        check_kind(kind)?;
        match kind.name {
            "volume_data" => {
                // (volume, key) is the identity: a patch is new content, uploaded again.
                let (volume, key) = super::volume_data::split_file_id(id).ok_or_else(|| {
                    VendorError::Rejected(format!("{} is not a volume file id", clip(id)))
                })?;
                self.api.copy_volume_file(org, volume, key, &patch).await
            }
            "volumes" => {
                let mut fields = Map::new();
                for (k, v) in patch.as_object().into_iter().flatten() {
                    let v = if k == "description" {
                        write_text(v)
                    } else {
                        v.clone()
                    };
                    fields.insert(k.clone(), v);
                }
                self.api.edit_volume(id, Value::Object(fields)).await?;
                self.api
                    .volumes(Some(org), None)
                    .await?
                    .into_iter()
                    .find(|v| v.volume_id == id)
                    .map(|v| volume_object(v, org))
                    .ok_or_else(|| VendorError::NotFound(format!("volume {id} vanished")))
            }
            "workspaces" => {
                let mut fields = Map::new();
                for k in ["name", "tags", "channelIds"] {
                    if let Some(v) = patch.get(k) {
                        fields.insert(k.into(), v.clone());
                    }
                }
                for k in ["description", "objective"] {
                    if let Some(v) = patch.get(k) {
                        fields.insert(k.into(), write_text(v));
                    }
                }
                if patch.get("volumeIds").is_some() || patch.get("sharedVolumeIds").is_some() {
                    let (own, shared) = match (patch.get("volumeIds"), patch.get("sharedVolumeIds"))
                    {
                        (Some(_), Some(_)) => (
                            string_list(&patch, "volumeIds"),
                            string_list(&patch, "sharedVolumeIds"),
                        ),
                        _ => {
                            let (own, shared) = self.workspace_volumes(org, id).await?;
                            (
                                patch
                                    .get("volumeIds")
                                    .map_or(own, |_| string_list(&patch, "volumeIds")),
                                patch
                                    .get("sharedVolumeIds")
                                    .map_or(shared, |_| string_list(&patch, "sharedVolumeIds")),
                            )
                        }
                    };
                    let mut all = own;
                    all.extend(shared);
                    fields.insert("volumeIds".into(), json!(sorted(all)));
                }
                self.api.edit_workspace(id, Value::Object(fields)).await?;
                self.workspace_now(org, id).await
            }
            "graphs" => {
                let fields: Vec<&String> = patch
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                    .collect();
                Err(VendorError::Unsupported {
                    vendor: VENDOR,
                    what: format!(
                        "changing graph {id} ({}): orgops does not edit graphs yet; delete the copy in the target organization to have it copied again",
                        fields
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
            _ => {
                if patch.get("workspaceId").is_some() {
                    return Err(VendorError::Rejected(format!(
                        "workspace rules {id} cannot move to another workspace"
                    )));
                }
                let rules = str_at(&patch, "rules").unwrap_or_default();
                self.api.edit_workspace_rules(id, rules).await?;
                Ok(
                    json!({ "id": id, "workspaceId": id, "rules": self.api.workspace_rules(id).await? }),
                )
            }
        }
    }

    /// Deletes a copy (pruning). Volumes, workspaces (their graphs and rules go with them),
    /// graphs (found in the organization's workspaces first: `deleteGraph` names the
    /// workspace) and volume files; workspace rules are no object of their own and go with
    /// their workspace. Something already gone counts as deleted.
    async fn delete_object(&self, org: &str, kind: &KindSpec, id: &str) -> Result<(), VendorError> {
        check_kind(kind)?;
        match kind.name {
            "volumes" => self.api.delete_volume(org, id).await,
            "workspaces" => self.api.delete_workspace(id).await,
            "graphs" => {
                for w in self.api.workspaces(org).await? {
                    if self.api.has_graph(&w.workspace_id, id).await? {
                        return self.api.delete_graph(&w.workspace_id, id).await;
                    }
                }
                Ok(())
            }
            "volume_data" => {
                let (volume, key) = super::volume_data::split_file_id(id)
                    .filter(|(_, key)| !key.is_empty() && !key.ends_with('/'))
                    .ok_or_else(|| {
                        VendorError::Rejected(format!("{} is not a volume file id", clip(id)))
                    })?;
                match self.api.delete_volume_data(volume, &[key]).await {
                    Err(VendorError::NotFound(_)) => Ok(()),
                    other => other,
                }
            }
            _ => Err(VendorError::Unsupported {
                vendor: VENDOR,
                what: format!(
                    "deleting the rules of workspace {} on their own: rules have no delete at Rendered.ai and go with their workspace",
                    clip(id)
                ),
            }),
        }
    }
}

/// The roles of a member or invitation as observed: lowercased (the server may answer `Admin`
/// for the `admin` a spec names), none when the role is missing or empty.
fn observed_roles(role: Option<&str>) -> BTreeSet<String> {
    role.map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| clip(&r.to_lowercase()))
        .into_iter()
        .collect()
}

/// Why an invitation's roles cannot be compared: it shows no role. Re-inviting would not make
/// one appear, so the difference is reported instead of removing and inviting every pass.
fn role_unknown(role: Option<&str>) -> Option<String> {
    role.map(str::trim)
        .filter(|r| !r.is_empty())
        .is_none()
        .then(|| "the invitation shows no role; it is set when the invitation is accepted".into())
}

#[async_trait::async_trait]
impl MemberClient for RenderedAiClient {
    async fn observe_member(&self, desired: &MemberDesired) -> Result<MemberObserved, VendorError> {
        let (org, email) = (desired.org.as_str(), desired.email.as_str());
        // A membership wins over a stale invitation for the same address.
        if let Some(m) = self
            .api
            .members(org)
            .await?
            .into_iter()
            .find(|m| m.email.as_deref().is_some_and(|e| same_email(e, email)))
        {
            // Guest places are read only for a spec with scopes (see the module docs).
            let scopes = if desired.scopes.is_some() {
                self.guest_places(org, email).await?.scopes()
            } else {
                BTreeSet::new()
            };
            return Ok(MemberObserved {
                presence: Presence::Active,
                id: Some(clip(&m.user_id)).filter(|u| !u.is_empty()),
                roles: observed_roles(m.role.as_deref()),
                scopes,
                vendor_state: json!({ "email": m.email, "invited": false }),
                ..MemberObserved::absent()
            });
        }
        if let Some(i) = self
            .api
            .invitations(org)
            .await?
            .into_iter()
            .find(|i| i.email.as_deref().is_some_and(|e| same_email(e, email)))
        {
            return Ok(MemberObserved {
                presence: Presence::Invited,
                id: Some(format!(
                    "invitation/{}",
                    clip(
                        i.invitation_id
                            .as_deref()
                            .or(i.email.as_deref())
                            .unwrap_or(email)
                    )
                )),
                roles: observed_roles(i.role.as_deref()),
                roles_fixed: role_unknown(i.role.as_deref()),
                vendor_state: json!({ "email": i.email, "invited": true }),
                ..MemberObserved::absent()
            });
        }
        Ok(MemberObserved::absent())
    }

    async fn change_member(
        &self,
        desired: &MemberDesired,
        observed: &MemberObserved,
        change: &MemberChange,
    ) -> Result<(), VendorError> {
        let org = desired.org.as_str();
        let email = observed.vendor_state["email"]
            .as_str()
            .unwrap_or(&desired.email);
        match change {
            MemberChange::Add => {
                self.api
                    .add_member(org, &desired.email, one_role(desired)?)
                    .await
            }
            MemberChange::SetRoles { .. } if observed.presence == Presence::Invited => {
                // editMember reaches members only: the invitation is sent again with the role.
                // If the second call's answer is lost, observing finds no invitation (Add) or
                // the new one.
                let role = one_role(desired)?;
                self.api.remove_member(org, email).await?;
                self.api.add_member(org, email, role).await
            }
            MemberChange::SetRoles { .. } => {
                self.api.edit_member(org, email, one_role(desired)?).await
            }
            MemberChange::SetScopes => match &desired.scopes {
                Some(want) => self.set_guest_places(org, email, want).await,
                // Never planned without scopes: unmanaged guest places stay as they are.
                None => Ok(()),
            },
        }
    }

    async fn remove_member(&self, org: &str, observed: &MemberObserved) -> Result<(), VendorError> {
        if !observed.holds_access() {
            return Ok(());
        }
        let Some(email) = observed.vendor_state["email"].as_str() else {
            return Ok(());
        };
        // Every access orgops can have given goes: the guest places in the organization's
        // workspaces first, so that a removal cut short leaves the membership to be found and
        // removed again (a person without one is not observed as holding access).
        self.leave_workspaces(org, email).await?;
        match self.api.remove_member(org, email).await {
            // Gone already (removed by hand, or a repeat after a lost answer).
            Err(VendorError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::copy::plan::{Action, CopyContext, IdMap, Pass, desired_copy, plan_kind};
    use crate::vendors::Owner;

    fn client() -> RenderedAiClient {
        RenderedAiClient::new(
            Some("http://127.0.0.1:9/graphql"),
            Credentials::new(
                "ns/rai",
                BTreeMap::from([("apiKey".to_string(), "k-123456".to_string().into())]),
            ),
            HttpConfig::default(),
            &Endpoints::default(),
        )
        .unwrap()
    }

    fn desired(name: &str, settings: Value) -> OrgDesired {
        OrgDesired {
            owner: Owner {
                key: "ns/acme".into(),
                uid: None,
            },
            display_name: name.into(),
            settings,
        }
    }

    fn org(name: &str) -> Organization {
        serde_json::from_value(json!({"organizationId": "o1", "name": name, "role": "admin"}))
            .unwrap()
    }

    fn limits(pairs: &[(&str, &str, f64)]) -> LimitsSeen {
        LimitsSeen::Served(
            pairs
                .iter()
                .map(|(s, l, u)| {
                    serde_json::from_value(json!({"setting": s, "limit": l, "usage": u})).unwrap()
                })
                .collect(),
        )
    }

    #[test]
    fn settings_in_sync_make_no_patch() {
        let want = desired(
            "Acme",
            json!({"rules": "be nice", "limits": {"Workspaces": 5}}),
        );
        let seen = org_info(
            &org("Acme"),
            Some("be nice".into()),
            &limits(&[("Workspaces", "5", 2.0), ("Members", "10", 1.0)]),
        );
        assert_eq!(settings_patch(&want, &seen), None);
        assert_eq!(
            seen.usage.as_ref().unwrap()["limits"]["Workspaces"],
            json!({"limit": 5.0, "usage": 2.0})
        );
        // Nothing managed: nothing compared.
        assert_eq!(settings_patch(&desired("Acme", Value::Null), &seen), None);
    }

    #[test]
    fn drift_patches_only_what_differs() {
        let want = desired(
            "Acme 2",
            json!({"rules": "new", "limits": {"Workspaces": 5, "Members": 10}}),
        );
        let seen = org_info(
            &org("Acme"),
            Some("old".into()),
            &limits(&[("Workspaces", "3", 2.0), ("Members", "10", 1.0)]),
        );
        assert_eq!(
            settings_patch(&want, &seen),
            Some(json!({"name": "Acme 2", "rules": "new", "limits": {"Workspaces": 5}}))
        );
        // Unread rules and limits (a listing) are patched, and read again before writing.
        let listed = org_info(&org("Acme 2"), None, &LimitsSeen::Unread);
        assert_eq!(
            settings_patch(&want, &listed),
            Some(json!({"rules": "new", "limits": {"Members": 10, "Workspaces": 5}}))
        );
    }

    #[test]
    fn limits_not_served_are_a_condition_only_when_asked_for() {
        let seen = org_info(&org("Acme"), Some(String::new()), &LimitsSeen::NotServed);
        assert_eq!(seen.usage.as_ref().unwrap()["limitsServed"], json!(false));
        assert_eq!(settings_patch(&desired("Acme", json!({})), &seen), None);
        let patch = settings_patch(
            &desired("Acme", json!({"limits": {"Workspaces": 1}})),
            &seen,
        );
        assert_eq!(patch, Some(json!({"limits": {"Workspaces": 1}})));
        let e = limits_not_served();
        assert_eq!(e.category(), "Unsupported");
        assert!(!e.is_transient(), "no retry loop");
        assert!(e.to_string().contains("spec.settings.renderedai.limits"));
    }

    #[test]
    fn the_limits_summary_reads_usage_of_limit() {
        let usage = json!({"limitsServed": true, "limits": {
            "Members": {"limit": "10", "usage": 3.0},
            "Workspaces": {"limit": "5", "usage": 2.5},
        }});
        assert_eq!(
            limits_summary(&usage).as_deref(),
            Some("Members 3/10, Workspaces 2.5/5")
        );
        assert_eq!(
            limits_summary(&json!({"limitsServed": false})).as_deref(),
            Some("limits not served")
        );
        assert_eq!(limits_summary(&json!({"limits": {}})), None);
        assert_eq!(limits_summary(&json!(7)), None);
    }

    #[test]
    fn hostile_limits_are_bounded() {
        let many: Vec<(String, String, f64)> = (0..500)
            .map(|n| (format!("s{n}"), "1".to_string(), 0.0))
            .collect();
        let list = LimitsSeen::Served(
            many.iter()
                .map(|(s, l, u)| {
                    serde_json::from_value(json!({"setting": s, "limit": l, "usage": u})).unwrap()
                })
                .collect(),
        );
        let info = org_info(&org("x"), None, &list);
        assert_eq!(info.raw["limits"].as_object().unwrap().len(), MAX_LIMITS);
        let odd = org_info(
            &org("x"),
            None,
            &limits(&[("", "1", 0.0), ("W", "lots", 0.0)]),
        );
        assert_eq!(odd.raw["limits"], json!({"W": null}));
    }

    fn ctx<'a>(ids: &'a IdMap, codec: &'a RenderedAiClient) -> CopyContext<'a> {
        CopyContext {
            codec,
            owner: "ns/acme",
            template_org: "T",
            target_org: "N",
            ids,
        }
    }

    #[test]
    fn workspaces_remap_own_volumes_and_keep_channels_and_shared_volumes() {
        let c = client();
        let mut ids = IdMap::default();
        ids.insert("volumes", "vol-1".into(), "vol-9".into());
        let vols: Vec<Volume> = serde_json::from_value(json!([
            {"volumeId": "vol-1", "organizationId": "T"},
            {"volumeId": "vol-s", "organizationId": "RenderedAI"}
        ]))
        .unwrap();
        let ws: Workspace = serde_json::from_value(json!({
            "workspaceId": "ws-1", "name": "W", "description": "", "tags": ["blue"]
        }))
        .unwrap();
        let source = workspace_object(ws, "T", vec!["ch-2".into(), "ch-1".into()], &vols);
        assert_eq!(source["description"], Value::Null, "empty reads as null");
        let body = desired_copy(&WORKSPACES, &source, &ctx(&ids, &c), Pass::First).unwrap();
        assert_eq!(body["channelIds"], json!(["ch-1", "ch-2"]));
        assert_eq!(body["volumeIds"], json!(["vol-9"]));
        assert_eq!(body["sharedVolumeIds"], json!(["vol-s"]));
        assert_eq!(body["tags"], json!(["blue", "orgops:T:workspaces:ws-1"]));
        assert!(body.get("id").is_none());
    }

    #[test]
    fn graphs_rewrite_volume_files_and_are_found_again_by_tag() {
        let c = client();
        let mut ids = IdMap::default();
        ids.insert("workspaces", "ws-1".into(), "ws-9".into());
        ids.insert("volumes", "vol-1".into(), "vol-9".into());
        let g: Graph = serde_json::from_value(json!({
            "graphId": "g-1", "name": "G", "channelId": "ch-1", "tags": []
        }))
        .unwrap();
        let text =
            r#"{"nodes":{"a":{"values":{"File":"vol-1:/img/a.png","Url":"https://x.io/a"}}}}"#;
        let source = graph_object(g, "ws-1", text.into());
        let body = desired_copy(&GRAPHS, &source, &ctx(&ids, &c), Pass::First).unwrap();
        assert_eq!(body["workspaceId"], "ws-9");
        assert_eq!(body["channelId"], "ch-1");
        assert_eq!(
            body["graph"]["nodes"]["a"]["values"]["File"],
            "vol-9:/img/a.png"
        );
        assert_eq!(
            body["graph"]["nodes"]["a"]["values"]["Url"],
            "https://x.io/a"
        );
        // A copy made before a crash (its answer lost) is found by its tag: no second create.
        let mut copy = body.clone();
        copy["id"] = json!("g-77");
        let plan = plan_kind(
            &GRAPHS,
            std::slice::from_ref(&source),
            &[copy],
            &ctx(&ids, &c),
            Pass::First,
        );
        assert_eq!(
            plan[0].action,
            Action::InSync {
                target_id: "g-77".into()
            }
        );
        // A graph using a volume the template does not own waits, naming it.
        let g2: Graph =
            serde_json::from_value(json!({"graphId": "g-2", "name": "H", "channelId": "c"}))
                .unwrap();
        let foreign = graph_object(g2, "ws-1", r#"{"f":"vol-5:/x"}"#.into());
        let plan = plan_kind(&GRAPHS, &[foreign], &[], &ctx(&ids, &c), Pass::First);
        assert!(matches!(&plan[0].action, Action::Blocked(why) if why.contains("vol-5")));
        // Graph text that is not JSON still copies, as text.
        let g3: Graph = serde_json::from_value(json!({"graphId": "g-3"})).unwrap();
        assert_eq!(
            graph_object(g3, "w", "not json".into())["graph"],
            "not json"
        );
    }

    #[test]
    fn what_the_server_cannot_hold_or_normalises_is_not_written_every_pass() {
        // A null permission is not planned (editVolume reads null as unchanged).
        let volume = |permission: Value| -> Value {
            let v: Volume = serde_json::from_value(json!({
                "volumeId": "v1", "organizationId": "T", "name": "V", "permission": permission,
            }))
            .unwrap();
            let mut o = volume_object(v, "T");
            o.as_object_mut().unwrap().remove("id");
            o
        };
        assert!(volume(Value::Null).get("permission").is_none());
        assert_eq!(volume(json!("view"))["permission"], json!("view"));
        assert_eq!(
            crate::engine::copy::plan::diff(&VOLUMES, &volume(Value::Null), &volume(json!("view"))),
            None
        );
        // Rules from a YAML `|` block against a server that trims them.
        let want = desired("Acme", json!({"rules": "be nice\n"}));
        let seen = org_info(&org("Acme"), Some("be nice".into()), &LimitsSeen::Unread);
        assert_eq!(settings_patch(&want, &seen), None);
        // Roles are compared lowercased; an invitation without a role is reported, not redone.
        assert_eq!(
            observed_roles(Some(" Admin")),
            BTreeSet::from(["admin".to_string()])
        );
        assert!(observed_roles(None).is_empty() && observed_roles(Some("")).is_empty());
        assert!(role_unknown(None).is_some() && role_unknown(Some(" ")).is_some());
        assert_eq!(role_unknown(Some("member")), None);
    }

    #[test]
    fn shared_volumes_are_not_copied_and_rules_follow_their_workspace() {
        let c = client();
        let v: Volume = serde_json::from_value(
            json!({"volumeId": "vol-s", "organizationId": "X", "name": "S"}),
        )
        .unwrap();
        assert!(is_shared(&volume_object(v, "T")));
        let plan = plan_kind(
            &VOLUMES,
            &[json!({"id": "vol-s", "name": "S", "shared": true})],
            &[],
            &ctx(&IdMap::default(), &c),
            Pass::First,
        );
        assert!(plan.is_empty(), "shared volumes are skipped");
        let mut ids = IdMap::default();
        ids.insert("workspaces", "ws-1".into(), "ws-9".into());
        let source = json!({"id": "ws-1", "workspaceId": "ws-1", "rules": "r"});
        let targets = [
            json!({"id": "ws-8", "workspaceId": "ws-8", "rules": "r"}),
            json!({"id": "ws-9", "workspaceId": "ws-9", "rules": ""}),
        ];
        let plan = plan_kind(
            &WORKSPACE_RULES,
            &[source],
            &targets,
            &ctx(&ids, &c),
            Pass::First,
        );
        assert_eq!(
            plan[0].action,
            Action::Update {
                target_id: "ws-9".into(),
                patch: json!({"rules": "r"})
            }
        );
    }

    #[test]
    fn one_role_per_member() {
        let d = |roles: &[&str]| MemberDesired {
            org: "o".into(),
            email: "a@b.c".into(),
            first_name: None,
            last_name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scopes: None,
        };
        assert_eq!(one_role(&d(&["admin"])).unwrap(), "admin");
        assert!(one_role(&d(&["admin", "member"])).is_err());
        assert!(one_role(&d(&["owner"])).is_err());
        assert!(one_role(&d(&[])).is_err());
    }

    fn names(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn guest_places_follow_the_workspace_names() {
        let ws: Vec<(String, String)> = [("w1", "Alpha"), ("w2", "Beta"), ("w3", "Gamma")]
            .iter()
            .map(|(i, n)| (i.to_string(), n.to_string()))
            .collect();
        let plan =
            guest_plan("o1", &ws, &names(&["w1", "w3"]), &names(&["Alpha", "Beta"])).unwrap();
        assert_eq!(
            plan,
            GuestPlan {
                add: vec!["w2".into()],
                remove: vec!["w3".into()]
            }
        );
        let none = guest_plan("o1", &ws, &names(&["w1"]), &names(&["Alpha"])).unwrap();
        assert_eq!(none, GuestPlan::default(), "in sync: nothing to do");
        let all_out = guest_plan("o1", &ws, &names(&["w1", "w2"]), &BTreeSet::new()).unwrap();
        assert_eq!(all_out.remove, vec!["w1".to_string(), "w2".to_string()]);
        assert!(all_out.add.is_empty());
        // The unread marker is never a workspace name, so it can never be planned as one.
    }

    #[test]
    fn unknown_and_ambiguous_workspace_names_are_errors_naming_the_spec_and_org() {
        let ws: Vec<(String, String)> = [("w1", "Twin"), ("w2", "Twin"), ("w3", "Solo")]
            .iter()
            .map(|(i, n)| (i.to_string(), n.to_string()))
            .collect();
        let e = guest_plan("org-9", &ws, &BTreeSet::new(), &names(&["Nope"])).unwrap_err();
        assert_eq!(e.category(), "NotFound");
        let text = e.to_string();
        assert!(text.contains("spec.scopes") && text.contains("org-9") && text.contains("Nope"));
        let e = guest_plan("org-9", &ws, &BTreeSet::new(), &names(&["Twin"])).unwrap_err();
        assert_eq!(e.category(), "VendorRejected");
        assert!(e.to_string().contains("2 workspaces"), "{e}");
        assert!(!e.is_transient(), "no retry loop");
        let e = guests_not_served("org-9");
        assert_eq!(e.category(), "Unsupported");
        assert!(e.to_string().contains("remove spec.scopes"), "{e}");
    }

    #[test]
    fn scopes_are_the_names_of_the_workspaces_guested() {
        let seen = GuestsSeen::Served {
            workspaces: vec![("w1".into(), "Alpha".into()), ("w2".into(), "Beta".into())],
            places: names(&["w2"]),
        };
        assert_eq!(seen.scopes(), names(&["Beta"]));
        assert!(GuestsSeen::NotServed.scopes().is_empty());
    }

    #[test]
    fn writes_clear_text_with_empty_strings() {
        assert_eq!(write_text(&Value::Null), json!(""));
        assert_eq!(write_text(&json!("x")), json!("x"));
        assert_eq!(text(Some(String::new())), Value::Null);
    }
}
