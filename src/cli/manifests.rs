//! Reading manifests: files and directories of multi-document YAML holding Organizations,
//! OrgMemberships, VendorConnections, ClusterVendorConnections and Secrets. Every error names
//! the file, the document and the field, and never quotes a Secret's value: a YAML error
//! reports its line and column and a reason, not the text around it. Input is bounded
//! (see [`super::yaml`]) and checked as the API server would check it (see [`super::schema`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::schema::{self, quoted};
pub use super::yaml::{MAX_DEPTH, MAX_DOCUMENTS, MAX_DOCUMENTS_PER_FILE};
use super::yaml::{MAX_FILE_BYTES, parse_documents, read_bounded, redact, too_large};
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

/// Files to read: each path, or the `.yaml`/`.yml`/`.json` files in a directory (sorted). A
/// directory without any is an error, as is a path that does not exist.
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
            if files.is_empty() {
                return Err(err(
                    p.display().to_string(),
                    "holds no manifests: no .yaml, .yml or .json files",
                ));
            }
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
    let mut documents = 0;
    for file in expand(paths)? {
        let text = read_bounded(&file)?;
        documents += load_text(&mut m, &file, &text)?;
        if documents > MAX_DOCUMENTS {
            return Err(err(
                file.display().to_string(),
                format!("more than {MAX_DOCUMENTS} documents in all files; apply them in parts"),
            ));
        }
    }
    check_references(&m)?;
    Ok(m)
}

/// Checks the manifests in `text` as if read from `file`: what [`load`] does with each file,
/// for callers (and tests) that hold the text already.
pub fn load_str(file: &Path, text: &str) -> Result<Manifests, ManifestError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(file));
    }
    let mut m = Manifests::default();
    load_text(&mut m, file, text)?;
    check_references(&m)?;
    Ok(m)
}

/// Loads the documents of one file into `m`; the number of (non-empty) documents.
fn load_text(m: &mut Manifests, file: &Path, text: &str) -> Result<usize, ManifestError> {
    let docs = parse_documents(file, text)?;
    let mut count = 0;
    for (i, doc) in docs.into_iter().enumerate() {
        let origin = Origin {
            file: file.to_path_buf(),
            document: i + 1,
        };
        if doc.is_null() {
            continue;
        }
        count += 1;
        if count > MAX_DOCUMENTS_PER_FILE {
            return Err(err(
                origin.to_string(),
                format!("more than {MAX_DOCUMENTS_PER_FILE} documents in one file; split it"),
            ));
        }
        load_document(m, origin, doc)?;
    }
    if count == 0 {
        return Err(err(
            file.display().to_string(),
            "holds no manifests (it is empty, or only comments)",
        ));
    }
    Ok(count)
}

/// Refuses a second definition of `what`, first defined at `first`.
fn duplicate(first: Option<&Origin>, origin: &Origin, what: &str) -> Result<(), ManifestError> {
    match first {
        Some(first) => Err(err(
            format!("{origin} {what}: metadata.name"),
            format!("is defined twice; first in {first}"),
        )),
        None => Ok(()),
    }
}

/// Where the resource `namespace/name` of a list was first defined.
fn first_of<'a, K: kube::Resource>(
    list: &'a [(Origin, K)],
    namespace: Option<&str>,
    name: &str,
) -> Option<&'a Origin> {
    list.iter()
        .find(|(_, r)| {
            r.meta().namespace.as_deref() == namespace && r.meta().name.as_deref() == Some(name)
        })
        .map(|(o, _)| o)
}

/// The kind and name of a document, once its apiVersion and kind are ones orgops reads and its
/// name and namespace are ones the API server accepts.
fn identify(origin: &Origin, doc: &Value) -> Result<(String, String), ManifestError> {
    let here = |what: &str| format!("{origin} {what}");
    if !doc.is_object() {
        return Err(err(
            origin.to_string(),
            "is not a mapping: a manifest has apiVersion, kind, metadata and spec",
        ));
    }
    let text_of = |pointer: &str| doc.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text_of("/apiVersion"), text_of("/kind"));
    match (api_version, kind) {
        (
            "orgops.io/v1alpha1",
            "Organization" | "VendorConnection" | "ClusterVendorConnection" | "OrgMembership",
        )
        | ("v1", "Secret" | "Namespace") => {}
        ("", _) => return Err(err(here("apiVersion"), "is required (a string)")),
        (_, "") => return Err(err(here("kind"), "is required (a string)")),
        (v, k) => {
            return Err(err(
                here("kind"),
                format!(
                    "{} {} is not something orgops applies; expected orgops.io/v1alpha1 \
                     Organization, OrgMembership, VendorConnection or \
                     ClusterVendorConnection, or v1 Secret",
                    quoted(v),
                    quoted(k)
                ),
            ));
        }
    }
    let at_name = here(&format!("{kind}: metadata.name"));
    let name = match doc.pointer("/metadata/name") {
        None | Some(Value::Null) => return Err(err(at_name, "is required")),
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err(err(at_name, "must be a string")),
    };
    // Nothing of a Secret is quoted back, not even its name.
    let show = kind != "Secret";
    if kind == "Namespace" {
        schema::check_namespace(&name, show)
    } else {
        schema::check_name(&name, show)
    }
    .map_err(|why| err(at_name, why))?;
    let namespaced = !matches!(kind, "Namespace" | "ClusterVendorConnection");
    let at_namespace = here(&format!("{kind}/{name}: metadata.namespace"));
    match doc.pointer("/metadata/namespace") {
        _ if !namespaced => {}
        None | Some(Value::Null) => {}
        Some(Value::String(ns)) if ns.is_empty() => {}
        Some(Value::String(ns)) => {
            schema::check_namespace(ns, show).map_err(|why| err(at_namespace, why))?;
        }
        Some(_) => return Err(err(at_namespace, "must be a string")),
    }
    Ok((kind.to_string(), name))
}

fn load_document(m: &mut Manifests, origin: Origin, doc: Value) -> Result<(), ManifestError> {
    let (kind, name) = identify(&origin, &doc)?;
    let prefix = format!("{origin} {kind}/{name}");
    let at = |field: &str| format!("{prefix}: {field}");
    let spec_checked =
        |doc: &Value| schema::check_spec(&kind, doc).map_err(|v| err(at(&v.field), v.message));
    match kind.as_str() {
        "Organization" => {
            if doc.pointer("/spec/connection").is_some()
                && doc.pointer("/spec/connectionRef").is_none()
            {
                return Err(err(at("spec.connection"), LEGACY_CONNECTION));
            }
            let mut org: Organization = typed(doc.clone(), &at)?;
            spec_checked(&doc)?;
            default_namespace(&mut org.metadata.namespace);
            DesiredOrg::from_resource(&org).map_err(|e| err(at(&e.field), e.message))?;
            let ns = org.metadata.namespace.clone();
            duplicate(
                first_of(&m.organizations, ns.as_deref(), &name),
                &origin,
                &format!("Organization {}/{name}", ns.unwrap_or_default()),
            )?;
            m.organizations.push((origin, org));
        }
        "VendorConnection" | "ClusterVendorConnection" => {
            let config = if kind == "VendorConnection" {
                let mut c: VendorConnection = typed(doc.clone(), &at)?;
                default_namespace(&mut c.metadata.namespace);
                c.config()
            } else {
                let c: ClusterVendorConnection = typed(doc.clone(), &at)?;
                c.config()
            };
            spec_checked(&doc)?;
            check_endpoint(&config, &at)?;
            duplicate(
                m.connections.get(&config.id).map(|(o, _)| o),
                &origin,
                &config.id,
            )?;
            m.connections.insert(config.id.clone(), (origin, config));
        }
        "OrgMembership" => {
            let mut mem: OrgMembership = typed(doc.clone(), &at)?;
            spec_checked(&doc)?;
            default_namespace(&mut mem.metadata.namespace);
            let ns = mem.metadata.namespace.clone();
            duplicate(
                first_of(&m.memberships, ns.as_deref(), &name),
                &origin,
                &format!("OrgMembership {}/{name}", ns.unwrap_or_default()),
            )?;
            m.memberships.push((origin, mem));
        }
        "Secret" => {
            // Type errors in a Secret are reported without the value serde would quote.
            let mut secret: Secret = typed(doc, &at).map_err(redact_secret_error)?;
            default_namespace(&mut secret.metadata.namespace);
            let key = format!(
                "{}/{name}",
                secret.metadata.namespace.as_deref().unwrap_or("default")
            );
            duplicate(
                m.secrets.get(&key).map(|(o, _)| o),
                &origin,
                &format!("Secret {key}"),
            )?;
            m.secrets.insert(key, (origin, secret));
        }
        // Namespaces matter to a cluster, not to the vendor: nothing to do without one.
        _ => {}
    }
    Ok(())
}

/// A Secret's type error, keeping the field and what was expected but nothing of the value
/// (serde quotes it: `invalid type: integer `1234`, expected a string`, and a base64 error
/// names the offending byte).
fn redact_secret_error(e: ManifestError) -> ManifestError {
    let expected = e
        .message
        .rsplit_once("expected ")
        .map(|(_, what)| redact(what))
        .filter(|what| !what.is_empty());
    let message = match expected {
        Some(what) if e.location.contains(": data.") || e.location.ends_with(": data") => {
            format!("is invalid: expected {what} (base64 for data values)")
        }
        Some(what) => format!("is invalid: expected {what}"),
        None if e.location.contains(": data.") => {
            "is not valid base64 (data values are base64; use stringData for plain text)"
                .to_string()
        }
        None => "is invalid".to_string(),
    };
    ManifestError {
        location: e.location,
        message,
    }
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
        super::load_str(Path::new("x.yaml"), text)
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
    fn yaml_errors_give_a_position_and_never_the_text() {
        let password = "hunter2-Secret-Value";
        for (text, document) in [
            // A flow mapping left open on the password's line.
            (
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: c}}\nstringData: {{username: u, password: {password}\n"
                ),
                "document 1",
            ),
            // A tab-indented value two documents in.
            (
                format!(
                    "{SECRET}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: d}}\nstringData:\n\tpassword: {password}\n"
                ),
                "document 3",
            ),
            // A stray quote.
            (
                format!(
                    "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: c}}\nstringData:\n  password: \"{password}\n  x: 'y\n"
                ),
                "document 1",
            ),
            // Twice the same key.
            (
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: c}}\nstringData:\n  {password}: a\n  {password}: b\n"
                ),
                "document 1",
            ),
        ] {
            let e = load_str(&text).unwrap_err().to_string();
            assert!(e.contains("invalid YAML at line"), "{e}");
            assert!(e.contains(document), "{document} not in {e}");
            assert!(!e.contains("hunter2"), "the error quotes the input: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn secret_type_errors_do_not_quote_the_value() {
        for (body, needle) in [
            ("stringData: {password: 1234567}", "stringData.password"),
            ("stringData: {password: 12.5e3}", "stringData.password"),
            ("data: {password: 'not base64 1234567!'}", "data.password"),
            ("data: {password: [1234567]}", "data.password"),
        ] {
            let text = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: c}}\n{body}\n");
            let e = load_str(&text).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("Secret/c"), "{e}");
            for secret in ["1234567", "12.5", "12500", "base64 1234567"] {
                assert!(!e.contains(secret), "quoted the value: {e}");
            }
        }
    }

    #[test]
    fn names_and_namespaces_are_checked_as_the_api_server_does() {
        let org = |meta: &str| {
            format!(
                "{SECRET}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {meta}\nspec:\n  vendor: rossum\n  displayName: DE\n  connectionRef: {{name: rossum}}\n"
            )
        };
        assert!(load_str(&org("{name: de.v2}")).is_ok());
        for (meta, field) in [
            ("{name: '../Bad_Name'}", "Organization: metadata.name"),
            ("{name: ''}", "Organization: metadata.name"),
            ("{name: [a]}", "Organization: metadata.name"),
            (
                "{name: de, namespace: Tenants}",
                "Organization/de: metadata.namespace",
            ),
            (
                "{name: de, namespace: a.b}",
                "Organization/de: metadata.namespace",
            ),
        ] {
            let e = load_str(&org(meta)).unwrap_err().to_string();
            assert!(e.contains("document 3") && e.contains(field), "{meta}: {e}");
        }
        let e = load_str(&SECRET.replace("name: creds", "name: Creds_1")).unwrap_err();
        assert!(e.to_string().contains("Secret: metadata.name"), "{e}");
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n";
        assert!(
            load_str(ns)
                .unwrap_err()
                .to_string()
                .contains("RFC 1123 label")
        );
    }

    #[test]
    fn empty_files_and_directories_are_errors() {
        for text in ["", "\n", "# only a comment\n", "---\n", "---\n---\n...\n"] {
            let e = load_str(text).unwrap_err().to_string();
            assert!(e.starts_with("x.yaml: holds no manifests"), "{text:?}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let e = load(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("no .yaml, .yml or .json files"), "{e}");
        std::fs::write(dir.path().join("a.yaml"), SECRET).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "# nothing\n").unwrap();
        let e = load(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("b.yaml: holds no manifests"), "{e}");
    }

    #[test]
    fn sizes_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let line = format!("# {}\n", "x".repeat(1021));
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let e = load(&[big]).unwrap_err().to_string();
        assert!(e.contains("big.yaml: is larger than 8 MiB"), "{e}");
        assert!(
            load_str(&line.repeat(8 * 1024 + 1))
                .unwrap_err()
                .to_string()
                .contains("larger than 8 MiB")
        );

        let many = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
            .repeat(MAX_DOCUMENTS_PER_FILE + 1);
        let e = load_str(&many).unwrap_err().to_string();
        assert!(e.contains("more than 1000 documents"), "{e}");
        let deep = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        let e = load_str(&deep).unwrap_err().to_string();
        assert!(e.contains("nested more than 64 levels"), "{e}");

        // Within the limits per file, but too many in all.
        let per_file = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n".repeat(1000);
        let paths: Vec<PathBuf> = (0..11)
            .map(|i| {
                let p = dir.path().join(format!("ns-{i:02}.yaml"));
                std::fs::write(&p, &per_file).unwrap();
                p
            })
            .collect();
        let e = load(&paths).unwrap_err().to_string();
        assert!(e.contains("ns-10.yaml: more than 10000 documents"), "{e}");
    }

    #[test]
    fn a_resource_defined_twice_is_refused() {
        let e = load_str(&format!("{SECRET}---\n{SECRET}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("document 3") && e.contains("defined twice; first in x.yaml (document 1)"),
            "{e}"
        );
        let org = "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {name: de}\nspec:\n  vendor: rossum\n  displayName: DE\n  connectionRef: {name: rossum}\n";
        let e = load_str(&format!("{SECRET}---\n{org}---\n{org}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Organization default/de") && e.contains("document 4"),
            "{e}"
        );
    }

    #[test]
    fn spec_bounds_are_the_crds() {
        let org = |extra: &str| {
            format!(
                "{SECRET}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de}}\nspec:\n  vendor: rossum\n  displayName: DE\n  connectionRef: {{name: rossum}}\n{extra}"
            )
        };
        assert!(load_str(&org("  syncInterval: 1h30m\n")).is_ok());
        for (extra, needle) in [
            (
                "  syncInterval: 99999999999999999999h\n",
                "spec.syncInterval",
            ),
            ("  syncInterval: 10ms\n", "shorter than 1s"),
            ("  syncInterval: 2d\n", "spec.syncInterval"),
            ("  connectionRef: {name: Rossum}\n", "spec.connectionRef"),
        ] {
            let text = org(extra);
            // A repeated key would be a YAML error; replace the field instead.
            let text = if extra.contains("connectionRef") {
                text.replacen("  connectionRef: {name: rossum}\n", "", 1)
            } else {
                text
            };
            let e = load_str(&text).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("document 3"),
                "{extra}: {e}"
            );
        }
        let conn = SECRET.replace(
            "credentialsSecretRef: {name: creds}",
            "credentialsSecretRef: {name: creds}, rateLimit: 0",
        );
        let e = load_str(&conn).unwrap_err().to_string();
        assert!(e.contains("spec.rateLimit: must be at least 1"), "{e}");
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
