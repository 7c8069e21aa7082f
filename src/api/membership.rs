//! The `OrgMembership` custom resource: one user in one organization with a role.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DNS1123_SUBDOMAIN, DeletionPolicy};

/// Desired membership of one user in one organization.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "orgops.io",
    version = "v1alpha1",
    kind = "OrgMembership",
    namespaced,
    status = "OrgMembershipStatus",
    derive = "PartialEq",
    shortname = "orgm",
    shortname = "orgms",
    category = "orgops",
    doc = "One user in one orgops Organization with a vendor role.",
    printcolumn = r#"{"name":"Org","type":"string","jsonPath":".spec.organizationRef.name"}"#,
    printcolumn = r#"{"name":"Email","type":"string","jsonPath":".spec.user.email"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OrgMembershipSpec {
    /// The Organization (same namespace) the user joins.
    pub organization_ref: OrganizationRef,
    /// The user.
    pub user: UserSpec,
    /// The user's role, validated per vendor (Rossum: viewer, annotator, manager, admin, …).
    #[schemars(length(min = 1, max = 63))]
    pub role: String,
    /// Extra roles the organization itself defines (OpenLattice roles by title).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 255)))]
    pub roles: Vec<String>,
    /// Vendor scopes inside the organization, by name: Rossum queues, Dataloop projects,
    /// Rendered.ai workspaces. Exactly these when set (`[]`: none); when absent (and `queues`
    /// too), the person's scopes are left as they are at the vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 255)))]
    pub scopes: Option<Vec<String>>,
    /// Rossum: the queues the user works on (the same as `scopes`, kept for existing manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 255)))]
    pub queues: Option<Vec<String>>,
    /// What happens at the vendor when this resource is deleted. Default: Delete.
    #[serde(default = "DeletionPolicy::delete")]
    pub deletion_policy: DeletionPolicy,
}

/// A reference to an Organization in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct OrganizationRef {
    /// Name of the Organization.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
}

/// The person.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// E-mail address, the user's identity at the vendor.
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), length(max = 254))]
    pub email: String,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 150))]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 150))]
    pub last_name: Option<String>,
}

/// Observed state of a membership, written by orgops.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgMembershipStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The membership or user id at the vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Coarse lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MembershipPhase>,
    /// `Ready` and per-step conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Coarse lifecycle phase of a membership.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MembershipPhase {
    /// Accepted, nothing done yet.
    Pending,
    /// The Organization is not Ready yet.
    WaitingForOrganization,
    /// The user was invited and has not accepted yet.
    Invited,
    /// The user has the desired access.
    Ready,
    /// Cannot proceed until the spec or the vendor changes.
    Failed,
    /// Being deleted.
    Deleting,
}
