//! `VendorConnection` (namespaced) and `ClusterVendorConnection` (cluster-scoped): how to reach
//! one vendor account, with which credentials and at which request rate. The pattern of
//! cert-manager's Issuer / ClusterIssuer: a tenant's connection lives in its namespace and may
//! only point at endpoints the operator allows; a cluster connection is the platform admin's,
//! trusted, and usable from every namespace it lists.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Vendor;
use crate::vendors::connection::{ConnectionConfig, SecretLocation};

/// A Kubernetes namespace name (and any other RFC 1123 label), as the API server checks it;
/// at most 63 characters.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A Kubernetes object name such as a Secret's (an RFC 1123 subdomain), as the API server
/// checks it; at most 253 characters.
pub const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// How to reach a vendor account from Organizations in this namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "orgops.io",
    version = "v1alpha1",
    kind = "VendorConnection",
    namespaced,
    status = "VendorConnectionStatus",
    derive = "PartialEq",
    shortname = "vconn",
    category = "orgops",
    doc = "A vendor account (endpoint, credentials Secret, request rate) that Organizations in this namespace use. The endpoint must be one the operator allows.",
    printcolumn = r#"{"name":"Vendor","type":"string","jsonPath":".spec.vendor"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".status.account.summary"}"#,
    printcolumn = r#"{"name":"Checked","type":"date","jsonPath":".status.lastCheckedTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VendorConnectionSpec {
    /// The vendor. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("vendor is immutable"))]
    pub vendor: Vendor,
    /// Base URL of the vendor API. Absent: the operator's default for the vendor, else the
    /// vendor's public API. Must match the operator's `--allowed-endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        regex(pattern = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")
    )]
    pub endpoint: Option<String>,
    /// Secret in this namespace holding the credentials; its keys are per vendor.
    pub credentials_secret_ref: LocalSecretRef,
    /// Requests per second the account allows, shared by every Organization using this
    /// connection. Absent: the operator's setting for the vendor, else the vendor's documented
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub rate_limit: Option<u32>,
}

/// How to reach a vendor account from Organizations in any (listed) namespace. Owned by the
/// platform admin: its endpoint is trusted.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "orgops.io",
    version = "v1alpha1",
    kind = "ClusterVendorConnection",
    status = "VendorConnectionStatus",
    derive = "PartialEq",
    shortname = "cvconn",
    category = "orgops",
    doc = "A vendor account (endpoint, credentials Secret, request rate) set up once by the platform admin and used by Organizations in any namespace it allows.",
    printcolumn = r#"{"name":"Vendor","type":"string","jsonPath":".spec.vendor"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".status.account.summary"}"#,
    printcolumn = r#"{"name":"Checked","type":"date","jsonPath":".status.lastCheckedTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterVendorConnectionSpec {
    /// The vendor. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("vendor is immutable"))]
    pub vendor: Vendor,
    /// Base URL of the vendor API. Absent: the operator's default for the vendor, else the
    /// vendor's public API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        regex(pattern = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")
    )]
    pub endpoint: Option<String>,
    /// Secret holding the credentials, in a namespace the admin controls.
    pub credentials_secret_ref: NamespacedSecretRef,
    /// Requests per second the account allows, shared by every Organization using this
    /// connection. Absent: the operator's setting for the vendor, else the vendor's documented
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub rate_limit: Option<u32>,
    /// Namespaces whose Organizations may use this connection. Absent: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 1000),
        inner(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))
    )]
    pub allowed_namespaces: Option<Vec<String>>,
}

/// A Secret in the connection's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LocalSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
}

/// A Secret in a named namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct NamespacedSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub namespace: String,
}

/// What the operator last found out about a connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VendorConnectionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The endpoint in use (the spec's, or the default it resolved to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `Ready`, `EndpointAllowed`, `CredentialsValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// What the credentials reach at the vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<ConnectionAccount>,
    /// When the credentials were last checked at the vendor (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<String>,
}

/// What a connection's credentials reach.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ConnectionAccount {
    /// One line for `kubectl get`, e.g. `org group 7 (Acme), user 42`.
    pub summary: String,
    /// Vendor-specific details (ids and names, never credentials).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub details: std::collections::BTreeMap<String, String>,
}

impl VendorConnection {
    /// The vendor-neutral configuration of this connection.
    pub fn config(&self) -> ConnectionConfig {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        let name = self.metadata.name.clone().unwrap_or_default();
        ConnectionConfig {
            trusted: false,
            id: format!("VendorConnection {namespace}/{name}"),
            vendor: self.spec.vendor,
            endpoint: self.spec.endpoint.clone(),
            secret: SecretLocation {
                namespace: namespace.clone(),
                name: self.spec.credentials_secret_ref.name.clone(),
            },
            rate_limit: self.spec.rate_limit,
            allowed_namespaces: Some(vec![namespace]),
        }
    }
}

impl ClusterVendorConnection {
    /// The vendor-neutral configuration of this connection.
    pub fn config(&self) -> ConnectionConfig {
        let name = self.metadata.name.clone().unwrap_or_default();
        ConnectionConfig {
            trusted: true,
            id: format!("ClusterVendorConnection {name}"),
            vendor: self.spec.vendor,
            endpoint: self.spec.endpoint.clone(),
            secret: SecretLocation {
                namespace: self.spec.credentials_secret_ref.namespace.clone(),
                name: self.spec.credentials_secret_ref.name.clone(),
            },
            rate_limit: self.spec.rate_limit,
            allowed_namespaces: self.spec.allowed_namespaces.clone(),
        }
    }
}

/// Which kind of connection an Organization names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConnectionKind {
    /// A `VendorConnection` in the Organization's namespace.
    #[default]
    VendorConnection,
    /// A `ClusterVendorConnection`.
    ClusterVendorConnection,
}

/// The connection an Organization uses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConnectionRef {
    /// `VendorConnection` (same namespace; the default) or `ClusterVendorConnection`.
    #[serde(default)]
    pub kind: ConnectionKind,
    /// Name of the connection.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
}

impl std::fmt::Display for ConnectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.kind, self.name)
    }
}
