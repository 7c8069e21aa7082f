//! Custom resource types (`orgops.io/v1alpha1`), their conditions, and CRD generation.

pub mod conditions;
mod connection;
pub mod crdgen;
mod membership;
mod organization;

pub use connection::*;
pub use membership::*;
pub use organization::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The SaaS vendors orgops knows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Rossum (Elis API v1).
    Rossum,
    /// Dataloop.
    Dataloop,
    /// Rendered.ai.
    #[serde(rename = "renderedai")]
    RenderedAi,
    /// OpenLattice.
    #[serde(rename = "openlattice")]
    OpenLattice,
}

impl Vendor {
    /// The name used in manifests, labels and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Rossum => "rossum",
            Vendor::Dataloop => "dataloop",
            Vendor::RenderedAi => "renderedai",
            Vendor::OpenLattice => "openlattice",
        }
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens at the vendor when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the vendor object as it is.
    #[default]
    Orphan,
    /// Remove the vendor object too, where the vendor allows it.
    Delete,
}

impl DeletionPolicy {
    fn delete() -> Self {
        DeletionPolicy::Delete
    }
}

/// The keys of a Secret (`data`, then `stringData`), held as secrets, named `namespace/name`.
pub fn credentials_from_secret(
    key: &str,
    secret: &k8s_openapi::api::core::v1::Secret,
) -> crate::vendors::Credentials {
    use secrecy::SecretString;
    let mut values = std::collections::BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        values.insert(
            k.clone(),
            SecretString::from(String::from_utf8_lossy(&v.0).into_owned()),
        );
    }
    for (k, v) in secret.string_data.iter().flatten() {
        values.insert(k.clone(), SecretString::from(v.clone()));
    }
    crate::vendors::Credentials::new(key, values)
}
