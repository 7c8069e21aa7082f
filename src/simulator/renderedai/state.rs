//! The Rendered.ai simulator's state and the rules of every operation (design doc
//! `vendors/renderedai.md` §2, §3, §6), independent of HTTP and GraphQL: each root field is a
//! function of the caller and its coerced arguments, answering JSON that the executor projects.
//!
//! Store kinds (each owned by an organization id):
//!
//! | kind | id | value |
//! |---|---|---|
//! | `organizations` | organizationId | `{organizationId, name, expired, expirationDate, rules}` |
//! | `members` | `<orgId>/<userId>` (org member) or `<workspaceId>/<userId>` (3.3.4 guest) | a `Member` (guests: `organizationId` null) |
//! | `invitations` | invitationId | an `Invitation` |
//! | `workspaces` | workspaceId | a `Workspace` plus `channelIds`, `volumeIds`, `ganIds`, `mapIds`, `serviceIds`, `rules` |
//! | `channels`, `volumes`, `gan_models`, `annotation_maps`, `services` | their id | the type's fields; a channel with `shared: true` is visible to every org |
//! | `graphs` | graphId | a `Graph` plus `graph` (the JSON string `downloadGraph` answers) |
//! | `organization_limits` | `<orgId>/<setting>` | `{organizationId, setting, limit}` |
//! | `workspace_limits` | `<workspaceId>/<setting>` | `{workspaceId, setting, limit}` |
//! | `api_keys` | apiKeyId | `{apiKeyId, userId, name, scope, organizationId, workspaceId, createdAt, expiresAt}` (never the key) |
//! | `volume_data` | `<volumeId>/<key>` | `{volumeId, key, size, hash, updatedAt}`; the bytes beside the store ([`volume_data`](self::volume_data)) |
//!
//! Who may do what: callers see only the organizations they are members of (narrowed by an
//! org- or workspace-scoped API key); `role` is the caller's own; renaming an organization,
//! member and invitation changes, organization rules and limits need the org's `admin` role;
//! everything else needs membership (or, for a workspace, being its guest).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Map, Value, json};

mod volume_data;

pub use volume_data::{
    FILES_PATH, FileAnswer, MAX_FILE_BYTES, UPLOAD_PATH, VOLUME_DATA, VolumeFiles, md5_hex,
};

use super::graphql::{GqlError, OpKind};
use crate::simulator::kit::paging;
use crate::simulator::kit::{IdStyle, Store};

/// Organizations.
pub const ORGS: &str = "organizations";
/// Organization members and workspace guests.
pub const MEMBERS: &str = "members";
/// Pending invitations.
pub const INVITATIONS: &str = "invitations";
/// Workspaces.
pub const WORKSPACES: &str = "workspaces";
/// Channels.
pub const CHANNELS: &str = "channels";
/// Volumes.
pub const VOLUMES: &str = "volumes";
/// Graphs.
pub const GRAPHS: &str = "graphs";
/// GAN models.
pub const GAN_MODELS: &str = "gan_models";
/// Annotation maps.
pub const ANNOTATION_MAPS: &str = "annotation_maps";
/// Services.
pub const SERVICES: &str = "services";
/// Organization limits (3.3.4).
pub const ORG_LIMITS: &str = "organization_limits";
/// Workspace limits (3.3.4).
pub const WORKSPACE_LIMITS: &str = "workspace_limits";
/// API keys (metadata only).
pub const API_KEYS: &str = "api_keys";
/// Every kind.
pub const KINDS: &[&str] = &[
    ORGS,
    MEMBERS,
    INVITATIONS,
    WORKSPACES,
    CHANNELS,
    VOLUMES,
    GRAPHS,
    GAN_MODELS,
    ANNOTATION_MAPS,
    SERVICES,
    ORG_LIMITS,
    WORKSPACE_LIMITS,
    API_KEYS,
    VOLUME_DATA,
];

/// Organization limit settings (the ones the 3.3.4 notebook printed).
pub const ORG_SETTINGS: &[&str] = &[
    "Compute Time",
    "Dataset Storage",
    "Instances",
    "Managed Channels",
    "Managed Volumes",
    "Members",
    "Volume Storage",
    "Workspaces",
];
/// Workspace limit settings.
pub const WORKSPACE_SETTINGS: &[&str] = &["Datasets", "Graphs", "Members"];

/// Organization roles.
pub const ROLES: &[&str] = &["admin", "member"];

/// Most items one page holds (the SDK never asks for more).
pub const MAX_PAGE: usize = 100;

/// Root fields a caller without credentials may use.
const OPEN_FIELDS: &[&str] = &[
    "signIn",
    "getSDKCompatibility",
    "getSystemNotifications",
    "getSystemStatus",
];

/// A person with an account.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Firebase-style id (28 characters).
    pub user_id: String,
    /// E-mail, lower case.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Password for `signIn` (none: cannot sign in with one).
    pub password: Option<String>,
}

/// What an API key (or a signed-in session) may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything the user may reach.
    User,
    /// One organization.
    Organization(String),
    /// One workspace.
    Workspace(String),
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user_id: String,
    /// The user's e-mail.
    pub email: String,
    /// The credential's reach.
    pub scope: Scope,
    /// Whether the credential is a signed-in session (API keys may be made only then, as the
    /// SDK allows).
    pub session: bool,
}

/// Everything the simulator holds.
#[derive(Debug)]
pub struct State {
    /// Vendor objects.
    pub store: Store,
    /// Users by lower-case e-mail.
    pub users: BTreeMap<String, User>,
    /// Lifetime of `signIn` tokens (`None`: until the simulator stops).
    pub token_lifetime: Option<Duration>,
    /// Whether the 3.3.4 limits operations are served.
    pub limits_served: bool,
    /// Whether the 3.3.4 workspace guest flows (`workspaceId` on the member operations) are
    /// served.
    pub guests_served: bool,
    /// Volume files: their bytes, uploads in progress, URL signing.
    pub files: VolumeFiles,
    sessions: crate::simulator::kit::auth::TokenRegistry<String>,
    keys: HashMap<String, String>,
    rng: fastrand::Rng,
}

type Answer = Result<Value, GqlError>;

fn err(message: impl Into<String>) -> GqlError {
    GqlError::new(message)
}

/// Now, as the platform writes times (`2022-03-31T22:59:56.000Z`).
pub fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn s(args: &Map<String, Value>, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(str::to_string)
}

fn required(args: &Map<String, Value>, key: &str) -> Result<String, GqlError> {
    match s(args, key) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(err(format!("The argument {key} is required."))),
    }
}

fn list(args: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    args.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

fn page_limit(args: &Map<String, Value>) -> usize {
    match args.get("limit").and_then(Value::as_i64) {
        None => MAX_PAGE,
        Some(n) => usize::try_from(n).unwrap_or(0).min(MAX_PAGE),
    }
}

/// Items sorted by `key` (a stable order), the page after `cursor` (exclusive) of at most
/// `limit` items.
fn page(mut items: Vec<Value>, key: &str, args: &Map<String, Value>) -> Value {
    items.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
    let cursor = s(args, "cursor");
    let slice = paging::cursor(
        &items,
        |v| v[key].as_str().unwrap_or_default(),
        cursor.as_deref(),
        page_limit(args),
    );
    Value::Array(slice.to_vec())
}

fn name_filter(args: &Map<String, Value>) -> impl Fn(&Value) -> bool + use<> {
    let f = args.get("filters").cloned().unwrap_or(Value::Null);
    move |v: &Value| {
        let name_ok = f["name"].as_str().is_none_or(|n| {
            v["name"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .contains(&n.to_lowercase())
        });
        let tags_ok = f["tags"].as_array().is_none_or(|want| {
            want.is_empty()
                || v["tags"]
                    .as_array()
                    .is_some_and(|have| want.iter().any(|t| have.contains(t)))
        });
        name_ok && tags_ok
    }
}

fn member_key(scope_id: &str, user_id: &str) -> String {
    format!("{scope_id}/{user_id}")
}

impl State {
    /// An empty state; generated ids are reproducible from `id_seed` when given.
    pub fn new(id_seed: Option<u64>) -> Self {
        let seed = id_seed.unwrap_or_else(|| fastrand::u64(..));
        // The URL signing key is secret even when ids are reproducible.
        let files = VolumeFiles::new(&mut fastrand::Rng::new());
        Self {
            files,
            store: Store::with_seed(IdStyle::Uuid, seed),
            users: BTreeMap::new(),
            token_lifetime: Some(Duration::from_secs(24 * 3600)),
            limits_served: true,
            guests_served: true,
            sessions: Default::default(),
            keys: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed ^ 0x7e4d_e7ed_a1a1),
        }
    }

    /// Which root fields and root field arguments this server does not serve (see
    /// [`super::graphql::Schema::restricted`]).
    pub fn hides(&self, field: &str, arg: Option<&str>) -> bool {
        let limits = matches!(
            field,
            "getOrganizationLimits"
                | "setOrganizationLimits"
                | "getWorkspaceLimits"
                | "setWorkspaceLimits"
        );
        let guest_arg = matches!(
            (field, arg),
            (
                "getMembers" | "getInvitations" | "addMember" | "removeMember",
                Some("workspaceId")
            ) | ("removeMember", Some("invitationId"))
        );
        (limits && arg.is_none() && !self.limits_served) || (guest_arg && !self.guests_served)
    }

    fn random_chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n)
            .map(|_| alphabet[self.rng.usize(..alphabet.len())] as char)
            .collect()
    }

    // ---- users, sessions, keys (hand edits and authentication) ----

    /// Adds a user (a person who signed up); an existing e-mail keeps its id and gets the new
    /// name and password. Returns the user id. Not an API write.
    pub fn add_user(&mut self, email: &str, name: &str, password: Option<&str>) -> String {
        let email = email.trim().to_ascii_lowercase();
        if let Some(u) = self.users.get_mut(&email) {
            u.name = name.to_string();
            u.password = password.map(str::to_string);
            return u.user_id.clone();
        }
        let user_id = self.random_chars(
            28,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        );
        self.users.insert(
            email.clone(),
            User {
                user_id: user_id.clone(),
                email,
                name: name.to_string(),
                password: password.map(str::to_string),
            },
        );
        user_id
    }

    fn user_by_id(&self, user_id: &str) -> Option<&User> {
        self.users.values().find(|u| u.user_id == user_id)
    }

    /// Issues an API key for `email` (hand edit, or seeding): `secret` chosen by the caller or
    /// generated. Returns the key.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_api_key(
        &mut self,
        email: &str,
        name: &str,
        scope: Scope,
        expires_at: Option<&str>,
        secret: Option<&str>,
        counted: bool,
    ) -> Result<String, String> {
        let user = self
            .users
            .get(&email.to_ascii_lowercase())
            .ok_or_else(|| format!("no user {email}"))?
            .clone();
        let secret = match secret {
            Some(s) => s.to_string(),
            None => self.random_chars(40, b"0123456789abcdef"),
        };
        if self.keys.contains_key(&secret) {
            return Err("that key exists already".into());
        }
        let (scope_name, org, ws) = match &scope {
            Scope::User => ("user", None, None),
            Scope::Organization(o) => ("organization", Some(o.clone()), None),
            Scope::Workspace(w) => {
                let org = self
                    .store
                    .get(WORKSPACES, w)
                    .map(|r| r.org.clone())
                    .ok_or_else(|| format!("no workspace {w}"))?;
                ("workspace", Some(org), Some(w.clone()))
            }
        };
        let id = self.store.new_id();
        let value = json!({
            "apiKeyId": id, "userId": user.user_id, "name": name, "scope": scope_name,
            "organizationId": org, "workspaceId": ws,
            "createdAt": now_iso(), "expiresAt": expires_at,
        });
        let owner = org.clone().unwrap_or_default();
        if counted {
            self.store.create(API_KEYS, Some(id.clone()), &owner, value)
        } else {
            self.store
                .create_uncounted(API_KEYS, Some(id.clone()), &owner, value)
        }
        .map_err(|e| e.to_string())?;
        self.keys.insert(secret.clone(), id);
        Ok(secret)
    }

    /// Forgets every signed-in session (tests: every idtoken expires at once).
    pub fn expire_sessions(&mut self) {
        self.sessions.clear();
    }

    /// The caller a request's credentials stand for: an `apikey` header, or a session token
    /// (`Authorization: Bearer`, or 3.x's `idtoken` header) with its `uid` when sent. `None`:
    /// no credential, or one that is unknown, expired or does not match its `uid`.
    pub fn authenticate(
        &mut self,
        apikey: Option<&str>,
        bearer: Option<&str>,
        uid: Option<&str>,
    ) -> Option<Caller> {
        if let Some(k) = apikey {
            let id = self.keys.get(k)?;
            let rec = self.store.get(API_KEYS, id)?.value.clone();
            if let Some(exp) = rec["expiresAt"].as_str() {
                let expired = exp
                    .parse::<jiff::Timestamp>()
                    .map(|t| t <= jiff::Timestamp::now())
                    .unwrap_or(true);
                if expired {
                    return None;
                }
            }
            let user = self.user_by_id(rec["userId"].as_str()?)?.clone();
            let scope = match rec["scope"].as_str() {
                Some("organization") => Scope::Organization(rec["organizationId"].as_str()?.into()),
                Some("workspace") => Scope::Workspace(rec["workspaceId"].as_str()?.into()),
                _ => Scope::User,
            };
            return Some(Caller {
                user_id: user.user_id,
                email: user.email,
                scope,
                session: false,
            });
        }
        let token = bearer?;
        let user_id = self.sessions.lookup(token).ok()?.clone();
        if uid.is_some_and(|u| u != user_id) {
            return None;
        }
        let user = self.user_by_id(&user_id)?.clone();
        Some(Caller {
            user_id: user.user_id,
            email: user.email,
            scope: Scope::User,
            session: true,
        })
    }

    // ---- access ----

    fn org_role(&self, user_id: &str, org: &str) -> Option<String> {
        self.store
            .get(MEMBERS, &member_key(org, user_id))
            .filter(|r| r.value["workspaceId"].is_null())
            .and_then(|r| r.value["role"].as_str().map(str::to_string))
    }

    fn scope_allows_org(&self, caller: &Caller, org: &str) -> bool {
        match &caller.scope {
            Scope::User => true,
            Scope::Organization(o) => o == org,
            Scope::Workspace(w) => self.store.get(WORKSPACES, w).is_some_and(|r| r.org == org),
        }
    }

    /// The caller's role in `org`, if they may see it.
    fn role(&self, caller: &Caller, org: &str) -> Option<String> {
        if !self.store.contains(ORGS, org) || !self.scope_allows_org(caller, org) {
            return None;
        }
        self.org_role(&caller.user_id, org)
    }

    fn need_org(&self, caller: &Caller, org: &str, admin: bool) -> Result<String, GqlError> {
        // One message for "no such org" and "not yours": callers cannot probe for ids.
        let role = self
            .role(caller, org)
            .ok_or_else(|| err("Organization not found."))?;
        if admin && role != "admin" {
            return Err(err(
                "Permission denied: this needs the admin role in the organization.",
            ));
        }
        Ok(role)
    }

    fn visible_orgs(&self, caller: &Caller) -> Vec<String> {
        self.store
            .list(ORGS)
            .into_iter()
            .map(|(id, _)| id.to_string())
            .filter(|id| self.role(caller, id).is_some())
            .collect()
    }

    fn is_guest(&self, caller: &Caller, ws: &str) -> bool {
        self.store
            .contains(MEMBERS, &member_key(ws, &caller.user_id))
    }

    fn can_see_workspace(&self, caller: &Caller, ws: &str) -> bool {
        let Some(r) = self.store.get(WORKSPACES, ws) else {
            return false;
        };
        if let Scope::Workspace(w) = &caller.scope
            && w != ws
        {
            return false;
        }
        self.role(caller, &r.org).is_some()
            || (caller.scope == Scope::User && self.is_guest(caller, ws))
    }

    fn need_workspace(&self, caller: &Caller, ws: &str) -> Result<Value, GqlError> {
        if !self.can_see_workspace(caller, ws) {
            return Err(err("Workspace not found."));
        }
        self.store
            .get(WORKSPACES, ws)
            .map(|r| r.value.clone())
            .ok_or_else(|| err("Workspace not found."))
    }

    fn org_name(&self, org: &str) -> Value {
        self.store
            .get(ORGS, org)
            .map(|r| r.value["name"].clone())
            .unwrap_or(Value::Null)
    }

    fn with_org_name(&self, mut v: Value, org: &str) -> Value {
        v["organization"] = self.org_name(org);
        v
    }

    // ---- limits ----

    fn org_usage(&self, org: &str, setting: &str) -> f64 {
        let n = match setting {
            "Workspaces" => self.store.in_org(WORKSPACES, org).len(),
            "Members" => {
                self.store
                    .in_org(MEMBERS, org)
                    .iter()
                    .filter(|(_, r)| r.value["workspaceId"].is_null())
                    .count()
                    + self
                        .store
                        .in_org(INVITATIONS, org)
                        .iter()
                        .filter(|(_, r)| r.value["workspaceId"].is_null())
                        .count()
            }
            "Managed Volumes" => self.store.in_org(VOLUMES, org).len(),
            "Managed Channels" => self.store.in_org(CHANNELS, org).len(),
            _ => 0,
        };
        n as f64
    }

    fn workspace_usage(&self, ws: &str, setting: &str) -> f64 {
        let n = match setting {
            "Graphs" => self
                .store
                .list(GRAPHS)
                .iter()
                .filter(|(_, r)| r.value["workspaceId"] == ws)
                .count(),
            "Members" => self
                .store
                .list(MEMBERS)
                .iter()
                .filter(|(_, r)| r.value["workspaceId"] == ws)
                .count(),
            _ => 0,
        };
        n as f64
    }

    fn org_limit(&self, org: &str, setting: &str) -> Option<f64> {
        self.store
            .get(ORG_LIMITS, &member_key(org, setting))
            .and_then(|r| r.value["limit"].as_str()?.parse().ok())
    }

    /// Refuses a new `setting` item in `org` at its limit, with the platform's wording.
    fn check_org_limit(&self, org: &str, setting: &str) -> Result<(), GqlError> {
        match self.org_limit(org, setting) {
            Some(limit) if self.org_usage(org, setting) >= limit => Err(err(format!(
                "The {setting} limit has been reached by this organization"
            ))),
            _ => Ok(()),
        }
    }

    fn check_workspace_limit(&self, ws: &str, setting: &str) -> Result<(), GqlError> {
        let limit = self
            .store
            .get(WORKSPACE_LIMITS, &member_key(ws, setting))
            .and_then(|r| r.value["limit"].as_str()?.parse::<f64>().ok());
        match limit {
            Some(limit) if self.workspace_usage(ws, setting) >= limit => Err(err(format!(
                "The {setting} limit has been reached by this workspace"
            ))),
            _ => Ok(()),
        }
    }

    /// Sets an organization limit (seeding and `setOrganizationLimits`).
    pub fn put_org_limit(&mut self, org: &str, setting: &str, limit: i64, counted: bool) {
        let id = member_key(org, setting);
        let value = json!({"organizationId": org, "setting": setting, "limit": limit.to_string()});
        if self.store.contains(ORG_LIMITS, &id) {
            let f = |v: &mut Value| *v = value.clone();
            let _ = if counted {
                self.store.update(ORG_LIMITS, &id, f)
            } else {
                self.store.update_uncounted(ORG_LIMITS, &id, f)
            };
        } else if counted {
            let _ = self.store.create(ORG_LIMITS, Some(id), org, value);
        } else {
            let _ = self
                .store
                .create_uncounted(ORG_LIMITS, Some(id), org, value);
        }
    }

    /// Sets a workspace limit (seeding and `setWorkspaceLimits`).
    pub fn put_workspace_limit(&mut self, ws: &str, setting: &str, limit: i64, counted: bool) {
        let Some(org) = self.store.get(WORKSPACES, ws).map(|r| r.org.clone()) else {
            return;
        };
        let id = member_key(ws, setting);
        let value = json!({"workspaceId": ws, "setting": setting, "limit": limit.to_string()});
        if self.store.contains(WORKSPACE_LIMITS, &id) {
            let f = |v: &mut Value| *v = value.clone();
            let _ = if counted {
                self.store.update(WORKSPACE_LIMITS, &id, f)
            } else {
                self.store.update_uncounted(WORKSPACE_LIMITS, &id, f)
            };
        } else if counted {
            let _ = self.store.create(WORKSPACE_LIMITS, Some(id), &org, value);
        } else {
            let _ = self
                .store
                .create_uncounted(WORKSPACE_LIMITS, Some(id), &org, value);
        }
    }

    // ---- members (hand edits) ----

    /// `email` joins `org` with `role` directly (someone added in the web UI); a person
    /// without an account gets one. Not an API write.
    pub fn join_org(&mut self, org: &str, email: &str, role: &str) -> Result<(), String> {
        if !self.store.contains(ORGS, org) {
            return Err(format!("no organization {org}"));
        }
        if !ROLES.contains(&role) {
            return Err(format!("role must be one of {ROLES:?}"));
        }
        let email = email.trim().to_ascii_lowercase();
        let user = match self.users.get(&email) {
            Some(u) => u.clone(),
            None => {
                let name = email.split('@').next().unwrap_or_default().to_string();
                self.add_user(&email, &name, None);
                self.users[&email].clone()
            }
        };
        let id = member_key(org, &user.user_id);
        let value = json!({
            "organizationId": org, "workspaceId": null, "userId": user.user_id,
            "email": user.email, "name": user.name, "role": role,
        });
        if self.store.contains(MEMBERS, &id) {
            self.store
                .update_uncounted(MEMBERS, &id, |v| *v = value)
                .map_err(|e| e.to_string())?;
        } else {
            self.store
                .create_uncounted(MEMBERS, Some(id), org, value)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The person invited as `email` to `scope` (an organization, or a workspace for 3.3.4
    /// guest invitations) signs up and accepts: the invitation becomes a membership. Not an
    /// API write.
    pub fn accept_invitation(&mut self, scope: &str, email: &str) -> Result<(), String> {
        let email = email.trim().to_ascii_lowercase();
        let (id, inv) = self
            .store
            .find(INVITATIONS, |_, r| {
                r.value["email"] == email.as_str()
                    && (r.value["organizationId"] == scope || r.value["workspaceId"] == scope)
            })
            .map(|(id, r)| (id.to_string(), r.clone()))
            .ok_or_else(|| format!("no invitation of {email} to {scope}"))?;
        if !self.users.contains_key(&email) {
            let name = email.split('@').next().unwrap_or_default().to_string();
            self.add_user(&email, &name, None);
        }
        let user = self.users[&email].clone();
        let role = inv.value["role"].as_str().unwrap_or("member").to_string();
        self.store
            .delete_where_uncounted(INVITATIONS, |i, _| i == id);
        if let Some(ws) = inv.value["workspaceId"].as_str() {
            let value = json!({
                "organizationId": null, "workspaceId": ws, "userId": user.user_id,
                "email": user.email, "name": user.name, "role": role,
            });
            self.store
                .create_uncounted(
                    MEMBERS,
                    Some(member_key(ws, &user.user_id)),
                    &inv.org,
                    value,
                )
                .map_err(|e| e.to_string())?;
            Ok(())
        } else {
            self.join_org(&inv.org, &email, &role)
        }
    }

    // ---- the API ----

    /// Answers root field `field` of a `kind` operation for `caller`.
    pub fn resolve(
        &mut self,
        caller: Option<&Caller>,
        kind: OpKind,
        field: &str,
        args: &Map<String, Value>,
    ) -> Answer {
        // Every mutation is a write request, except a log-in and downloadGraph, a read the
        // platform happens to serve as a mutation (a re-apply that compares graphs writes
        // nothing).
        if kind == OpKind::Mutation && !matches!(field, "signIn" | "downloadGraph") {
            self.store.note_write_request();
        }
        if OPEN_FIELDS.contains(&field) {
            return self.open(field, args);
        }
        let Some(c) = caller else {
            return Err(err("Unauthorized"));
        };
        let c = c.clone();
        match field {
            "getAPIKeyContext" => self.api_key_context(&c, args),
            "getAPIKeys" => self.api_keys(&c, args),
            "getCurrentUser" => {
                let u = self
                    .user_by_id(&c.user_id)
                    .ok_or_else(|| err("Unauthorized"))?;
                Ok(json!({"userId": u.user_id, "name": u.name, "email": u.email}))
            }
            "getOrganizations" => self.get_organizations(&c, args),
            "getMembers" => self.get_members(&c, args),
            "getInvitations" => self.get_invitations(&c, args),
            "getWorkspaces" => self.get_workspaces(&c, args),
            "getChannels" => self.get_channels(&c, args),
            "getVolumes" => self.get_owned(&c, args, VOLUMES, "volumeId", "volumeIds"),
            "getGANModels" => self.get_owned(&c, args, GAN_MODELS, "modelId", "ganIds"),
            "getAnnotationMaps" => self.get_owned(&c, args, ANNOTATION_MAPS, "mapId", "mapIds"),
            "getServices" => self.get_owned(&c, args, SERVICES, "serviceId", "serviceIds"),
            "getGraphs" => self.get_graphs(&c, args),
            "getDefaultGraph" => self.default_graph(&c, args),
            "getOrganizationRules" => {
                let org = required(args, "organizationId")?;
                self.need_org(&c, &org, false)?;
                Ok(self
                    .store
                    .get(ORGS, &org)
                    .map(|r| r.value["rules"].clone())
                    .unwrap_or_default())
            }
            "getWorkspaceRules" => {
                let ws = self.need_workspace(&c, &required(args, "workspaceId")?)?;
                Ok(ws["rules"].clone())
            }
            "getOrganizationLimits" => self.get_org_limits(&c, args),
            "getWorkspaceLimits" => self.get_workspace_limits(&c, args),
            "createAPIKey" => self.create_api_key(&c, args),
            "deleteAPIKey" => self.delete_api_key(&c, args),
            "editOrganization" => self.edit_organization(&c, args),
            "addMember" => self.add_member(&c, args),
            "editMember" => self.edit_member(&c, args),
            "removeMember" => self.remove_member(&c, args),
            "createWorkspace" => self.create_workspace(&c, args),
            "editWorkspace" => self.edit_workspace(&c, args),
            "deleteWorkspace" => self.delete_workspace(&c, args),
            "createChannel" => self.create_channel(&c, args),
            "createVolume" => self.create_volume(&c, args),
            "deleteVolume" => self.delete_volume(&c, args),
            "editVolume" => self.edit_volume(&c, args),
            "addWorkspaceVolumes" => self.workspace_volumes(&c, args, true),
            "removeWorkspaceVolumes" => self.workspace_volumes(&c, args, false),
            "createGraph" => self.create_graph(&c, args),
            "deleteGraph" => self.delete_graph(&c, args),
            "getVolumeData" => self.get_volume_data(&c, args),
            "uploadVolumeData" => self.upload_volume_data(&c, args),
            "uploadVolumeDataFinalizer" => self.finalize_volume_data(&c, args),
            "deleteVolumeData" => self.delete_volume_data(&c, args),
            "downloadGraph" => {
                self.need_workspace(&c, &required(args, "workspaceId")?)?;
                let ws = required(args, "workspaceId")?;
                let id = required(args, "graphId")?;
                self.store
                    .get(GRAPHS, &id)
                    .filter(|r| r.value["workspaceId"] == ws.as_str())
                    .map(|r| r.value["graph"].clone())
                    .ok_or_else(|| err("Graph not found."))
            }
            "editOrganizationRules" => {
                let org = required(args, "organizationId")?;
                self.need_org(&c, &org, true)?;
                let rules =
                    s(args, "rules").ok_or_else(|| err("The argument rules is required."))?;
                self.store
                    .update(ORGS, &org, |v| v["rules"] = json!(rules))
                    .map_err(|_| err("Organization not found."))?;
                Ok(json!(true))
            }
            "editWorkspaceRules" => {
                let ws = required(args, "workspaceId")?;
                self.need_workspace(&c, &ws)?;
                let rules =
                    s(args, "rules").ok_or_else(|| err("The argument rules is required."))?;
                let by = c.email.clone();
                self.store
                    .update(WORKSPACES, &ws, |v| {
                        v["rules"] = json!(rules);
                        v["updatedAt"] = json!(now_iso());
                        v["updatedBy"] = json!(by);
                    })
                    .map_err(|_| err("Workspace not found."))?;
                Ok(json!(true))
            }
            "setOrganizationLimits" => {
                let org = required(args, "organizationId")?;
                self.need_org(&c, &org, true)?;
                let (setting, limit) = self.limit_args(args, ORG_SETTINGS)?;
                self.put_org_limit(&org, &setting, limit, true);
                Ok(json!(true))
            }
            "setWorkspaceLimits" => {
                let ws = required(args, "workspaceId")?;
                let w = self.need_workspace(&c, &ws)?;
                self.need_org(&c, w["organizationId"].as_str().unwrap_or_default(), true)?;
                let (setting, limit) = self.limit_args(args, WORKSPACE_SETTINGS)?;
                self.put_workspace_limit(&ws, &setting, limit, true);
                Ok(json!(true))
            }
            other => Err(err(format!(
                "The field {other} is not implemented by the simulator."
            ))),
        }
    }

    fn open(&mut self, field: &str, args: &Map<String, Value>) -> Answer {
        match field {
            "signIn" => {
                let email = s(args, "email")
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                let password = s(args, "password").unwrap_or_default();
                // One message whatever was wrong, and neither value in it.
                let user = self
                    .users
                    .get(&email)
                    .filter(|u| u.password.as_deref().is_some_and(|p| p == password))
                    .cloned()
                    .ok_or_else(|| err("Invalid email or password."))?;
                let token = self
                    .sessions
                    .issue(user.user_id.clone(), self.token_lifetime);
                let expires = self
                    .token_lifetime
                    .map(|l| l.as_secs())
                    .unwrap_or(10 * 365 * 24 * 3600);
                Ok(json!({"uid": user.user_id, "idtoken": token, "expires": expires}))
            }
            "getSDKCompatibility" => {
                let version = s(args, "anatools").unwrap_or_else(|| "6.1.2".into());
                Ok(json!({"version": version, "message": "This version of anatools is supported."}))
            }
            "getSystemNotifications" => Ok(json!({
                "notificationId": "simulator",
                "message": "Rendered.ai simulator: no notifications."
            })),
            _ => Ok(json!([{
                "serviceId": "api", "serviceName": "Platform API",
                "description": "The GraphQL API", "status": "Operational", "type": "api",
                "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": now_iso(),
            }])),
        }
    }

    fn limit_args(
        &self,
        args: &Map<String, Value>,
        known: &[&str],
    ) -> Result<(String, i64), GqlError> {
        let setting = required(args, "setting")?;
        let setting = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&setting))
            .ok_or_else(|| {
                err(format!(
                    "Unknown limit setting; one of: {}.",
                    known.join(", ")
                ))
            })?
            .to_string();
        let limit = args
            .get("limit")
            .and_then(Value::as_i64)
            .ok_or_else(|| err("The argument limit is required."))?;
        if limit < 0 {
            return Err(err("A limit cannot be negative."));
        }
        Ok((setting, limit))
    }

    fn api_key_view(v: &Value) -> Value {
        json!({
            "name": v["name"], "scope": v["scope"], "organizationId": v["organizationId"],
            "workspaceId": v["workspaceId"], "createdAt": v["createdAt"], "expiresAt": v["expiresAt"],
        })
    }

    fn api_key_context(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let key = s(args, "apiKey").unwrap_or_default();
        self.keys
            .get(&key)
            .and_then(|id| self.store.get(API_KEYS, id))
            .filter(|r| r.value["userId"] == c.user_id.as_str())
            .map(|r| Self::api_key_view(&r.value))
            .ok_or_else(|| err("Invalid API key."))
    }

    fn api_keys(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let by_key = s(args, "apiKey").map(|k| self.keys.get(&k).cloned().unwrap_or_default());
        let name = s(args, "name");
        Ok(Value::Array(
            self.store
                .list(API_KEYS)
                .into_iter()
                .filter(|(id, r)| {
                    r.value["userId"] == c.user_id.as_str()
                        && by_key.as_deref().is_none_or(|k| k == *id)
                        && name.as_deref().is_none_or(|n| r.value["name"] == n)
                })
                .map(|(_, r)| Self::api_key_view(&r.value))
                .collect(),
        ))
    }

    fn create_api_key(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        if c.scope != Scope::User {
            return Err(err(
                "Permission denied: a scoped API key cannot create API keys.",
            ));
        }
        let name = required(args, "name")?;
        if self
            .store
            .find(API_KEYS, |_, r| {
                r.value["userId"] == c.user_id.as_str() && r.value["name"] == name.as_str()
            })
            .is_some()
        {
            return Err(err("An API key with this name already exists."));
        }
        let scope = match s(args, "scope").as_deref().unwrap_or("user") {
            "user" => Scope::User,
            "organization" => {
                let org = required(args, "organizationId")?;
                self.need_org(c, &org, false)?;
                Scope::Organization(org)
            }
            "workspace" => {
                let ws = required(args, "workspaceId")?;
                self.need_workspace(c, &ws)?;
                Scope::Workspace(ws)
            }
            _ => return Err(err("The scope must be user, organization or workspace.")),
        };
        let expires = match s(args, "expiresAt") {
            None => None,
            Some(e) => {
                let t: jiff::Timestamp = e
                    .parse()
                    .map_err(|_| err("expiresAt must be an ISO 8601 time."))?;
                Some(t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            }
        };
        self.issue_api_key(&c.email, &name, scope, expires.as_deref(), None, true)
            .map(Value::String)
            .map_err(|_| err("The API key could not be created."))
    }

    fn delete_api_key(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let name = required(args, "name")?;
        let id = self
            .store
            .find(API_KEYS, |_, r| {
                r.value["userId"] == c.user_id.as_str() && r.value["name"] == name.as_str()
            })
            .map(|(id, _)| id.to_string())
            .ok_or_else(|| err("API key not found."))?;
        self.store.delete(API_KEYS, &id);
        self.keys.retain(|_, v| *v != id);
        Ok(json!(true))
    }

    fn get_organizations(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let only = s(args, "organizationId");
        let items = self
            .visible_orgs(c)
            .into_iter()
            .filter(|o| only.as_deref().is_none_or(|x| x == o))
            .filter_map(|o| {
                let r = self.store.get(ORGS, &o)?;
                Some(json!({
                    "organizationId": o, "name": r.value["name"], "role": self.role(c, &o),
                    "expired": r.value["expired"], "expirationDate": r.value["expirationDate"],
                }))
            })
            .collect();
        Ok(page(items, "organizationId", args))
    }

    /// Where a member operation applies: an organization, or (3.3.4) a workspace's guests.
    fn member_scope(
        &self,
        c: &Caller,
        args: &Map<String, Value>,
        admin: bool,
    ) -> Result<(String, Option<String>), GqlError> {
        match (s(args, "organizationId"), s(args, "workspaceId")) {
            (_, Some(ws)) => {
                let w = self.need_workspace(c, &ws)?;
                let org = w["organizationId"].as_str().unwrap_or_default().to_string();
                self.need_org(c, &org, admin)?;
                Ok((org, Some(ws)))
            }
            (Some(org), None) => {
                self.need_org(c, &org, admin)?;
                Ok((org, None))
            }
            (None, None) => Err(err("The argument organizationId is required.")),
        }
    }

    fn get_members(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let (org, ws) = self.member_scope(c, args, false)?;
        let items = self
            .store
            .in_org(MEMBERS, &org)
            .into_iter()
            .filter(|(_, r)| match &ws {
                None => r.value["workspaceId"].is_null(),
                Some(w) => r.value["workspaceId"] == w.as_str(),
            })
            .map(|(_, r)| r.value.clone())
            .collect();
        Ok(page(items, "userId", args))
    }

    fn get_invitations(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let (org, ws) = self.member_scope(c, args, false)?;
        let items = self
            .store
            .in_org(INVITATIONS, &org)
            .into_iter()
            .filter(|(_, r)| match &ws {
                None => r.value["workspaceId"].is_null(),
                Some(w) => r.value["workspaceId"] == w.as_str(),
            })
            .map(|(_, r)| r.value.clone())
            .collect();
        Ok(page(items, "email", args))
    }

    fn add_member(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let (org, ws) = self.member_scope(c, args, true)?;
        let email = required(args, "email")?.trim().to_ascii_lowercase();
        if !email.contains('@') || email.len() > 254 {
            return Err(err("The email address is not valid."));
        }
        let role = match (&ws, s(args, "role")) {
            (Some(_), None) => "guest".to_string(),
            (_, Some(r)) if ROLES.contains(&r.as_str()) || (ws.is_some() && r == "guest") => r,
            (None, None) => "member".to_string(),
            _ => return Err(err("The role must be admin or member.")),
        };
        let scope_id = ws.clone().unwrap_or_else(|| org.clone());
        let user = self.users.get(&email).cloned();
        if let Some(u) = &user
            && self
                .store
                .contains(MEMBERS, &member_key(&scope_id, &u.user_id))
        {
            return Err(err(if ws.is_some() {
                "The user is already a guest of this workspace."
            } else {
                "The user is already a member of this organization."
            }));
        }
        let invited = self.store.find(INVITATIONS, |_, r| {
            r.value["email"] == email.as_str()
                && match &ws {
                    None => {
                        r.value["organizationId"] == org.as_str()
                            && r.value["workspaceId"].is_null()
                    }
                    Some(w) => r.value["workspaceId"] == w.as_str(),
                }
        });
        if invited.is_some() {
            return Err(err("An invitation has already been sent to this email."));
        }
        match &ws {
            None => self.check_org_limit(&org, "Members")?,
            Some(w) => self.check_workspace_limit(w, "Members")?,
        }
        let now = now_iso();
        match user {
            Some(u) => {
                let value = json!({
                    "organizationId": if ws.is_some() { Value::Null } else { json!(org) },
                    "workspaceId": ws, "userId": u.user_id, "email": u.email,
                    "name": u.name, "role": role,
                });
                self.store
                    .create(
                        MEMBERS,
                        Some(member_key(&scope_id, &u.user_id)),
                        &org,
                        value,
                    )
                    .map_err(|_| err("The user is already a member."))?;
            }
            None => {
                let id = self.store.new_id();
                let value = json!({
                    "invitationId": id, "email": email,
                    "organizationId": if ws.is_some() { Value::Null } else { json!(org) },
                    "workspaceId": ws, "role": role, "timestamp": now,
                    "createdAt": now, "updatedAt": now,
                });
                self.store
                    .create(INVITATIONS, Some(id), &org, value)
                    .map_err(|_| err("The invitation could not be created."))?;
            }
        }
        Ok(json!(true))
    }

    fn admins_left(&self, org: &str, without: &str) -> usize {
        self.store
            .in_org(MEMBERS, org)
            .iter()
            .filter(|(id, r)| {
                *id != without && r.value["workspaceId"].is_null() && r.value["role"] == "admin"
            })
            .count()
    }

    fn edit_member(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, true)?;
        let email = required(args, "email")?.trim().to_ascii_lowercase();
        let role = required(args, "role")?;
        if !ROLES.contains(&role.as_str()) {
            return Err(err("The role must be admin or member."));
        }
        let id = self
            .users
            .get(&email)
            .map(|u| member_key(&org, &u.user_id))
            .filter(|id| self.store.contains(MEMBERS, id))
            .ok_or_else(|| err("The user is not a member of this organization."))?;
        if role != "admin" && self.admins_left(&org, &id) == 0 {
            return Err(err("An organization needs at least one admin."));
        }
        self.store
            .update(MEMBERS, &id, |v| v["role"] = json!(role))
            .map_err(|_| err("The user is not a member of this organization."))?;
        Ok(json!(true))
    }

    fn remove_member(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let (org, ws) = self.member_scope(c, args, true)?;
        let email = s(args, "email").map(|e| e.trim().to_ascii_lowercase());
        if let Some(inv) = s(args, "invitationId") {
            let found = self.store.get(INVITATIONS, &inv).is_some_and(|r| {
                r.org == org && email.as_deref().is_none_or(|e| r.value["email"] == e)
            });
            if !found {
                return Err(err("Invitation not found."));
            }
            self.store.delete(INVITATIONS, &inv);
            return Ok(json!(true));
        }
        let email = email.ok_or_else(|| err("The argument email is required."))?;
        // A pending invitation goes first: remove_organization_invitation sends this same
        // mutation (design doc §2.2).
        let inv = self
            .store
            .find(INVITATIONS, |_, r| {
                r.value["email"] == email.as_str()
                    && match &ws {
                        None => {
                            r.value["organizationId"] == org.as_str()
                                && r.value["workspaceId"].is_null()
                        }
                        Some(w) => r.value["workspaceId"] == w.as_str(),
                    }
            })
            .map(|(id, _)| id.to_string());
        if let Some(id) = inv {
            self.store.delete(INVITATIONS, &id);
            return Ok(json!(true));
        }
        let scope_id = ws.clone().unwrap_or_else(|| org.clone());
        let id = self
            .users
            .get(&email)
            .map(|u| member_key(&scope_id, &u.user_id))
            .filter(|id| self.store.contains(MEMBERS, id))
            .ok_or_else(|| err("No member or invitation with this email."))?;
        if ws.is_none()
            && self
                .store
                .get(MEMBERS, &id)
                .is_some_and(|r| r.value["role"] == "admin")
            && self.admins_left(&org, &id) == 0
        {
            return Err(err("An organization needs at least one admin."));
        }
        self.store.delete(MEMBERS, &id);
        if ws.is_none() {
            // Leaving the org ends the person's guest places in its workspaces too.
            let user_id = id.rsplit('/').next().unwrap_or_default().to_string();
            self.store.delete_where_uncounted(MEMBERS, |_, r| {
                r.org == org && r.value["userId"] == user_id.as_str()
            });
        }
        Ok(json!(true))
    }

    fn edit_organization(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, true)?;
        let name = required(args, "name")?;
        if name.chars().count() > 256 {
            return Err(err("The name is too long."));
        }
        self.store
            .update(ORGS, &org, |v| v["name"] = json!(name.trim()))
            .map_err(|_| err("Organization not found."))?;
        Ok(json!(true))
    }

    fn render_workspace(&self, v: &Value) -> Value {
        let org = v["organizationId"].as_str().unwrap_or_default().to_string();
        self.with_org_name(v.clone(), &org)
    }

    fn get_workspaces(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = s(args, "organizationId");
        let ws = s(args, "workspaceId");
        let keep = name_filter(args);
        let items = self
            .store
            .list(WORKSPACES)
            .into_iter()
            .filter(|(id, r)| {
                self.can_see_workspace(c, id)
                    && org.as_deref().is_none_or(|o| r.org == o)
                    && ws.as_deref().is_none_or(|w| w == *id)
                    && keep(&r.value)
            })
            .map(|(_, r)| self.render_workspace(&r.value))
            .collect();
        Ok(page(items, "workspaceId", args))
    }

    /// Whether `org` sees channel `id` (its own, or one shared with every org).
    fn channel_visible(&self, org: &str, id: &str) -> bool {
        self.store
            .get(CHANNELS, id)
            .is_some_and(|r| r.org == org || r.value["shared"] == true)
    }

    fn get_channels(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let keep = name_filter(args);
        let only = s(args, "channelId");
        let ids: Vec<String> = match (s(args, "organizationId"), s(args, "workspaceId")) {
            (_, Some(ws)) => match self.need_workspace(c, &ws) {
                Ok(w) => list(
                    &Map::from_iter([("x".to_string(), w["channelIds"].clone())]),
                    "x",
                )
                .unwrap_or_default(),
                Err(_) => vec![],
            },
            (Some(org), None) => {
                if self.role(c, &org).is_none() {
                    vec![]
                } else {
                    self.store
                        .list(CHANNELS)
                        .into_iter()
                        .filter(|(id, _)| self.channel_visible(&org, id))
                        .map(|(id, _)| id.to_string())
                        .collect()
                }
            }
            (None, None) => {
                let orgs = self.visible_orgs(c);
                self.store
                    .list(CHANNELS)
                    .into_iter()
                    .filter(|(id, _)| orgs.iter().any(|o| self.channel_visible(o, id)))
                    .map(|(id, _)| id.to_string())
                    .collect()
            }
        };
        let items = ids
            .iter()
            .filter(|id| only.as_deref().is_none_or(|o| o == id.as_str()))
            .filter_map(|id| self.store.get(CHANNELS, id))
            .filter(|r| keep(&r.value))
            .map(|r| self.with_org_name(r.value.clone(), &r.org))
            .collect();
        Ok(page(items, "channelId", args))
    }

    /// Listing of an org-owned kind, by organization (what it owns), by workspace (what the
    /// workspace references in `ws_list`) or across the caller's organizations.
    fn get_owned(
        &self,
        c: &Caller,
        args: &Map<String, Value>,
        kind: &str,
        id_key: &str,
        ws_list: &str,
    ) -> Answer {
        let keep = name_filter(args);
        let only = s(args, id_key);
        let records: Vec<(String, Value)> =
            match (s(args, "organizationId"), s(args, "workspaceId")) {
                (_, Some(ws)) => match self.need_workspace(c, &ws) {
                    Ok(w) => w[ws_list]
                        .as_array()
                        .map(|ids| {
                            ids.iter()
                                .filter_map(Value::as_str)
                                .filter_map(|id| self.store.get(kind, id))
                                .map(|r| (r.org.clone(), r.value.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    Err(_) => vec![],
                },
                (Some(org), None) => {
                    if self.role(c, &org).is_none() {
                        vec![]
                    } else {
                        self.store
                            .in_org(kind, &org)
                            .into_iter()
                            .map(|(_, r)| (r.org.clone(), r.value.clone()))
                            .collect()
                    }
                }
                (None, None) => {
                    let orgs = self.visible_orgs(c);
                    self.store
                        .list(kind)
                        .into_iter()
                        .filter(|(_, r)| orgs.contains(&r.org))
                        .map(|(_, r)| (r.org.clone(), r.value.clone()))
                        .collect()
                }
            };
        let items = records
            .into_iter()
            .filter(|(_, v)| only.as_deref().is_none_or(|o| v[id_key] == o) && keep(v))
            .map(|(org, v)| self.with_org_name(v, &org))
            .collect();
        Ok(page(items, id_key, args))
    }

    fn get_graphs(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let ws = required(args, "workspaceId")?;
        if self.need_workspace(c, &ws).is_err() {
            return Ok(json!([]));
        }
        let keep = name_filter(args);
        let only = s(args, "graphId");
        // `staged: false` leaves staged graphs out; true (or null) includes them. The SDK's
        // docstring says "true: only staged", but its own download_graph looks any graph up
        // with the API default `staged: true`, which only this reading answers (design doc §8
        // leaves it open).
        let unstaged_only = args.get("staged").and_then(Value::as_bool) == Some(false);
        let items = self
            .store
            .list(GRAPHS)
            .into_iter()
            .filter(|(id, r)| {
                r.value["workspaceId"] == ws.as_str()
                    && only.as_deref().is_none_or(|o| o == *id)
                    && (!unstaged_only || r.value["staged"] != true)
                    && keep(&r.value)
            })
            .map(|(_, r)| r.value.clone())
            .collect();
        Ok(page(items, "graphId", args))
    }

    fn default_graph(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let id = required(args, "channelId")?;
        let orgs = self.visible_orgs(c);
        if !orgs.iter().any(|o| self.channel_visible(o, &id)) {
            return Err(err("Channel not found."));
        }
        Ok(json!(
            json!({"version": 2, "nodes": {}, "links": {}}).to_string()
        ))
    }

    fn get_org_limits(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, false)?;
        let setting = s(args, "setting");
        Ok(Value::Array(
            self.store
                .in_org(ORG_LIMITS, &org)
                .into_iter()
                .filter(|(_, r)| setting.as_deref().is_none_or(|st| r.value["setting"] == st))
                .map(|(_, r)| {
                    let mut v = r.value.clone();
                    v["usage"] = json!(
                        self.org_usage(&org, r.value["setting"].as_str().unwrap_or_default())
                    );
                    v
                })
                .collect(),
        ))
    }

    fn get_workspace_limits(&self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let ws = required(args, "workspaceId")?;
        self.need_workspace(c, &ws)?;
        let setting = s(args, "setting");
        Ok(Value::Array(
            self.store
                .list(WORKSPACE_LIMITS)
                .into_iter()
                .filter(|(_, r)| {
                    r.value["workspaceId"] == ws.as_str()
                        && setting.as_deref().is_none_or(|st| r.value["setting"] == st)
                })
                .map(|(_, r)| {
                    let mut v = r.value.clone();
                    v["usage"] = json!(
                        self.workspace_usage(&ws, r.value["setting"].as_str().unwrap_or_default())
                    );
                    v
                })
                .collect(),
        ))
    }

    fn check_ids(&self, org: &str, kind: &str, ids: &[String], what: &str) -> Result<(), GqlError> {
        for id in ids {
            let ok = if kind == CHANNELS {
                self.channel_visible(org, id)
            } else {
                self.store.get(kind, id).is_some_and(|r| r.org == org)
            };
            if !ok {
                return Err(err(format!("{what} not found.")));
            }
        }
        Ok(())
    }

    /// Creates a workspace (the API's `createWorkspace`, and seeding). Returns its id.
    pub fn create_workspace(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, false)?;
        let name = required(args, "name")?;
        if s(args, "code").is_some_and(|code| !code.is_empty()) {
            return Err(err("The content code is not valid."));
        }
        let channels = list(args, "channelIds").unwrap_or_default();
        let volumes = list(args, "volumeIds").unwrap_or_default();
        self.check_ids(&org, CHANNELS, &channels, "Channel")?;
        self.check_ids(&org, VOLUMES, &volumes, "Volume")?;
        self.check_org_limit(&org, "Workspaces")?;
        let id = self.store.new_id();
        let now = now_iso();
        let value = json!({
            "workspaceId": id, "name": name.trim(), "description": s(args, "description").unwrap_or_default(),
            "objective": s(args, "objective").unwrap_or_default(), "organizationId": org,
            "status": "ready", "tags": list(args, "tags").unwrap_or_default(),
            "createdAt": now, "createdBy": c.email, "updatedAt": now, "updatedBy": c.email,
            "channelIds": channels, "volumeIds": volumes, "ganIds": [], "mapIds": [],
            "serviceIds": [], "rules": "",
        });
        self.store
            .create(WORKSPACES, Some(id.clone()), &org, value)
            .map_err(|_| err("The workspace could not be created."))?;
        Ok(json!(id))
    }

    fn edit_workspace(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let ws = required(args, "workspaceId")?;
        let w = self.need_workspace(c, &ws)?;
        let org = w["organizationId"].as_str().unwrap_or_default().to_string();
        if self.role(c, &org).is_none() {
            return Err(err("Permission denied: guests cannot edit a workspace."));
        }
        let lists = [
            ("channelIds", CHANNELS, "Channel"),
            ("volumeIds", VOLUMES, "Volume"),
            ("ganIds", GAN_MODELS, "GAN model"),
            ("mapIds", ANNOTATION_MAPS, "Annotation map"),
        ];
        for (key, kind, what) in lists {
            if let Some(ids) = list(args, key) {
                self.check_ids(&org, kind, &ids, what)?;
            }
        }
        if args
            .get("name")
            .is_some_and(|n| n.as_str().is_some_and(|n| n.trim().is_empty()))
        {
            return Err(err("The name cannot be empty."));
        }
        let by = c.email.clone();
        let args = args.clone();
        self.store
            .update(WORKSPACES, &ws, |v| {
                // Null means unchanged (the SDK sends every argument); lists replace.
                for key in [
                    "name",
                    "description",
                    "objective",
                    "tags",
                    "channelIds",
                    "volumeIds",
                    "ganIds",
                    "mapIds",
                ] {
                    if let Some(x) = args.get(key).filter(|x| !x.is_null()) {
                        v[key] = x.clone();
                    }
                }
                v["updatedAt"] = json!(now_iso());
                v["updatedBy"] = json!(by);
            })
            .map_err(|_| err("Workspace not found."))?;
        Ok(json!(true))
    }

    fn delete_workspace(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let ws = required(args, "workspaceId")?;
        let w = self.need_workspace(c, &ws)?;
        if self
            .role(c, w["organizationId"].as_str().unwrap_or_default())
            .is_none()
        {
            return Err(err("Permission denied: guests cannot delete a workspace."));
        }
        self.store.delete(WORKSPACES, &ws);
        // What lives in the workspace goes with it, as the one write the client made.
        self.store
            .delete_where_uncounted(GRAPHS, |_, r| r.value["workspaceId"] == ws.as_str());
        self.store
            .delete_where_uncounted(MEMBERS, |_, r| r.value["workspaceId"] == ws.as_str());
        self.store
            .delete_where_uncounted(INVITATIONS, |_, r| r.value["workspaceId"] == ws.as_str());
        self.store.delete_where_uncounted(WORKSPACE_LIMITS, |_, r| {
            r.value["workspaceId"] == ws.as_str()
        });
        Ok(json!(true))
    }

    fn create_channel(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, false)?;
        let name = required(args, "name")?;
        self.check_org_limit(&org, "Managed Channels")?;
        let id = self.store.new_id();
        let now = now_iso();
        let value = json!({
            "channelId": id, "name": name, "description": s(args, "description").unwrap_or_default(),
            "organizationId": org, "volumes": list(args, "volumes").unwrap_or_default(),
            "instance": s(args, "instance"), "timeout": args.get("timeout"),
            "interfaceVersion": args.get("interfaceVersion"), "status": "created",
            "preview": false, "createdAt": now, "createdBy": c.email, "updatedAt": now,
            "updatedBy": c.email, "shared": false,
        });
        self.store
            .create(CHANNELS, Some(id.clone()), &org, value)
            .map_err(|_| err("The channel could not be created."))?;
        Ok(json!(id))
    }

    /// Creates a volume (the API's `createVolume`, and seeding). Returns its id.
    pub fn create_volume(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, false)?;
        let name = required(args, "name")?;
        let permission = s(args, "permission").unwrap_or_else(|| "write".into());
        if !["read", "write", "view"].contains(&permission.as_str()) {
            return Err(err("The permission must be read, write or view."));
        }
        self.check_org_limit(&org, "Managed Volumes")?;
        let id = self.store.new_id();
        let now = now_iso();
        let value = json!({
            "volumeId": id, "name": name, "description": s(args, "description").unwrap_or_default(),
            "organizationId": org, "permission": permission, "tags": list(args, "tags").unwrap_or_default(),
            "createdAt": now, "createdBy": c.email, "updatedAt": now, "updatedBy": c.email,
        });
        self.store
            .create(VOLUMES, Some(id.clone()), &org, value)
            .map_err(|_| err("The volume could not be created."))?;
        Ok(json!(id))
    }

    /// `editVolume` (anatools 6.1.2 `edit_volume`): null = unchanged, `tags` replaces.
    fn edit_volume(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let id = required(args, "volumeId")?;
        let org = self
            .store
            .get(VOLUMES, &id)
            .map(|r| r.org.clone())
            .ok_or_else(|| err("Volume not found."))?;
        // A volume another org shares in is visible, not editable: only its own org's members
        // may change it.
        self.need_org(c, &org, false)
            .map_err(|_| err("Volume not found."))?;
        if args
            .get("name")
            .is_some_and(|n| n.as_str().is_some_and(|n| n.trim().is_empty()))
        {
            return Err(err("The name cannot be empty."));
        }
        if let Some(p) = s(args, "permission")
            && !["read", "write", "view"].contains(&p.as_str())
        {
            return Err(err("The permission must be read, write or view."));
        }
        let by = c.email.clone();
        let args = args.clone();
        self.store
            .update(VOLUMES, &id, |v| {
                for key in ["name", "description", "permission", "tags"] {
                    if let Some(x) = args.get(key).filter(|x| !x.is_null()) {
                        v[key] = x.clone();
                    }
                }
                v["updatedAt"] = json!(now_iso());
                v["updatedBy"] = json!(by);
            })
            .map_err(|_| err("Volume not found."))?;
        Ok(json!(true))
    }

    fn delete_volume(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let id = required(args, "volumeId")?;
        let org = required(args, "organizationId")?;
        self.need_org(c, &org, false)?;
        if self.store.get(VOLUMES, &id).is_none_or(|r| r.org != org) {
            return Err(err("Volume not found."));
        }
        self.store.delete(VOLUMES, &id);
        self.drop_volume_files(&id);
        let ws_ids: Vec<String> = self
            .store
            .in_org(WORKSPACES, &org)
            .iter()
            .map(|(i, _)| i.to_string())
            .collect();
        for ws in ws_ids {
            let _ = self.store.update_uncounted(WORKSPACES, &ws, |v| {
                if let Some(a) = v["volumeIds"].as_array_mut() {
                    a.retain(|x| *x != id.as_str());
                }
            });
        }
        Ok(json!(true))
    }

    fn workspace_volumes(&mut self, c: &Caller, args: &Map<String, Value>, add: bool) -> Answer {
        let ws = required(args, "workspaceId")?;
        let w = self.need_workspace(c, &ws)?;
        let org = w["organizationId"].as_str().unwrap_or_default().to_string();
        let ids =
            list(args, "volumeIds").ok_or_else(|| err("The argument volumeIds is required."))?;
        if add {
            self.check_ids(&org, VOLUMES, &ids, "Volume")?;
        }
        self.store
            .update(WORKSPACES, &ws, |v| {
                let mut have: Vec<String> = v["volumeIds"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if add {
                    for i in &ids {
                        if !have.contains(i) {
                            have.push(i.clone());
                        }
                    }
                } else {
                    have.retain(|h| !ids.contains(h));
                }
                v["volumeIds"] = json!(have);
            })
            .map_err(|_| err("Workspace not found."))?;
        Ok(json!(true))
    }

    /// Creates a graph (the API's `createGraph`, and seeding). Returns its id.
    pub fn create_graph(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let ws = required(args, "workspaceId")?;
        let w = self.need_workspace(c, &ws)?;
        let org = w["organizationId"].as_str().unwrap_or_default().to_string();
        let channel = required(args, "channelId")?;
        if !self.channel_visible(&org, &channel) {
            return Err(err("Channel not found."));
        }
        let name = required(args, "name")?;
        let graph = required(args, "graph")?;
        let parsed: Value =
            serde_json::from_str(&graph).map_err(|_| err("The graph is not valid JSON."))?;
        if !parsed.is_object() {
            return Err(err("The graph must be a JSON object."));
        }
        self.check_workspace_limit(&ws, "Graphs")?;
        let channel_name = self
            .store
            .get(CHANNELS, &channel)
            .map(|r| r.value["name"].clone());
        let id = self.store.new_id();
        let now = now_iso();
        let staged = args.get("staged").and_then(Value::as_bool).unwrap_or(false);
        let hash = format!("{:016x}", fxhash(&graph));
        let value = json!({
            "graphId": id, "workspaceId": ws, "name": name,
            "description": s(args, "description").unwrap_or_default(),
            "channel": channel_name, "channelId": channel, "readOnly": staged, "staged": staged,
            "showPreview": false, "previewId": null, "createdBy": c.email, "createdAt": now,
            "updatedBy": c.email, "updatedAt": now, "hash": hash,
            "tags": list(args, "tags").unwrap_or_default(), "graph": graph,
        });
        self.store
            .create(GRAPHS, Some(id.clone()), &org, value)
            .map_err(|_| err("The graph could not be created."))?;
        Ok(json!(id))
    }

    /// `deleteGraph` (anatools 6.1.2 `delete_graph`): the graph of that workspace, `true`.
    fn delete_graph(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let ws = required(args, "workspaceId")?;
        self.need_workspace(c, &ws)?;
        let id = required(args, "graphId")?;
        if self
            .store
            .get(GRAPHS, &id)
            .is_none_or(|r| r.value["workspaceId"] != ws.as_str())
        {
            return Err(err("Graph not found."));
        }
        self.store.delete(GRAPHS, &id);
        Ok(json!(true))
    }
}

/// A stable 64-bit FNV-1a hash (graph `hash`: changes when the graph does).
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_exclusive_sorted_and_limited() {
        let items: Vec<Value> = ["c", "a", "e", "b", "d"]
            .iter()
            .map(|k| json!({"id": k}))
            .collect();
        let args = |c: Option<&str>, l: i64| {
            let mut m = Map::new();
            m.insert("cursor".into(), json!(c));
            m.insert("limit".into(), json!(l));
            m
        };
        assert_eq!(
            page(items.clone(), "id", &args(None, 2)),
            json!([{"id": "a"}, {"id": "b"}])
        );
        assert_eq!(
            page(items.clone(), "id", &args(Some("b"), 2)),
            json!([{"id": "c"}, {"id": "d"}])
        );
        assert_eq!(
            page(items.clone(), "id", &args(Some("d"), 2)),
            json!([{"id": "e"}])
        );
        assert_eq!(page(items.clone(), "id", &args(Some("e"), 2)), json!([]));
        assert_eq!(page(items.clone(), "id", &args(None, 0)), json!([]));
        assert_eq!(
            page(items, "id", &args(None, 1000))
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }
}
