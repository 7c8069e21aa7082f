//! The CRD manifests generated from the Rust types: what `orgops crds` prints and `crds/` holds.

use kube::CustomResourceExt;

use super::{ClusterVendorConnection, OrgMembership, Organization, VendorConnection};

/// Every CRD as `(file name, YAML)`, in a stable order.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, serde_saphyr::SerializeError> {
    Ok(vec![
        (
            "organizations.orgops.io.yaml",
            serde_saphyr::to_string(&Organization::crd())?,
        ),
        (
            "orgmemberships.orgops.io.yaml",
            serde_saphyr::to_string(&OrgMembership::crd())?,
        ),
        (
            "vendorconnections.orgops.io.yaml",
            serde_saphyr::to_string(&VendorConnection::crd())?,
        ),
        (
            "clustervendorconnections.orgops.io.yaml",
            serde_saphyr::to_string(&ClusterVendorConnection::crd())?,
        ),
    ])
}

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    Ok(crd_files()?
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect())
}
