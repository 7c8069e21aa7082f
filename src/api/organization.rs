//! The `Organization` custom resource: one organization at one vendor.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConnectionRef, DeletionPolicy, Vendor};

/// Desired state of one organization at one vendor.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "orgops.io",
    version = "v1alpha1",
    kind = "Organization",
    namespaced,
    status = "OrganizationStatus",
    derive = "PartialEq",
    shortname = "org",
    shortname = "orgs",
    category = "orgops",
    doc = "One organization at one SaaS vendor, created or adopted by orgops and set up like a template org.",
    printcolumn = r#"{"name":"Vendor","type":"string","jsonPath":".spec.vendor"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Usage","type":"string","priority":1,"jsonPath":".status.usageSummary"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","priority":1,"jsonPath":".status.plan.summary"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// The SaaS vendor that holds the organization. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("vendor is immutable"))]
    pub vendor: Vendor,

    /// Human-readable name of the organization at the vendor.
    #[schemars(length(min = 1, max = 255))]
    pub display_name: String,

    /// The connection (vendor account) to reach the vendor with: a `VendorConnection` in this
    /// namespace or a `ClusterVendorConnection` that allows this namespace. Required; absent
    /// only on resources written before connections existed (`spec.connection`, no longer
    /// read), which report how to migrate.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub connection_ref: Option<ConnectionRef>,

    /// Adopt this existing organization instead of creating one. Absent: orgops creates one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub external_id: Option<String>,

    /// Deep-copy the setup of this template organization. Absent: nothing is copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,

    /// Vendor-specific settings; only the block of the chosen vendor is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<VendorSettings>,

    /// What happens at the vendor when this resource is deleted. Default: Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Observe and report only; change nothing at the vendor.
    #[serde(default)]
    pub suspend: bool,

    /// How often to re-check the vendor for drift, e.g. `10m`, `1h30m`: between 1s and 24h, and
    /// never more often than the operator's `--min-sync-interval` (default 30s, so that no
    /// tenant uses up a shared connection's rate limit). Default: 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^([0-9]{1,5}(\.[0-9]+)?(ms|s|m|h))+$")
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('24h')").message("must be between 1s and 24h"))]
    pub sync_interval: Option<String>,
}

/// Which organization to copy the setup from, and which kinds of objects.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.externalId) != has(self.displayName)").message("set exactly one of externalId or displayName"))]
pub struct TemplateRef {
    /// The template organization's id at the vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub external_id: Option<String>,
    /// The template organization's name at the vendor (must be unique among visible orgs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub display_name: Option<String>,
    /// Kinds to copy, e.g. `[schemas, workspaces, queues]`. Absent: every kind the vendor supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63)))]
    pub include: Option<Vec<String>>,
    /// Values a vendor never returns (write-only secrets, e.g. Dataloop integration keys), per
    /// template object: a copy of that object is made with the keys of the named Secret (same
    /// namespace). Objects that need one and have none wait, by name, while the rest copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub secrets: Vec<TemplateSecret>,
    /// Delete copies whose template object is gone. Only objects that carry orgops' ownership
    /// marker for this template are ever deleted; kinds recognised by name alone are never
    /// pruned. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prune: bool,
}

/// A Secret holding the write-only values of one template object's copy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSecret {
    /// The template object, as `<kind>/<name>` (e.g. `integrations/S3 bucket`).
    #[schemars(length(min = 3, max = 320), regex(pattern = r"^[a-z_]+/.+$"))]
    pub object: String,
    /// The Secret, in the Organization's namespace.
    pub secret_ref: super::LocalSecretRef,
}

/// Vendor-specific settings. One block per vendor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VendorSettings {
    /// Rossum settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rossum: Option<RossumSettings>,
    /// Dataloop settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataloop: Option<DataloopSettings>,
    /// Rendered.ai settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderedai: Option<RenderedAiSettings>,
    /// OpenLattice settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openlattice: Option<OpenLatticeSettings>,
}

/// Rossum settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RossumSettings {
    /// First user of a newly created organization. Absent: `<admin>+<org name>@<admin domain>`
    /// derived from the Secret's username (plus-addressing, so mail reaches the admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_user: Option<FirstUser>,
    /// `template_name` for `organizations/create`. Default: `Empty Organization Template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub creation_template: Option<String>,
    /// `ui_settings` of the organization, kept in sync when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub ui_settings: Option<serde_json::Value>,
}

/// The first user Rossum creates with a new organization.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirstUser {
    /// E-mail, which is also the user's global Rossum login.
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), length(max = 254))]
    pub email: String,
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub full_name: Option<String>,
}

/// Dataloop settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DataloopSettings {
    /// The organization's plan flag (`PATCH /orgs/{id}/plan`; changing it needs a Dataloop
    /// superuser). Absent: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<DataloopPlan>,
    /// The organization's cache service (dtlpy's `cache_action`). Absent: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<DataloopCache>,
}

/// A Dataloop organization plan.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataloopPlan {
    /// `premium`.
    Premium,
    /// `freemium`.
    Freemium,
}

/// The cache service of a Dataloop organization.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataloopCache {
    /// `true` (default): applied, waiting until it is READY; `false`: destroyed.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The cache runner's pod type. Default `small`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_type: Option<DataloopPodType>,
}

fn enabled_by_default() -> bool {
    true
}

/// Pod type of a Dataloop cache runner.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataloopPodType {
    /// `small`.
    Small,
    /// `medium`.
    Medium,
    /// `high`.
    High,
}

/// Rendered.ai settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RenderedAiSettings {
    /// The organization's rules (free text the platform's agents follow;
    /// `editOrganizationRules`), kept in sync when set. Absent: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub rules: Option<String>,
    /// Legacy organization limits by setting name, e.g. `Workspaces: 5` (anatools 3.3.4
    /// `setOrganizationLimits`). A server that no longer serves limits reports a condition on
    /// this setting. Absent or empty: not managed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100))]
    pub limits: BTreeMap<String, i64>,
}

/// OpenLattice settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenLatticeSettings {
    /// Organization description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,
    /// E-mail domains whose users are approved automatically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 253)))]
    pub auto_approved_email_domains: Vec<String>,
    /// Roles the organization should have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub roles: Vec<RoleSpec>,
}

/// A role identified by its title.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct RoleSpec {
    /// Title of the role.
    #[schemars(length(min = 1, max = 255))]
    pub title: String,
    /// Description of the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,
}

/// Observed state of an organization, written by orgops.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The organization's id at the vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Coarse lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<OrgPhase>,
    /// Template copy progress as `done/total`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// `Ready`, `CredentialsValid`, `Created`, `SettingsSynced`, `TemplateCopied`, `Unsupported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Deep-copy progress per kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyStatus>,
    /// Usage, limits or billing snapshot where the vendor reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub usage: Option<serde_json::Value>,
    /// One line summarising `usage` (`kubectl get orgs -o wide`), e.g.
    /// `pages 1200/5000 (2025-01-01..2025-12-31), emails today 3/1000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub usage_summary: Option<String>,
    /// When `usage` was read from the vendor (RFC 3339). Usage is read again after the
    /// operator's `--usage-interval` (default 1h), or at once when a reconcile changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub usage_observed_time: Option<String>,
    /// When the vendor was last compared with the spec (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// While `suspend` is true: what orgops would change at the vendor if it were false (the
    /// same plan `orgops plan` prints). Absent when not suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,
}

/// What a suspended Organization would change at the vendor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// One line: `Plan: 3 copies to create, 1 setting to change.` or `No changes.`
    pub summary: String,
    /// The first changes, one line each (`+ queues "Invoices" (copy of template queues/12)`).
    /// Always written, even empty: status is merge-patched, and an absent list would keep the
    /// previous plan's lines.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Changes left out of `changes` (always written, as `changes`).
    #[serde(default)]
    pub omitted: u32,
}

/// Coarse lifecycle phase of an organization.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OrgPhase {
    /// Accepted, nothing done yet.
    Pending,
    /// Creating or adopting the organization and applying settings.
    Provisioning,
    /// Copying the template.
    Copying,
    /// Everything matches the spec.
    Ready,
    /// Exists but something failed or drifted and could not be repaired.
    Degraded,
    /// Cannot proceed until the spec, the Secret or the vendor changes.
    Failed,
    /// Being deleted.
    Deleting,
}

/// Deep-copy progress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    /// Template objects to copy.
    pub total: u32,
    /// Copies that exist and match their template object.
    pub done: u32,
    /// Copies that failed in the last pass.
    pub failed: u32,
    /// Progress per kind.
    #[serde(default)]
    pub kinds: BTreeMap<String, KindStatus>,
    /// When the current copy pass started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the last copy pass finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// Progress of one kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KindStatus {
    /// Template objects of this kind.
    pub total: u32,
    /// Copies that exist and match.
    pub done: u32,
    /// Copies that failed.
    #[serde(default)]
    pub failed: u32,
}

/// Used when `syncInterval` is absent.
pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_written_before_connections_still_deserializes() {
        // Stored objects are not re-validated: one without connectionRef (its old
        // spec.connection pruned) must not break the operator's watch of every Organization.
        let org: Organization = serde_json::from_value(serde_json::json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "old", "namespace": "t"},
            "spec": {"vendor": "rossum", "displayName": "Old",
                     "connection": {"credentialsSecretRef": {"name": "creds"}}}
        }))
        .unwrap();
        assert_eq!(org.spec.connection_ref, None);
    }
}
