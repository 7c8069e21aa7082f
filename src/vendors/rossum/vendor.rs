//! [`VendorClient`] for Rossum: org lifecycle and deep-copy kinds over [`RossumClient`].

use serde_json::{Map, Value, json};

use super::client::{RossumClient, Scope, id_from_url, owner_marker};
use super::kinds;
use super::models::{Organization, OrganizationId};
use crate::vendors::{
    Capabilities, KindSpec, OrgDesired, OrgInfo, RefCodec, RefTarget, VendorClient, VendorError,
};

/// `spec.settings.rossum` as the Rossum client reads it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    #[serde(default)]
    first_user: Option<FirstUser>,
    #[serde(default)]
    creation_template: Option<String>,
    #[serde(default)]
    ui_settings: Option<Value>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FirstUser {
    email: String,
    #[serde(default)]
    full_name: Option<String>,
}

fn settings(desired: &OrgDesired) -> Settings {
    serde_json::from_value(desired.settings.clone()).unwrap_or_default()
}

fn parse_org_id(id: &str) -> Result<OrganizationId, VendorError> {
    id.trim().parse().map(OrganizationId).map_err(|_| {
        VendorError::NotFound(format!("{id:?} is not a Rossum organization id (a number)"))
    })
}

fn info(org: Organization) -> OrgInfo {
    let owner = org
        .metadata
        .get("orgops")
        .and_then(|m| m.get("owner"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let created_at = org.created_at.as_deref().and_then(|s| s.parse().ok());
    let raw = serde_json::to_value(&org).unwrap_or(Value::Null);
    OrgInfo {
        id: org.id.to_string(),
        name: org.name,
        owner,
        created_at,
        usage: None,
        raw,
    }
}

/// The default first user: plus-addressing on the admin's own mailbox, so it is unique per org
/// and mail reaches a human who can act on it.
fn default_first_user_email(admin: &str, display_name: &str) -> Option<String> {
    let (local, domain) = admin.split_once('@')?;
    let slug: String = display_name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    Some(format!("{local}+{slug}@{domain}"))
}

/// What Rossum can do through its API.
pub const CAPABILITIES: Capabilities = Capabilities {
    create_org: true,
    // The API has no organization delete (support does it).
    delete_org: false,
    org_identity: crate::vendors::OrgIdentity::Marker,
    settings: &["uiSettings"],
    members: Some(crate::vendors::RoleModel {
        roles: super::members::ROLES,
        org_roles: false,
        scopes: Some("queues"),
    }),
    usage: None,
    kinds: kinds::ALL,
};

#[async_trait::async_trait]
impl VendorClient for RossumClient {
    fn vendor(&self) -> &'static str {
        "rossum"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn verify_credentials(&self) -> Result<(), VendorError> {
        self.verify().await
    }

    async fn describe_account(&self) -> Result<crate::vendors::AccountInfo, VendorError> {
        self.account().await
    }

    fn members(&self) -> Option<&dyn crate::vendors::MemberClient> {
        Some(self)
    }

    async fn get_org(&self, id: &str) -> Result<Option<OrgInfo>, VendorError> {
        Ok(self.organization(parse_org_id(id)?).await?.map(info))
    }

    async fn find_orgs(&self, name: Option<&str>) -> Result<Vec<OrgInfo>, VendorError> {
        Ok(self
            .organizations(name)
            .await?
            .into_iter()
            // The `name` filter is exact at Rossum; keep exact matches should it ever not be.
            .filter(|o| name.is_none_or(|n| o.name == n))
            .map(info)
            .collect())
    }

    async fn create_org(&self, desired: &OrgDesired) -> Result<OrgInfo, VendorError> {
        let s = settings(desired);
        let (email, full_name) = match s.first_user {
            Some(u) => (u.email, u.full_name),
            None => {
                let admin = self.credentials_username().ok_or_else(|| {
                    VendorError::Rejected(
                        "set spec.settings.rossum.firstUser.email: the Secret holds a token, \
                         so no default first user can be derived"
                            .into(),
                    )
                })?;
                let email =
                    default_first_user_email(&admin, &desired.display_name).ok_or_else(|| {
                        VendorError::Rejected(
                            "set spec.settings.rossum.firstUser.email: the Secret's username is \
                             not an e-mail address"
                                .into(),
                        )
                    })?;
                (email, None)
            }
        };
        let full_name = full_name.unwrap_or_else(|| format!("{} admin", desired.display_name));
        let template = s
            .creation_template
            .unwrap_or_else(|| "Empty Organization Template".to_string());
        let org = self
            .create_organization(&template, &desired.display_name, &full_name, &email)
            .await?;
        Ok(info(org))
    }

    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
        let mut patch = Map::new();
        if observed.name != desired.display_name {
            patch.insert("name".into(), Value::String(desired.display_name.clone()));
        }
        let marker = owner_marker(&desired.owner.key, desired.owner.uid.as_deref());
        let mut metadata = observed
            .raw
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if metadata.get("orgops") != Some(&marker) {
            // PATCH replaces `metadata` as a whole: send the vendor's other keys back unchanged.
            metadata.insert("orgops".into(), marker);
            patch.insert("metadata".into(), Value::Object(metadata));
        }
        if let Some(ui) = settings(desired).ui_settings
            && observed.raw.get("ui_settings") != Some(&ui)
        {
            patch.insert("ui_settings".into(), ui);
        }
        (!patch.is_empty()).then_some(Value::Object(patch))
    }

    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError> {
        Ok(info(
            self.patch_organization(parse_org_id(id)?, patch).await?,
        ))
    }

    async fn delete_org(&self, _id: &str) -> Result<(), VendorError> {
        Err(VendorError::Unsupported {
            vendor: "rossum",
            what: "Rossum's API cannot delete an organization; set deletionPolicy: Orphan \
                   and ask Rossum support to remove it"
                .into(),
        })
    }

    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        let org = parse_org_id(org)?;
        self.list_raw(Scope::Org(org), kind.name, &[]).await
    }

    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError> {
        let org = parse_org_id(org)?;
        let mut body = body;
        if kind.name == kinds::HOOKS.name && body.get("token_owner").is_none_or(Value::is_null) {
            // The template's token owner is a user of the template org. As Rossum's own copy
            // tools do, the new org's first user owns the copied hooks' tokens.
            if let Some(creator) = self.creator(org).await? {
                body["token_owner"] = json!(creator);
            }
        }
        self.create_raw(Scope::Org(org), kind.name, body).await
    }

    async fn update_object(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: Value,
    ) -> Result<Value, VendorError> {
        let org = parse_org_id(org)?;
        self.patch_raw(Scope::Org(org), &format!("{}/{id}", kind.name), patch)
            .await
    }

    /// `DELETE /v1/<kind>/{id}` → 204 (pruning); a 404 counts as deleted. Rossum answers for
    /// itself where a delete cannot go through: 409 for a workspace that still holds queues or
    /// a schema still linked, 400 for a default e-mail template, and a queue delete is
    /// asynchronous (`status: deletion_requested`, which `list_objects` callers skip).
    async fn delete_object(&self, org: &str, kind: &KindSpec, id: &str) -> Result<(), VendorError> {
        let org = parse_org_id(org)?;
        if !kinds::ALL.iter().any(|k| k.name == kind.name) {
            return Err(VendorError::Unsupported {
                vendor: "rossum",
                what: format!("deleting {}", kind.name),
            });
        }
        // An id is a number: anything else would put a path into the URL.
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| VendorError::Rejected(format!("{id:?} is not a Rossum object id")))?;
        self.delete_raw(Scope::Org(org), &format!("{}/{id}", kind.name))
            .await
    }
}

impl RefCodec for RossumClient {
    fn decode_ref(&self, value: &Value) -> Option<String> {
        value
            .as_str()
            .and_then(id_from_url)
            .map(|id| id.to_string())
    }

    fn encode_ref(&self, target: RefTarget, id: &str) -> Value {
        let resource = match target {
            RefTarget::Organization => "organizations",
            RefTarget::Kind(k) => k,
            // Rossum has no shared kinds; a shared reference is never re-encoded.
            RefTarget::Shared => return json!(id),
        };
        json!(self.resource_url(resource, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_first_user_uses_plus_addressing() {
        assert_eq!(
            default_first_user_email("ops@acme.com", "German Department (DE)").as_deref(),
            Some("ops+german-department-de@acme.com")
        );
        assert_eq!(default_first_user_email("ops", "x"), None);
    }
}
