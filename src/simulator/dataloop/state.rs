//! The Dataloop simulator's state and the rules of its identity and organization operations
//! (design doc `vendors/dataloop.md` §1–§2, §5), independent of HTTP. The template-copy
//! objects (groups, integrations, projects, drivers, ontologies, recipes, datasets) are in
//! [`super::setup`].
//!
//! Store kinds (each record owned by its organization's id):
//!
//! | kind | store id | value |
//! |---|---|---|
//! | `orgs` | org id | the served org without its computed `members`, `groups`, `integrations`, `role`, `url`; plus `cache` (not served) |
//! | `members` | `<orgId>/<memberId>` | `{id, orgId, email, inviteEmail, role, status, defaultProjectRole, createdAt, updatedAt}`; `id` is the e-mail of an active member, a UUID for a pending invitation |
//! | `groups` | group id | the served group without its computed `projects` |
//! | `integrations` | integration id | the served integration (write-only `options` are kept apart, never served) |
//! | `projects` | project id | the served project without its computed `org`, `contributors`, `groups`, `role`, `url` |
//! | `project_members` | `<projectId>/<email>` | `{projectId, email, role, createdAt, updatedAt}` |
//! | `project_groups` | `<projectId>/<groupId>` | `{projectId, groupId, role, createdAt, updatedAt}` |
//! | `drivers`, `ontologies`, `recipes`, `datasets` | object id | the served object |
//!
//! Who may do what: a superuser may do anything anywhere (and is the only one who may change
//! a plan); an org's owners and admins manage it (members, groups, integrations, name, cache;
//! only owners hand out or take away the owner role); its members read it and create
//! projects; its workers see the org itself and nothing org-wide. In a project, org
//! owners/admins and project owners manage it; engineers also write its drivers, ontologies,
//! recipes and datasets; every contributor reads it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::simulator::kit::auth::{self, AuthFailure, TokenRegistry};
use crate::simulator::kit::{IdStyle, Store};

/// Organizations.
pub const ORGS: &str = "orgs";
/// Org memberships and pending invitations.
pub const MEMBERS: &str = "members";
/// Org groups.
pub const GROUPS: &str = "groups";
/// Org integrations.
pub const INTEGRATIONS: &str = "integrations";
/// Projects.
pub const PROJECTS: &str = "projects";
/// Project contributors.
pub const PROJECT_MEMBERS: &str = "project_members";
/// Groups given a role in a project.
pub const PROJECT_GROUPS: &str = "project_groups";
/// Storage drivers.
pub const DRIVERS: &str = "drivers";
/// Ontologies (label trees).
pub const ONTOLOGIES: &str = "ontologies";
/// Recipes.
pub const RECIPES: &str = "recipes";
/// Datasets.
pub const DATASETS: &str = "datasets";
/// Every kind, as [`crate::simulator::kit::SimulatorHandle`] names them.
pub const KINDS: &[&str] = &[
    ORGS,
    MEMBERS,
    GROUPS,
    INTEGRATIONS,
    PROJECTS,
    PROJECT_MEMBERS,
    PROJECT_GROUPS,
    DRIVERS,
    ONTOLOGIES,
    RECIPES,
    DATASETS,
];

/// Org roles on the wire.
pub const ORG_ROLES: &[&str] = &["owner", "admin", "member", "worker"];
/// Project roles on the wire ("Developer" is `engineer`).
pub const PROJECT_ROLES: &[&str] = &["owner", "engineer", "annotator", "annotationManager"];
/// Plans.
pub const PLANS: &[&str] = &["premium", "freemium"];
/// Pod types of the org cache.
pub const POD_TYPES: &[&str] = &["small", "medium", "high"];

/// Largest string the simulator keeps in a name or title.
pub const MAX_NAME: usize = 256;

/// A Dataloop user. Their id on the wire is their e-mail.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// E-mail (lower case), the user id.
    pub email: String,
    /// Auth0-style subject (`sub` claim).
    pub subject: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// `user` or `bot`.
    pub kind: String,
    /// Password for `POST /token` (`user_credentials`), if they can log in that way.
    pub password: Option<String>,
    /// May change plans and see every org.
    pub superuser: bool,
    /// The org new projects land in (`POST /users/me {"org"}` changes it).
    pub active_org: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// E-mail (lower case).
    pub email: String,
    /// Superuser.
    pub superuser: bool,
}

/// What a successful operation answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// 200 with a JSON body.
    Json(Value),
    /// 204, no body.
    NoContent,
}

/// An operation's result.
pub type Answer = Result<Out, ApiError>;

/// Everything the simulator holds.
#[derive(Debug)]
pub struct State {
    /// Every object, by kind.
    pub store: Store,
    /// Users by e-mail (lower case).
    pub users: BTreeMap<String, User>,
    /// `http://127.0.0.1:P/api/v1`, for the `url` fields.
    pub base_url: String,
    /// Lifetime of tokens from `POST /token` (and of the printed test tokens).
    pub token_lifetime: Duration,
    /// Lifetime of API keys from `POST /apiKeys`.
    pub api_key_lifetime: Duration,
    /// How many `fs-cache?mode=get` polls answer `PENDING` after a cache is applied.
    pub cache_pending_polls: u32,
    key: Vec<u8>,
    refresh_tokens: TokenRegistry<String>,
    pub(super) integration_options: HashMap<String, Value>,
    pending_polls: HashMap<String, u32>,
    rng: fastrand::Rng,
}

/// Epoch milliseconds, as Dataloop's users, orgs, groups and integrations carry them.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// An ISO 8601 UTC time with milliseconds, as ontologies, recipes, drivers and datasets carry
/// them.
pub fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The string at `key` of a JSON body, trimmed; 400 unless it is a non-empty string of at
/// most [`MAX_NAME`] characters.
pub fn required_str(body: &Value, key: &str) -> Result<String, ApiError> {
    match body.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME => {
            Ok(s.trim().to_string())
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Err(ApiError::bad_request(format!(
            "\"{key}\" is longer than {MAX_NAME} characters"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "\"{key}\" is required and must be a non-empty string"
        ))),
    }
}

/// The optional string at `key`, 400 when present and not a string (or too long).
pub fn optional_str(body: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_str(body, key).map(Some),
    }
}

/// A list of id strings at `key`; 400 unless an array of non-empty strings.
pub fn id_list(body: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::bad_request(format!("\"{key}\" must be an array of ids"));
    let items = body.get(key).and_then(Value::as_array).ok_or_else(bad)?;
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let s = i.as_str().filter(|s| !s.is_empty() && s.len() <= MAX_NAME);
        let s = s.ok_or_else(bad)?;
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// Whether `s` looks like an e-mail address (what the gate checks before inviting).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        && !domain.contains('@')
}

fn member_key(org: &str, id: &str) -> String {
    format!("{org}/{id}")
}

impl State {
    /// An empty state; generated ids are reproducible from `id_seed` when given.
    pub fn new(id_seed: Option<u64>) -> Self {
        let seed = id_seed.unwrap_or_else(|| fastrand::u64(..));
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_da7a_100b);
        // Tokens are signed with a key of this run: a token from another simulator run, or one
        // edited by hand, is refused like a forged one.
        let key: Vec<u8> = (0..32).map(|_| rng.u8(..)).collect();
        Self {
            store: Store::with_seed(IdStyle::Uuid, seed),
            users: BTreeMap::new(),
            base_url: "http://127.0.0.1/api/v1".into(),
            token_lifetime: Duration::from_secs(24 * 3600),
            api_key_lifetime: Duration::from_secs(365 * 24 * 3600),
            cache_pending_polls: 0,
            key,
            refresh_tokens: TokenRegistry::new(),
            integration_options: HashMap::new(),
            pending_polls: HashMap::new(),
            rng,
        }
    }

    /// Sets every write counter back to zero (after seeding).
    pub fn reset_counters(&mut self) {
        self.store.reset_counters();
    }

    /// A fresh UUID (never one in use).
    pub fn new_id(&mut self) -> String {
        self.store.new_id()
    }

    // ---- users and tokens ----

    /// Adds a user (or replaces one with the same e-mail). Not an API write.
    pub fn add_user(
        &mut self,
        email: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
        password: Option<&str>,
    ) {
        let email = email.to_ascii_lowercase();
        let subject = format!("auth0|{:024x}", self.rng.u128(..) >> 32);
        let kind = if email.ends_with("@bot.dataloop.ai") {
            "bot"
        } else {
            "user"
        };
        let previous = self.users.get(&email).cloned();
        self.users.insert(
            email.clone(),
            User {
                email: email.clone(),
                subject: previous.as_ref().map_or(subject, |p| p.subject.clone()),
                first_name: first_name.map(str::to_string),
                last_name: last_name.map(str::to_string),
                kind: kind.into(),
                password: password.map(str::to_string),
                superuser: previous.as_ref().is_some_and(|p| p.superuser),
                active_org: previous.and_then(|p| p.active_org),
                created_at: now_ms(),
            },
        );
    }

    /// A signed JWT for `email`, valid for `lifetime`, with the claims dtlpy and the docs show
    /// (`email` and `exp` are the ones dtlpy needs).
    pub fn issue_token(&mut self, email: &str, lifetime: Duration) -> String {
        let email = email.to_ascii_lowercase();
        let user = self.users.get(&email);
        let now = auth::unix_now();
        let name = user
            .map(|u| {
                [u.first_name.as_deref(), u.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let claims = json!({
            "name": name,
            "nickname": email.split('@').next().unwrap_or_default(),
            "picture": avatar(&email),
            "email": email,
            "email_verified": true,
            "iss": "https://orgops-dataloop-simulator.invalid/",
            "sub": user.map(|u| u.subject.clone()).unwrap_or_default(),
            "aud": "orgops-dataloop-simulator",
            "iat": now,
            "exp": now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2)),
            // Two tokens of one user in one second still differ (a renewal is a new token).
            "jti": format!("{:032x}", self.rng.u128(..)),
        });
        auth::hs256_jwt(&claims, &self.key)
    }

    /// The caller a bearer token stands for: 401 unless this simulator signed it, it has not
    /// expired, and its `email` is a known user.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        let token =
            token.ok_or_else(|| ApiError::unauthorized("No authorization token was found"))?;
        let claims = auth::verify_hs256(token, &self.key).map_err(|f| match f {
            AuthFailure::Malformed => ApiError::unauthorized("jwt malformed"),
            _ => ApiError::unauthorized("invalid signature"),
        })?;
        if auth::jwt_expired(&claims, auth::unix_now()) {
            return Err(ApiError::unauthorized("jwt expired"));
        }
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| ApiError::unauthorized("invalid token"))?;
        let user = self
            .users
            .get(&email)
            .ok_or_else(|| ApiError::unauthorized("invalid token"))?;
        Ok(Caller {
            email,
            superuser: user.superuser,
        })
    }

    /// `POST {gate}/token?default`: `user_credentials` (e-mail and password) or
    /// `refresh_token`. Answers `{id_token, access_token, refresh_token?, expires_in,
    /// token_type}`; the `access_token` is not a gate bearer (dtlpy uses `id_token`).
    pub fn token_grant(&mut self, body: &Value) -> Answer {
        let lifetime = self.token_lifetime;
        let opaque = |rng: &mut fastrand::Rng| format!("{:032x}", rng.u128(..));
        match body.get("type").and_then(Value::as_str) {
            Some("user_credentials") => {
                let username = body.get("username").and_then(Value::as_str);
                let password = body.get("password").and_then(Value::as_str);
                let user = username
                    .map(str::to_ascii_lowercase)
                    .and_then(|u| self.users.get(&u));
                let ok = match (user, password) {
                    (Some(u), Some(p)) => u.password.as_deref() == Some(p),
                    _ => false,
                };
                let Some(user) = user.filter(|_| ok) else {
                    return Err(ApiError::unauthorized("Wrong email or password."));
                };
                let email = user.email.clone();
                let id_token = self.issue_token(&email, lifetime);
                let refresh = self.refresh_tokens.issue(email, None);
                let access = opaque(&mut self.rng);
                Ok(Out::Json(json!({
                    "id_token": id_token,
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_in": lifetime.as_secs(),
                    "token_type": "Bearer",
                })))
            }
            Some("refresh_token") => {
                let token = body.get("refresh_token").and_then(Value::as_str);
                let email = token
                    .and_then(|t| self.refresh_tokens.lookup(t).ok().cloned())
                    .filter(|e| self.users.contains_key(e))
                    .ok_or_else(|| ApiError::unauthorized("Unknown or invalid refresh token."))?;
                let id_token = self.issue_token(&email, lifetime);
                let access = opaque(&mut self.rng);
                Ok(Out::Json(json!({
                    "id_token": id_token,
                    "access_token": access,
                    "expires_in": lifetime.as_secs(),
                    "token_type": "Bearer",
                })))
            }
            _ => Err(ApiError::bad_request(
                "\"type\" must be \"user_credentials\" or \"refresh_token\"",
            )),
        }
    }

    /// `POST /apiKeys {"userId", "description"?}`: a long-lived JWT for the caller.
    pub fn create_api_key(&mut self, caller: &Caller, body: &Value) -> Answer {
        let user_id = required_str(body, "userId")?.to_ascii_lowercase();
        if user_id != caller.email {
            return Err(ApiError::forbidden(
                "API keys can only be created for yourself",
            ));
        }
        let description = optional_str(body, "description")?;
        let jwt = self.issue_token(&caller.email, self.api_key_lifetime);
        let id = self.new_id();
        Ok(Out::Json(json!({
            "id": id,
            "jwt": jwt,
            "userId": caller.email,
            "description": description,
            "createdAt": now_ms(),
        })))
    }

    /// `GET /users/me`.
    pub fn me(&self, caller: &Caller) -> Answer {
        Ok(Out::Json(self.render_me(&caller.email)))
    }

    fn render_me(&self, email: &str) -> Value {
        let mut v = self.render_user(email);
        let orgs: Vec<String> = self
            .store
            .list(MEMBERS)
            .into_iter()
            .filter(|(_, r)| r.value["status"] == "active" && r.value["email"] == email)
            .map(|(_, r)| r.org.clone())
            .collect();
        let projects: Vec<Value> = self
            .store
            .list(PROJECT_MEMBERS)
            .into_iter()
            .filter(|(_, r)| r.value["email"] == email)
            .map(|(_, r)| r.value["projectId"].clone())
            .collect();
        v["orgs"] = json!(orgs);
        v["projects"] = json!(projects);
        v["groups"] = json!(self.user_groups(email));
        v
    }

    /// `POST /users/me {"org"?, "firstName"?, "lastName"?, …}`: the caller's own details; `org`
    /// (the active org, where new projects land) must be one they are an active member of.
    pub fn update_me(&mut self, caller: &Caller, body: &Value) -> Answer {
        if !body.is_object() {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        let org = match body.get("org") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => {
                let org = required_str(body, "org")?;
                self.org_value(&org)?;
                if self.org_role(caller, &org).is_none() {
                    return Err(ApiError::bad_request(
                        "You are not a member of this organization",
                    ));
                }
                Some(Some(org))
            }
        };
        let first = optional_str(body, "firstName")?;
        let last = optional_str(body, "lastName")?;
        if let Some(u) = self.users.get_mut(&caller.email) {
            if let Some(o) = org {
                u.active_org = o;
            }
            if first.is_some() {
                u.first_name = first;
            }
            if last.is_some() {
                u.last_name = last;
            }
        }
        Ok(Out::Json(self.render_me(&caller.email)))
    }

    /// A user as the gate shows them in member lists (`APIUser`); an e-mail with no account
    /// yet gets the same keys with what is known.
    pub fn render_user(&self, email: &str) -> Value {
        let u = self.users.get(email);
        json!({
            "id": email,
            "username": email,
            "email": email,
            "firstName": u.and_then(|u| u.first_name.clone()),
            "lastName": u.and_then(|u| u.last_name.clone()),
            "avatar": avatar(email),
            "type": u.map_or("user", |u| u.kind.as_str()),
            "org": u.and_then(|u| u.active_org.clone()),
            "createdAt": u.map_or(0, |u| u.created_at),
            "updatedAt": u.map_or(0, |u| u.created_at),
        })
    }

    fn user_groups(&self, email: &str) -> Vec<Value> {
        self.store
            .list(GROUPS)
            .into_iter()
            .filter(|(_, r)| {
                r.value["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x == email))
            })
            .map(|(id, r)| json!({"id": id, "name": r.value["name"]}))
            .collect()
    }

    // ---- organizations ----

    /// The stored org `id`; 404 when there is none.
    pub fn org_value(&self, id: &str) -> Result<&Value, ApiError> {
        self.store
            .get(ORGS, id)
            .map(|r| &r.value)
            .ok_or_else(|| ApiError::not_found(format!("Organization not found: {id}")))
    }

    /// Creates an organization (the seed does; the API does not let anyone).
    pub fn create_org(&mut self, id: &str, name: &str, plan: &str, owner: &str) -> String {
        let owner = owner.to_ascii_lowercase();
        let now = now_ms();
        let account_id = self.new_id();
        let org = json!({
            "id": id,
            "name": name,
            "plan": plan,
            "logoUrl": null,
            "owner": owner,
            "creator": owner,
            "account": {
                "id": account_id,
                "name": format!("{name}'s account"),
                "owner": owner,
                "org": id,
                "creator": owner,
                "createdAt": now,
                "updatedAt": now,
            },
            "createdAt": now,
            "updatedAt": now,
            "cache": {"filestore": false, "volume": false, "cache": false, "podType": null},
        });
        let _ = self.store.create(ORGS, Some(id.to_string()), id, org);
        let key = member_key(id, &owner);
        let _ = self.store.create(
            MEMBERS,
            Some(key),
            id,
            json!({
                "id": owner, "orgId": id, "email": owner, "inviteEmail": owner,
                "role": "owner", "status": "active", "defaultProjectRole": null,
                "createdAt": now, "updatedAt": now,
            }),
        );
        if let Some(u) = self.users.get_mut(&owner)
            && u.active_org.is_none()
        {
            u.active_org = Some(id.to_string());
        }
        id.to_string()
    }

    /// The caller's role in `org` (superusers: `owner` everywhere); `None` when they are not an
    /// active member.
    pub fn org_role(&self, caller: &Caller, org: &str) -> Option<String> {
        if caller.superuser {
            return Some("owner".into());
        }
        self.store
            .get(MEMBERS, &member_key(org, &caller.email))
            .filter(|r| r.value["status"] == "active")
            .and_then(|r| r.value["role"].as_str())
            .map(str::to_string)
    }

    /// 404 for an unknown org, 403 unless the caller's role allows `need`.
    pub fn need_org(&self, caller: &Caller, org: &str, need: OrgNeed) -> Result<String, ApiError> {
        self.org_value(org)?;
        let role = self
            .org_role(caller, org)
            .ok_or_else(|| ApiError::forbidden("You are not a member of this organization"))?;
        let ok = match need {
            OrgNeed::See => true,
            OrgNeed::Read => role != "worker",
            OrgNeed::Manage => role == "owner" || role == "admin",
        };
        if !ok {
            return Err(ApiError::forbidden(match need {
                OrgNeed::Manage => "Only the organization's owners and admins may do this",
                _ => "Workers cannot see the organization's members, groups or integrations",
            }));
        }
        Ok(role)
    }

    /// An org as the gate serves it (`APIOrg`), for `caller`.
    pub fn render_org(&self, caller: &Caller, id: &str) -> Value {
        let Ok(v) = self.org_value(id) else {
            return Value::Null;
        };
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("cache");
        }
        let members: Vec<Value> = self
            .store
            .in_org(MEMBERS, id)
            .into_iter()
            .filter(|(_, r)| r.value["status"] == "active")
            .filter_map(|(_, r)| r.value["email"].as_str())
            .map(|e| self.render_user(e))
            .collect();
        let groups: Vec<Value> = self
            .store
            .in_org(GROUPS, id)
            .into_iter()
            .map(|(gid, _)| self.render_group(gid))
            .collect();
        let integrations: Vec<Value> = self
            .store
            .in_org(INTEGRATIONS, id)
            .into_iter()
            .map(|(_, r)| r.value.clone())
            .collect();
        v["members"] = json!(members);
        v["groups"] = json!(groups);
        v["integrations"] = json!(integrations);
        v["role"] = json!(self.org_role(caller, id));
        v["url"] = json!(format!("{}/orgs/{id}", self.base_url));
        v
    }

    /// `GET /orgs`: the orgs the caller is an active member of (a superuser: every org).
    pub fn list_orgs(&self, caller: &Caller) -> Answer {
        let ids: Vec<String> = self
            .store
            .list(ORGS)
            .into_iter()
            .map(|(id, _)| id.to_string())
            .filter(|id| self.org_role(caller, id).is_some())
            .collect();
        Ok(Out::Json(Value::Array(
            ids.iter().map(|id| self.render_org(caller, id)).collect(),
        )))
    }

    /// `GET /orgs/{id}`.
    pub fn get_org(&self, caller: &Caller, id: &str) -> Answer {
        self.need_org(caller, id, OrgNeed::See)?;
        Ok(Out::Json(self.render_org(caller, id)))
    }

    /// `PATCH /orgs/{id} {"name"}`; names stay unique (dtlpy finds orgs by name and fails on
    /// two).
    pub fn rename_org(&mut self, caller: &Caller, id: &str, body: &Value) -> Answer {
        self.need_org(caller, id, OrgNeed::Manage)?;
        let name = required_str(body, "name")?;
        if self
            .store
            .find(ORGS, |oid, r| oid != id && r.value["name"] == name.as_str())
            .is_some()
        {
            return Err(ApiError::conflict(
                "An organization with this name already exists",
            ));
        }
        let now = now_ms();
        self.store
            .update(ORGS, id, |v| {
                v["name"] = json!(name);
                v["updatedAt"] = json!(now);
            })
            .map_err(|_| ApiError::not_found("Organization not found"))?;
        Ok(Out::Json(self.render_org(caller, id)))
    }

    /// `PATCH /orgs/{id}/plan {"plan"}`: superusers only (403 for everyone else, owners
    /// included), then `premium|freemium` (else 400).
    pub fn set_plan(&mut self, caller: &Caller, id: &str, body: &Value) -> Answer {
        self.org_value(id)?;
        if !caller.superuser {
            return Err(ApiError::forbidden(
                "Only a superuser may change an organization's plan",
            ));
        }
        let plan = body.get("plan").and_then(Value::as_str);
        let Some(plan) = plan.filter(|p| PLANS.contains(p)) else {
            return Err(ApiError::bad_request(
                "\"plan\" must be one of: premium, freemium",
            ));
        };
        let now = now_ms();
        self.store
            .update(ORGS, id, |v| {
                v["plan"] = json!(plan);
                v["updatedAt"] = json!(now);
            })
            .map_err(|_| ApiError::not_found("Organization not found"))?;
        Ok(Out::Json(self.render_org(caller, id)))
    }

    // ---- org members ----

    fn render_member(&self, rec: &Value) -> Value {
        if rec["status"] == "active"
            && let Some(email) = rec["email"].as_str()
        {
            let mut u = self.render_user(email);
            u["role"] = rec["role"].clone();
            u["status"] = json!("active");
            u["defaultProjectRole"] = rec["defaultProjectRole"].clone();
            u["updatedAt"] = rec["updatedAt"].clone();
            return u;
        }
        json!({
            "id": rec["id"],
            "username": null,
            "email": null,
            "firstName": null,
            "lastName": null,
            "avatar": null,
            "type": null,
            "inviteEmail": rec["inviteEmail"],
            "role": rec["role"],
            "status": "pending",
            "defaultProjectRole": rec["defaultProjectRole"],
            "org": rec["orgId"],
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
        })
    }

    fn render_org_user(rec: &Value) -> Value {
        json!({
            "id": rec["id"],
            "member": rec["email"],
            "org": rec["orgId"],
            "role": rec["role"],
            "status": rec["status"],
            "inviteEmail": rec["inviteEmail"],
            "defaultProjectRole": rec["defaultProjectRole"],
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
        })
    }

    /// `GET /orgs/{id}/members`: active members (full users with `role`) and pending
    /// invitations (`email: null`, `inviteEmail`, `status: "pending"`), in the order they
    /// joined or were invited.
    pub fn list_members(&self, caller: &Caller, org: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Read)?;
        let out: Vec<Value> = self
            .store
            .in_org(MEMBERS, org)
            .into_iter()
            .map(|(_, r)| self.render_member(&r.value))
            .collect();
        Ok(Out::Json(Value::Array(out)))
    }

    /// The membership record of `email` in `org`, active or pending, matched
    /// case-insensitively on `email` or `inviteEmail`.
    pub fn find_member(&self, org: &str, email: &str) -> Option<(String, Value)> {
        let email = email.to_ascii_lowercase();
        self.store
            .in_org(MEMBERS, org)
            .into_iter()
            .find(|(_, r)| {
                r.value["email"].as_str() == Some(email.as_str())
                    || (r.value["status"] == "pending"
                        && r.value["inviteEmail"].as_str() == Some(email.as_str()))
            })
            .map(|(k, r)| (k.to_string(), r.value.clone()))
    }

    fn valid_org_role(body: &Value) -> Result<String, ApiError> {
        body.get("role")
            .and_then(Value::as_str)
            .filter(|r| ORG_ROLES.contains(r))
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::bad_request("\"role\" must be one of: owner, admin, member, worker")
            })
    }

    /// `POST /orgs/{id}/members {"emails", "role"}`: an invitation per address, pending until
    /// the person accepts; 409 when one is a member or invited already (nothing is added).
    pub fn add_members(&mut self, caller: &Caller, org: &str, body: &Value) -> Answer {
        let my_role = self.need_org(caller, org, OrgNeed::Manage)?;
        let role = Self::valid_org_role(body)?;
        if role == "owner" && my_role != "owner" {
            return Err(ApiError::forbidden("Only owners may add owners"));
        }
        let emails = body
            .get("emails")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty() && a.len() <= 100)
            .ok_or_else(|| {
                ApiError::bad_request("\"emails\" must be an array of 1 to 100 e-mail addresses")
            })?;
        let mut wanted: Vec<String> = Vec::new();
        for e in emails {
            let e = e
                .as_str()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| is_email(s))
                .ok_or_else(|| ApiError::bad_request("Invalid e-mail address in \"emails\""))?;
            if self.find_member(org, &e).is_some() {
                return Err(ApiError::conflict(
                    "The user is already a member of the organization or invited to it",
                ));
            }
            if !wanted.contains(&e) {
                wanted.push(e);
            }
        }
        let now = now_ms();
        let mut out = Vec::new();
        for e in wanted {
            let id = self.new_id();
            let rec = json!({
                "id": id, "orgId": org, "email": null, "inviteEmail": e,
                "role": role, "status": "pending", "defaultProjectRole": null,
                "createdAt": now, "updatedAt": now,
            });
            out.push(Self::render_org_user(&rec));
            let _ = self
                .store
                .create(MEMBERS, Some(member_key(org, &id)), org, rec);
        }
        Ok(Out::Json(Value::Array(out)))
    }

    /// `PATCH /orgs/{id}/members {"email", "role", "default_project_role"?}`: the role of a
    /// member or a pending invitation; the org's owner (its creator) keeps `owner`.
    pub fn update_member(&mut self, caller: &Caller, org: &str, body: &Value) -> Answer {
        let my_role = self.need_org(caller, org, OrgNeed::Manage)?;
        let role = Self::valid_org_role(body)?;
        let email = required_str(body, "email")?;
        let default_role = match body.get("default_project_role") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|r| PROJECT_ROLES.contains(r))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "\"default_project_role\" must be one of: owner, engineer, annotator, annotationManager",
                        )
                    })?
                    .to_string(),
            ),
        };
        let (key, rec) = self
            .find_member(org, &email)
            .ok_or_else(|| ApiError::not_found("Member not found in the organization"))?;
        if (role == "owner" || rec["role"] == "owner") && my_role != "owner" {
            return Err(ApiError::forbidden("Only owners may change owners"));
        }
        let org_owner = self.org_value(org)?["owner"].clone();
        if rec["email"] == org_owner && role != "owner" {
            return Err(ApiError::bad_request(
                "The organization's owner cannot be demoted",
            ));
        }
        let now = now_ms();
        let updated = self
            .store
            .update(MEMBERS, &key, |v| {
                v["role"] = json!(role);
                if let Some(d) = &default_role {
                    v["defaultProjectRole"] = json!(d);
                }
                v["updatedAt"] = json!(now);
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Member not found in the organization"))?;
        Ok(Out::Json(json!([self.render_member(&updated)])))
    }

    /// `DELETE /orgs/{id}/members/{memberId}`: removes a member (by e-mail) or revokes an
    /// invitation (by its id); the org's owner cannot be removed.
    pub fn remove_member(&mut self, caller: &Caller, org: &str, member_id: &str) -> Answer {
        let my_role = self.need_org(caller, org, OrgNeed::Manage)?;
        let key = member_key(org, &member_id.to_ascii_lowercase());
        let key = if self.store.contains(MEMBERS, &key) {
            key
        } else {
            member_key(org, member_id)
        };
        let rec = self
            .store
            .get(MEMBERS, &key)
            .map(|r| r.value.clone())
            .ok_or_else(|| ApiError::not_found("Member not found in the organization"))?;
        if rec["role"] == "owner" && my_role != "owner" {
            return Err(ApiError::forbidden("Only owners may remove owners"));
        }
        if rec["status"] == "active" && rec["email"] == self.org_value(org)?["owner"] {
            return Err(ApiError::bad_request(
                "The organization's owner cannot be removed",
            ));
        }
        self.store.delete(MEMBERS, &key);
        Ok(Out::NoContent)
    }

    /// Test hand edit: the person invited as `email` to `org` accepts; the invitation becomes
    /// an active membership whose id is their e-mail (a user account is made for a new
    /// address). Not an API write.
    pub fn accept_invitation(&mut self, org: &str, email: &str) -> Result<(), String> {
        let email = email.to_ascii_lowercase();
        let (key, rec) = self
            .find_member(org, &email)
            .filter(|(_, r)| r["status"] == "pending")
            .ok_or_else(|| format!("no pending invitation of {email} to {org}"))?;
        if !self.users.contains_key(&email) {
            let local = email.split('@').next().unwrap_or_default().to_string();
            self.add_user(&email, Some(&local), None, None);
        }
        self.store
            .hand_remove(MEMBERS, &key)
            .map_err(|e| e.to_string())?;
        let mut active = rec;
        active["id"] = json!(email);
        active["email"] = json!(email);
        active["status"] = json!("active");
        active["updatedAt"] = json!(now_ms());
        self.store
            .hand_insert(MEMBERS, &member_key(org, &email), org, active)
            .map_err(|e| e.to_string())?;
        if let Some(u) = self.users.get_mut(&email)
            && u.active_org.is_none()
        {
            u.active_org = Some(org.to_string());
        }
        Ok(())
    }

    /// Test hand edit: `email` joins `org` directly as an active member with `role` (a user
    /// account is made for a new address). Not an API write.
    pub fn join_org(&mut self, org: &str, email: &str, role: &str) -> Result<(), String> {
        let email = email.to_ascii_lowercase();
        if !ORG_ROLES.contains(&role) {
            return Err(format!("no org role {role:?}"));
        }
        if self.find_member(org, &email).is_some() {
            return Err(format!("{email} is already a member of {org} or invited"));
        }
        if !self.users.contains_key(&email) {
            let local = email.split('@').next().unwrap_or_default().to_string();
            self.add_user(&email, Some(&local), None, None);
        }
        let now = now_ms();
        self.store
            .hand_insert(
                MEMBERS,
                &member_key(org, &email),
                org,
                json!({
                    "id": email, "orgId": org, "email": email, "inviteEmail": email,
                    "role": role, "status": "active", "defaultProjectRole": null,
                    "createdAt": now, "updatedAt": now,
                }),
            )
            .map_err(|e| e.to_string())?;
        if let Some(u) = self.users.get_mut(&email)
            && u.active_org.is_none()
        {
            u.active_org = Some(org.to_string());
        }
        Ok(())
    }

    // ---- cache ----

    /// `POST /services/fs-cache?mode=…` and `POST /services/cache?mode=…` (dtlpy's
    /// `cache_action`): body `{"org": {"id", "name"}, "runner": {"podType"}}`, owners and
    /// admins of that org. Answers `{"state"}` (`fs-cache`) or 204 (`cache`).
    pub fn cache(&mut self, caller: &Caller, service: &str, mode: &str, body: &Value) -> Answer {
        let org = body
            .get("org")
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("\"org.id\" is required"))?
            .to_string();
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let pod = match body.get("runner").and_then(|r| r.get("podType")) {
            None | Some(Value::Null) => None,
            Some(p) => Some(
                p.as_str()
                    .filter(|p| POD_TYPES.contains(p))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "\"runner.podType\" must be one of: small, medium, high",
                        )
                    })?
                    .to_string(),
            ),
        };
        let cache = self.org_value(&org)?["cache"].clone();
        let flag = |k: &str| cache[k].as_bool().unwrap_or(false);
        let state_of = |filestore: bool, left: u32| {
            if !filestore {
                "NONE"
            } else if left > 0 {
                "PENDING"
            } else {
                "READY"
            }
        };
        let left = self.pending_polls.get(&org).copied().unwrap_or(0);
        let set = |st: &mut Self, k: &str, on: bool| {
            let pod = pod.clone();
            let _ = st.store.update(ORGS, &org, |v| {
                v["cache"][k] = json!(on);
                if on && let Some(p) = pod {
                    v["cache"]["podType"] = json!(p);
                }
                if !on && k == "cache" {
                    v["cache"]["podType"] = Value::Null;
                }
            });
        };
        match (service, mode) {
            ("fs-cache", "get") => {
                let state = state_of(flag("filestore"), left);
                if left > 0 {
                    self.pending_polls.insert(org.clone(), left - 1);
                }
                Ok(Out::Json(json!({"state": state})))
            }
            ("fs-cache", "apply-filestore") => {
                if !flag("filestore") {
                    self.pending_polls
                        .insert(org.clone(), self.cache_pending_polls);
                }
                set(self, "filestore", true);
                let left = self.pending_polls.get(&org).copied().unwrap_or(0);
                Ok(Out::Json(json!({"state": state_of(true, left)})))
            }
            ("fs-cache", "apply") => {
                if !flag("filestore") {
                    return Err(ApiError::bad_request(
                        "Apply the filestore (mode=apply-filestore) first",
                    ));
                }
                set(self, "volume", true);
                Ok(Out::Json(json!({"state": state_of(true, left)})))
            }
            ("fs-cache", "destroy") => {
                set(self, "volume", false);
                set(self, "filestore", false);
                self.pending_polls.remove(&org);
                Ok(Out::Json(json!({"state": "NONE"})))
            }
            ("cache", "apply") => {
                set(self, "cache", true);
                Ok(Out::NoContent)
            }
            ("cache", "destroy") => {
                set(self, "cache", false);
                Ok(Out::NoContent)
            }
            _ => Err(ApiError::bad_request(format!(
                "Unknown mode for /services/{service}"
            ))),
        }
    }
}

/// What an org operation needs of the caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgNeed {
    /// Any active member (the org itself).
    See,
    /// Owners, admins and members (members, groups, integrations, projects).
    Read,
    /// Owners and admins.
    Manage,
}

/// The avatar URL the gate would show for `email`.
pub fn avatar(email: &str) -> String {
    format!(
        "https://avatars.orgops-simulator.invalid/{}.png",
        email.split('@').next().unwrap_or_default()
    )
}

/// The stored value of `kind` object `id` as an object map (for code that edits a copy).
pub fn as_map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        for ok in ["a@b.io", "first.last+tag@sub.example.com"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.io", "a@b", "a@.io", "a@b.", "a b@c.io", "a@b@c.io", "a/b@c.io",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn iso_times_have_milliseconds_and_zulu() {
        let t = now_iso();
        assert_eq!(t.len(), "2024-01-01T00:00:00.000Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    #[test]
    fn tokens_name_their_user_and_expire() {
        let mut st = State::new(Some(1));
        st.add_user("Ann@Example.com", Some("Ann"), None, Some("pw"));
        let t = st.issue_token("ann@example.com", Duration::from_secs(60));
        let c = st.authenticate(Some(&t)).unwrap();
        assert_eq!(c.email, "ann@example.com");
        let claims = auth::jwt_claims(&t).unwrap();
        assert_eq!(claims["email"], "ann@example.com");
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
        let old = st.issue_token("ann@example.com", Duration::ZERO);
        assert_eq!(
            st.authenticate(Some(&old)).unwrap_err().message,
            "jwt expired"
        );
        let other = State::new(Some(2));
        assert_eq!(other.authenticate(Some(&t)).unwrap_err().status, 401);
        assert_eq!(st.authenticate(None).unwrap_err().status, 401);
        let ghost = st.issue_token("ghost@example.com", Duration::from_secs(60));
        assert_eq!(st.authenticate(Some(&ghost)).unwrap_err().status, 401);
    }
}
