//! Reading manifests: files and directories of multi-document YAML holding Organizations,
//! OrgMemberships, VendorConnections, ClusterVendorConnections and Secrets. Every error names the file, the document and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    ClusterVendorConnection, ConnectionKind, OrgMembership, Organization, VendorConnection,
};
use crate::engine::DesiredOrg;
use crate::vendors::Credentials;
use crate::vendors::connection::{ConnectionConfig, ConnectionPolicy, parse_endpoint};

/// Where a resource came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// File path.
    pub file: PathBuf,
    /// 1-based document index in the file.
    pub document: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// A manifest problem, with its location.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ManifestError {
    /// `file (document n) kind/name: field`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// The resources of one `apply`.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Organizations.
    pub organizations: Vec<(Origin, Organization)>,
    /// Memberships.
    pub memberships: Vec<(Origin, OrgMembership)>,
    /// Secrets by `namespace/name`.
    pub secrets: BTreeMap<String, (Origin, Secret)>,
    /// VendorConnections and ClusterVendorConnections by id (`VendorConnection ns/name`,
    /// `ClusterVendorConnection name`).
    pub connections: BTreeMap<String, (Origin, ConnectionConfig)>,
}

fn err(location: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError {
        location: location.into(),
        message: message.into(),
    }
}

/// Files to read: each path, or the `.yaml`/`.yml`/`.json` files in a directory (sorted).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| err(p.display().to_string(), e.to_string()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(err(p.display().to_string(), "no such file or directory"));
        }
    }
    Ok(out)
}

/// Reads and checks every manifest in `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Manifests, ManifestError> {
    let mut m = Manifests::default();
    for file in expand(paths)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| err(file.display().to_string(), e.to_string()))?;
        load_text(&mut m, &file, &text)?;
    }
    check_references(&m)?;
    Ok(m)
}

fn load_text(m: &mut Manifests, file: &Path, text: &str) -> Result<(), ManifestError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| err(file.display().to_string(), format!("invalid YAML: {e}")))?;
    for (i, doc) in docs.into_iter().enumerate() {
        let origin = Origin {
            file: file.to_path_buf(),
            document: i + 1,
        };
        if doc.is_null() {
            continue;
        }
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        if name == "<unnamed>" && !kind.is_empty() {
            return Err(err(
                format!("{origin} {kind}: metadata.name"),
                "is required",
            ));
        }
        let prefix = format!("{origin} {kind}/{name}");
        let at = |field: &str| format!("{prefix}: {field}");
        match (api_version.as_str(), kind.as_str()) {
            ("orgops.io/v1alpha1", "Organization") => {
                if doc.pointer("/spec/connection").is_some()
                    && doc.pointer("/spec/connectionRef").is_none()
                {
                    return Err(err(at("spec.connection"), LEGACY_CONNECTION));
                }
                let mut org: Organization = typed(doc, &at)?;
                default_namespace(&mut org.metadata.namespace);
                DesiredOrg::from_resource(&org).map_err(|e| err(at(&e.field), e.message))?;
                m.organizations.push((origin, org));
            }
            ("orgops.io/v1alpha1", "VendorConnection") => {
                let mut c: VendorConnection = typed(doc, &at)?;
                default_namespace(&mut c.metadata.namespace);
                let config = c.config();
                check_endpoint(&config, &at)?;
                m.connections.insert(config.id.clone(), (origin, config));
            }
            ("orgops.io/v1alpha1", "ClusterVendorConnection") => {
                let c: ClusterVendorConnection = typed(doc, &at)?;
                let config = c.config();
                check_endpoint(&config, &at)?;
                m.connections.insert(config.id.clone(), (origin, config));
            }
            ("orgops.io/v1alpha1", "OrgMembership") => {
                let mut mem: OrgMembership = typed(doc, &at)?;
                default_namespace(&mut mem.metadata.namespace);
                m.memberships.push((origin, mem));
            }
            ("v1", "Secret") => {
                let mut secret: Secret = typed(doc, &at)?;
                default_namespace(&mut secret.metadata.namespace);
                let key = format!(
                    "{}/{}",
                    secret.metadata.namespace.as_deref().unwrap_or("default"),
                    name
                );
                m.secrets.insert(key, (origin, secret));
            }
            // Namespaces matter to a cluster, not to the vendor: nothing to do without one.
            ("v1", "Namespace") => {}
            ("", _) => return Err(err(at("apiVersion"), "is required")),
            (_, "") => return Err(err(at("kind"), "is required")),
            (v, k) => {
                return Err(err(
                    at("kind"),
                    format!(
                        "{v} {k} is not something orgops applies; expected orgops.io/v1alpha1 \
                         Organization, OrgMembership, VendorConnection or \
                         ClusterVendorConnection, or v1 Secret"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn default_namespace(ns: &mut Option<String>) {
    if ns.as_deref().is_none_or(str::is_empty) {
        *ns = Some("default".to_string());
    }
}

fn typed<T: DeserializeOwned>(doc: Value, at: &dyn Fn(&str) -> String) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".to_string()
        } else {
            path
        };
        err(at(&field), e.into_inner().to_string())
    })
}

const LEGACY_CONNECTION: &str = "is no longer read: move its endpoint and Secret into a \
     VendorConnection (or use a ClusterVendorConnection) and name it in spec.connectionRef";

fn check_endpoint(
    config: &ConnectionConfig,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ManifestError> {
    match &config.endpoint {
        Some(e) => parse_endpoint(e)
            .map(|_| ())
            .map_err(|why| err(at("spec.endpoint"), format!("is invalid: {why}"))),
        None => Ok(()),
    }
}

/// The connection an Organization names, among the manifests.
pub fn connection_of<'a>(
    m: &'a Manifests,
    org: &Organization,
) -> Result<&'a ConnectionConfig, String> {
    let ns = org.metadata.namespace.as_deref().unwrap_or("default");
    let Some(reference) = &org.spec.connection_ref else {
        return Err("is required: name a VendorConnection or ClusterVendorConnection".to_string());
    };
    let id = match reference.kind {
        ConnectionKind::VendorConnection => format!("VendorConnection {ns}/{}", reference.name),
        ConnectionKind::ClusterVendorConnection => {
            format!("ClusterVendorConnection {}", reference.name)
        }
    };
    m.connections
        .get(&id)
        .map(|(_, c)| c)
        .ok_or_else(|| format!("{id} is not among the manifests given"))
}

fn check_references(m: &Manifests) -> Result<(), ManifestError> {
    for (origin, org) in &m.organizations {
        let ns = org.metadata.namespace.as_deref().unwrap_or("default");
        let name = org.metadata.name.as_deref().unwrap_or("");
        let at = |field: &str| format!("{origin} Organization/{name}: {field}");
        let config = connection_of(m, org).map_err(|e| err(at("spec.connectionRef"), e))?;
        // Whoever runs apply holds the Secrets: every connection is trusted, as a cluster one.
        let trusted = ConnectionConfig {
            trusted: true,
            ..config.clone()
        };
        ConnectionPolicy::default()
            .admit(&trusted, org.spec.vendor, ns)
            .map_err(|e| err(at("spec.connectionRef"), e.to_string()))?;
    }
    for (origin, config) in m.connections.values() {
        if !m.secrets.contains_key(&config.secret.to_string()) {
            return Err(err(
                format!("{origin} {}: spec.credentialsSecretRef", config.id),
                format!("Secret {} is not among the manifests given", config.secret),
            ));
        }
    }
    for (origin, mem) in &m.memberships {
        let ns = mem.metadata.namespace.as_deref().unwrap_or("default");
        let name = mem.metadata.name.as_deref().unwrap_or("");
        let target = &mem.spec.organization_ref.name;
        let found = m.organizations.iter().any(|(_, o)| {
            o.metadata.namespace.as_deref() == Some(ns)
                && o.metadata.name.as_deref() == Some(target)
        });
        if !found {
            return Err(err(
                format!("{origin} OrgMembership/{name}: spec.organizationRef.name"),
                format!("Organization {ns}/{target} is not among the manifests given"),
            ));
        }
    }
    Ok(())
}

/// The decoded keys of a Secret, held as secrets.
pub fn credentials(key: &str, secret: &Secret) -> Credentials {
    crate::api::credentials_from_secret(key, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Manifests, ManifestError> {
        let mut m = Manifests::default();
        load_text(&mut m, Path::new("x.yaml"), text)?;
        check_references(&m)?;
        Ok(m)
    }

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {username: u, password: p}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {name: rossum}\nspec: {vendor: rossum, credentialsSecretRef: {name: creds}}\n";

    #[test]
    fn wrong_field_type_names_document_and_field() {
        let text = format!(
            "{SECRET}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de}}\nspec:\n  vendor: rossum\n  displayName: DE\n  suspend: maybe\n  connectionRef: {{name: rossum}}\n"
        );
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("document 3"), "{e}");
        assert!(e.contains("spec.suspend"), "{e}");
    }

    #[test]
    fn unknown_vendor_is_named() {
        let text = format!(
            "{SECRET}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de}}\nspec:\n  vendor: rossom\n  displayName: DE\n  connectionRef: {{name: rossum}}\n"
        );
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("spec.vendor") && e.contains("rossom"), "{e}");
    }

    #[test]
    fn missing_secret_and_connection_are_named() {
        let conn = "apiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {name: rossum}\nspec: {vendor: rossum, credentialsSecretRef: {name: nope}}\n";
        let e = load_str(conn).unwrap_err().to_string();
        assert!(
            e.contains("VendorConnection default/rossum: spec.credentialsSecretRef")
                && e.contains("default/nope"),
            "{e}"
        );
        let org = "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {name: de}\nspec:\n  vendor: rossum\n  displayName: DE\n  connectionRef: {kind: ClusterVendorConnection, name: group}\n";
        let e = load_str(org).unwrap_err().to_string();
        assert!(
            e.contains("spec.connectionRef") && e.contains("ClusterVendorConnection group"),
            "{e}"
        );
    }

    #[test]
    fn the_old_inline_connection_explains_the_migration() {
        let text = "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {name: de}\nspec:\n  vendor: rossum\n  displayName: DE\n  connection: {credentialsSecretRef: {name: creds}}\n";
        let e = load_str(text).unwrap_err().to_string();
        assert!(
            e.contains("spec.connection:") && e.contains("spec.connectionRef"),
            "{e}"
        );
    }

    #[test]
    fn connections_must_suit_the_organization() {
        let cluster = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ops}\nstringData: {username: u, password: p}\n---\napiVersion: orgops.io/v1alpha1\nkind: ClusterVendorConnection\nmetadata: {name: group}\nspec: {vendor: rossum, allowedNamespaces: [a], credentialsSecretRef: {name: creds, namespace: ops}}\n";
        let org = |ns: &str, vendor: &str| {
            format!(
                "{cluster}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de, namespace: {ns}}}\nspec:\n  vendor: {vendor}\n  displayName: DE\n  connectionRef: {{kind: ClusterVendorConnection, name: group}}\n"
            )
        };
        assert!(load_str(&org("a", "rossum")).is_ok());
        let e = load_str(&org("b", "rossum")).unwrap_err().to_string();
        assert!(e.contains("does not allow namespace b"), "{e}");
        let e = load_str(&org("a", "dataloop")).unwrap_err().to_string();
        assert!(e.contains("for vendor rossum"), "{e}");
        let bad = cluster.replace(
            "vendor: rossum,",
            "vendor: rossum, endpoint: 'https://u:p@x.example/api',",
        );
        let e = load_str(&bad).unwrap_err().to_string();
        assert!(e.contains("spec.endpoint") && !e.contains("u:p"), "{e}");
    }

    #[test]
    fn invalid_yaml_is_reported() {
        let e = load_str("a: [unclosed").unwrap_err().to_string();
        assert!(e.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn template_needs_exactly_one_selector() {
        let text = format!(
            "{SECRET}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de}}\nspec:\n  vendor: rossum\n  displayName: DE\n  template: {{externalId: '1', displayName: T}}\n  connectionRef: {{name: rossum}}\n"
        );
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("spec.template"), "{e}");
    }

    #[test]
    fn secrets_decode_data_and_string_data() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: t}\ndata: {username: dXNlcg==}\nstringData: {password: pw}\n";
        let m = load_str(text).unwrap();
        let (_, s) = &m.secrets["t/c"];
        let c = credentials("t/c", s);
        use secrecy::ExposeSecret;
        assert_eq!(c.get("username").unwrap().expose_secret(), "user");
        assert_eq!(c.get("password").unwrap().expose_secret(), "pw");
        assert!(!format!("{c:?}").contains("pw"));
    }
}
