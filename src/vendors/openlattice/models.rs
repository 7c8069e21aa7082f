//! OpenLattice wire types (`/datastore/organizations`), as the server (`OrganizationsController`)
//! reads and writes them and as the JS SDK (npm `lattice` 0.98) sends them.
//!
//! Responses: unknown keys are ignored and missing lists read as empty, so a newer server or a
//! partial object still decodes; only the fields orgops uses are kept (an Auth0 profile's
//! free-form `app_metadata`, for one, is dropped), so what a response costs in memory is bounded
//! by the transport's response cap. Requests: exactly the keys the JS SDK sends (the server
//! rejects unknown ones), with `@class` where Jackson's polymorphic typing needs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `@class` of a plain securable principal (users).
pub const SECURABLE_PRINCIPAL_CLASS: &str = "com.openlattice.authorization.SecurablePrincipal";
/// `@class` of an organization's principal.
pub const ORGANIZATION_PRINCIPAL_CLASS: &str = "com.openlattice.organization.OrganizationPrincipal";
/// `@class` of a role.
pub const ROLE_CLASS: &str = "com.openlattice.organization.roles.Role";

/// The kind of a [`Principal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrincipalType {
    /// A person (an Auth0 subject).
    User,
    /// A role of an organization.
    Role,
    /// An organization.
    Organization,
    /// A group.
    Group,
    /// An app.
    App,
    /// A type this client does not know (read only).
    #[serde(other)]
    Unknown,
}

/// `{"type": .., "id": ..}`: who or what is meant, by name. A user's id is their Auth0 subject
/// (`google-oauth2|123`); an organization's is its unique name; a role's is
/// `<orgId>|<title>` by convention.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: PrincipalType,
    /// The name.
    pub id: String,
}

impl Principal {
    /// A principal of `kind` named `id`.
    pub fn new(kind: PrincipalType, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }
}

/// A path of ids: `[orgId]` for an organization, `[orgId, roleId]` for a role, `[userId]` for
/// a user.
pub type AclKey = Vec<Uuid>;

/// A securable principal as the server returns it (users, organization principals, roles; the
/// `@class` tells which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurablePrincipal {
    /// The Java class (see the `*_CLASS` constants).
    #[serde(rename = "@class", default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Id.
    pub id: Uuid,
    /// Type and name.
    pub principal: Principal,
    /// Display title.
    #[serde(default)]
    pub title: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path of ids.
    #[serde(default)]
    pub acl_key: AclKey,
}

/// An organization's own principal, as `GET /metadata` lists them.
pub type OrganizationPrincipal = SecurablePrincipal;

/// A role of an organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// Always [`ROLE_CLASS`]: the server decodes roles polymorphically and needs it.
    #[serde(rename = "@class", default = "role_class")]
    pub class: String,
    /// `[organizationId, id]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl_key: AclKey,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Id; the server picks a random one if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// The organization it belongs to.
    pub organization_id: Uuid,
    /// Type `ROLE`, and a name unique across OpenLattice (`<orgId>|<title>`).
    pub principal: Principal,
    /// Display title.
    #[serde(default)]
    pub title: String,
}

fn role_class() -> String {
    ROLE_CLASS.to_string()
}

impl Role {
    /// A role to create: `id`, principal `<organizationId>|<title>`, `aclKey`
    /// `[organizationId, id]`, as the JS SDK's `Role` builds it.
    pub fn new(organization_id: Uuid, id: Uuid, title: &str, description: Option<&str>) -> Self {
        Self {
            class: role_class(),
            acl_key: vec![organization_id, id],
            description: description.map(str::to_string),
            id: Some(id),
            organization_id,
            principal: Principal::new(
                PrincipalType::Role,
                role_principal_id(organization_id, title),
            ),
            title: title.to_string(),
        }
    }
}

/// The principal name of role `title` of `organization`: `<orgId>|<title>` (JS SDK convention;
/// it must be unique across OpenLattice, which the org id makes it).
pub fn role_principal_id(organization: Uuid, title: &str) -> String {
    format!("{organization}|{title}")
}

/// One way members are let into a role automatically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GrantType {
    /// By user attributes.
    Attributes,
    /// Everyone.
    Automatic,
    /// By a token claim.
    Claim,
    /// By e-mail domain.
    EmailDomain,
    /// By groups.
    Groups,
    /// By hand.
    Manual,
    /// By other roles.
    Roles,
}

/// `{"grantType": .., "mappings": [..], "attribute": ..}` (`Grant.kt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// How members are let in.
    pub grant_type: GrantType,
    /// What matches (a set at the server: order and duplicates carry no meaning).
    #[serde(default)]
    pub mappings: Vec<String>,
    /// The attribute read, for attribute grants.
    #[serde(default)]
    pub attribute: String,
}

/// An organization's grants: `{roleId: {grantType: Grant}}`.
pub type Grants = BTreeMap<Uuid, BTreeMap<GrantType, Grant>>;

/// `POST /datastore/organizations`: the body the JS SDK sends (`members`, `roles` and `apps` are
/// required by the server though it applies none of them; roles and members have their own
/// calls).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationCreate {
    /// Always empty.
    pub apps: Vec<Uuid>,
    /// Database connections (global admins only); empty.
    pub connections: Vec<String>,
    /// Description.
    pub description: String,
    /// Auto-approved e-mail domains.
    pub email_domains: Vec<String>,
    /// Always empty.
    pub grants: BTreeMap<Uuid, BTreeMap<GrantType, Grant>>,
    /// The id the caller chose (the server keeps it).
    pub id: Uuid,
    /// Always empty.
    pub members: Vec<Principal>,
    /// Always `{}` (the JS SDK sends it; the server ignores it).
    pub metadata_entity_set_ids: BTreeMap<String, Uuid>,
    /// Type `ORGANIZATION` and the organization's unique name.
    pub principal: Principal,
    /// Always empty.
    pub roles: Vec<Role>,
    /// Display title.
    pub title: String,
}

impl OrganizationCreate {
    /// The body creating organization `id` named `principal_id` (unique across OpenLattice).
    pub fn new(
        id: Uuid,
        principal_id: &str,
        title: &str,
        description: &str,
        email_domains: Vec<String>,
    ) -> Self {
        Self {
            apps: Vec::new(),
            connections: Vec::new(),
            description: description.to_string(),
            email_domains,
            grants: BTreeMap::new(),
            id,
            members: Vec::new(),
            metadata_entity_set_ids: BTreeMap::new(),
            principal: Principal::new(PrincipalType::Organization, principal_id),
            roles: Vec::new(),
            title: title.to_string(),
        }
    }
}

/// An organization as `GET /{id}` and `GET ""` return it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Id.
    pub id: Uuid,
    /// Type `ORGANIZATION` and the unique name.
    pub principal: Principal,
    /// Display title.
    #[serde(default)]
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Auto-approved e-mail domains.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Members.
    #[serde(default)]
    pub members: Vec<Principal>,
    /// Roles the caller may read, the automatic admin role among them.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// `[id, adminRoleId]`.
    #[serde(default)]
    pub admin_role_acl_key: AclKey,
    /// Installed apps.
    #[serde(default)]
    pub apps: Vec<Uuid>,
    /// Database connections.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Grants by role.
    #[serde(default)]
    pub grants: Grants,
}

impl Organization {
    /// Whether `role` is the organization's automatic admin role (`"<name> - ADMIN"`), which
    /// every organization gets for itself and a template copy skips.
    pub fn is_admin_role(&self, role: &Role) -> bool {
        if self.admin_role_acl_key.len() == 2 {
            return role.id == Some(self.admin_role_acl_key[1]);
        }
        role.principal.id == role_principal_id(self.id, &format!("{} - ADMIN", self.principal.id))
    }
}

/// An Auth0 user profile (snake_case, as Auth0's management API writes it); only the fields
/// orgops reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Auth0User {
    /// The Auth0 subject, the user's principal id (`google-oauth2|123`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Full name.
    #[serde(default)]
    pub name: Option<String>,
    /// Nickname.
    #[serde(default)]
    pub nickname: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub family_name: Option<String>,
}

/// A member of an organization, as `GET /{id}/principals/members` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct OrganizationMember {
    /// The user's principal (type `USER`, id = Auth0 subject).
    pub principal: SecurablePrincipal,
    /// The Auth0 profile.
    #[serde(default)]
    pub profile: Auth0User,
    /// Every principal the user holds anywhere in OpenLattice, organizations and other orgs'
    /// roles included: see [`OrganizationMember::roles_in`].
    #[serde(default)]
    pub roles: Vec<SecurablePrincipal>,
}

impl OrganizationMember {
    /// The user's principal id (Auth0 subject).
    pub fn user_id(&self) -> &str {
        &self.principal.principal.id
    }

    /// The member's roles in `organization` (the server lists every principal the user holds
    /// across OpenLattice).
    pub fn roles_in(&self, organization: Uuid) -> impl Iterator<Item = &SecurablePrincipal> {
        self.roles.iter().filter(move |r| {
            r.principal.kind == PrincipalType::Role && r.acl_key.first() == Some(&organization)
        })
    }
}

/// What kind of failure an [`ErrorDto`] reports.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ApiException {
    /// `resourceNotFound`, `illegalArgument`, `illegalState`, `typeExists`, `forbidden`,
    /// `tokenNeedsRefresh`, `tokenError`, `otherError`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status it maps to.
    #[serde(default)]
    pub code: u16,
}

/// One error of an [`ErrorsDto`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorDto {
    /// Its kind.
    pub error: ApiException,
    /// Its message.
    #[serde(default)]
    pub message: String,
}

/// The server's error body, `{"errors": [{"error": {"type", "code"}, "message"}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorsDto {
    /// The errors.
    pub errors: Vec<ErrorDto>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn uuid(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn the_create_body_is_the_one_the_js_sdk_sends() {
        // design doc §3: the JS SDK's createOrganization body (CAPJS), keys in its order.
        let js: Value = serde_json::from_str(
            r#"{"apps":[],"connections":[],"description":"d","emailDomains":["example.com"],"grants":{},"id":"01010101-0101-0101-0101-010101010101","members":[],"metadataEntitySetIds":{},"principal":{"id":"myorg","type":"ORGANIZATION"},"roles":[],"title":"My Org"}"#,
        )
        .unwrap();
        let ours =
            OrganizationCreate::new(uuid(1), "myorg", "My Org", "d", vec!["example.com".into()]);
        assert_eq!(serde_json::to_value(&ours).unwrap(), js);
        // Not the Python client's `emails` key, which the server rejects.
        assert!(
            serde_json::to_string(&ours)
                .unwrap()
                .contains("\"emailDomains\"")
        );
    }

    #[test]
    fn a_role_to_create_carries_its_class_acl_key_and_principal_name() {
        let org = uuid(1);
        let role = Role::new(org, uuid(2), "Analysts", Some("Read things"));
        assert_eq!(
            serde_json::to_value(&role).unwrap(),
            json!({
                "@class": "com.openlattice.organization.roles.Role",
                "aclKey": [org, uuid(2)],
                "description": "Read things",
                "id": uuid(2),
                "organizationId": org,
                "principal": {"type": "ROLE", "id": format!("{org}|Analysts")},
                "title": "Analysts",
            })
        );
        // Without a description the key is left out, as the JS SDK does.
        let bare = serde_json::to_value(Role::new(org, uuid(2), "X", None)).unwrap();
        assert!(bare.get("description").is_none());
    }

    #[test]
    fn an_organization_response_decodes_and_ignores_unknown_keys() {
        let org = "11111111-1111-1111-1111-111111111111";
        let admin = "22222222-2222-2222-2222-222222222222";
        let body = json!({
            "id": org,
            "principal": {"type": "ORGANIZATION", "id": "acme"},
            "title": "Acme",
            "description": "d",
            "emailDomains": ["acme.com"],
            "members": [{"type": "USER", "id": "google-oauth2|123"}],
            "roles": [{
                "@class": ROLE_CLASS,
                "id": admin,
                "principal": {"type": "ROLE", "id": format!("{org}|acme - ADMIN")},
                "title": "acme - ADMIN",
                "description": "Administrators of this organization",
                "aclKey": [org, admin],
                "organizationId": org
            }, {
                "@class": ROLE_CLASS,
                "id": "33333333-3333-3333-3333-333333333333",
                "principal": {"type": "ROLE", "id": format!("{org}|Analysts")},
                "title": "Analysts",
                "aclKey": [org, "33333333-3333-3333-3333-333333333333"],
                "organizationId": org
            }],
            "adminRoleAclKey": [org, admin],
            "smsEntitySetInfo": [],
            "partitions": [1, 2],
            "apps": [],
            "connections": [],
            "grants": {admin: {"Manual": {"grantType": "Manual", "mappings": ["a"], "attribute": ""}}},
            "securablePrincipal": {"@class": ORGANIZATION_PRINCIPAL_CLASS, "id": org,
                "principal": {"type": "ORGANIZATION", "id": "acme"}, "title": "Acme", "aclKey": [org]},
            "somethingNew": {"nested": true}
        });
        let o: Organization = serde_json::from_value(body).unwrap();
        assert_eq!(
            o.principal,
            Principal::new(PrincipalType::Organization, "acme")
        );
        assert_eq!(o.email_domains, ["acme.com"]);
        assert_eq!(o.members[0].id, "google-oauth2|123");
        assert_eq!(o.roles.len(), 2);
        assert!(o.is_admin_role(&o.roles[0]));
        assert!(!o.is_admin_role(&o.roles[1]));
        assert_eq!(o.roles[1].description, None);
        let admin: Uuid = admin.parse().unwrap();
        assert_eq!(o.grants[&admin][&GrantType::Manual].mappings, ["a"]);

        // A minimal one (lists missing) decodes too; without adminRoleAclKey the admin role is
        // recognised by its principal name.
        let mut minimal: Organization = serde_json::from_value(json!({
            "id": org, "principal": {"type": "ORGANIZATION", "id": "acme"}
        }))
        .unwrap();
        assert!(minimal.roles.is_empty() && minimal.description.is_none());
        minimal.roles = o.roles.clone();
        assert!(minimal.is_admin_role(&o.roles[0]) && !minimal.is_admin_role(&o.roles[1]));
    }

    #[test]
    fn metadata_lists_organization_principals() {
        let org = "11111111-1111-1111-1111-111111111111";
        let list: Vec<OrganizationPrincipal> = serde_json::from_value(json!([{
            "@class": ORGANIZATION_PRINCIPAL_CLASS,
            "id": org,
            "principal": {"type": "ORGANIZATION", "id": "acme"},
            "title": "Acme",
            "description": "",
            "aclKey": [org]
        }]))
        .unwrap();
        assert_eq!(list[0].principal.id, "acme");
        assert_eq!(list[0].class.as_deref(), Some(ORGANIZATION_PRINCIPAL_CLASS));
    }

    #[test]
    fn a_member_lists_only_the_roles_of_the_asked_organization() {
        let org = uuid(1);
        let other = uuid(9);
        let member: OrganizationMember = serde_json::from_value(json!({
            "principal": {"@class": SECURABLE_PRINCIPAL_CLASS, "id": uuid(5),
                "principal": {"type": "USER", "id": "google-oauth2|123"},
                "title": "Ada", "aclKey": [uuid(5)]},
            "profile": {"user_id": "google-oauth2|123", "email": "ada@example.com",
                "name": "Ada", "app_metadata": {"roles": ["AuthenticatedUser"]},
                "identities": [{"provider": "google-oauth2"}]},
            "roles": [
                {"@class": ORGANIZATION_PRINCIPAL_CLASS, "id": org,
                    "principal": {"type": "ORGANIZATION", "id": "acme"}, "title": "Acme", "aclKey": [org]},
                {"@class": ROLE_CLASS, "id": uuid(2), "organizationId": org,
                    "principal": {"type": "ROLE", "id": format!("{org}|Analysts")},
                    "title": "Analysts", "aclKey": [org, uuid(2)]},
                {"@class": ROLE_CLASS, "id": uuid(3), "organizationId": other,
                    "principal": {"type": "ROLE", "id": format!("{other}|Analysts")},
                    "title": "Analysts", "aclKey": [other, uuid(3)]},
                {"@class": SECURABLE_PRINCIPAL_CLASS, "id": uuid(4),
                    "principal": {"type": "SOMETHING_NEW", "id": "x"}, "aclKey": [org, uuid(4)]}
            ]
        }))
        .unwrap();
        assert_eq!(member.user_id(), "google-oauth2|123");
        assert_eq!(member.profile.email.as_deref(), Some("ada@example.com"));
        let titles: Vec<_> = member.roles_in(org).map(|r| r.id).collect();
        assert_eq!(titles, [uuid(2)]);
        assert_eq!(member.roles[3].principal.kind, PrincipalType::Unknown);
    }

    #[test]
    fn grants_and_errors_decode_as_the_server_writes_them() {
        let grant: Grant = serde_json::from_value(json!({
            "grantType": "EmailDomain", "mappings": ["@acme.com"]
        }))
        .unwrap();
        assert_eq!(grant.grant_type, GrantType::EmailDomain);
        assert_eq!(grant.attribute, "");
        assert_eq!(
            serde_json::to_value(&grant).unwrap(),
            json!({"grantType": "EmailDomain", "mappings": ["@acme.com"], "attribute": ""})
        );
        let errors: ErrorsDto = serde_json::from_value(json!({"errors": [{
            "error": {"type": "illegalState", "code": 500},
            "message": "Organization [11111111-1111-1111-1111-111111111111] does not exist."
        }]}))
        .unwrap();
        assert_eq!(errors.errors[0].error.kind, "illegalState");
        assert_eq!(errors.errors[0].error.code, 500);
    }
}
