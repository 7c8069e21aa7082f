//! OpenLattice behind the vendor-neutral contract: organizations created with a chosen id,
//! title / description / e-mail domains / roles kept in sync from `spec.settings.openlattice`,
//! roles copied from a template (the automatic ADMIN role skipped), and memberships as
//! `member` plus the organization's roles by title.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::client::{CreateOutcome, OpenLatticeApi, organization_id};
use super::models::{Grant, GrantType, Organization, OrganizationCreate};
use crate::vendors::http::HttpConfig;
use crate::vendors::{
    AccountInfo, Capabilities, CopyFields, Credentials, Endpoints, Identity, KindSpec,
    MemberChange, MemberClient, MemberDesired, MemberObserved, OrgDesired, OrgIdentity, OrgInfo,
    Owner, Presence, RefCodec, RefTarget, RoleModel, VendorClient, VendorError,
};

/// The role every member has; `spec.roles` adds the organization's own roles by title.
pub const MEMBER_ROLE: &str = "member";

fn by_title(role: &Value) -> Option<String> {
    role.get("title")?.as_str().map(str::to_string)
}

/// Roles of an organization (not the automatic ADMIN role, which every org makes for itself):
/// title, description and grants (`{grantType: Grant}`).
pub const ROLES: KindSpec = KindSpec {
    name: "roles",
    refs: &[],
    fields: CopyFields::Only(&["title", "description", "grants"]),
    // Titles are unique within an org (the role's principal name is `<org>|<title>`).
    identity: Identity::NaturalKey(by_title),
    creatable: None,
    skip: None,
    input: None,
    opt_in: false,
};

/// What OpenLattice can do through its API.
pub const CAPABILITIES: Capabilities = Capabilities {
    create_org: true,
    delete_org: true,
    org_identity: OrgIdentity::ChosenId,
    settings: &["description", "autoApprovedEmailDomains", "roles"],
    members: Some(RoleModel {
        roles: &[MEMBER_ROLE],
        org_roles: true,
        scopes: None,
    }),
    usage: None,
    kinds: &[ROLES],
};

/// `spec.settings.openlattice` as the client reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    description: Option<String>,
    #[serde(default)]
    auto_approved_email_domains: Vec<String>,
    #[serde(default)]
    roles: Vec<RoleSetting>,
}

#[derive(Debug, Deserialize)]
struct RoleSetting {
    title: String,
    description: Option<String>,
}

fn settings(desired: &OrgDesired) -> Settings {
    serde_json::from_value(desired.settings.clone()).unwrap_or_default()
}

fn org_uuid(id: &str) -> Result<Uuid, VendorError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| VendorError::NotFound(format!("{id:?} is not an OpenLattice organization id")))
}

fn domain_set(domains: &[String]) -> BTreeSet<String> {
    domains
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect()
}

/// The OpenLattice [`VendorClient`].
#[derive(Debug)]
pub struct OpenLatticeClient {
    api: OpenLatticeApi,
}

impl OpenLatticeClient {
    /// A client for `endpoint` (default: OpenLattice's production API) with the Secret's JWT.
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, VendorError> {
        Ok(Self {
            api: OpenLatticeApi::new(endpoint, credentials, config, endpoints)?,
        })
    }

    /// The typed API underneath.
    pub fn api(&self) -> &OpenLatticeApi {
        &self.api
    }

    fn info(org: &Organization) -> OrgInfo {
        let raw = json!({
            "id": org.id, "principal": org.principal.id, "title": org.title,
            "description": org.description, "emailDomains": org.email_domains,
            "roles": org.roles.iter().filter(|r| !org.is_admin_role(r))
                .map(|r| json!({"title": r.title, "description": r.description}))
                .collect::<Vec<_>>(),
        });
        OrgInfo {
            id: org.id.to_string(),
            name: org.title.clone(),
            owner: None,
            created_at: None,
            usage: None,
            raw,
        }
    }

    async fn org(&self, id: Uuid) -> Result<Organization, VendorError> {
        self.api
            .get_org(id)
            .await?
            .ok_or_else(|| VendorError::NotFound(format!("organization {id} does not exist")))
    }

    /// The org's roles (not the admin role) as copy objects: id, title, description, grants.
    fn role_objects(org: &Organization) -> Vec<Value> {
        org.roles
            .iter()
            .filter(|r| !org.is_admin_role(r))
            .filter_map(|r| {
                let id = r.id?;
                let grants: Map<String, Value> = org
                    .grants
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .map(|(t, g)| (grant_key(*t), normalized_grant(g)))
                    .collect();
                Some(json!({
                    "id": id.to_string(), "title": r.title,
                    "description": r.description.clone().unwrap_or_default(),
                    "grants": grants,
                }))
            })
            .collect()
    }

    /// Role `id` of `org` as a copy object.
    fn role_object(org: &Organization, id: &str) -> Result<Value, VendorError> {
        Self::role_objects(org)
            .into_iter()
            .find(|r| r["id"] == json!(id))
            .ok_or_else(|| VendorError::NotFound(format!("role {id} vanished")))
    }

    async fn set_grants(&self, org: Uuid, role: Uuid, grants: &Value) -> Result<(), VendorError> {
        let Some(grants) = grants.as_object() else {
            return Ok(());
        };
        for grant in grants.values() {
            let grant: Grant = serde_json::from_value(grant.clone())
                .map_err(|e| VendorError::Rejected(format!("role grant {grant}: {e}")))?;
            self.api.update_role_grant(org, role, &grant).await?;
        }
        Ok(())
    }

    /// Role id by title in `org`, for the roles a membership names.
    async fn role_ids(&self, org: Uuid) -> Result<BTreeMap<String, Uuid>, VendorError> {
        let o = self.org(org).await?;
        Ok(o.roles
            .iter()
            .filter(|r| !o.is_admin_role(r))
            .filter_map(|r| Some((r.title.clone(), r.id?)))
            .collect())
    }

    async fn grant_roles(
        &self,
        org: Uuid,
        user: &str,
        grant: &BTreeSet<String>,
        revoke: &BTreeSet<String>,
    ) -> Result<(), VendorError> {
        let ids = self.role_ids(org).await?;
        let id_of = |title: &String| {
            ids.get(title).copied().ok_or_else(|| {
                VendorError::Rejected(format!(
                    "spec.roles: organization {org} has no role titled {title:?} (it has {})",
                    if ids.is_empty() {
                        "none".to_string()
                    } else {
                        ids.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ))
            })
        };
        for title in grant.iter().filter(|t| *t != MEMBER_ROLE) {
            self.api
                .add_role_to_member(org, id_of(title)?, user)
                .await?;
        }
        for title in revoke.iter().filter(|t| *t != MEMBER_ROLE) {
            // A role that is gone is revoked already.
            if let Some(id) = ids.get(title) {
                self.api.remove_role_from_member(org, *id, user).await?;
            }
        }
        Ok(())
    }
}

fn grant_key(t: GrantType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What it takes to turn a role's grants `have` into `want` (both `{grantType: Grant}`): the
/// grants to set (those that differ), and the grant types `have` holds that `want` lacks. The
/// server keeps one grant per type and can only set one (`updateRoleGrant`), never remove one,
/// so those cannot be put right through the API: sending the others again each time would
/// write forever without ever matching.
fn changed_grants(have: &Value, want: &Value) -> Result<(Vec<Grant>, Vec<String>), VendorError> {
    let empty = Map::new();
    let have = have.as_object().unwrap_or(&empty);
    let want = want.as_object().unwrap_or(&empty);
    let mut set = Vec::new();
    for (t, grant) in want {
        let grant: Grant = serde_json::from_value(grant.clone())
            .map_err(|e| VendorError::Rejected(format!("role grant {grant}: {e}")))?;
        if have.get(t) != Some(&normalized_grant(&grant)) {
            set.push(grant);
        }
    }
    let unremovable = have
        .keys()
        .filter(|t| !want.contains_key(*t))
        .cloned()
        .collect();
    Ok((set, unremovable))
}

/// A grant as compared and copied: mappings are a set at the server.
fn normalized_grant(g: &Grant) -> Value {
    let mut g = g.clone();
    g.mappings.sort();
    g.mappings.dedup();
    serde_json::to_value(g).unwrap_or(Value::Null)
}

impl RefCodec for OpenLatticeClient {
    fn decode_ref(&self, value: &Value) -> Option<String> {
        value.as_str().map(str::to_string)
    }

    fn encode_ref(&self, _target: RefTarget, id: &str) -> Value {
        json!(id)
    }
}

#[async_trait::async_trait]
impl VendorClient for OpenLatticeClient {
    fn vendor(&self) -> &'static str {
        "openlattice"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn verify_credentials(&self) -> Result<(), VendorError> {
        self.api.verify().await
    }

    async fn describe_account(&self) -> Result<AccountInfo, VendorError> {
        let orgs = self.api.list_org_principals().await?;
        let user = self.api.caller().unwrap_or_else(|| "unknown".into());
        Ok(AccountInfo {
            summary: format!("user {user}, {} organizations visible", orgs.len()),
            details: BTreeMap::from([
                ("user".to_string(), user),
                ("organizations".to_string(), orgs.len().to_string()),
            ]),
        })
    }

    fn planned_org_id(&self, owner: &Owner) -> Option<String> {
        Some(organization_id(owner.uid.as_deref().unwrap_or(&owner.key)).to_string())
    }

    async fn get_org(&self, id: &str) -> Result<Option<OrgInfo>, VendorError> {
        let Ok(id) = Uuid::parse_str(id.trim()) else {
            return Ok(None);
        };
        Ok(self.api.get_org(id).await?.as_ref().map(Self::info))
    }

    async fn find_orgs(&self, name: Option<&str>) -> Result<Vec<OrgInfo>, VendorError> {
        Ok(self
            .api
            .list_org_principals()
            .await?
            .into_iter()
            .filter(|p| name.is_none_or(|n| p.title == n))
            .map(|p| OrgInfo {
                id: p.id.to_string(),
                name: p.title.clone(),
                owner: None,
                created_at: None,
                usage: None,
                raw: json!({"id": p.id, "principal": p.principal.id, "title": p.title}),
            })
            .collect())
    }

    async fn create_org(&self, desired: &OrgDesired) -> Result<OrgInfo, VendorError> {
        let id = organization_id(desired.owner.uid.as_deref().unwrap_or(&desired.owner.key));
        let s = settings(desired);
        // The principal name is OpenLattice's unique key for organizations; the id makes it
        // unique, and the title is what people see.
        let body = OrganizationCreate::new(
            id,
            &format!("orgops-{id}"),
            &desired.display_name,
            s.description.as_deref().unwrap_or_default(),
            s.auto_approved_email_domains.clone(),
        );
        match self.api.create_org(&body).await? {
            CreateOutcome::Created(got) | CreateOutcome::Exists(got) if got == id => {}
            CreateOutcome::Created(other) | CreateOutcome::Exists(other) => {
                return Err(VendorError::Rejected(format!(
                    "organization name orgops-{id} is taken by organization {other}"
                )));
            }
        }
        Ok(Self::info(&self.org(id).await?))
    }

    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
        let s = settings(desired);
        let mut patch = Map::new();
        if observed.name != desired.display_name {
            patch.insert("title".into(), json!(desired.display_name));
        }
        if let Some(d) = &s.description
            && observed.raw["description"].as_str().unwrap_or_default() != d
        {
            patch.insert("description".into(), json!(d));
        }
        let have: Vec<String> =
            serde_json::from_value(observed.raw["emailDomains"].clone()).unwrap_or_default();
        if !s.auto_approved_email_domains.is_empty()
            && domain_set(&have) != domain_set(&s.auto_approved_email_domains)
        {
            patch.insert(
                "emailDomains".into(),
                json!(domain_set(&s.auto_approved_email_domains)),
            );
        }
        let roles: BTreeMap<String, String> = observed.raw["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                Some((
                    r["title"].as_str()?.to_string(),
                    r["description"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        let missing: Vec<Value> = s
            .roles
            .iter()
            .filter(|r| match (roles.get(&r.title), &r.description) {
                (None, _) => true,
                (Some(have), Some(want)) => have != want,
                (Some(_), None) => false,
            })
            .map(|r| json!({"title": r.title, "description": r.description}))
            .collect();
        if !missing.is_empty() {
            patch.insert("roles".into(), Value::Array(missing));
        }
        (!patch.is_empty()).then_some(Value::Object(patch))
    }

    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError> {
        let org = org_uuid(id)?;
        if let Some(title) = patch["title"].as_str() {
            self.api.update_title(org, title).await?;
        }
        if let Some(d) = patch["description"].as_str() {
            self.api.update_description(org, d).await?;
        }
        if let Some(domains) = patch["emailDomains"].as_array() {
            let domains: Vec<String> = domains
                .iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect();
            self.api.set_email_domains(org, &domains).await?;
        }
        if let Some(roles) = patch["roles"].as_array() {
            let existing = self.role_ids(org).await?;
            for r in roles {
                let title = r["title"].as_str().unwrap_or_default();
                let description = r["description"].as_str();
                match existing.get(title) {
                    Some(role) => {
                        if let Some(d) = description {
                            self.api.update_role_description(org, *role, d).await?;
                        }
                    }
                    None => {
                        self.api.create_role(org, title, description).await?;
                    }
                }
            }
        }
        Ok(Self::info(&self.org(org).await?))
    }

    async fn delete_org(&self, id: &str) -> Result<(), VendorError> {
        match Uuid::parse_str(id.trim()) {
            Ok(id) => self.api.delete_org(id).await,
            // Not an OpenLattice id: nothing of ours can exist under it.
            Err(_) => Ok(()),
        }
    }

    fn members(&self) -> Option<&dyn MemberClient> {
        Some(self)
    }

    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        check_kind(kind)?;
        Ok(Self::role_objects(&self.org(org_uuid(org)?).await?))
    }

    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError> {
        check_kind(kind)?;
        let org = org_uuid(org)?;
        let title = body["title"]
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| VendorError::Rejected("a role needs a title".into()))?;
        let description = body["description"].as_str().filter(|d| !d.is_empty());
        let role = self.api.create_role(org, title, description).await?;
        self.set_grants(org, role, &body["grants"]).await?;
        let mut created = body;
        created["id"] = json!(role.to_string());
        Ok(created)
    }

    async fn update_object(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: Value,
    ) -> Result<Value, VendorError> {
        check_kind(kind)?;
        let org = org_uuid(org)?;
        let role = Uuid::parse_str(id)
            .map_err(|_| VendorError::NotFound(format!("{id:?} is not a role id")))?;
        // The grants the role has now: only those that differ are sent, and those the patch
        // lacks are found (see `changed_grants`).
        let current = if patch["grants"].is_object() {
            Some(Self::role_object(&self.org(org).await?, id)?)
        } else {
            None
        };
        if let Some(t) = patch["title"].as_str() {
            self.api.update_role_title(org, role, t).await?;
        }
        if let Some(d) = patch["description"].as_str() {
            self.api.update_role_description(org, role, d).await?;
        }
        if let Some(current) = current {
            let (set, unremovable) = changed_grants(&current["grants"], &patch["grants"])?;
            for grant in &set {
                self.api.update_role_grant(org, role, grant).await?;
            }
            if !unremovable.is_empty() {
                return Err(VendorError::Unsupported {
                    vendor: "openlattice",
                    what: format!(
                        "removing the {} grant of role {:?}: OpenLattice's API sets a role's grant of a type but cannot remove one; remove it by hand, or give the template's role that grant too",
                        unremovable.join(", "),
                        current["title"].as_str().unwrap_or(id)
                    ),
                });
            }
        }
        Self::role_object(&self.org(org).await?, id)
    }

    async fn delete_object(&self, org: &str, kind: &KindSpec, id: &str) -> Result<(), VendorError> {
        check_kind(kind)?;
        let role = Uuid::parse_str(id)
            .map_err(|_| VendorError::NotFound(format!("{id:?} is not a role id")))?;
        self.api.delete_role(org_uuid(org)?, role).await
    }
}

fn check_kind(kind: &KindSpec) -> Result<(), VendorError> {
    if kind.name == ROLES.name {
        return Ok(());
    }
    Err(VendorError::Unsupported {
        vendor: "openlattice",
        what: format!("copying {}", kind.name),
    })
}

#[async_trait::async_trait]
impl MemberClient for OpenLatticeClient {
    async fn observe_member(&self, desired: &MemberDesired) -> Result<MemberObserved, VendorError> {
        let (org, email) = (desired.org.as_str(), desired.email.as_str());
        let org = org_uuid(org)?;
        let o = self.org(org).await?;
        let admin_roles: BTreeSet<Uuid> = o
            .roles
            .iter()
            .filter(|r| o.is_admin_role(r))
            .filter_map(|r| r.id)
            .collect();
        let members = self.api.members(org).await?;
        let Some(m) = members.iter().find(|m| {
            m.profile
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }) else {
            return Ok(MemberObserved::absent());
        };
        // The ADMIN role is OpenLattice's own (its creator holds it): never granted or revoked.
        let roles = std::iter::once(MEMBER_ROLE.to_string())
            .chain(
                m.roles_in(org)
                    .filter(|r| !admin_roles.contains(&r.id))
                    .map(|r| r.title.clone()),
            )
            .collect();
        Ok(MemberObserved {
            presence: Presence::Active,
            id: Some(m.user_id().to_string()),
            roles,
            vendor_state: json!({"user": m.user_id()}),
            ..MemberObserved::absent()
        })
    }

    async fn change_member(
        &self,
        desired: &MemberDesired,
        observed: &MemberObserved,
        change: &MemberChange,
    ) -> Result<(), VendorError> {
        let org = org_uuid(&desired.org)?;
        match change {
            MemberChange::Add => {
                let users = self.api.find_users_by_email(&desired.email).await?;
                let user = match users.as_slice() {
                    [one] => one.user_id.clone().unwrap_or_default(),
                    [] => {
                        return Err(VendorError::NotFound(format!(
                            "no OpenLattice user has the e-mail {}; they must sign in to OpenLattice once before they can be added",
                            desired.email
                        )));
                    }
                    many => {
                        return Err(VendorError::Rejected(format!(
                            "{} OpenLattice users have the e-mail {}; add them by hand",
                            many.len(),
                            desired.email
                        )));
                    }
                };
                self.api.add_member(org, &user).await?;
                self.grant_roles(org, &user, &desired.roles, &BTreeSet::new())
                    .await
            }
            MemberChange::SetRoles { grant, revoke } => {
                let user = observed.vendor_state["user"].as_str().unwrap_or_default();
                self.grant_roles(org, user, grant, revoke).await
            }
            MemberChange::SetScopes => Ok(()),
        }
    }

    async fn remove_member(&self, org: &str, observed: &MemberObserved) -> Result<(), VendorError> {
        if !observed.holds_access() {
            return Ok(());
        }
        let org = org_uuid(org)?;
        let user = observed.vendor_state["user"].as_str().unwrap_or_default();
        let held: BTreeSet<String> = observed.roles.clone();
        self.grant_roles(org, user, &BTreeSet::new(), &held).await?;
        self.api.remove_member(org, user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(settings: Value) -> OrgDesired {
        OrgDesired {
            owner: Owner {
                key: "t/research".into(),
                uid: Some("uid-1".into()),
            },
            display_name: "Research".into(),
            settings,
        }
    }

    fn observed(title: &str, description: &str, domains: &[&str], roles: Value) -> OrgInfo {
        OrgInfo {
            id: "x".into(),
            name: title.into(),
            owner: None,
            created_at: None,
            usage: None,
            raw: json!({"description": description, "emailDomains": domains, "roles": roles}),
        }
    }

    fn client() -> OpenLatticeClient {
        let creds = Credentials::new(
            "ns/s",
            BTreeMap::from([("token".to_string(), "a.b.c".to_string().into())]),
        );
        OpenLatticeClient::new(
            Some("http://127.0.0.1:9"),
            creds,
            HttpConfig::default(),
            &Endpoints::default(),
        )
        .unwrap()
    }

    #[test]
    fn settings_patch_names_only_what_differs() {
        let c = client();
        let want = desired(json!({
            "description": "Data", "autoApprovedEmailDomains": ["B.example", "a.example"],
            "roles": [{"title": "Auditors", "description": "Audit"}, {"title": "Analyst"}],
        }));
        let same = observed(
            "Research",
            "Data",
            &["a.example", "b.example"],
            json!([{"title": "Auditors", "description": "Audit"}, {"title": "Analyst", "description": "x"}]),
        );
        assert_eq!(c.org_patch(&want, &same), None);
        let differs = observed("Old", "", &["a.example"], json!([{"title": "Analyst"}]));
        let patch = c.org_patch(&want, &differs).unwrap();
        assert_eq!(patch["title"], json!("Research"));
        assert_eq!(patch["description"], json!("Data"));
        assert_eq!(patch["emailDomains"], json!(["a.example", "b.example"]));
        assert_eq!(
            patch["roles"],
            json!([{"title": "Auditors", "description": "Audit"}])
        );
        // Unset settings are not managed.
        assert_eq!(
            c.org_patch(&desired(Value::Null), &differs).unwrap(),
            json!({"title": "Research"})
        );
    }

    #[test]
    fn only_differing_grants_are_set_and_extra_grant_types_are_named() {
        let g = |t: &str, m: &[&str]| json!({"grantType": t, "mappings": m, "attribute": ""});
        let have = json!({"Manual": g("Manual", &[]), "EmailDomain": g("EmailDomain", &["@a.example", "@b.example"])});
        // The same grants, mappings in another order: nothing to do.
        let same = json!({"Manual": g("Manual", &[]), "EmailDomain": g("EmailDomain", &["@b.example", "@a.example"])});
        assert_eq!(changed_grants(&have, &same).unwrap(), (vec![], vec![]));
        let want = json!({"EmailDomain": g("EmailDomain", &["@c.example"]), "Automatic": g("Automatic", &[])});
        let (set, extra) = changed_grants(&have, &want).unwrap();
        let set: BTreeSet<GrantType> = set.iter().map(|g| g.grant_type).collect();
        assert_eq!(set, [GrantType::Automatic, GrantType::EmailDomain].into());
        assert_eq!(extra, ["Manual"]);
        assert!(changed_grants(&have, &json!({"Manual": {"grantType": "Nope"}})).is_err());
    }

    #[test]
    fn the_planned_id_is_stable_per_owner_and_differs_between_owners() {
        let c = client();
        let a = desired(Value::Null).owner;
        let mut b = a.clone();
        b.uid = Some("uid-2".into());
        assert_eq!(c.planned_org_id(&a), c.planned_org_id(&a));
        assert_ne!(c.planned_org_id(&a), c.planned_org_id(&b));
        assert!(Uuid::parse_str(&c.planned_org_id(&a).unwrap()).is_ok());
    }
}
