//! The Rossum simulator's state: objects in the kit's [`Store`] (integer ids counted per kind,
//! every reference an absolute URL, each object owned by an organization), sessions, and the
//! rules of organizations and users. The rules of the setup kinds (workspaces, queues, hooks,
//! …) are in [`super::kinds`].
//!
//! Every write through [`Db`]'s methods is counted as an API write of its kind (tests set
//! counters back after seeding); hand edits (`hand_*`) count nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::simulator::kit::auth::TokenRegistry;
use crate::simulator::kit::{IdStyle, Store, StoreError, WriteCounts};

/// Role names Rossum creates in every organization.
pub const ROLES: &[&str] = &[
    "viewer",
    "annotator",
    "admin",
    "manager",
    "annotator_limited",
    "annotator_embedded",
    "organization_group_admin",
    "approver",
];

/// One stored object, as the simulator reads it.
#[derive(Clone, Copy, Debug)]
pub struct Rec<'a> {
    /// Id.
    pub id: u64,
    /// Owning organization id.
    pub org: u64,
    /// The object as stored (absolute URLs; reverse references are filled in on render).
    pub value: &'a Value,
}

/// Who a token stands for: a user, inside one organization (Rossum scopes every token to one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user: u64,
    /// The organization the token is scoped to.
    pub org: u64,
}

/// Everything the simulator holds.
#[derive(Debug)]
pub struct Db {
    /// `http://127.0.0.1:P/api/v1`.
    pub base: String,
    /// Objects of every kind (`organizations`, `users`, `groups`, `memberships`, setup kinds).
    pub(super) store: Store,
    /// Organization groups.
    pub org_groups: BTreeMap<u64, Value>,
    /// Passwords by user id.
    pub passwords: HashMap<u64, String>,
    /// Login and membership tokens (each with its lifetime).
    pub tokens: TokenRegistry<Session>,
    /// create_key → organization group id.
    pub create_keys: HashMap<String, u64>,
    /// Write-only fields (a hook's `secrets`) by kind and id: accepted, never served.
    pub write_only: HashMap<(&'static str, u64), Map<String, Value>>,
    /// Successful logins (`POST auth/login`).
    pub logins: u64,
    /// Usage reads answered: `GET organizations/{id}/limits` and `…/billing_history` (tests
    /// count what a reconcile spends on usage).
    pub usage_reads: u64,
    /// Billing history entries by organization (`GET organizations/{id}/billing_history`);
    /// an organization without any has one current, unused contract period.
    pub billing_history: HashMap<u64, Vec<Value>>,
}

fn rec<'a>(id: &str, org: &str, value: &'a Value) -> Rec<'a> {
    // Every id and org key the simulator stores is a number it made itself.
    Rec {
        id: id.parse().unwrap_or_default(),
        org: org.parse().unwrap_or_default(),
        value,
    }
}

impl Db {
    /// An empty database served under `base`.
    pub fn new(base: &str) -> Self {
        // Ids come from `new_numeric_id`; the style is never used.
        let mut store = Store::new(IdStyle::Sequential);
        // Looked up on every organization or inbox created: by index, not by a scan.
        store.index_field("users", "username");
        store.index_field("inboxes", "email");
        Self {
            base: base.trim_end_matches('/').to_string(),
            store,
            org_groups: BTreeMap::new(),
            passwords: HashMap::new(),
            tokens: TokenRegistry::new(),
            create_keys: HashMap::new(),
            write_only: HashMap::new(),
            logins: 0,
            usage_reads: 0,
            billing_history: HashMap::new(),
        }
    }

    /// `<base>/<kind>/<id>`.
    pub fn url(&self, kind: &str, id: u64) -> String {
        format!("{}/{kind}/{id}", self.base)
    }

    /// A new id for `kind` (ids start at different offsets per kind, as in a real deployment).
    pub fn next_id(&mut self, kind: &str) -> u64 {
        self.store.new_numeric_id(kind)
    }

    /// Object `id` of `kind`.
    pub fn get(&self, kind: &str, id: u64) -> Option<Rec<'_>> {
        self.store.get(kind, &id.to_string()).map(|r| Rec {
            id,
            org: r.org.parse().unwrap_or_default(),
            value: &r.value,
        })
    }

    /// Every object of `kind`, in creation (and id) order.
    pub fn all(&self, kind: &str) -> Vec<Rec<'_>> {
        self.store
            .list(kind)
            .into_iter()
            .map(|(id, r)| rec(id, &r.org, &r.value))
            .collect()
    }

    /// Every object of `kind`, in creation (and id) order, without collecting them.
    pub fn iter<'a>(&'a self, kind: &str) -> impl Iterator<Item = Rec<'a>> {
        self.store
            .iter(kind)
            .map(|(id, r)| rec(id, &r.org, &r.value))
    }

    /// Objects of `kind` in `org`, in creation (and id) order.
    pub fn in_org(&self, kind: &str, org: u64) -> Vec<Rec<'_>> {
        self.store
            .in_org(kind, &org.to_string())
            .into_iter()
            .map(|(id, r)| Rec {
                id: id.parse().unwrap_or_default(),
                org,
                value: &r.value,
            })
            .collect()
    }

    /// The first object of `kind` (in creation order) that `pred` accepts.
    pub fn find(&self, kind: &str, mut pred: impl FnMut(&Rec<'_>) -> bool) -> Option<Rec<'_>> {
        // Lazily: a lookup by name stops at the match instead of collecting the whole kind.
        self.store
            .find(kind, |id, r| pred(&rec(id, &r.org, &r.value)))
            .map(|(id, r)| rec(id, &r.org, &r.value))
    }

    /// Objects of `kind` whose string `field` is `value`, in creation order (indexed for users'
    /// `username` and inboxes' `email`; any other field is scanned).
    pub fn by_field<'a>(&'a self, kind: &str, field: &'a str, value: &'a str) -> Vec<Rec<'a>> {
        self.store
            .by_field(kind, field, value)
            .into_iter()
            .map(|(id, r)| rec(id, &r.org, &r.value))
            .collect()
    }

    /// Stores a new object (an API write: counted as a create of `kind`).
    pub(super) fn insert(&mut self, kind: &str, org: u64, id: u64, value: Value) {
        let stored = self
            .store
            .create(kind, Some(id.to_string()), &org.to_string(), value);
        // Ids come from `next_id`, which never hands out one in use.
        debug_assert!(stored.is_ok(), "{stored:?}");
    }

    /// Changes object `id` (an API write: counted as an update of `kind`).
    pub(super) fn update<T>(
        &mut self,
        kind: &str,
        id: u64,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Result<T, ApiError> {
        self.store
            .update(kind, &id.to_string(), f)
            .map_err(|_| ApiError::not_found())
    }

    /// Changes object `id` as a consequence of another write, or as the vendor's own
    /// bookkeeping (not counted; see [`Store::update_uncounted`]).
    pub(super) fn update_uncounted<T>(
        &mut self,
        kind: &str,
        id: u64,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Option<T> {
        self.store.update_uncounted(kind, &id.to_string(), f).ok()
    }

    /// Marks object `id` deleted and keeps it (counted as a delete of `kind`).
    pub(super) fn soft_delete(&mut self, kind: &str, id: u64, f: impl FnOnce(&mut Value)) {
        let _ = self.store.soft_delete(kind, &id.to_string(), f);
    }

    /// Removes object `id` (counted as a delete of `kind` when it existed).
    pub(super) fn remove(&mut self, kind: &str, id: u64) {
        self.store.delete(kind, &id.to_string());
    }

    /// Objects of `kind` created, updated and deleted through the API since the counters were
    /// last set back.
    pub fn writes(&self, kind: &str) -> WriteCounts {
        self.store.writes(kind)
    }

    /// Mutating requests received (every method but GET, outside `auth/`), whatever their
    /// outcome.
    pub fn write_requests(&self) -> u64 {
        self.store.write_requests()
    }

    /// Records one mutating request.
    pub(super) fn note_write_request(&mut self) {
        self.store.note_write_request();
    }

    /// Sets every write counter (and the login counter) back to zero.
    pub fn reset_counters(&mut self) {
        self.store.reset_counters();
        self.logins = 0;
    }

    /// Test hand edit: applies a JSON merge patch to object `id` (uncounted).
    pub fn hand_patch(&mut self, kind: &str, id: u64, patch: &Value) -> Result<(), StoreError> {
        self.store.hand_patch(kind, &id.to_string(), patch)
    }

    /// Test hand edit: removes object `id` (uncounted).
    pub fn hand_remove(&mut self, kind: &str, id: u64) -> Result<(), StoreError> {
        self.store.hand_remove(kind, &id.to_string()).map(|_| ())
    }

    /// The organization group of `org`.
    pub fn group_of(&self, org: u64) -> Option<u64> {
        let v = self.get("organizations", org)?.value;
        id_in(v.get("organization_group")?.as_str()?)
    }

    /// Whether `user` is an organization group admin.
    pub fn is_group_admin(&self, user: u64) -> bool {
        self.user_roles(user)
            .iter()
            .any(|r| r == "organization_group_admin")
    }

    /// Role names of `user`.
    pub fn user_roles(&self, user: u64) -> Vec<String> {
        let Some(u) = self.get("users", user) else {
            return Vec::new();
        };
        u.value
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().and_then(id_in))
            .filter_map(|gid| self.get("groups", gid))
            .filter_map(|g| {
                g.value
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    /// Whether `user` may reach organization `org`: the same answer as
    /// `reachable_orgs(user).contains(&org)`, without listing every organization of the group
    /// (a group admin's token is checked on every request of every organization).
    pub fn can_reach(&self, user: u64, org: u64) -> bool {
        let Some(u) = self.get("users", user) else {
            return false;
        };
        if self.is_group_admin(user) {
            return self.get("organizations", org).is_some()
                && self.group_of(org) == self.group_of(u.org);
        }
        org == u.org
            || self.store.iter("memberships").any(|(_, m)| {
                m.value.get("user").and_then(Value::as_str).and_then(id_in) == Some(user)
                    && m.value
                        .get("organization")
                        .and_then(Value::as_str)
                        .and_then(id_in)
                        == Some(org)
            })
    }

    /// Organizations `user` may reach: primary, through memberships, or the whole group.
    pub fn reachable_orgs(&self, user: u64) -> Vec<u64> {
        let Some(u) = self.get("users", user) else {
            return Vec::new();
        };
        let primary = u.org;
        if self.is_group_admin(user) {
            let group = self.group_of(primary);
            return self
                .all("organizations")
                .into_iter()
                .filter(|o| self.group_of(o.id) == group)
                .map(|o| o.id)
                .collect();
        }
        let mut out = vec![primary];
        for m in self.all("memberships") {
            if m.value.get("user").and_then(Value::as_str).and_then(id_in) == Some(user)
                && let Some(o) = m
                    .value
                    .get("organization")
                    .and_then(Value::as_str)
                    .and_then(id_in)
            {
                out.push(o);
            }
        }
        out
    }

    /// Creates an organization with its roles, first user and default workspace (counted as
    /// creates of each, like every write through `Db`).
    pub fn create_org(
        &mut self,
        group: u64,
        name: &str,
        metadata: Value,
        first_user: Option<(&str, &str, &str)>,
    ) -> Result<u64, ApiError> {
        if let Some((email, _, _)) = first_user
            && self.username_taken(email)
        {
            return Err(ApiError::field(
                "user_email",
                "User with this email already exists.",
            ));
        }
        let id = self.next_id("organizations");
        let url = self.url("organizations", id);
        let domain = slug(name);
        let value = json!({
            "id": id, "url": url, "name": name,
            "workspaces": [], "users": [],
            "organization_group": self.url("organization_groups", group),
            "ui_settings": {}, "metadata": metadata, "settings": {},
            "is_trial": false, "created_at": now_iso(), "trial_expires_at": null,
            "expires_at": null, "oidc_provider": null, "sandbox": false,
            "domain": domain, "creator": null, "modified_by": null, "modified_at": null,
            "internal_info": {},
        });
        self.insert("organizations", id, id, value);
        for role in ROLES {
            let gid = self.next_id("groups");
            let v = json!({"id": gid, "url": self.url("groups", gid), "name": role});
            self.insert("groups", id, gid, v);
        }
        if let Some((email, full_name, password)) = first_user {
            let (first, last) = full_name.split_once(' ').unwrap_or((full_name, ""));
            let uid = self.insert_user(id, email, email, first, last, &["admin"], password)?;
            let user_url = self.url("users", uid);
            // Part of the creation, not a second write.
            self.update_uncounted("organizations", id, |o| o["creator"] = json!(user_url));
            let ws = self.next_id("workspaces");
            let v = json!({"id": ws, "url": self.url("workspaces", ws), "name": format!("{name} workspace"),
                           "organization": url, "autopilot": false, "metadata": {}, "queues": []});
            self.insert("workspaces", id, ws, v);
        }
        Ok(id)
    }

    /// Whether a (non-deleted) user already has this username.
    pub fn username_taken(&self, username: &str) -> bool {
        !self.by_field("users", "username", username).is_empty()
    }

    /// Adds a user with roles (by name) to `org`.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_user(
        &mut self,
        org: u64,
        username: &str,
        email: &str,
        first_name: &str,
        last_name: &str,
        roles: &[&str],
        password: &str,
    ) -> Result<u64, ApiError> {
        if self.username_taken(username) {
            return Err(ApiError::field(
                "username",
                "A user with that username already exists.",
            ));
        }
        let groups: Vec<String> = roles.iter().filter_map(|r| self.role_url(org, r)).collect();
        let id = self.next_id("users");
        let v = json!({
            "id": id, "url": self.url("users", id), "first_name": first_name,
            "last_name": last_name, "email": email, "username": username,
            "phone_number": null, "date_joined": now_iso(), "groups": groups,
            "organization": self.url("organizations", org), "queues": [],
            "is_active": true, "last_login": null, "ui_settings": {}, "metadata": {},
            "oidc_id": null, "auth_type": "password", "deleted": false, "email_verified": true,
        });
        self.insert("users", org, id, v);
        self.passwords.insert(id, password.to_string());
        Ok(id)
    }

    /// URL of role `name` in `org`.
    pub fn role_url(&self, org: u64, name: &str) -> Option<String> {
        self.in_org("groups", org)
            .into_iter()
            .find(|g| g.value.get("name").and_then(Value::as_str) == Some(name))
            .map(|g| self.url("groups", g.id))
    }
}

/// The numeric id at the end of a URL path.
pub fn id_in(url: &str) -> Option<u64> {
    url.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

/// Lower-case, dash-separated.
pub fn slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Now, as Rossum formats it.
pub fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
