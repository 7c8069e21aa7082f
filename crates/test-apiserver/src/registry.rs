//! The resource types the server serves: built-ins and every registered CRD version.

use serde_json::{Value, json};

/// One served group/version/resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Has a `status` subresource.
    pub status: bool,
    /// `openAPIV3Schema` of a custom resource.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` of a custom resource.
    pub columns: Vec<Value>,
    /// A custom resource (generation, validation) rather than a built-in.
    pub custom: bool,
    /// A review (TokenReview, SubjectAccessReview, …): create-only, answered and never stored.
    pub review: bool,
}

impl ResourceType {
    /// `group/version`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key shared by every version of the resource. Core and `events.k8s.io` Events
    /// share one store, as in the apiserver, so either API sees every Event.
    pub fn storage_key(&self) -> String {
        if self.plural == "events" {
            return "/events".into();
        }
        format!("{}/{}", self.group, self.plural)
    }

    /// The `APIResource` entry of discovery.
    pub fn api_resource(&self) -> Value {
        if self.review {
            return json!({
                "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["create"],
            });
        }
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        verbs.sort();
        json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs, "shortNames": self.short_names,
            "categories": self.categories, "storageVersionHash": "",
        })
    }

    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            status: matches!(plural, "namespaces" | "customresourcedefinitions"),
            schema: None,
            columns: Vec::new(),
            custom: false,
            review: false,
        }
    }

    fn review(group: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            review: true,
            ..Self::builtin(group, "v1", plural, kind, namespaced, &[])
        }
    }
}

/// The built-in resources.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
        ResourceType::builtin("", "v1", "secrets", "Secret", true, &[]),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
        ResourceType::builtin("", "v1", "events", "Event", true, &["ev"]),
        ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
        ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
        ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
        ),
        ResourceType::review(
            "authentication.k8s.io",
            "tokenreviews",
            "TokenReview",
            false,
        ),
        ResourceType::review(
            "authentication.k8s.io",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
        ),
        ResourceType::review(
            "authorization.k8s.io",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
        ),
        ResourceType::review(
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
        ),
        ResourceType::review(
            "authorization.k8s.io",
            "localsubjectaccessreviews",
            "LocalSubjectAccessReview",
            true,
        ),
        ResourceType::review(
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
        ),
    ]
}

/// The served versions of a CRD object, or why it is invalid.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let group = spec["group"].as_str().ok_or("spec.group is required")?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or("spec.names.plural is required")?;
    let kind = names["kind"]
        .as_str()
        .ok_or("spec.names.kind is required")?;
    let expected = format!("{plural}.{group}");
    if crd.pointer("/metadata/name").and_then(Value::as_str) != Some(expected.as_str()) {
        return Err(format!(
            "metadata.name: must be spec.names.plural+\".\"+spec.group ({expected})"
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for v in spec["versions"]
        .as_array()
        .ok_or("spec.versions is required")?
    {
        if v["served"] == json!(false) {
            continue;
        }
        out.push(ResourceType {
            group: group.into(),
            version: v["name"]
                .as_str()
                .ok_or("spec.versions[].name is required")?
                .into(),
            plural: plural.into(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            kind: kind.into(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status: v.pointer("/subresources/status").is_some(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            custom: true,
            review: false,
        });
    }
    Ok(out)
}
