//! Rendered.ai wire types and GraphQL documents (design/vendors/renderedai.md §2, §7), as
//! anatools 6.1.2 (and 3.3.4 for the legacy limits) sends them.
//!
//! Documents carry explicit selection sets (no introspection: the fields orgops reads are named
//! here, and a server with more fields answers the same). Answers are hostile until read:
//! unknown keys are ignored, a field of the wrong type reads as missing, ids may be strings or
//! numbers, and every string that may reach a message or status is bounded ([`clip`]).

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

/// Organization roles (the web UI's Admin and Member).
pub const ORG_ROLES: &[&str] = &["admin", "member"];

/// Items per page asked for: the SDK's maximum.
pub const PAGE_LIMIT: usize = 100;

/// Longest string from the vendor kept for messages and status.
pub const MAX_TEXT: usize = 256;

/// `s` cut to at most [`MAX_TEXT`] bytes on a character boundary, control characters blanked:
/// what the vendor says may end up in a condition.
pub fn clip(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() <= MAX_TEXT {
        return line;
    }
    let mut end = MAX_TEXT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

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

/// A list of strings; a missing or mistyped list is empty, non-strings inside are dropped.
fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

/// A number that may be a JSON number or numeric text (the legacy `limit` is a String).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    })
}

/// A flag that is `true` only when it is the boolean `true`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

/// An organization (`Organization`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Id.
    #[serde(default, deserialize_with = "id")]
    pub organization_id: String,
    /// Display name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// The caller's role in it.
    #[serde(default, deserialize_with = "opt_string")]
    pub role: Option<String>,
    /// The subscription has expired (billing).
    #[serde(default, deserialize_with = "flag")]
    pub expired: bool,
}

impl Organization {
    /// The display name, empty when the server sent none.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// A member of an organization (`Member`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user's id (Firebase style); the cursor of `getMembers`.
    #[serde(default, deserialize_with = "id")]
    pub user_id: String,
    /// E-mail.
    #[serde(default, deserialize_with = "opt_string")]
    pub email: Option<String>,
    /// Name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// `admin` or `member`.
    #[serde(default, deserialize_with = "opt_string")]
    pub role: Option<String>,
}

/// An open invitation (`Invitation`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    /// E-mail invited; the cursor of `getInvitations`.
    #[serde(default, deserialize_with = "opt_string")]
    pub email: Option<String>,
    /// The role the person gets on accepting.
    #[serde(default, deserialize_with = "opt_string")]
    pub role: Option<String>,
    /// Legacy (3.3.4) invitation id, where the server sends one.
    #[serde(default, deserialize_with = "opt_string")]
    pub invitation_id: Option<String>,
}

/// True when `a` and `b` are the same e-mail address (case and surrounding blanks ignored).
pub fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A workspace (`Workspace`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Id.
    #[serde(default, deserialize_with = "id")]
    pub workspace_id: String,
    /// Name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_string")]
    pub description: Option<String>,
    /// Objective.
    #[serde(default, deserialize_with = "opt_string")]
    pub objective: Option<String>,
    /// Owning organization.
    #[serde(default, deserialize_with = "opt_string")]
    pub organization_id: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "strings")]
    pub tags: Vec<String>,
}

/// A volume (`Volume`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Id.
    #[serde(default, deserialize_with = "id")]
    pub volume_id: String,
    /// Name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_string")]
    pub description: Option<String>,
    /// The organization that owns it (a volume shared to an org names another).
    #[serde(default, deserialize_with = "opt_string")]
    pub organization_id: Option<String>,
    /// `read`, `write` or `view`.
    #[serde(default, deserialize_with = "opt_string")]
    pub permission: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "strings")]
    pub tags: Vec<String>,
}

/// A channel (`Channel`): only its id matters to orgops (channels are shared, never copied).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// Id.
    #[serde(default, deserialize_with = "id")]
    pub channel_id: String,
}

/// A graph (`Graph`, the 6.1.2 fixed fields orgops reads).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// Id.
    #[serde(default, deserialize_with = "id")]
    pub graph_id: String,
    /// Workspace.
    #[serde(default, deserialize_with = "opt_string")]
    pub workspace_id: Option<String>,
    /// Name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "opt_string")]
    pub description: Option<String>,
    /// The channel it runs on.
    #[serde(default, deserialize_with = "opt_string")]
    pub channel_id: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "strings")]
    pub tags: Vec<String>,
    /// Whether it is a staged (read-only) graph: `readOnly`, which the SDK's fixed graph
    /// fields carry, is the flag `createGraph(staged)` sets (design doc §3, step 6).
    #[serde(default, rename = "readOnly", deserialize_with = "flag")]
    pub staged: bool,
}

/// One legacy organization limit (`OrganizationLimit`, anatools 3.3.4).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgLimit {
    /// Setting name, e.g. `Workspaces`.
    #[serde(default, deserialize_with = "opt_string")]
    pub setting: Option<String>,
    /// The limit (a String on the wire).
    #[serde(default, deserialize_with = "number")]
    pub limit: Option<f64>,
    /// What is used (a Float).
    #[serde(default, deserialize_with = "number")]
    pub usage: Option<f64>,
}

impl OrgLimit {
    /// The limit as an integer, when it is a whole number in range.
    pub fn limit_int(&self) -> Option<i64> {
        self.limit
            .filter(|l| l.fract() == 0.0 && l.abs() < 9.0e15)
            .map(|l| l as i64)
    }
}

/// The answer of `signIn` (`UserCredentials`).
#[derive(Clone, Default, Deserialize)]
pub struct UserCredentials {
    /// The user's id, sent as header `uid`.
    #[serde(default, deserialize_with = "opt_string")]
    pub uid: Option<String>,
    /// The token, sent as `Authorization: Bearer`.
    #[serde(default, deserialize_with = "opt_string")]
    pub idtoken: Option<String>,
    /// Seconds the token is valid for.
    #[serde(default, deserialize_with = "number")]
    pub expires: Option<f64>,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("uid", &self.uid)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Longest token lifetime believed (a year): a hostile `expires` cannot make a token eternal.
pub const MAX_TOKEN_LIFETIME_SECS: f64 = 365.0 * 24.0 * 3600.0;

impl UserCredentials {
    /// How long the token is valid: `expires` seconds, clamped to 1 s ..= a year; `None` when
    /// the server sent no usable number (the token is then renewed when it is refused).
    pub fn lifetime(&self) -> Option<std::time::Duration> {
        self.expires
            .filter(|e| *e > 0.0)
            .map(|e| std::time::Duration::from_secs_f64(e.clamp(1.0, MAX_TOKEN_LIFETIME_SECS)))
    }
}

/// One GraphQL operation: its name, the field its answer sits under, and the document.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// `operationName` (also the top-level field).
    pub name: &'static str,
    /// The document.
    pub query: &'static str,
}

impl Op {
    /// Whether this is a mutation creating an object (`create…`): repeating one after an
    /// unclear answer could make a duplicate.
    pub fn is_create(&self) -> bool {
        self.name.starts_with("create")
    }
}

/// The request body anatools sends: `{operationName, variables, query}`.
pub fn body(op: &Op, variables: Value) -> Value {
    json!({ "operationName": op.name, "variables": variables, "query": op.query })
}

macro_rules! op {
    ($ident:ident, $name:literal, $query:literal) => {
        #[doc = concat!("`", $name, "`.")]
        pub const $ident: Op = Op {
            name: $name,
            query: $query,
        };
    };
}

op!(
    SIGN_IN,
    "signIn",
    "mutation signIn($email: String!, $password: String!) { signIn(email: $email, password: $password) { uid idtoken expires } }"
);
op!(
    GET_ORGANIZATIONS,
    "getOrganizations",
    "query getOrganizations($organizationId: String, $cursor: String, $limit: Int) { getOrganizations(organizationId: $organizationId, cursor: $cursor, limit: $limit) { organizationId name role expired } }"
);
op!(
    EDIT_ORGANIZATION,
    "editOrganization",
    "mutation editOrganization($organizationId: String!, $name: String!) { editOrganization(organizationId: $organizationId, name: $name) }"
);
op!(
    GET_ORGANIZATION_RULES,
    "getOrganizationRules",
    "query getOrganizationRules($organizationId: String) { getOrganizationRules(organizationId: $organizationId) }"
);
op!(
    EDIT_ORGANIZATION_RULES,
    "editOrganizationRules",
    "mutation editOrganizationRules($organizationId: String!, $rules: String!) { editOrganizationRules(organizationId: $organizationId, rules: $rules) }"
);
op!(
    GET_ORGANIZATION_LIMITS,
    "getOrganizationLimits",
    "query getOrganizationLimits($organizationId: String!, $setting: String) { getOrganizationLimits(organizationId: $organizationId, setting: $setting) { organizationId setting limit usage } }"
);
op!(
    SET_ORGANIZATION_LIMITS,
    "setOrganizationLimits",
    "mutation setOrganizationLimits($organizationId: String!, $setting: String!, $limit: Int!) { setOrganizationLimits(organizationId: $organizationId, setting: $setting, limit: $limit) }"
);
op!(
    GET_MEMBERS,
    "getMembers",
    "query getMembers($organizationId: String, $limit: Int, $cursor: String) { getMembers(organizationId: $organizationId, limit: $limit, cursor: $cursor) { organizationId userId email name role } }"
);
op!(
    GET_INVITATIONS,
    "getInvitations",
    "query getInvitations($organizationId: String, $limit: Int, $cursor: String) { getInvitations(organizationId: $organizationId, limit: $limit, cursor: $cursor) { email organizationId role } }"
);
op!(
    ADD_MEMBER,
    "addMember",
    "mutation addMember($organizationId: String!, $email: String!, $role: String) { addMember(organizationId: $organizationId, email: $email, role: $role) }"
);
op!(
    EDIT_MEMBER,
    "editMember",
    "mutation editMember($organizationId: String!, $email: String!, $role: String!) { editMember(organizationId: $organizationId, email: $email, role: $role) }"
);
op!(
    REMOVE_MEMBER,
    "removeMember",
    "mutation removeMember($organizationId: String!, $email: String!) { removeMember(organizationId: $organizationId, email: $email) }"
);
op!(
    GET_GUESTS,
    "getMembers",
    "query getMembers($organizationId: String, $workspaceId: String, $limit: Int, $cursor: String) { getMembers(organizationId: $organizationId, workspaceId: $workspaceId, limit: $limit, cursor: $cursor) { workspaceId userId email role } }"
);
op!(
    ADD_GUEST,
    "addMember",
    "mutation addMember($organizationId: String, $workspaceId: String, $email: String!, $role: String) { addMember(organizationId: $organizationId, workspaceId: $workspaceId, email: $email, role: $role) }"
);
op!(
    REMOVE_GUEST,
    "removeMember",
    "mutation removeMember($organizationId: String, $workspaceId: String, $email: String!) { removeMember(organizationId: $organizationId, workspaceId: $workspaceId, email: $email) }"
);
op!(
    GET_WORKSPACES,
    "getWorkspaces",
    "query getWorkspaces($organizationId: String, $workspaceId: String, $limit: Int, $cursor: String, $filters: WorkspaceFilter) { getWorkspaces(organizationId: $organizationId, workspaceId: $workspaceId, limit: $limit, cursor: $cursor, filters: $filters) { workspaceId name description objective organizationId tags } }"
);
op!(
    CREATE_WORKSPACE,
    "createWorkspace",
    "mutation createWorkspace($organizationId: String!, $name: String!, $description: String, $channelIds: [String]!, $volumeIds: [String]!, $code: String!, $tags: [String], $objective: String) { createWorkspace(organizationId: $organizationId, name: $name, description: $description, channelIds: $channelIds, volumeIds: $volumeIds, code: $code, tags: $tags, objective: $objective) }"
);
op!(
    EDIT_WORKSPACE,
    "editWorkspace",
    "mutation editWorkspace($workspaceId: String!, $name: String, $description: String, $channelIds: [String], $volumeIds: [String], $ganIds: [String], $mapIds: [String], $tags: [String], $objective: String) { editWorkspace(workspaceId: $workspaceId, name: $name, description: $description, channelIds: $channelIds, volumeIds: $volumeIds, ganIds: $ganIds, mapIds: $mapIds, tags: $tags, objective: $objective) }"
);
op!(
    GET_CHANNELS,
    "getChannels",
    "query getChannels($organizationId: String, $workspaceId: String, $channelId: String, $limit: Int, $cursor: String, $filters: ChannelFilter) { getChannels(organizationId: $organizationId, workspaceId: $workspaceId, channelId: $channelId, limit: $limit, cursor: $cursor, filters: $filters) { channelId } }"
);
op!(
    GET_VOLUMES,
    "getVolumes",
    "query getVolumes($organizationId: String, $workspaceId: String, $volumeId: String, $limit: Int, $cursor: String, $filters: VolumeFilter) { getVolumes(organizationId: $organizationId, workspaceId: $workspaceId, volumeId: $volumeId, limit: $limit, cursor: $cursor, filters: $filters) { volumeId name description organizationId permission tags } }"
);
op!(
    CREATE_VOLUME,
    "createVolume",
    "mutation createVolume($organizationId: String!, $name: String!, $description: String, $permission: String, $tags: [String]) { createVolume(organizationId: $organizationId, name: $name, description: $description, permission: $permission, tags: $tags) }"
);
op!(
    EDIT_VOLUME,
    "editVolume",
    "mutation editVolume($volumeId: String!, $name: String, $description: String, $permission: String, $tags: [String]) { editVolume(volumeId: $volumeId, name: $name, description: $description, permission: $permission, tags: $tags) }"
);
op!(
    GET_GRAPHS,
    "getGraphs",
    "query getGraphs($workspaceId: String!, $graphId: String, $staged: Boolean, $limit: Int, $cursor: String, $filters: GraphFilter) { getGraphs(workspaceId: $workspaceId, graphId: $graphId, staged: $staged, limit: $limit, cursor: $cursor, filters: $filters) { graphId workspaceId name description channelId readOnly tags } }"
);
op!(
    DOWNLOAD_GRAPH,
    "downloadGraph",
    "mutation downloadGraph($workspaceId: String!, $graphId: String!) { downloadGraph(workspaceId: $workspaceId, graphId: $graphId) }"
);
op!(
    CREATE_GRAPH,
    "createGraph",
    "mutation createGraph($workspaceId: String!, $channelId: String!, $graph: String!, $name: String!, $description: String, $staged: Boolean, $tags: [String]) { createGraph(workspaceId: $workspaceId, channelId: $channelId, graph: $graph, name: $name, description: $description, staged: $staged, tags: $tags) }"
);
op!(
    DELETE_WORKSPACE,
    "deleteWorkspace",
    "mutation deleteWorkspace($workspaceId: String!) { deleteWorkspace(workspaceId: $workspaceId) }"
);
op!(
    DELETE_VOLUME,
    "deleteVolume",
    "mutation deleteVolume($volumeId: String!, $organizationId: String!) { deleteVolume(volumeId: $volumeId, organizationId: $organizationId) }"
);
op!(
    DELETE_GRAPH,
    "deleteGraph",
    "mutation deleteGraph($workspaceId: String!, $graphId: String!) { deleteGraph(workspaceId: $workspaceId, graphId: $graphId) }"
);
op!(
    GET_WORKSPACE_RULES,
    "getWorkspaceRules",
    "query getWorkspaceRules($workspaceId: String) { getWorkspaceRules(workspaceId: $workspaceId) }"
);
op!(
    EDIT_WORKSPACE_RULES,
    "editWorkspaceRules",
    "mutation editWorkspaceRules($workspaceId: String!, $rules: String!) { editWorkspaceRules(workspaceId: $workspaceId, rules: $rules) }"
);

/// True when a GraphQL error says the server does not take `workspaceId` on the member
/// operations: it no longer serves the 3.3.4 workspace guests (design §2.5; a spec-compliant
/// server fails validation with `Unknown argument "workspaceId" on field "Query.getMembers".`).
pub fn is_guest_argument_unknown(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("workspaceid")
        && (m.contains("unknown argument")
            || (m.contains("argument") && m.contains("is not defined")))
}

/// True when a GraphQL error says the server does not have this operation at all (a field
/// missing from the schema: `Cannot query field "x" on type "Query".`, an unknown operation or
/// argument), as opposed to a failure of the operation.
pub fn is_unknown_operation(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("cannot query field")
        || m.contains("unknown operation")
        || m.contains("unknown field")
        || m.contains("unknown type")
        || (m.contains("field") && m.contains("is not defined"))
}

/// True when a GraphQL error says the credentials were refused: one of the messages (joined
/// with `; `) is, as a whole, one of the SDK's own phrases (api/handlers.py) or
/// `unauthenticated`/`not authenticated`. Matched whole, not as a substring: "User is
/// unauthorized to access channel X" is a refused permission, not a refused credential.
pub fn is_auth_failure(message: &str) -> bool {
    message.split("; ").any(|one| {
        let m = one.trim().trim_end_matches(['.', '!']).to_ascii_lowercase();
        [
            "unauthorized",
            "unauthenticated",
            "not authenticated",
            "invalid token",
            "token is invalid",
            "token expired",
            "authentication failed",
            "invalid api key",
        ]
        .contains(&m.as_str())
    })
}

/// True when a GraphQL error says the caller lacks a permission.
pub fn is_permission_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "permission",
        "forbidden",
        "not allowed",
        "access denied",
        "must be an admin",
        "unauthorized to",
    ]
    .iter()
    .any(|s| m.contains(s))
}

/// True when a GraphQL error says the object does not exist.
pub fn is_not_found(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") || m.contains("does not exist") || m.contains("no such")
}

/// Where a graph node references a volume file, `"<volumeId>:/<path>"` (anatools
/// `nodes/volume_file.py`): the byte range of the volume id. Only an id-shaped prefix counts
/// (letters, digits, `-` and `_`, 4 to 64 of them, at least one digit), and never a URL
/// (`scheme://…`), so that free text in a graph is not mistaken for a reference.
pub fn volume_file_ref(s: &str) -> Option<std::ops::Range<usize>> {
    let end = s.find(":/")?;
    let id = &s[..end];
    let id_shaped = (4..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && id.bytes().any(|b| b.is_ascii_digit());
    let url = s[end + 2..].starts_with('/');
    (id_shaped && !url).then_some(0..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_rows_decode_without_panicking() {
        let org: Organization = serde_json::from_value(json!({
            "organizationId": 7, "name": ["x"], "role": null, "expired": "yes", "extra": {}
        }))
        .unwrap();
        assert_eq!(org.organization_id, "7");
        assert_eq!(org.name(), "");
        assert!(!org.expired);
        let ws: Workspace =
            serde_json::from_value(json!({"workspaceId": "w", "tags": ["a", 1, null, "b"]}))
                .unwrap();
        assert_eq!(ws.tags, vec!["a", "b"]);
        let ws: Workspace = serde_json::from_value(json!({"tags": "nope"})).unwrap();
        assert!(ws.tags.is_empty() && ws.workspace_id.is_empty());
        let limit: OrgLimit =
            serde_json::from_value(json!({"setting": "Workspaces", "limit": "5", "usage": 1}))
                .unwrap();
        assert_eq!(limit.limit_int(), Some(5));
        assert_eq!(limit.usage, Some(1.0));
        for bad in [
            json!("1e400"),
            json!("NaN"),
            json!("2.5"),
            json!({}),
            json!(1e300),
        ] {
            let l: OrgLimit = serde_json::from_value(json!({"limit": bad})).unwrap();
            assert_eq!(l.limit_int(), None, "{bad}");
        }
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        let creds = |e: Value| -> UserCredentials {
            serde_json::from_value(json!({"uid": "u", "idtoken": "t", "expires": e})).unwrap()
        };
        assert_eq!(
            creds(json!(3600)).lifetime(),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            creds(json!(0.2)).lifetime(),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(creds(json!(-5)).lifetime(), None);
        assert_eq!(creds(json!("soon")).lifetime(), None);
        assert_eq!(
            creds(json!(1e300)).lifetime(),
            Some(std::time::Duration::from_secs_f64(MAX_TOKEN_LIFETIME_SECS))
        );
        let printed = format!("{:?}", creds(json!(1)));
        assert!(
            !printed.contains("\"t\""),
            "the token is never printed: {printed}"
        );
    }

    #[test]
    fn volume_file_references_are_found_only_where_they_are() {
        let id = "4f1c2a9e-0b7d-4e8a-9c3f-2d5e6f7a8b9c";
        assert_eq!(
            volume_file_ref(&format!("{id}:/data/a.png")),
            Some(0..id.len())
        );
        assert_eq!(volume_file_ref("vol-1:/x"), Some(0..5));
        for not_a_ref in [
            "https://example.com/x",
            "ratio 1:/2",
            ":/x",
            "abc:/x",
            "C:/Windows",
            "plain text",
            "é1234:/x",
        ] {
            assert_eq!(volume_file_ref(not_a_ref), None, "{not_a_ref}");
        }
        let long = format!("{}1:/x", "a".repeat(80));
        assert_eq!(volume_file_ref(&long), None);
    }

    #[test]
    fn operations_name_their_field_and_select_what_is_read() {
        for op in [
            SIGN_IN,
            GET_ORGANIZATIONS,
            EDIT_ORGANIZATION,
            GET_ORGANIZATION_RULES,
            EDIT_ORGANIZATION_RULES,
            GET_ORGANIZATION_LIMITS,
            SET_ORGANIZATION_LIMITS,
            GET_MEMBERS,
            GET_INVITATIONS,
            ADD_MEMBER,
            EDIT_MEMBER,
            REMOVE_MEMBER,
            GET_GUESTS,
            ADD_GUEST,
            REMOVE_GUEST,
            GET_WORKSPACES,
            CREATE_WORKSPACE,
            EDIT_WORKSPACE,
            GET_CHANNELS,
            GET_VOLUMES,
            CREATE_VOLUME,
            EDIT_VOLUME,
            GET_GRAPHS,
            DOWNLOAD_GRAPH,
            CREATE_GRAPH,
            GET_WORKSPACE_RULES,
            EDIT_WORKSPACE_RULES,
        ] {
            assert!(
                op.query.contains(&format!(" {}(", op.name)),
                "{} is not the operation's name",
                op.name
            );
            assert!(
                op.query.contains(&format!("{{ {}(", op.name)),
                "{}",
                op.name
            );
            assert_eq!(op.query.matches('{').count(), op.query.matches('}').count());
        }
        let b = body(
            &GET_MEMBERS,
            json!({"organizationId": "o", "limit": 100, "cursor": null}),
        );
        assert_eq!(b["operationName"], "getMembers");
        assert!(b["variables"]["cursor"].is_null());
        assert!(GET_MEMBERS.query.contains("userId email"));
        assert!(GET_INVITATIONS.query.contains("{ email"));
    }

    #[test]
    fn error_messages_are_classified() {
        assert!(is_unknown_operation(
            "Cannot query field \"getOrganizationLimits\" on type \"Query\"."
        ));
        assert!(is_unknown_operation(
            "Unknown operation named \"setOrganizationLimits\"."
        ));
        assert!(!is_unknown_operation(
            "The Workspaces limit has been reached"
        ));
        assert!(is_guest_argument_unknown(
            "Unknown argument \"workspaceId\" on field \"Query.getMembers\"."
        ));
        assert!(!is_guest_argument_unknown("Workspace not found."));
        assert!(!is_guest_argument_unknown(
            "Unknown argument \"bad\" on field \"Query.getMembers\"."
        ));
        assert!(is_auth_failure("Unauthorized"));
        assert!(is_auth_failure("Token expired."));
        assert!(is_auth_failure("Workspace not found; Not authenticated"));
        assert!(!is_auth_failure("Token expired, sign in again"));
        assert!(!is_auth_failure("User is unauthorized to access channel X"));
        assert!(is_permission_failure(
            "User is unauthorized to access channel X"
        ));
        assert!(!is_auth_failure(
            "The Datasets limit has been reached by this workspace"
        ));
        assert!(is_not_found("Organization not found"));
        assert!(is_permission_failure(
            "You do not have permission to edit this organization"
        ));
        assert_eq!(clip(&"x".repeat(1000)).len(), MAX_TEXT + "…".len());
        assert_eq!(clip("a\nb"), "a b");
    }
}
