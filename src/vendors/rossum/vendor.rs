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
    usage: Some("e-mail limits and the current billing period (limits, billing_history)"),
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

    /// `GET organizations/{id}/limits` (e-mail limits) and `GET organizations/{id}/billing_history`
    /// (the current contracted period: billed vs purchased pages or documents). Both are
    /// documented in the API reference (§Organization › limits; §Billing for organization);
    /// the POST `billing_stats` report needs a date range and answers per queue, so the
    /// history's current period is what status shows. A part the credentials may not read
    /// (403, 404) is left out; a transient failure fails the read (status keeps the last one).
    async fn usage(&self, org: &OrgInfo) -> Result<Option<Value>, VendorError> {
        let id = parse_org_id(&org.id)?;
        let mut usage = Map::new();
        match self
            .get_raw(Scope::Primary, &format!("organizations/{id}/limits"))
            .await
        {
            Ok(Some(limits)) => {
                if let Some(e) = scalars(limits.get("email_limits")) {
                    usage.insert("email_limits".into(), e);
                }
            }
            Ok(None) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => tracing::debug!(org = %id, error = %e, "cannot read the organization limits"),
        }
        match self
            .list_raw(
                Scope::Primary,
                &format!("organizations/{id}/billing_history"),
                &[],
            )
            .await
        {
            Ok(entries) => {
                if let Some(period) = current_period(&entries) {
                    usage.insert("billing".into(), period);
                }
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => tracing::debug!(org = %id, error = %e, "cannot read the billing history"),
        }
        Ok((!usage.is_empty()).then_some(Value::Object(usage)))
    }

    fn usage_summary(&self, usage: &Value) -> Option<String> {
        usage_summary(usage)
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

/// Most fields kept of one usage object (a vendor cannot flood status).
const MAX_USAGE_FIELDS: usize = 32;

/// The numbers, short strings, booleans and nulls of `v` (an object), at most
/// [`MAX_USAGE_FIELDS`] of them; `None` when `v` is no object.
fn scalars(v: Option<&Value>) -> Option<Value> {
    let map = v?.as_object()?;
    let kept: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| k.len() <= 64)
        .filter(|(_, v)| match v {
            Value::String(s) => s.len() <= 64,
            Value::Array(_) | Value::Object(_) => false,
            _ => true,
        })
        .take(MAX_USAGE_FIELDS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Value::Object(kept))
}

/// The current contracted period of a billing history (`values.is_current`, else the one
/// ending last): its dates and counters, flat.
fn current_period(entries: &[Value]) -> Option<Value> {
    let date = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let entry = entries
        .iter()
        .filter(|e| e.get("values").is_some_and(Value::is_object))
        .find(|e| e["values"]["is_current"] == true)
        .or_else(|| {
            entries
                .iter()
                .filter(|e| e.get("values").is_some_and(Value::is_object))
                .max_by_key(|e| date(e, "end_date"))
        })?;
    let mut period = match scalars(entry.get("values"))? {
        Value::Object(m) => m,
        _ => return None,
    };
    for k in ["begin_date", "end_date"] {
        let d = date(entry, k);
        if !d.is_empty() && d.len() <= 32 {
            period.insert(k.into(), json!(d));
        }
    }
    Some(Value::Object(period))
}

/// `pages 1200/5000 (2025-01-01..2025-12-31), emails today 3/1000`: billed of purchased in the
/// contract's unit (pages when pages are purchased or billed, else documents), then e-mails.
fn usage_summary(usage: &Value) -> Option<String> {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    let mut parts = Vec::new();
    if let Some(b) = usage.get("billing") {
        let pages = n(b, "purchased_pages").unwrap_or(0) > 0
            || (n(b, "purchased_documents").unwrap_or(0) == 0
                && n(b, "billable_pages").unwrap_or(0) > 0);
        let unit = if pages { "pages" } else { "documents" };
        let billed = n(b, &format!("billable_{unit}")).unwrap_or(0);
        let mut part = match n(b, &format!("purchased_{unit}")).filter(|p| *p > 0) {
            Some(bought) => format!("{unit} {billed}/{bought}"),
            None => format!("{unit} {billed}"),
        };
        if let (Some(from), Some(to)) = (
            b.get("begin_date").and_then(Value::as_str),
            b.get("end_date").and_then(Value::as_str),
        ) {
            part.push_str(&format!(" ({from}..{to})"));
        }
        parts.push(part);
    }
    if let Some(e) = usage.get("email_limits")
        && let Some(today) = n(e, "count_today")
    {
        parts.push(match n(e, "email_per_day_limit") {
            Some(limit) => format!("emails today {today}/{limit}"),
            None => format!("emails today {today}"),
        });
    }
    (!parts.is_empty()).then(|| parts.join(", "))
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
    fn usage_summary_shows_the_contract_unit_and_emails() {
        let usage = json!({
            "billing": {"begin_date": "2025-01-01", "end_date": "2025-12-31",
                "billable_pages": 1200, "purchased_pages": 5000, "billable_documents": 300},
            "email_limits": {"count_today": 3, "email_per_day_limit": 1000}
        });
        assert_eq!(
            usage_summary(&usage).as_deref(),
            Some("pages 1200/5000 (2025-01-01..2025-12-31), emails today 3/1000")
        );
        let docs = json!({"billing": {"billable_documents": 7, "purchased_documents": 100}});
        assert_eq!(usage_summary(&docs).as_deref(), Some("documents 7/100"));
        assert_eq!(usage_summary(&json!({})), None);
        assert_eq!(
            usage_summary(&json!({"billing": "junk"})).as_deref(),
            Some("documents 0")
        );
    }

    #[test]
    fn the_current_period_is_bounded_and_hostile_entries_are_skipped() {
        let entries = vec![
            json!("junk"),
            json!({"begin_date": "2024-01-01", "end_date": "2024-12-31", "values": {"billable_pages": 1, "is_current": false}}),
            json!({"begin_date": "2025-01-01", "end_date": "2025-12-31",
                "values": {"billable_pages": 2, "is_current": true, "nested": {"a": 1}, "long": "x".repeat(1000)}}),
        ];
        let p = current_period(&entries).unwrap();
        assert_eq!(p["billable_pages"], 2);
        assert_eq!(p["begin_date"], "2025-01-01");
        assert!(p.get("nested").is_none() && p.get("long").is_none(), "{p}");
        let many: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), json!(i))).collect();
        let p = current_period(&[json!({"values": many})]).unwrap();
        assert!(p.as_object().unwrap().len() <= MAX_USAGE_FIELDS + 2);
        assert_eq!(current_period(&[json!({"values": 5})]), None);
    }

    #[test]
    fn default_first_user_uses_plus_addressing() {
        assert_eq!(
            default_first_user_email("ops@acme.com", "German Department (DE)").as_deref(),
            Some("ops+german-department-de@acme.com")
        );
        assert_eq!(default_first_user_email("ops", "x"), None);
    }
}
