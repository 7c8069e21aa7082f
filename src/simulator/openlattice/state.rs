//! The OpenLattice simulator's state and the rules of each operation (design doc
//! `vendors/openlattice.md` §2–§5), independent of HTTP.
//!
//! Store kinds (all owned by their organization's id):
//!
//! | kind | id | value |
//! |---|---|---|
//! | `organizations` | org id | the served Organization without its computed `members`, `roles`, `securablePrincipal` |
//! | `roles` | role id | the served Role (`@class`, `id`, `organizationId`, `principal`, `title`, `description`, `aclKey`) |
//! | `members` | `<orgId>/<userId>` | `{"id", "organizationId", "principal": {"type": "USER", "id"}}` |
//! | `role_members` | `<roleId>/<userId>` | `{"id", "organizationId", "roleId", "principal"}` |
//!
//! Permissions follow what the server grants: an organization's creator and the holders of its
//! admin role own it (and its roles); members read it; global admins (a configured set of
//! subjects) may change e-mail domains and connections.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::simulator::kit::ids::is_uuid;
use crate::simulator::kit::{IdStyle, Store};

/// Organizations.
pub const ORGS: &str = "organizations";
/// Roles.
pub const ROLES: &str = "roles";
/// Organization memberships.
pub const MEMBERS: &str = "members";
/// Role grants to users.
pub const ROLE_MEMBERS: &str = "role_members";
/// Every kind.
pub const KINDS: &[&str] = &[ORGS, ROLES, MEMBERS, ROLE_MEMBERS];

/// `@class` of an organization's securable principal.
pub const ORG_CLASS: &str = "com.openlattice.organization.OrganizationPrincipal";
/// `@class` of a role.
pub const ROLE_CLASS: &str = "com.openlattice.organization.roles.Role";
/// `@class` of a user's securable principal.
pub const PRINCIPAL_CLASS: &str = "com.openlattice.authorization.SecurablePrincipal";

const GRANT_TYPES: &[&str] = &[
    "Attributes",
    "Automatic",
    "Claim",
    "EmailDomain",
    "Groups",
    "Manual",
    "Roles",
];

/// Keys an Organization body may carry (the JS SDK's full body); anything else is refused, as
/// the server's mapper does.
const ORG_KEYS: &[&str] = &[
    "id",
    "principal",
    "title",
    "description",
    "emailDomains",
    "members",
    "roles",
    "apps",
    "smsEntitySetInfo",
    "partitions",
    "connections",
    "grants",
    "adminRoleAclKey",
    "metadataEntitySetIds",
    "organizationMetadataEntitySets",
    "securablePrincipal",
];

/// A user (an Auth0 account the server has synchronised).
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Auth0 subject, the USER principal id (`google-oauth2|123`).
    pub subject: String,
    /// Id of the user's securable principal.
    pub id: String,
    /// E-mail, when known.
    pub email: Option<String>,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
}

/// Who is calling: the JWT's `sub` and whether it is a global admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// USER principal id.
    pub subject: String,
    /// Global admin.
    pub admin: bool,
}

/// Everything the simulator holds.
#[derive(Debug)]
pub struct State {
    /// Organizations, roles, memberships.
    pub store: Store,
    /// Users by subject.
    pub users: BTreeMap<String, User>,
    /// Global admin subjects.
    pub admins: BTreeSet<String>,
    creators: HashMap<String, String>,
    databases: HashMap<String, String>,
}

/// What a successful operation answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// 200 with a JSON body.
    Json(Value),
    /// 200 with an empty body (the server's `Void` answers).
    Void,
}

type Answer = Result<Out, ApiError>;

fn member_key(org: &str, subject: &str) -> String {
    format!("{org}/{subject}")
}

fn role_member_key(role: &str, subject: &str) -> String {
    format!("{role}/{subject}")
}

/// A path or body UUID in the server's canonical (lower-case) form.
pub fn uuid(s: &str) -> Result<String, ApiError> {
    if is_uuid(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        // The message names the bad value the way Java's UUID.fromString does; path values are
        // never credentials.
        Err(ApiError::illegal_argument(format!(
            "Invalid UUID string: {}",
            truncate(s, 64)
        )))
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn string_set(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    let Some(items) = v.as_array() else {
        return Err(ApiError::illegal_argument(format!(
            "Unable to read {what}: expected an array of strings"
        )));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(s) = item.as_str() else {
            return Err(ApiError::illegal_argument(format!(
                "Unable to read {what}: expected an array of strings"
            )));
        };
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// Parses a Grant body (`{"grantType", "mappings", "attribute"?}`) with the server's checks.
pub fn parse_grant(v: &Value) -> Result<Value, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::illegal_argument(
            "Unable to read Grant: expected an object",
        ));
    };
    let grant_type = obj
        .get("grantType")
        .and_then(Value::as_str)
        .filter(|t| GRANT_TYPES.contains(t))
        .ok_or_else(|| {
            ApiError::illegal_argument(format!(
                "Unable to read Grant: grantType must be one of {}",
                GRANT_TYPES.join(", ")
            ))
        })?;
    let mappings = match obj.get("mappings") {
        Some(m) => string_set(m, "Grant mappings")?,
        None => {
            return Err(ApiError::illegal_argument(
                "Unable to read Grant: missing property 'mappings'",
            ));
        }
    };
    let attribute = match obj.get("attribute") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::illegal_argument(
                "Unable to read Grant: attribute must be a string",
            ));
        }
    };
    if grant_type == "Attributes" && attribute.trim().is_empty() {
        return Err(ApiError::illegal_argument(
            "Attribute key must not be blank for Attributes grant type.",
        ));
    }
    if grant_type == "EmailDomain" {
        let invalid: Vec<&String> = mappings
            .iter()
            .filter(|m| m.find('@').is_none_or(|at| at == m.len() - 1))
            .collect();
        if !invalid.is_empty() {
            return Err(ApiError::illegal_argument(format!(
                "The following domains were not valid e-mails: {invalid:?}"
            )));
        }
    }
    Ok(json!({"grantType": grant_type, "attribute": attribute, "mappings": mappings}))
}

fn principal_of(v: Option<&Value>, what: &str) -> Result<(String, String), ApiError> {
    let p = v.and_then(Value::as_object).ok_or_else(|| {
        ApiError::illegal_argument(format!(
            "Unable to read {what}: missing property 'principal'"
        ))
    })?;
    let t = p.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::illegal_argument(format!("Unable to read {what}: principal.type is required"))
    })?;
    if !["USER", "ROLE", "ORGANIZATION", "GROUP", "APP"].contains(&t) {
        return Err(ApiError::illegal_argument(format!(
            "Unable to read {what}: unknown principal type"
        )));
    }
    let id = p
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::illegal_argument(format!("Unable to read {what}: principal.id is required"))
        })?;
    Ok((t.to_string(), id.to_string()))
}

fn optional_string(obj: &Map<String, Value>, key: &str, what: &str) -> Result<String, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::illegal_argument(format!(
            "Unable to read {what}: {key} must be a string"
        ))),
    }
}

fn optional_uuid(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => uuid(s).map(Some),
        Some(_) => Err(ApiError::illegal_argument(format!(
            "Unable to read {key}: expected a UUID string"
        ))),
    }
}

impl State {
    /// An empty state; generated ids come from `seed` (reproducible) or are random.
    pub fn new(seed: Option<u64>) -> Self {
        let store = match seed {
            Some(s) => Store::with_seed(IdStyle::Uuid, s),
            None => Store::new(IdStyle::Uuid),
        };
        Self {
            store,
            users: BTreeMap::new(),
            admins: BTreeSet::new(),
            creators: HashMap::new(),
            databases: HashMap::new(),
        }
    }

    /// Registers a user (as Auth0 synchronisation does); an existing user keeps its id.
    pub fn add_user(&mut self, subject: &str, email: Option<&str>, given: &str, family: &str) {
        if self.users.contains_key(subject) {
            return;
        }
        let id = self.store.new_id();
        self.users.insert(
            subject.to_string(),
            User {
                subject: subject.to_string(),
                id,
                email: email.map(str::to_string),
                given_name: given.to_string(),
                family_name: family.to_string(),
            },
        );
    }

    /// The caller for a JWT subject: a user on first sight is registered, as a real log-in
    /// synchronises the Auth0 account.
    pub fn caller(&mut self, subject: &str, email: Option<&str>) -> Caller {
        self.add_user(subject, email, "", "");
        Caller {
            subject: subject.to_string(),
            admin: self.admins.contains(subject),
        }
    }

    fn org(&self, org: &str) -> Option<&Value> {
        self.store.get(ORGS, org).map(|r| &r.value)
    }

    fn ensure_exists(&self, org: &str) -> Result<(), ApiError> {
        if self.org(org).is_some() {
            Ok(())
        } else {
            Err(ApiError::illegal_state(format!(
                "Organization [{org}] does not exist."
            )))
        }
    }

    /// The id of `org`'s admin role.
    pub fn admin_role_id(&self, org: &str) -> Option<String> {
        self.org(org)?["adminRoleAclKey"][1]
            .as_str()
            .map(str::to_string)
    }

    fn has_role(&self, role: &str, subject: &str) -> bool {
        self.store
            .contains(ROLE_MEMBERS, &role_member_key(role, subject))
    }

    fn is_member(&self, org: &str, subject: &str) -> bool {
        self.store.contains(MEMBERS, &member_key(org, subject))
    }

    fn owns(&self, org: &str, subject: &str) -> bool {
        self.org(org).is_some()
            && (self.creators.get(org).is_some_and(|c| c == subject)
                || self
                    .admin_role_id(org)
                    .is_some_and(|r| self.has_role(&r, subject)))
    }

    fn can_read(&self, org: &str, subject: &str) -> bool {
        self.owns(org, subject) || self.is_member(org, subject)
    }

    fn not_accessible(acl_key: &[&str]) -> ApiError {
        ApiError::forbidden(format!(
            "Object [{}] is not accessible.",
            acl_key.join(", ")
        ))
    }

    /// `ensureOwner`: the organization exists (else 500), the caller owns it (else 401).
    fn ensure_owner(&self, org: &str, caller: &Caller) -> Result<(), ApiError> {
        self.ensure_exists(org)?;
        if self.owns(org, &caller.subject) {
            Ok(())
        } else {
            Err(Self::not_accessible(&[org]))
        }
    }

    /// `ensureRead`: the organization exists (else 500), the caller may read it (else 401).
    fn ensure_read(&self, org: &str, caller: &Caller) -> Result<(), ApiError> {
        self.ensure_exists(org)?;
        if self.can_read(org, &caller.subject) {
            Ok(())
        } else {
            Err(Self::not_accessible(&[org]))
        }
    }

    fn role_in(&self, org: &str, role: &str) -> Option<&Value> {
        self.store
            .get(ROLES, role)
            .filter(|r| r.org == org)
            .map(|r| &r.value)
    }

    /// OWNER on `[org, role]` (no existence check first, as `ensureOwnerAccess`).
    fn ensure_role_owner(&self, org: &str, role: &str, caller: &Caller) -> Result<(), ApiError> {
        if self.role_in(org, role).is_some() && self.owns(org, &caller.subject) {
            Ok(())
        } else {
            Err(Self::not_accessible(&[org, role]))
        }
    }

    fn ensure_admin(caller: &Caller) -> Result<(), ApiError> {
        if caller.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "Only admins are allowed to perform this action.",
            ))
        }
    }

    fn name_reserved(&self, name: &str) -> bool {
        self.store
            .list(ORGS)
            .iter()
            .any(|(_, r)| r.value["principal"]["id"] == name)
            || self
                .store
                .list(ROLES)
                .iter()
                .any(|(_, r)| r.value["principal"]["id"] == name)
            || self.users.contains_key(name)
    }

    fn id_taken(&self, id: &str) -> bool {
        self.store.contains(ORGS, id)
            || self.store.contains(ROLES, id)
            || self.users.values().any(|u| u.id == id)
    }

    // ----- rendering -------------------------------------------------------------------------

    fn org_principal(org: &Value) -> Value {
        json!({
            "@class": ORG_CLASS,
            "id": org["id"],
            "principal": org["principal"],
            "title": org["title"],
            "description": org["description"],
            "aclKey": [org["id"]],
        })
    }

    fn roles_of(&self, org: &str) -> Vec<Value> {
        self.store
            .in_org(ROLES, org)
            .into_iter()
            .map(|(_, r)| r.value.clone())
            .collect()
    }

    fn member_subjects(&self, org: &str) -> Vec<String> {
        self.store
            .in_org(MEMBERS, org)
            .into_iter()
            .filter_map(|(_, r)| r.value["principal"]["id"].as_str().map(str::to_string))
            .collect()
    }

    /// The Organization as `GET /{id}` serves it.
    pub fn render_org(&self, org: &str) -> Option<Value> {
        let mut v = self.org(org)?.clone();
        let members: Vec<Value> = self
            .member_subjects(org)
            .into_iter()
            .map(|s| json!({"type": "USER", "id": s}))
            .collect();
        v["members"] = json!(members);
        v["roles"] = json!(self.roles_of(org));
        v["securablePrincipal"] = Self::org_principal(&v);
        Some(v)
    }

    fn user_principal(u: &User) -> Value {
        json!({
            "@class": PRINCIPAL_CLASS,
            "id": u.id,
            "principal": {"type": "USER", "id": u.subject},
            "title": u.email.clone().unwrap_or_else(|| u.subject.clone()),
            "description": "",
            "aclKey": [u.id],
        })
    }

    /// The Auth0 user profile (management-API shape, snake case).
    fn profile(u: &User) -> Value {
        let name = format!("{} {}", u.given_name, u.family_name)
            .trim()
            .to_string();
        let name = if name.is_empty() {
            u.email.clone().unwrap_or_else(|| u.subject.clone())
        } else {
            name
        };
        let mut p = json!({
            "user_id": u.subject,
            "name": name,
            "nickname": u.email.as_deref().and_then(|e| e.split('@').next()).unwrap_or(&u.subject),
            "picture": "https://s.gravatar.com/avatar/00000000000000000000000000000000?s=480&d=mp",
            "created_at": "2024-01-01T00:00:00.000Z",
            "updated_at": "2024-01-01T00:00:00.000Z",
            "identities": [{
                "provider": u.subject.split('|').next().unwrap_or("auth0"),
                "user_id": u.subject.split_once('|').map(|(_, id)| id).unwrap_or(&u.subject),
                "connection": u.subject.split('|').next().unwrap_or("auth0"),
                "isSocial": u.subject.starts_with("google-oauth2|"),
            }],
            "app_metadata": {"roles": ["AuthenticatedUser"]},
            "user_metadata": {},
        });
        if let Some(e) = &u.email {
            p["email"] = json!(e);
            p["email_verified"] = json!(true);
        }
        if !u.given_name.is_empty() {
            p["given_name"] = json!(u.given_name);
        }
        if !u.family_name.is_empty() {
            p["family_name"] = json!(u.family_name);
        }
        p
    }

    /// An OrganizationMember: the user's principal, profile, and every principal they hold
    /// across OpenLattice (organizations they belong to and roles of any organization).
    fn member_view(&self, u: &User) -> Value {
        let mut roles: Vec<Value> = Vec::new();
        for (_, m) in self.store.list(MEMBERS) {
            if m.value["principal"]["id"] == u.subject.as_str()
                && let Some(o) = self.org(&m.org)
            {
                roles.push(Self::org_principal(o));
            }
        }
        for (_, rm) in self.store.list(ROLE_MEMBERS) {
            if rm.value["principal"]["id"] == u.subject.as_str()
                && let Some(role) = rm.value["roleId"]
                    .as_str()
                    .and_then(|r| self.store.get(ROLES, r))
            {
                roles.push(role.value.clone());
            }
        }
        json!({
            "principal": Self::user_principal(u),
            "profile": Self::profile(u),
            "roles": roles,
        })
    }

    // ----- organizations ---------------------------------------------------------------------

    /// `GET /`: organizations the caller can read, with members and roles.
    pub fn list_orgs(&self, caller: &Caller) -> Answer {
        let orgs: Vec<Value> = self
            .store
            .list(ORGS)
            .into_iter()
            .filter(|(id, _)| self.can_read(id, &caller.subject))
            .filter_map(|(id, _)| self.render_org(id))
            .collect();
        Ok(Out::Json(json!(orgs)))
    }

    /// `GET /metadata`: the OrganizationPrincipals the caller can read.
    pub fn metadata(&self, caller: &Caller) -> Answer {
        let orgs: Vec<Value> = self
            .store
            .list(ORGS)
            .into_iter()
            .filter(|(id, _)| self.can_read(id, &caller.subject))
            .map(|(_, r)| Self::org_principal(&r.value))
            .collect();
        Ok(Out::Json(json!(orgs)))
    }

    /// `GET /{id}`.
    pub fn get_org(&self, caller: &Caller, org: &str) -> Answer {
        self.ensure_read(org, caller)?;
        self.render_org(org)
            .map(Out::Json)
            .ok_or_else(|| ApiError::illegal_state(format!("Organization [{org}] does not exist.")))
    }

    /// `POST /`: creates an organization (client id honoured; name deduplicated with a 400),
    /// its admin role, and makes the creator a member holding that role.
    pub fn create_org(&mut self, caller: &Caller, body: &Value) -> Result<String, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::illegal_argument(
                "Unable to read Organization: expected an object",
            ));
        };
        if let Some(k) = obj.keys().find(|k| !ORG_KEYS.contains(&k.as_str())) {
            return Err(ApiError::illegal_argument(format!(
                "Unable to read Organization: unrecognized field \"{}\"",
                truncate(k, 64)
            )));
        }
        let (ptype, name) = principal_of(obj.get("principal"), "Organization")?;
        if ptype != "ORGANIZATION" {
            return Err(ApiError::illegal_argument(
                "Organization principal must be of PrincipalType.ORGANIZATION",
            ));
        }
        let title = obj
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::illegal_argument("Unable to read Organization: title is required")
            })?
            .to_string();
        let description = optional_string(obj, "description", "Organization")?;
        for required in ["members", "roles", "apps"] {
            if !obj.get(required).is_some_and(Value::is_array) {
                return Err(ApiError::illegal_argument(format!(
                    "Unable to read Organization: missing required property '{required}'"
                )));
            }
        }
        let apps = string_set(&obj["apps"], "Organization apps")?;
        let domains = match obj.get("emailDomains") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => string_set(v, "Organization emailDomains")?,
        };
        let connections = match obj.get("connections") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => string_set(v, "Organization connections")?,
        };
        let mut grants = Map::new();
        match obj.get("grants") {
            None | Some(Value::Null) => {}
            Some(Value::Object(g)) => {
                for (role, by_type) in g {
                    let role = uuid(role)?;
                    let Some(by_type) = by_type.as_object() else {
                        return Err(ApiError::illegal_argument(
                            "Unable to read Organization grants",
                        ));
                    };
                    let mut out = Map::new();
                    for grant in by_type.values() {
                        let grant = parse_grant(grant)?;
                        let t = grant["grantType"].as_str().unwrap_or_default().to_string();
                        out.insert(t, grant);
                    }
                    grants.insert(role, Value::Object(out));
                }
            }
            Some(_) => {
                return Err(ApiError::illegal_argument(
                    "Unable to read Organization grants",
                ));
            }
        }
        let partitions = match obj.get("partitions") {
            Some(Value::Array(p)) if p.iter().all(Value::is_u64) && !p.is_empty() => {
                Value::Array(p.clone())
            }
            _ => json!([1, 2]),
        };
        let id = optional_uuid(obj, "id")?;
        let admin_role = match obj.get("adminRoleAclKey").and_then(Value::as_array) {
            Some(k) if k.len() == 2 => k[1].as_str().map(uuid).transpose()?,
            _ => None,
        };
        if !connections.is_empty() && !caller.admin {
            return Err(ApiError::illegal_argument(
                "Must be admin to specify auto-enrollments",
            ));
        }
        if self.name_reserved(&name) {
            return Err(ApiError::illegal_argument(
                "Unable to create securable principal for organization. This means the \
                 organization probably already exists.",
            ));
        }
        let id = match id {
            Some(id) if self.id_taken(&id) => {
                return Err(ApiError::illegal_state(format!(
                    "Unable to create principal: the id {id} is already in use"
                )));
            }
            Some(id) => id,
            None => self.store.new_id(),
        };
        let admin_role = match admin_role {
            Some(r) if !self.id_taken(&r) && r != id => r,
            _ => self.store.new_id(),
        };
        let value = json!({
            "id": id,
            "principal": {"type": "ORGANIZATION", "id": name},
            "title": title,
            "description": description,
            "emailDomains": domains,
            "adminRoleAclKey": [id, admin_role],
            "smsEntitySetInfo": [],
            "partitions": partitions,
            "apps": apps,
            "connections": connections,
            "grants": grants,
        });
        self.store
            .create(ORGS, Some(id.clone()), &id, value)
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        self.creators.insert(id.clone(), caller.subject.clone());
        self.databases
            .insert(id.clone(), format!("org_{}", id.replace('-', "")));
        let admin_title = format!("{name} - ADMIN");
        let role = json!({
            "@class": ROLE_CLASS,
            "id": admin_role,
            "organizationId": id,
            "principal": {"type": "ROLE", "id": format!("{id}|{admin_title}")},
            "title": admin_title,
            "description": "Administrators of this organization",
            "aclKey": [id, admin_role],
        });
        self.store
            .create(ROLES, Some(admin_role.clone()), &id, role)
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        self.add_member_unchecked(&id, &caller.subject)?;
        self.grant_role(&id, &admin_role, &caller.subject);
        Ok(id)
    }

    /// `DELETE /{id}`: the organization, its roles and every membership in it.
    pub fn delete_org(&mut self, caller: &Caller, org: &str) -> Answer {
        self.ensure_owner(org, caller)?;
        self.store.delete_where(ROLE_MEMBERS, |_, r| r.org == org);
        self.store.delete_where(MEMBERS, |_, r| r.org == org);
        self.store.delete_where(ROLES, |_, r| r.org == org);
        self.store.delete(ORGS, org);
        self.creators.remove(org);
        self.databases.remove(org);
        Ok(Out::Void)
    }

    /// `PUT /{id}/title` and `PUT /{id}/description` (text bodies, stored as sent).
    pub fn set_org_text(&mut self, caller: &Caller, org: &str, field: &str, text: &str) -> Answer {
        self.ensure_owner(org, caller)?;
        self.store
            .update(ORGS, org, |v| v[field] = json!(text))
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        Ok(Out::Void)
    }

    /// `GET /{id}/email-domains` (owner).
    pub fn get_domains(&self, caller: &Caller, org: &str) -> Answer {
        self.ensure_owner(org, caller)?;
        Ok(Out::Json(
            self.org(org)
                .map(|o| o["emailDomains"].clone())
                .unwrap_or(json!([])),
        ))
    }

    /// Set operations on a string-set field (`emailDomains`, `connections`); global admins only.
    pub fn change_set(
        &mut self,
        caller: &Caller,
        org: &str,
        field: &str,
        op: SetOp,
        items: &[String],
    ) -> Answer {
        Self::ensure_admin(caller)?;
        self.ensure_exists(org)?;
        self.store
            .update(ORGS, org, |v| {
                let mut current: Vec<String> = v[field]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                match op {
                    SetOp::Replace => current = items.to_vec(),
                    SetOp::Add => {
                        for i in items {
                            if !current.contains(i) {
                                current.push(i.clone());
                            }
                        }
                    }
                    SetOp::Remove => current.retain(|c| !items.contains(c)),
                }
                v[field] = json!(current);
            })
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        Ok(Out::Void)
    }

    /// `GET /{id}/database`.
    pub fn get_database(&self, caller: &Caller, org: &str) -> Answer {
        self.ensure_read(org, caller)?;
        Ok(Out::Json(json!(
            self.databases.get(org).cloned().unwrap_or_default()
        )))
    }

    /// `PATCH /{id}/database` (owner; a Postgres-safe name).
    pub fn rename_database(&mut self, caller: &Caller, org: &str, name: &str) -> Answer {
        self.ensure_owner(org, caller)?;
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(ApiError::illegal_argument(
                "Database name must be lower-case letters, digits and underscores, at most 63 \
                 characters, not starting with a digit",
            ));
        }
        self.databases.insert(org.to_string(), name.to_string());
        // The database name is part of the organization's state; count it with the org.
        self.store
            .update(ORGS, org, |_| ())
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        Ok(Out::Void)
    }

    // ----- members ---------------------------------------------------------------------------

    /// `GET /{id}/principals/members`.
    pub fn get_members(&self, caller: &Caller, org: &str) -> Answer {
        self.ensure_read(org, caller)?;
        let members: Vec<Value> = self
            .member_subjects(org)
            .iter()
            .filter_map(|s| self.users.get(s))
            .map(|u| self.member_view(u))
            .collect();
        Ok(Out::Json(json!(members)))
    }

    fn add_member_unchecked(&mut self, org: &str, subject: &str) -> Result<(), ApiError> {
        if !self.users.contains_key(subject) {
            // The server reads the user's Auth0 profile from a map keyed by subject.
            return Err(ApiError::other(format!(
                "NoSuchElementException: Key {} is missing in the map.",
                truncate(subject, 128)
            )));
        }
        let key = member_key(org, subject);
        if self.store.contains(MEMBERS, &key) {
            return Ok(());
        }
        self.store
            .create(
                MEMBERS,
                Some(key.clone()),
                org,
                json!({"id": key, "organizationId": org,
                       "principal": {"type": "USER", "id": subject}}),
            )
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        // New members get every role whose grant matches them; only `Automatic` can match a
        // user with no Auth0 app metadata, which is every simulated user.
        let automatic: Vec<String> = self
            .org(org)
            .and_then(|o| o["grants"].as_object())
            .map(|g| {
                g.iter()
                    .filter(|(_, by_type)| by_type.get("Automatic").is_some())
                    .map(|(role, _)| role.clone())
                    .collect()
            })
            .unwrap_or_default();
        for role in automatic {
            if self.role_in(org, &role).is_some() {
                self.grant_role(org, &role, subject);
            }
        }
        Ok(())
    }

    fn grant_role(&mut self, org: &str, role: &str, subject: &str) {
        let key = role_member_key(role, subject);
        if self.store.contains(ROLE_MEMBERS, &key) {
            return;
        }
        let _ = self.store.create(
            ROLE_MEMBERS,
            Some(key.clone()),
            org,
            json!({"id": key, "organizationId": org, "roleId": role,
                   "principal": {"type": "USER", "id": subject}}),
        );
    }

    /// `PUT /{id}/principals/members/{userId}` (owner; no-op when already a member).
    pub fn add_member(&mut self, caller: &Caller, org: &str, subject: &str) -> Answer {
        if !self.owns(org, &caller.subject) {
            return Err(Self::not_accessible(&[org]));
        }
        self.add_member_unchecked(org, subject)?;
        Ok(Out::Void)
    }

    /// `DELETE /{id}/principals/members/{userId}` (owner, or the user removing themselves): the
    /// membership and the user's roles in the organization.
    pub fn remove_member(&mut self, caller: &Caller, org: &str, subject: &str) -> Answer {
        if caller.subject != subject && !self.owns(org, &caller.subject) {
            return Err(Self::not_accessible(&[org]));
        }
        let roles: Vec<String> = self
            .store
            .in_org(ROLES, org)
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        for role in roles {
            self.store
                .delete(ROLE_MEMBERS, &role_member_key(&role, subject));
        }
        self.store.delete(MEMBERS, &member_key(org, subject));
        Ok(Out::Void)
    }

    // ----- roles -----------------------------------------------------------------------------

    /// `POST /roles`: creates a role unless its principal id (its name) exists already, and
    /// answers the request's role id either way.
    pub fn create_role(&mut self, caller: &Caller, body: &Value) -> Result<String, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::illegal_argument(
                "Unable to read Role: expected an object",
            ));
        };
        match obj.get("@class").and_then(Value::as_str) {
            Some(ROLE_CLASS) => {}
            Some(_) => {
                return Err(ApiError::illegal_argument(
                    "Unable to read Role: could not resolve type id as a subtype of \
                     com.openlattice.authorization.SecurablePrincipal",
                ));
            }
            None => {
                return Err(ApiError::illegal_argument(
                    "Unable to read Role: missing type id when trying to resolve subtype of \
                     com.openlattice.authorization.SecurablePrincipal: missing type id property \
                     '@class'",
                ));
            }
        }
        let org = optional_uuid(obj, "organizationId")?.ok_or_else(|| {
            ApiError::illegal_argument("Unable to read Role: organizationId is required")
        })?;
        let (ptype, name) = principal_of(obj.get("principal"), "Role")?;
        let title = obj
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::illegal_argument("Unable to read Role: title is required"))?
            .to_string();
        let description = optional_string(obj, "description", "Role")?;
        let requested = optional_uuid(obj, "id")?;
        self.ensure_owner(&org, caller)?;
        if ptype != "ROLE" {
            return Err(ApiError::illegal_argument(
                "Role principal type must be ROLE",
            ));
        }
        let id = match requested {
            Some(id) => id,
            None => self.store.new_id(),
        };
        if self.name_reserved(&name) {
            // createSecurablePrincipalIfNotExists: nothing is created and the request's id is
            // answered, even though no role has it.
            return Ok(id);
        }
        if self.id_taken(&id) {
            return Err(ApiError::illegal_state(format!(
                "Unable to create principal: the id {id} is already in use"
            )));
        }
        let role = json!({
            "@class": ROLE_CLASS,
            "id": id,
            "organizationId": org,
            "principal": {"type": "ROLE", "id": name},
            "title": title,
            "description": description,
            "aclKey": [org, id],
        });
        self.store
            .create(ROLES, Some(id.clone()), &org, role)
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        Ok(id)
    }

    /// `GET /{id}/principals/roles`.
    pub fn get_roles(&self, caller: &Caller, org: &str) -> Answer {
        self.ensure_read(org, caller)?;
        Ok(Out::Json(json!(self.roles_of(org))))
    }

    /// `GET /{id}/principals/roles/{roleId}`: READ on `[org, role]` first, so an unknown role
    /// is a 401 like any role the caller may not see.
    pub fn get_role(&self, caller: &Caller, org: &str, role: &str) -> Answer {
        match self.role_in(org, role) {
            Some(r) if self.can_read(org, &caller.subject) => Ok(Out::Json(r.clone())),
            _ => Err(ApiError::forbidden(format!(
                "Unable to find role: [{org}, {role}]"
            ))),
        }
    }

    /// `DELETE /{id}/principals/roles/{roleId}` (never the admin role).
    pub fn delete_role(&mut self, caller: &Caller, org: &str, role: &str) -> Answer {
        self.ensure_owner(org, caller)?;
        self.ensure_role_owner(org, role, caller)?;
        if self.admin_role_id(org).as_deref() == Some(role) {
            return Err(ApiError::illegal_argument(format!(
                "Role [{org}, {role}] cannot be deleted because it is the organization's admin \
                 role."
            )));
        }
        self.store
            .delete_where(ROLE_MEMBERS, |_, r| r.value["roleId"] == role);
        self.store.delete(ROLES, role);
        Ok(Out::Void)
    }

    /// `PUT …/roles/{roleId}/title` and `…/description` (text bodies).
    pub fn set_role_text(
        &mut self,
        caller: &Caller,
        org: &str,
        role: &str,
        field: &str,
        text: &str,
    ) -> Answer {
        self.ensure_owner(org, caller)?;
        self.ensure_role_owner(org, role, caller)?;
        self.store
            .update(ROLES, role, |v| v[field] = json!(text))
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        Ok(Out::Void)
    }

    /// `PUT …/roles/{roleId}/grant`: stored under the organization's `grants[roleId][grantType]`
    /// (a grant of another type is added next to it, not replacing it).
    pub fn set_role_grant(
        &mut self,
        caller: &Caller,
        org: &str,
        role: &str,
        grant: &Value,
    ) -> Answer {
        self.ensure_owner(org, caller)?;
        self.ensure_role_owner(org, role, caller)?;
        let grant = parse_grant(grant)?;
        let t = grant["grantType"].as_str().unwrap_or_default().to_string();
        self.store
            .update(ORGS, org, |v| {
                if !v["grants"].is_object() {
                    v["grants"] = json!({});
                }
                if !v["grants"][role].is_object() {
                    v["grants"][role] = json!({});
                }
                v["grants"][role][t] = grant;
            })
            .map_err(|e| ApiError::illegal_state(e.to_string()))?;
        Ok(Out::Void)
    }

    /// `GET …/roles/{roleId}/members`: Auth0 profiles of the users holding the role.
    pub fn get_role_members(&self, caller: &Caller, org: &str, role: &str) -> Answer {
        self.ensure_read(org, caller)?;
        let users: Vec<Value> = self
            .store
            .in_org(ROLE_MEMBERS, org)
            .into_iter()
            .filter(|(_, r)| r.value["roleId"] == role)
            .filter_map(|(_, r)| r.value["principal"]["id"].as_str())
            .filter_map(|s| self.users.get(s))
            .map(Self::profile)
            .collect();
        Ok(Out::Json(json!(users)))
    }

    /// `PUT …/roles/{roleId}/members/{userId}` (no-op when already granted).
    pub fn add_role_member(
        &mut self,
        caller: &Caller,
        org: &str,
        role: &str,
        subject: &str,
    ) -> Answer {
        self.ensure_role_owner(org, role, caller)?;
        if !self.users.contains_key(subject) {
            return Err(ApiError::not_found(format!(
                "Unable to find principal for user {}",
                truncate(subject, 128)
            )));
        }
        self.grant_role(org, role, subject);
        Ok(Out::Void)
    }

    /// `DELETE …/roles/{roleId}/members/{userId}` (no-op when not granted).
    pub fn remove_role_member(
        &mut self,
        caller: &Caller,
        org: &str,
        role: &str,
        subject: &str,
    ) -> Answer {
        self.ensure_role_owner(org, role, caller)?;
        self.store
            .delete(ROLE_MEMBERS, &role_member_key(role, subject));
        Ok(Out::Void)
    }

    // ----- principals (`/datastore/principals`, the server's PrincipalDirectoryController) ---

    /// `GET /datastore/principals/users`: every user's Auth0 profile, keyed by subject. The
    /// server asks for no permission beyond a valid JWT.
    pub fn all_users(&self) -> Answer {
        let users: Map<String, Value> = self
            .users
            .values()
            .map(|u| (u.subject.clone(), Self::profile(u)))
            .collect();
        Ok(Out::Json(Value::Object(users)))
    }

    /// `POST /datastore/principals/users` (a JSON set of subjects): the profiles of the known
    /// ones, keyed by subject; unknown subjects are left out (a Hazelcast `getAll`).
    pub fn users_by_id(&self, body: &Value) -> Answer {
        let ids = string_set(body, "Set<String>")?;
        let users: Map<String, Value> = ids
            .iter()
            .filter_map(|id| self.users.get(id))
            .map(|u| (u.subject.clone(), Self::profile(u)))
            .collect();
        Ok(Out::Json(Value::Object(users)))
    }

    /// `GET /datastore/principals/users/{userId}`: the user's Auth0 profile. An unknown user is
    /// a 500, as the server reads a map with Kotlin's `getValue`.
    pub fn get_user(&self, subject: &str) -> Answer {
        match self.users.get(subject) {
            Some(u) => Ok(Out::Json(Self::profile(u))),
            None => Err(ApiError::other(format!(
                "NoSuchElementException: Key {} is missing in the map.",
                truncate(subject, 128)
            ))),
        }
    }

    /// `POST /datastore/principals/users/search` with `Auth0UserSearchFields`
    /// (`{"email": ..}` or `{"name": ..}`): the server asks Auth0 for `email:<value>` (or
    /// `name:<value>`) and answers the users found keyed by subject — `{}` when none. Auth0
    /// compares these fields case-insensitively; `*` stands for any run of characters and a
    /// double-quoted value is matched exactly.
    pub fn search_users(&self, body: &Value) -> Answer {
        let (field, value) = search_fields(body)?;
        let term = SearchTerm::new(&value);
        let users: Map<String, Value> = self
            .users
            .values()
            .filter(|u| {
                let target = match field {
                    SearchField::Email => u.email.clone(),
                    SearchField::Name => Self::profile(u)["name"].as_str().map(str::to_string),
                };
                target.is_some_and(|t| term.matches(&t))
            })
            .map(|u| (u.subject.clone(), Self::profile(u)))
            .collect();
        Ok(Out::Json(Value::Object(users)))
    }

    /// Forgets the counters (after seeding, so that tests count from zero).
    pub fn reset_counters(&mut self) {
        self.store.reset_counters();
    }

    /// Whether `org` exists.
    pub fn org_exists(&self, org: &str) -> bool {
        self.org(org).is_some()
    }
}

/// Which Auth0 field a user search looks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchField {
    Email,
    Name,
}

/// Reads an `Auth0UserSearchFields` body the way the server's mapper does: an object with
/// `email` or `name` (exactly one, not blank; numbers and booleans are coerced to text, as
/// Jackson does); anything else is a 400.
fn search_fields(body: &Value) -> Result<(SearchField, String), ApiError> {
    let problem = |what: &str| {
        ApiError::illegal_argument(format!(
            "JSON parse error: Cannot construct instance of \
             `com.openlattice.search.Auth0UserSearchFields`, problem: {what}"
        ))
    };
    let Some(obj) = body.as_object() else {
        return Err(ApiError::illegal_argument(
            "JSON parse error: Cannot deserialize value of type \
             `com.openlattice.search.Auth0UserSearchFields` from a non-object",
        ));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["email", "name"].contains(&k.as_str()))
    {
        return Err(ApiError::illegal_argument(format!(
            "JSON parse error: Unrecognized field \"{}\" (class \
             com.openlattice.search.Auth0UserSearchFields)",
            truncate(k, 64)
        )));
    }
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(_) => Err(ApiError::illegal_argument(format!(
                "JSON parse error: Cannot deserialize value of type `java.lang.String` from \
                 a non-scalar value (field \"{key}\")"
            ))),
        }
    };
    match (text("email")?, text("name")?) {
        (Some(_), Some(_)) => Err(problem("only one of \"email\", \"name\" are allowed")),
        (None, None) => Err(problem("one of \"email\", \"name\" is required")),
        (Some(e), None) if e.trim().is_empty() => Err(problem("email cannot be blank")),
        (None, Some(n)) if n.trim().is_empty() => Err(problem("name cannot be blank")),
        (Some(e), None) => Ok((SearchField::Email, e)),
        (None, Some(n)) => Ok((SearchField::Name, n)),
    }
}

/// One search value as Auth0 reads it: a double-quoted phrase matched exactly, or a term in
/// which `*` stands for any run of characters; both case-insensitive.
#[derive(Debug)]
enum SearchTerm {
    Exact(String),
    Wildcard(Vec<char>),
}

impl SearchTerm {
    fn new(value: &str) -> Self {
        let v = value.trim();
        match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => SearchTerm::Exact(inner.to_lowercase()),
            None => SearchTerm::Wildcard(v.to_lowercase().chars().collect()),
        }
    }

    fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        match self {
            SearchTerm::Exact(e) => *e == text,
            SearchTerm::Wildcard(p) => {
                let t: Vec<char> = text.chars().collect();
                wildcard_match(p, &t)
            }
        }
    }
}

/// Whether `text` matches `pattern`, `*` matching any run of characters. Greedy, going back
/// only to the last `*`: at most `pattern.len() * text.len()` steps whatever the input (a
/// hostile pattern of many stars cannot make it blow up).
fn wildcard_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A change to a string set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Replace all.
    Replace,
    /// Union.
    Add,
    /// Difference.
    Remove,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        SearchTerm::new(pattern).matches(text)
    }

    #[test]
    fn search_terms_are_case_insensitive_with_stars_and_exact_phrases() {
        assert!(matches("Alice@OrgOps.example", "alice@orgops.example"));
        assert!(!matches("alice@orgops.example", "alice@orgops.example.com"));
        assert!(!matches("lice@orgops.example", "alice@orgops.example"));
        assert!(matches("*@orgops.example", "bob@orgops.example"));
        assert!(matches("a*e@*", "alice@x"));
        assert!(matches("a*e@*", "ae@"));
        assert!(!matches("a*e@*", "alic@x"));
        assert!(matches("*", "anything"));
        assert!(matches("\"ALICE@orgops.example\"", "alice@orgops.example"));
        // Inside quotes a star is a character.
        assert!(!matches("\"*@orgops.example\"", "alice@orgops.example"));
        assert!(matches("\"*@orgops.example\"", "*@orgops.example"));
        assert!(matches("zürich@ÉXAMPLE.ch", "ZÜRICH@éxample.CH"));
    }

    #[test]
    fn many_stars_against_a_long_text_stay_cheap() {
        let pattern: Vec<char> = "*a".repeat(5_000).chars().collect();
        let text: Vec<char> = "a".repeat(4_999).chars().collect();
        let started = std::time::Instant::now();
        assert!(!wildcard_match(&pattern, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn search_bodies_need_exactly_one_non_blank_field() {
        assert_eq!(
            search_fields(&json!({"email": "a@b.c"})).unwrap(),
            (SearchField::Email, "a@b.c".to_string())
        );
        assert_eq!(
            search_fields(&json!({"name": "Alice", "email": null})).unwrap(),
            (SearchField::Name, "Alice".to_string())
        );
        // Jackson coerces scalars to text.
        assert_eq!(
            search_fields(&json!({"email": 42})).unwrap(),
            (SearchField::Email, "42".to_string())
        );
        for (body, says) in [
            (json!({}), "one of \"email\", \"name\" is required"),
            (json!({"email": "a", "name": "b"}), "only one of"),
            (json!({"email": "  "}), "email cannot be blank"),
            (json!({"name": ""}), "name cannot be blank"),
            (json!({"email": ["a"]}), "non-scalar"),
            (json!({"mail": "a"}), "Unrecognized field \"mail\""),
            (json!(["a"]), "non-object"),
        ] {
            let err = search_fields(&body).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            let ApiError::Dto { message, .. } = &err else {
                panic!("{err:?}");
            };
            assert!(message.contains(says), "{body}: {message}");
        }
    }
}
