//! Dataloop wire types (the gate's REST API under `/api/v1`), as dtlpy 1.126.5 and the vendor's
//! OpenAPI document show them (design/vendors/dataloop.md §2–§4).
//!
//! Responses: unknown keys are ignored and missing fields read as empty, so a newer gate or a
//! partial object still decodes. Ids are strings (UUIDs, and e-mails for users) but a number is
//! read as its decimal text; references the OpenAPI document types as "an object or an id"
//! (`org`, `account`, `member`) are kept as JSON and read through accessors. Only the template
//! objects (integrations, drivers, ontologies, recipes) stay free-form JSON: the copy needs
//! their fields as they are.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// Organization roles (`OrgRole`).
pub const ORG_ROLES: &[&str] = &["owner", "admin", "member", "worker"];
/// Project roles (`Role`): "Developer" in the UI is `engineer` on the wire.
pub const PROJECT_ROLES: &[&str] = &["owner", "engineer", "annotator", "annotationManager"];
/// Organization plans (`OrgPlans`): the legacy flag `PATCH /orgs/{id}/plan` sets.
pub const PLANS: &[&str] = &["premium", "freemium"];
/// Pod types of the organization's cache service (`dl.PodType`).
pub const POD_TYPES: &[&str] = &["small", "medium", "high"];
/// The cache service's state once it is up (`POST /services/fs-cache?mode=get`).
pub const CACHE_READY: &str = "READY";

/// An id that may arrive as a string or a number; anything else reads as empty.
fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// A string field that may be `null` or of another type: `None` unless it is a string.
fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// A boolean that may be missing or not a boolean: `false` unless it is `true`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

/// The id inside a reference the OpenAPI document types as "an object or an id string".
pub fn ref_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o.get("id").and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        _ => None,
    }
}

/// A timestamp as Dataloop writes it: epoch milliseconds (users, orgs) or an ISO string
/// (ontologies).
pub fn timestamp(value: &Value) -> Option<jiff::Timestamp> {
    match value {
        Value::Number(n) => {
            let ms = n.as_f64()?;
            if !ms.is_finite() {
                return None;
            }
            // Clamped to what jiff represents.
            let ms = ms.clamp(-8_000_000_000_000_000.0, 8_000_000_000_000_000.0) as i64;
            jiff::Timestamp::from_millisecond(ms).ok()
        }
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// An organization (`APIOrg`), as `GET /orgs` and `GET /orgs/{id}` return it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    /// UUID.
    #[serde(default, deserialize_with = "id")]
    pub id: String,
    /// Display name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// `premium` or `freemium`.
    #[serde(default, deserialize_with = "opt_string")]
    pub plan: Option<String>,
    /// The billing account: an object `{id, name, …}` or its id.
    #[serde(default)]
    pub account: Value,
    /// Epoch milliseconds.
    #[serde(default)]
    pub created_at: Value,
}

impl Org {
    /// The display name, empty when the gate sent none.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The account's id.
    pub fn account_id(&self) -> Option<String> {
        ref_id(&self.account)
    }

    /// The account's name, when the gate expanded the account.
    pub fn account_name(&self) -> Option<&str> {
        self.account.get("name")?.as_str()
    }

    /// When it was created.
    pub fn created_at(&self) -> Option<jiff::Timestamp> {
        timestamp(&self.created_at)
    }
}

/// A row of `GET /orgs/{id}/members`: an accepted member (`id` = e-mail) or a pending
/// invitation (`id` = invitation UUID, `email` null, address in `inviteEmail`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user id (the e-mail) or the invitation id: what `DELETE …/members/{id}` takes.
    #[serde(default, deserialize_with = "id")]
    pub id: String,
    /// E-mail of an accepted member.
    #[serde(default, deserialize_with = "opt_string")]
    pub email: Option<String>,
    /// E-mail an invitation was sent to.
    #[serde(default, deserialize_with = "opt_string")]
    pub invite_email: Option<String>,
    /// Organization role.
    #[serde(default, deserialize_with = "opt_string")]
    pub role: Option<String>,
    /// `pending` / `active` where the gate says (UNCERTAIN values).
    #[serde(default, deserialize_with = "opt_string")]
    pub status: Option<String>,
    /// `bot` for service users.
    #[serde(default, rename = "type", deserialize_with = "opt_string")]
    pub kind: Option<String>,
}

impl Member {
    /// Whether this row is an invitation nobody has accepted yet: the gate says so in `status`,
    /// or the row has no e-mail of its own, only an invitation address.
    pub fn is_pending(&self) -> bool {
        if let Some(status) = &self.status {
            let s = status.to_ascii_lowercase();
            if s.contains("pending") || s.contains("invite") {
                return true;
            }
        }
        self.email.as_deref().is_none_or(str::is_empty)
            && self.invite_email.as_deref().is_some_and(|e| !e.is_empty())
    }

    /// Whether the row is about `email` (its own address or the invitation's), compared
    /// case-insensitively.
    pub fn is_for(&self, email: &str) -> bool {
        [self.email.as_deref(), self.invite_email.as_deref()]
            .into_iter()
            .flatten()
            .any(|e| e.trim().eq_ignore_ascii_case(email.trim()))
    }
}

/// A project (`APIProject`) of `GET /orgs/{id}/projects` and `GET|POST /projects…`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// UUID.
    #[serde(default, deserialize_with = "id")]
    pub id: String,
    /// Name (not unique).
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// The organization: an object `{id, name}` or its id.
    #[serde(default)]
    pub org: Value,
    /// The per-organization system project (apps, services): never copied or scoped.
    #[serde(default, deserialize_with = "flag")]
    pub system_project: bool,
    /// Who created it (an e-mail, or a user object).
    #[serde(default)]
    pub creator: Value,
    /// Epoch milliseconds.
    #[serde(default)]
    pub created_at: Value,
}

impl Project {
    /// The name, empty when the gate sent none.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The id of the organization the project is in.
    pub fn org_id(&self) -> Option<String> {
        ref_id(&self.org)
    }
}

/// A contributor of `GET /projects/{id}/members`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMember {
    /// The user id (the e-mail).
    #[serde(default, deserialize_with = "id")]
    pub id: String,
    /// E-mail.
    #[serde(default, deserialize_with = "opt_string")]
    pub email: Option<String>,
    /// Project role.
    #[serde(default, deserialize_with = "opt_string")]
    pub role: Option<String>,
    /// `bot` for service users.
    #[serde(default, rename = "type", deserialize_with = "opt_string")]
    pub kind: Option<String>,
}

impl ProjectMember {
    /// The member's address: `email`, else the id (user ids are e-mails).
    pub fn address(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.id)
    }
}

/// A group (`APIGroup`) of `GET /orgs/{id}/groups`, or of `GET /projects/{id}/subgroups`
/// where it carries the group's project `role`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// UUID.
    #[serde(default, deserialize_with = "id")]
    pub id: String,
    /// Name (the natural key within an org).
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// The group's role in a project (subgroup listings only).
    #[serde(default, deserialize_with = "opt_string")]
    pub role: Option<String>,
}

/// `GET /users/me`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The user id (the e-mail).
    #[serde(default, deserialize_with = "id")]
    pub id: String,
    /// E-mail.
    #[serde(default, deserialize_with = "opt_string")]
    pub email: Option<String>,
    /// Username.
    #[serde(default, deserialize_with = "opt_string")]
    pub username: Option<String>,
    /// The active organization (where `POST /projects` puts new projects): an object or an id.
    #[serde(default)]
    pub org: Value,
}

impl Me {
    /// The id of the active organization.
    pub fn active_org(&self) -> Option<String> {
        ref_id(&self.org)
    }

    /// Who the credentials speak for: the e-mail, else the username, else the id.
    pub fn who(&self) -> &str {
        self.email
            .as_deref()
            .or(self.username.as_deref())
            .unwrap_or(&self.id)
    }
}

/// The answer of `POST {gate}/token?default` (`id_token` is the bearer).
#[derive(Deserialize)]
pub struct TokenResponse {
    /// The JWT used as bearer.
    #[serde(default, deserialize_with = "opt_string")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The cache service's state (`POST /services/fs-cache?mode=get`): `READY` once applied.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CacheState {
    /// `READY`, or whatever else the gate says while it is not.
    #[serde(default, deserialize_with = "opt_string")]
    pub state: Option<String>,
    /// The pod type, where the gate tells (UNCERTAIN: dtlpy never reads one).
    #[serde(default, deserialize_with = "opt_string")]
    pub pod_type: Option<String>,
    /// The runner block, which may carry the pod type instead.
    #[serde(default)]
    pub runner: Value,
}

impl CacheState {
    /// Whether the cache is up.
    pub fn is_ready(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(CACHE_READY))
    }

    /// The pod type, if the gate said.
    pub fn pod_type(&self) -> Option<String> {
        self.pod_type.clone().or_else(|| {
            self.runner
                .get("podType")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }
}

/// The body of every `/services/fs-cache` and `/services/cache` call:
/// `{"org": {"name", "id"}, "runner": {"podType"}}` (dtlpy's `__enable_cache`).
pub fn cache_body(org_id: &str, org_name: &str, pod_type: Option<&str>) -> Value {
    let mut body = json!({ "org": { "name": org_name, "id": org_id } });
    if let Some(pod) = pod_type {
        body["runner"] = json!({ "podType": pod });
    }
    body
}

/// A DQL query body (`POST /datasets/query`, `/settings/query`, …): `filter` is a DQL
/// expression (`{"$and": [..]}`), `context.projects` scopes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DqlQuery {
    /// The DQL filter.
    pub filter: Value,
    /// 0-based page.
    pub page: u64,
    /// Items per page (at most 1000).
    pub page_size: u32,
    /// What is queried (`datasets`).
    pub resource: String,
    /// `{"projects": [ids]}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_reads_from_the_shapes_the_gate_and_its_docs_show() {
        let org: Org = serde_json::from_value(json!({
            "id": "8c8387a3-e771-4d2b-ad77-6a30294dbd01", "name": "Acme", "plan": "premium",
            "members": [{"id": "a@x.example"}], "groups": [],
            "account": {"id": "08e52acc", "name": "acme's account", "owner": "a@x.example"},
            "createdAt": 1674222447224u64, "logoUrl": null, "future": {"x": 1},
        }))
        .unwrap();
        assert_eq!(org.name(), "Acme");
        assert_eq!(org.account_id().as_deref(), Some("08e52acc"));
        assert_eq!(org.account_name(), Some("acme's account"));
        assert_eq!(
            org.created_at().unwrap().as_millisecond(),
            1_674_222_447_224
        );
        // The account as a bare id, a numeric id, and nonsense.
        let org: Org =
            serde_json::from_value(json!({"id": 7, "account": "acc-1", "name": null})).unwrap();
        assert_eq!((org.id.as_str(), org.name()), ("7", ""));
        assert_eq!(org.account_id().as_deref(), Some("acc-1"));
        let org: Org =
            serde_json::from_value(json!({"id": [], "account": [1], "createdAt": "x"})).unwrap();
        assert_eq!(org.id, "");
        assert_eq!(org.account_id(), None);
        assert_eq!(org.created_at(), None);
    }

    #[test]
    fn members_and_invitations_are_told_apart() {
        let rows: Vec<Member> = serde_json::from_value(json!([
            {"id": "ann@x.example", "email": "ann@x.example", "role": "owner", "org": "o"},
            {"id": "6cdfccfb", "email": null, "inviteEmail": "Bob@X.example", "role": "member"},
            {"id": "c", "email": "cy@x.example", "status": "pending", "role": "worker"},
            {"id": "d", "email": "di@x.example", "status": "active", "role": "admin"},
        ]))
        .unwrap();
        assert!(!rows[0].is_pending());
        assert!(rows[1].is_pending());
        assert!(rows[1].is_for("bob@x.example"));
        assert!(rows[1].is_for(" BOB@x.EXAMPLE "));
        assert!(!rows[1].is_for("ann@x.example"));
        assert!(rows[2].is_pending());
        assert!(!rows[3].is_pending());
        assert_eq!(rows[3].role.as_deref(), Some("admin"));
    }

    #[test]
    fn projects_read_their_org_as_an_object_or_an_id() {
        let p: Project = serde_json::from_value(json!({
            "id": "p1", "name": "Cars", "org": {"id": "o1", "name": "Acme"}, "systemProject": true,
        }))
        .unwrap();
        assert_eq!(p.org_id().as_deref(), Some("o1"));
        assert!(p.system_project);
        let p: Project =
            serde_json::from_value(json!({"id": "p2", "org": "o2", "systemProject": "yes"}))
                .unwrap();
        assert_eq!(p.org_id().as_deref(), Some("o2"));
        assert!(
            !p.system_project,
            "only a real true marks the system project"
        );
    }

    #[test]
    fn cache_states_and_bodies() {
        let s: CacheState = serde_json::from_value(json!({"state": "READY"})).unwrap();
        assert!(s.is_ready());
        assert_eq!(s.pod_type(), None);
        let s: CacheState =
            serde_json::from_value(json!({"state": "PENDING", "runner": {"podType": "high"}}))
                .unwrap();
        assert!(!s.is_ready());
        assert_eq!(s.pod_type().as_deref(), Some("high"));
        assert_eq!(
            cache_body("o1", "Acme", Some("small")),
            json!({"org": {"name": "Acme", "id": "o1"}, "runner": {"podType": "small"}})
        );
        assert_eq!(
            cache_body("o1", "Acme", None),
            json!({"org": {"name": "Acme", "id": "o1"}})
        );
    }

    #[test]
    fn timestamps_are_milliseconds_or_iso_strings() {
        assert_eq!(
            timestamp(&json!(1000)).unwrap(),
            jiff::Timestamp::from_second(1).unwrap()
        );
        assert_eq!(
            timestamp(&json!("2024-01-02T03:04:05Z")).unwrap(),
            "2024-01-02T03:04:05Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert!(timestamp(&json!(1e300)).is_none());
        assert_eq!(timestamp(&json!(null)), None);
    }

    #[test]
    fn the_token_answer_never_prints_the_token() {
        let t: TokenResponse =
            serde_json::from_value(json!({"id_token": "eyJ.secret-part.x", "access_token": "a"}))
                .unwrap();
        assert_eq!(t.id_token.as_deref(), Some("eyJ.secret-part.x"));
        assert!(!format!("{t:?}").contains("secret-part"));
    }
}
