//! The Rossum simulator's in-memory database and the rules of each object kind.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::error::ApiError;

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

/// Kinds stored as generic org-scoped objects.
pub const SETUP_KINDS: &[&str] = &[
    "workspaces",
    "schemas",
    "connectors",
    "queues",
    "inboxes",
    "hooks",
    "email_templates",
    "labels",
    "rules",
    "triggers",
];

const HOOK_EVENTS: &[&str] = &[
    "annotation_status.changed",
    "annotation_status",
    "annotation_content.initialize",
    "annotation_content.started",
    "annotation_content.user_update",
    "annotation_content.updated",
    "annotation_content.confirm",
    "annotation_content.export",
    "annotation_content",
    "upload.created",
    "email.received",
    "email",
    "invocation.scheduled",
    "invocation.manual",
    "invocation.interface",
    "invocation",
];

const METADATA_LIMIT: usize = 4096;

/// One stored object and the organization it belongs to.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Owning organization id.
    pub org: u64,
    /// The object as served (absolute URLs; computed fields filled on render).
    pub value: Value,
}

/// A login or membership token.
#[derive(Clone, Debug)]
pub struct Token {
    /// The user.
    pub user: u64,
    /// The organization the token is scoped to.
    pub org: u64,
    /// Expiry.
    pub expires: Instant,
}

/// Everything the simulator holds.
#[derive(Debug)]
pub struct Db {
    /// `http://127.0.0.1:P/api/v1`.
    pub base: String,
    next_id: HashMap<String, u64>,
    /// Objects per kind (`organizations`, `users`, `groups`, `memberships`, setup kinds).
    pub kinds: HashMap<String, BTreeMap<u64, Rec>>,
    /// Organization groups.
    pub org_groups: BTreeMap<u64, Value>,
    /// Passwords by user id.
    pub passwords: HashMap<u64, String>,
    /// Tokens by key.
    pub tokens: HashMap<String, Token>,
    /// create_key → organization group id.
    pub create_keys: HashMap<String, u64>,
    /// Write-only hook secrets by hook id (never served).
    pub hook_secrets: HashMap<u64, Value>,
    /// Mutating requests handled (every method but GET, outside `auth/`).
    pub writes: u64,
    /// Successful logins (`POST auth/login`).
    pub logins: u64,
    token_counter: u64,
}

impl Db {
    /// An empty database served under `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            next_id: HashMap::new(),
            kinds: HashMap::new(),
            org_groups: BTreeMap::new(),
            passwords: HashMap::new(),
            tokens: HashMap::new(),
            create_keys: HashMap::new(),
            hook_secrets: HashMap::new(),
            writes: 0,
            logins: 0,
            token_counter: 0,
        }
    }

    /// `<base>/<kind>/<id>`.
    pub fn url(&self, kind: &str, id: u64) -> String {
        format!("{}/{kind}/{id}", self.base)
    }

    /// A new id for `kind` (ids start at different offsets per kind, as in a real deployment).
    pub fn next_id(&mut self, kind: &str) -> u64 {
        let start =
            1000 + 1000 * (kind.len() as u64 % 7) + kind.bytes().map(u64::from).sum::<u64>();
        let n = self.next_id.entry(kind.to_string()).or_insert(start);
        *n += 1;
        *n
    }

    /// Objects of `kind`.
    pub fn table(&mut self, kind: &str) -> &mut BTreeMap<u64, Rec> {
        self.kinds.entry(kind.to_string()).or_default()
    }

    /// Object `id` of `kind`.
    pub fn get(&self, kind: &str, id: u64) -> Option<&Rec> {
        self.kinds.get(kind)?.get(&id)
    }

    /// Objects of `kind` in `org`.
    pub fn in_org<'a>(
        &'a self,
        kind: &str,
        org: u64,
    ) -> impl Iterator<Item = (&'a u64, &'a Rec)> + 'a {
        self.kinds
            .get(kind)
            .into_iter()
            .flat_map(|t| t.iter())
            .filter(move |(_, r)| r.org == org)
    }

    /// Issues a token.
    pub fn issue_token(&mut self, user: u64, org: u64, lifetime: Duration) -> String {
        self.token_counter += 1;
        let key = format!(
            "{:016x}{:016x}{:08x}",
            fastrand::u64(..),
            fastrand::u64(..),
            self.token_counter
        );
        self.tokens.insert(
            key.clone(),
            Token {
                user,
                org,
                expires: Instant::now() + lifetime,
            },
        );
        key
    }

    /// The organization group of `org`.
    pub fn group_of(&self, org: u64) -> Option<u64> {
        let v = &self.get("organizations", org)?.value;
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

    /// Organizations `user` may reach: primary, through memberships, or the whole group.
    pub fn reachable_orgs(&self, user: u64) -> Vec<u64> {
        let Some(u) = self.get("users", user) else {
            return Vec::new();
        };
        let primary = u.org;
        if self.is_group_admin(user) {
            let group = self.group_of(primary);
            return self
                .kinds
                .get("organizations")
                .into_iter()
                .flat_map(|t| t.iter())
                .filter(|(id, _)| self.group_of(**id) == group)
                .map(|(id, _)| *id)
                .collect();
        }
        let mut out = vec![primary];
        for (_, m) in self.kinds.get("memberships").into_iter().flatten() {
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

    /// Creates an organization with its roles, first user and default workspace.
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
        self.table("organizations")
            .insert(id, Rec { org: id, value });
        for role in ROLES {
            let gid = self.next_id("groups");
            let v = json!({"id": gid, "url": self.url("groups", gid), "name": role});
            self.table("groups").insert(gid, Rec { org: id, value: v });
        }
        if let Some((email, full_name, password)) = first_user {
            let (first, last) = full_name.split_once(' ').unwrap_or((full_name, ""));
            let uid = self.insert_user(id, email, email, first, last, &["admin"], password)?;
            let user_url = self.url("users", uid);
            if let Some(org) = self.table("organizations").get_mut(&id) {
                org.value["creator"] = json!(user_url);
            }
            let ws = self.next_id("workspaces");
            let v = json!({"id": ws, "url": self.url("workspaces", ws), "name": format!("{name} workspace"),
                           "organization": url, "autopilot": false, "metadata": {}, "queues": []});
            self.table("workspaces")
                .insert(ws, Rec { org: id, value: v });
        }
        Ok(id)
    }

    /// Whether a (non-deleted) user already has this username.
    pub fn username_taken(&self, username: &str) -> bool {
        self.kinds
            .get("users")
            .into_iter()
            .flatten()
            .any(|(_, u)| u.value.get("username").and_then(Value::as_str) == Some(username))
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
        self.table("users").insert(id, Rec { org, value: v });
        self.passwords.insert(id, password.to_string());
        Ok(id)
    }

    /// URL of role `name` in `org`.
    pub fn role_url(&self, org: u64, name: &str) -> Option<String> {
        self.in_org("groups", org)
            .find(|(_, g)| g.value.get("name").and_then(Value::as_str) == Some(name))
            .map(|(id, _)| self.url("groups", *id))
    }

    /// Validates and completes a new object of a setup kind, then stores it and runs side effects.
    pub fn create_object(&mut self, kind: &str, org: u64, body: Value) -> Result<Value, ApiError> {
        let Value::Object(mut body) = body else {
            return Err(ApiError::non_field("Invalid data. Expected a dictionary."));
        };
        for ro in [
            "id",
            "url",
            "counts",
            "status",
            "modified_at",
            "modified_by",
            "created_at",
            "created_by",
        ] {
            body.remove(ro);
        }
        check_metadata(&body)?;
        let id = self.next_id(kind);
        let url = self.url(kind, id);
        let org_url = self.url("organizations", org);
        let mut v = body;
        v.insert("id".into(), json!(id));
        v.insert("url".into(), json!(url));
        match kind {
            "workspaces" => {
                require(&v, &["name"])?;
                v.insert("organization".into(), json!(org_url));
                default(&mut v, "autopilot", json!(false));
                default(&mut v, "metadata", json!({}));
                v.remove("queues");
            }
            "schemas" => {
                require(&v, &["name", "content"])?;
                v.insert("modified_at".into(), json!(now_iso()));
                if !v["content"].is_array() {
                    return Err(ApiError::field("content", "Expected a list of items."));
                }
                default(&mut v, "metadata", json!({}));
                v.remove("queues");
                v.remove("rules");
            }
            "connectors" => {
                require(&v, &["name", "service_url"])?;
                for (k, d) in [
                    ("params", json!(null)),
                    ("client_ssl_certificate", json!(null)),
                    ("authorization_type", json!("secret_key")),
                    ("authorization_token", json!(null)),
                    ("asynchronous", json!(true)),
                    ("metadata", json!({})),
                ] {
                    default(&mut v, k, d);
                }
                v.remove("client_ssl_key");
                v.remove("queues");
            }
            "queues" => {
                require(&v, &["name", "schema"])?;
                if v["name"].as_str().is_some_and(|n| n.len() > 255) {
                    return Err(ApiError::field(
                        "name",
                        "Ensure this field has no more than 255 characters.",
                    ));
                }
                self.check_ref(&v, "schema", "schemas", org, true)?;
                self.check_ref(&v, "workspace", "workspaces", org, false)?;
                self.check_ref(&v, "connector", "connectors", org, false)?;
                for (k, d) in [
                    ("workspace", json!(null)),
                    ("connector", json!(null)),
                    ("inbox", json!(null)),
                    ("users", json!([])),
                    ("session_timeout", json!("01:00:00")),
                    ("rir_url", json!(null)),
                    ("rir_params", json!(null)),
                    ("dedicated_engine", json!(null)),
                    ("generic_engine", json!(null)),
                    ("engine", json!(null)),
                    ("default_score_threshold", json!(0.8)),
                    ("automation_enabled", json!(false)),
                    ("automation_level", json!("never")),
                    ("locale", json!("en_GB")),
                    ("metadata", json!({})),
                    ("use_confirmed_state", json!(false)),
                    ("settings", json!({})),
                    ("document_lifetime", json!(null)),
                    ("delete_after", json!(null)),
                    ("training_enabled", json!(true)),
                    ("workflows", json!([])),
                ] {
                    default(&mut v, k, d);
                }
                v.insert("status".into(), json!("active"));
                v.insert("inbox".into(), json!(null));
                let hooks = take_hooks(&mut v);
                v.insert("counts".into(), counts());
                let value = Value::Object(v);
                self.table(kind).insert(
                    id,
                    Rec {
                        org,
                        value: value.clone(),
                    },
                );
                if let Some(hooks) = hooks {
                    self.set_queue_hooks(org, &url, &hooks)?;
                }
                self.create_default_email_templates(org, &url);
                return Ok(self.render(kind, id).unwrap_or(value));
            }
            "inboxes" => {
                require(&v, &["name", "queues"])?;
                let queues = v["queues"].as_array().cloned().unwrap_or_default();
                if queues.len() != 1 {
                    return Err(ApiError::field(
                        "queues",
                        "It is possible to have only one queue per inbox.",
                    ));
                }
                let qid = queues[0]
                    .as_str()
                    .and_then(id_in)
                    .filter(|q| self.get("queues", *q).is_some_and(|r| r.org == org));
                let Some(qid) = qid else {
                    return Err(ApiError::field(
                        "queues",
                        "Invalid hyperlink - Object does not exist.",
                    ));
                };
                if self
                    .get("queues", qid)
                    .is_some_and(|q| !q.value["inbox"].is_null())
                {
                    return Err(ApiError::field(
                        "queues",
                        "This queue already has an inbox.",
                    ));
                }
                let domain = self
                    .get("organizations", org)
                    .and_then(|o| {
                        o.value
                            .get("domain")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "org".into());
                let email = match v.get("email").and_then(Value::as_str) {
                    Some(e) if !e.is_empty() => e.to_string(),
                    _ => {
                        let prefix = v
                            .get("email_prefix")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        if prefix.is_empty() {
                            return Err(ApiError::field("email_prefix", "This field is required."));
                        }
                        if prefix.len() > 57 {
                            return Err(ApiError::field(
                                "email_prefix",
                                "Ensure this field has no more than 57 characters.",
                            ));
                        }
                        format!(
                            "{prefix}-{:06x}@{domain}.rossum.app",
                            fastrand::u32(..0x100_0000)
                        )
                    }
                };
                let taken = self
                    .kinds
                    .get("inboxes")
                    .into_iter()
                    .flatten()
                    .any(|(_, i)| i.value.get("email").and_then(Value::as_str) == Some(&email));
                if taken {
                    return Err(ApiError::field(
                        "email",
                        "inbox with this email already exists.",
                    ));
                }
                v.insert("email".into(), json!(email));
                for (k, d) in [
                    ("email_prefix", json!(null)),
                    ("bounce_email_to", json!(null)),
                    ("bounce_unprocessable_attachments", json!(false)),
                    ("bounce_postponed_annotations", json!(false)),
                    ("bounce_deleted_annotations", json!(false)),
                    ("bounce_email_with_no_attachments", json!(true)),
                    ("metadata", json!({})),
                    (
                        "filters",
                        json!({"allowed_senders": [], "denied_senders": []}),
                    ),
                    ("dmarc_check_action", json!("accept")),
                ] {
                    default(&mut v, k, d);
                }
                if let Some(q) = self.table("queues").get_mut(&qid) {
                    q.value["inbox"] = json!(url);
                }
            }
            "hooks" => {
                require(&v, &["name"])?;
                default(&mut v, "type", json!("webhook"));
                let t = v["type"].as_str().unwrap_or("");
                if !["webhook", "function", "job"].contains(&t) {
                    return Err(ApiError::field(
                        "type",
                        &format!("\"{t}\" is not a valid choice."),
                    ));
                }
                if let Some(events) = v.get("events").and_then(Value::as_array)
                    && let Some(bad) = events
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|e| !HOOK_EVENTS.contains(e))
                {
                    return Err(ApiError::field(
                        "events",
                        &format!("\"{bad}\" is not a valid choice."),
                    ));
                }
                if let Some(owner) = v.get("token_owner").and_then(Value::as_str).and_then(id_in)
                    && self.is_group_admin(owner)
                {
                    return Err(ApiError::field(
                        "token_owner",
                        "Organization group admin cannot be a token owner.",
                    ));
                }
                if let Some(secrets) = v.remove("secrets") {
                    self.hook_secrets.insert(id, secrets);
                }
                for (k, d) in [
                    ("queues", json!([])),
                    ("run_after", json!([])),
                    ("active", json!(true)),
                    ("events", json!([])),
                    ("sideload", json!([])),
                    ("metadata", json!({})),
                    ("config", json!({})),
                    ("test", json!({})),
                    ("token_owner", json!(null)),
                    ("token_lifetime_s", json!(null)),
                    ("description", json!("")),
                    ("extension_source", json!("custom")),
                    ("settings", json!({})),
                    ("settings_schema", json!(null)),
                    (
                        "secrets_schema",
                        json!({"type": "object", "properties": {}}),
                    ),
                    ("guide", json!(null)),
                    ("read_more_url", json!(null)),
                    ("extension_image_url", json!(null)),
                    ("hook_template", json!(null)),
                    ("status", json!("ready")),
                ] {
                    default(&mut v, k, d);
                }
                if let Some(c) = v.get_mut("config").and_then(Value::as_object_mut) {
                    c.remove("client_ssl_key");
                }
                self.check_ref_list(&v, "queues", "queues", org)?;
                self.check_ref_list(&v, "run_after", "hooks", org)?;
                v.insert("created_at".into(), json!(now_iso()));
            }
            "email_templates" => {
                require(&v, &["name", "queue"])?;
                default(&mut v, "type", json!("custom"));
                let t = v["type"].as_str().unwrap_or("").to_string();
                if !["custom", "rejection"].contains(&t.as_str()) {
                    return Err(ApiError::field(
                        "type",
                        "Only custom and rejection templates can be created.",
                    ));
                }
                self.check_ref(&v, "queue", "queues", org, true)?;
                self.fill_email_template(&mut v, org);
            }
            "labels" => {
                require(&v, &["name"])?;
                v.insert("organization".into(), json!(org_url));
                default(&mut v, "color", json!(null));
            }
            "rules" => {
                require(&v, &["name"])?;
                v.insert("organization".into(), json!(org_url));
                for (k, d) in [
                    ("enabled", json!(true)),
                    ("queues", json!([])),
                    ("schema", json!(null)),
                    ("trigger_condition", json!("True")),
                    ("actions", json!([])),
                    ("rule_template", json!(null)),
                    ("synchronized_from_template", json!(false)),
                ] {
                    default(&mut v, k, d);
                }
                self.check_ref_list(&v, "queues", "queues", org)?;
                let mut seen = Vec::new();
                for a in v["actions"].as_array().into_iter().flatten() {
                    let aid = a.get("id").cloned().unwrap_or(Value::Null);
                    if seen.contains(&aid) {
                        return Err(ApiError::field(
                            "actions",
                            "Action ids must be unique within a rule.",
                        ));
                    }
                    seen.push(aid);
                }
            }
            _ => return Err(ApiError::method_not_allowed()),
        }
        let value = Value::Object(v);
        self.table(kind).insert(id, Rec { org, value });
        Ok(self.render(kind, id).unwrap_or(Value::Null))
    }

    /// Applies a PATCH (or PUT, which the simulator treats the same way) to a setup object.
    pub fn update_object(
        &mut self,
        kind: &str,
        id: u64,
        org: u64,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let Value::Object(mut patch) = patch else {
            return Err(ApiError::non_field("Invalid data. Expected a dictionary."));
        };
        check_metadata(&patch)?;
        for ro in [
            "id",
            "url",
            "counts",
            "status",
            "organization",
            "modified_at",
            "modified_by",
            "created_at",
            "created_by",
            "inbox",
            "email",
            "triggers",
        ] {
            patch.remove(ro);
        }
        if kind == "inboxes" {
            // The inbox ↔ queue link is immutable after creation.
            patch.remove("queues");
        }
        if kind == "hooks"
            && let Some(s) = patch.remove("secrets")
        {
            self.hook_secrets.insert(id, s);
        }
        let hooks = if kind == "queues" {
            take_hooks(&mut patch)
        } else {
            None
        };
        let check = patch.clone();
        match kind {
            "queues" => {
                self.check_ref(&check, "schema", "schemas", org, false)?;
                self.check_ref(&check, "workspace", "workspaces", org, false)?;
                self.check_ref(&check, "connector", "connectors", org, false)?;
            }
            "hooks" => {
                self.check_ref_list(&check, "queues", "queues", org)?;
                self.check_ref_list(&check, "run_after", "hooks", org)?;
            }
            "rules" => self.check_ref_list(&check, "queues", "queues", org)?,
            "email_templates" => self.check_ref(&check, "queue", "queues", org, false)?,
            _ => {}
        }
        let url = self.url(kind, id);
        let Some(rec) = self.table(kind).get_mut(&id) else {
            return Err(ApiError::not_found());
        };
        for (k, v) in patch {
            rec.value[k] = v;
        }
        rec.value["modified_at"] = json!(now_iso());
        if kind == "queues"
            && let Some(hooks) = hooks
        {
            self.set_queue_hooks(org, &url, &hooks)?;
        }
        if kind == "email_templates"
            && let Some(mut v) = self
                .get(kind, id)
                .map(|r| r.value.as_object().cloned().unwrap_or_default())
        {
            self.fill_email_template(&mut v, org);
            if let Some(rec) = self.table(kind).get_mut(&id) {
                rec.value = Value::Object(v);
            }
        }
        self.render(kind, id).ok_or_else(ApiError::not_found)
    }

    /// Deletes a setup object following Rossum's rules (409s, async queue deletion).
    pub fn delete_object(&mut self, kind: &str, id: u64) -> Result<(), ApiError> {
        let url = self.url(kind, id);
        match kind {
            "workspaces" => {
                let has_queues = self
                    .kinds
                    .get("queues")
                    .into_iter()
                    .flatten()
                    .any(|(_, q)| {
                        q.value["workspace"].as_str() == Some(&url) && q.value["status"] == "active"
                    });
                if has_queues {
                    return Err(ApiError::conflict("Workspace still contains queues."));
                }
            }
            "schemas" => {
                let linked = self
                    .kinds
                    .get("queues")
                    .into_iter()
                    .flatten()
                    .any(|(_, q)| {
                        q.value["schema"].as_str() == Some(&url) && q.value["status"] == "active"
                    });
                if linked {
                    return Err(ApiError::conflict("Schema is still linked to a queue."));
                }
            }
            "queues" => {
                if let Some(q) = self.table("queues").get_mut(&id) {
                    q.value["status"] = json!("deletion_requested");
                    q.value["delete_after"] = json!(now_iso());
                    q.value["workspace"] = Value::Null;
                }
                return Ok(());
            }
            "email_templates" => {
                let t = self
                    .get(kind, id)
                    .and_then(|r| r.value["type"].as_str().map(str::to_string));
                if !matches!(t.as_deref(), Some("custom") | Some("rejection")) {
                    return Err(ApiError::non_field(
                        "This email template type cannot be deleted.",
                    ));
                }
            }
            "hooks" => {
                // Other hooks' run_after lose the reference.
                for (_, h) in self.table("hooks").iter_mut() {
                    if let Some(list) = h.value["run_after"].as_array_mut() {
                        list.retain(|u| u.as_str() != Some(&url));
                    }
                }
            }
            _ => {}
        }
        self.table(kind).remove(&id);
        Ok(())
    }

    fn fill_email_template(&self, v: &mut Map<String, Value>, org: u64) {
        v.insert("organization".into(), json!(self.url("organizations", org)));
        for (k, d) in [
            ("subject", json!("")),
            ("message", json!("")),
            ("enabled", json!(true)),
            ("automate", json!(false)),
            ("triggers", json!([])),
            ("to", json!([])),
            ("cc", json!([])),
            ("bcc", json!([])),
        ] {
            default(v, k, d);
        }
    }

    fn create_default_email_templates(&mut self, org: u64, queue_url: &str) {
        let defaults = [
            (
                "Annotation status change - confirmed",
                "custom",
                Some("annotation_confirmed"),
            ),
            (
                "Annotation status change - exported",
                "custom",
                Some("annotation_exported"),
            ),
            (
                "Annotation status change - received",
                "custom",
                Some("annotation_imported"),
            ),
            ("Default rejection template", "rejection_default", None),
            (
                "Email with no processable attachments",
                "email_with_no_processable_attachments",
                None,
            ),
        ];
        for (name, t, event) in defaults {
            let id = self.next_id("email_templates");
            let url = self.url("email_templates", id);
            let mut triggers = Vec::new();
            if let Some(event) = event {
                let tid = self.next_id("triggers");
                let turl = self.url("triggers", tid);
                let tv = json!({"id": tid, "url": turl, "queue": queue_url, "event": event,
                                "condition": {}, "email_templates": [url], "delete_recommendations": []});
                self.table("triggers").insert(tid, Rec { org, value: tv });
                triggers.push(turl);
            }
            let v = json!({"id": id, "url": url, "name": name, "queue": queue_url,
                           "organization": self.url("organizations", org), "triggers": triggers,
                           "type": t, "subject": format!("{name}"), "message": "<p>{{ default_message }}</p>",
                           "enabled": true, "automate": t != "custom", "to": [], "cc": [], "bcc": []});
            self.table("email_templates")
                .insert(id, Rec { org, value: v });
        }
    }

    fn set_queue_hooks(
        &mut self,
        org: u64,
        queue_url: &str,
        hooks: &[String],
    ) -> Result<(), ApiError> {
        let wanted: Vec<u64> = hooks.iter().filter_map(|h| id_in(h)).collect();
        for h in &wanted {
            if self.get("hooks", *h).is_none_or(|r| r.org != org) {
                return Err(ApiError::field(
                    "hooks",
                    "Invalid hyperlink - Object does not exist.",
                ));
            }
        }
        for (hid, h) in self.table("hooks").iter_mut() {
            let list = h.value["queues"].as_array_mut();
            let Some(list) = list else { continue };
            let has = list.iter().any(|q| q.as_str() == Some(queue_url));
            let want = wanted.contains(hid);
            if want && !has {
                list.push(json!(queue_url));
            } else if !want && has {
                list.retain(|q| q.as_str() != Some(queue_url));
            }
        }
        Ok(())
    }

    fn check_ref(
        &self,
        v: &Map<String, Value>,
        field: &str,
        kind: &str,
        org: u64,
        required: bool,
    ) -> Result<(), ApiError> {
        match v.get(field) {
            None | Some(Value::Null) if !required => Ok(()),
            None | Some(Value::Null) => Err(ApiError::field(field, "This field is required.")),
            Some(Value::String(u)) => match id_in(u).and_then(|id| self.get(kind, id)) {
                Some(r) if r.org == org => Ok(()),
                _ => Err(ApiError::field(
                    field,
                    "Invalid hyperlink - Object does not exist.",
                )),
            },
            Some(_) => Err(ApiError::field(
                field,
                "Incorrect type. Expected URL string.",
            )),
        }
    }

    fn check_ref_list(
        &self,
        v: &Map<String, Value>,
        field: &str,
        kind: &str,
        org: u64,
    ) -> Result<(), ApiError> {
        let Some(list) = v.get(field) else {
            return Ok(());
        };
        let Some(items) = list.as_array() else {
            return Err(ApiError::field(field, "Expected a list of items."));
        };
        for item in items {
            let ok = item
                .as_str()
                .and_then(id_in)
                .and_then(|id| self.get(kind, id))
                .is_some_and(|r| r.org == org);
            if !ok {
                return Err(ApiError::field(
                    field,
                    "Invalid hyperlink - Object does not exist.",
                ));
            }
        }
        Ok(())
    }

    /// The object as served, with computed reverse references filled in.
    pub fn render(&self, kind: &str, id: u64) -> Option<Value> {
        let rec = self.get(kind, id)?;
        let mut v = rec.value.clone();
        let url = self.url(kind, id);
        let refs_to = |k: &str, field: &str| -> Vec<Value> {
            self.in_org(k, rec.org)
                .filter(|(_, r)| match &r.value[field] {
                    Value::String(s) => s == &url,
                    Value::Array(a) => a.iter().any(|x| x.as_str() == Some(&url)),
                    _ => false,
                })
                .filter(|(_, r)| k != "queues" || r.value["status"] == "active")
                .map(|(qid, _)| json!(self.url(k, *qid)))
                .collect()
        };
        match kind {
            "workspaces" => v["queues"] = json!(refs_to("queues", "workspace")),
            "schemas" => v["queues"] = json!(refs_to("queues", "schema")),
            "connectors" => v["queues"] = json!(refs_to("queues", "connector")),
            "queues" => {
                let hooks = refs_to("hooks", "queues");
                v["hooks"] = json!(hooks);
                v["webhooks"] = json!(hooks);
                v["rules"] = json!(refs_to("rules", "queues"));
            }
            "organizations" => {
                v["workspaces"] = json!(
                    self.in_org("workspaces", id)
                        .map(|(w, _)| self.url("workspaces", *w))
                        .collect::<Vec<_>>()
                );
                v["users"] = json!(
                    self.in_org("users", id)
                        .map(|(u, _)| self.url("users", *u))
                        .collect::<Vec<_>>()
                );
            }
            _ => {}
        }
        Some(v)
    }
}

fn take_hooks(v: &mut Map<String, Value>) -> Option<Vec<String>> {
    // `webhooks` is the deprecated alias; when both are sent, Rossum uses `webhooks`.
    let webhooks = v.remove("webhooks");
    let hooks = v.remove("hooks");
    webhooks.or(hooks).and_then(|h| {
        h.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    })
}

fn require(v: &Map<String, Value>, fields: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| {
            v.get(*f)
                .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::fields(&missing, "This field is required."))
    }
}

fn default(v: &mut Map<String, Value>, key: &str, value: Value) {
    v.entry(key.to_string()).or_insert(value);
}

fn check_metadata(v: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(m) = v.get("metadata") {
        if !m.is_object() && !m.is_null() {
            return Err(ApiError::field(
                "metadata",
                "Value must be valid JSON object.",
            ));
        }
        if m.to_string().len() > METADATA_LIMIT {
            return Err(ApiError::field(
                "metadata",
                "Metadata must not exceed 4 kB.",
            ));
        }
    }
    Ok(())
}

fn counts() -> Value {
    let mut m = Map::new();
    for k in [
        "importing",
        "split",
        "failed_import",
        "to_review",
        "reviewing",
        "confirmed",
        "exporting",
        "postponed",
        "failed_export",
        "exported",
        "deleted",
        "purged",
        "rejected",
    ] {
        m.insert(k.into(), json!(0));
    }
    Value::Object(m)
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
