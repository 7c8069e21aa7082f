//! What a request asks to do, in RBAC terms: the apiserver's `RequestInfo`, read from the path
//! and query alone (before the resource is looked up, so unknown resources are authorized too).

use std::collections::HashMap;

use axum::http::Method;

/// Authorization attributes of one request (or of a SubjectAccessReview).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, … (the lowercase HTTP method for non-resource paths).
    pub verb: String,
    /// A resource request, or a non-resource path such as `/metrics`.
    pub resource_request: bool,
    /// The path of a non-resource request.
    pub path: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`status`), or `""`.
    pub subresource: String,
    /// Namespace, or `""` for cluster-scoped and all-namespace requests.
    pub namespace: String,
    /// Object name, or `""`.
    pub name: String,
}

/// Path segments after `namespaces/{ns}` that are subresources of the namespace itself.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl Attributes {
    /// A resource request.
    pub fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    /// The attributes of an HTTP request, as the apiserver's RequestInfoFactory derives them.
    pub fn from_request(
        method: &Method,
        path: &str,
        segs: &[&str],
        q: &HashMap<String, String>,
    ) -> Self {
        let (group, rest) = match segs {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => {
                return Self::non_resource(&method.as_str().to_ascii_lowercase(), path);
            }
        };
        let mut namespace = "";
        let mut parts = rest;
        if let ["namespaces", ns, tail @ ..] = rest {
            namespace = ns;
            if let [next, ..] = tail
                && !NAMESPACE_SUBRESOURCES.contains(next)
            {
                parts = tail;
            }
        }
        let resource = parts.first().copied().unwrap_or("");
        let mut name = parts.get(1).copied().unwrap_or("").to_string();
        let subresource = parts.get(2).copied().unwrap_or("");
        let verb = match (method.as_str(), name.is_empty()) {
            ("GET" | "HEAD", false) => "get",
            ("GET" | "HEAD", true) => {
                if let Some(n) = q.get("fieldSelector").and_then(|f| exact_name(f)) {
                    name = n;
                }
                if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                    "watch"
                } else {
                    "list"
                }
            }
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", false) => "delete",
            ("DELETE", true) => "deletecollection",
            (other, _) => return Self::non_resource(&other.to_ascii_lowercase(), path),
        };
        Self::resource(verb, group, resource, subresource, namespace, &name)
    }
}

/// `metadata.name=x` in a field selector: a list or watch of one object, which a
/// `resourceNames` rule can allow.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(f, _)| !f.ends_with('!'))?;
        (field.trim() == "metadata.name" && !value.trim().is_empty())
            .then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &[(&str, &str)]) -> Attributes {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Attributes::from_request(&method, path, &segs, &q)
    }

    #[test]
    fn resource_paths_become_rbac_attributes() {
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/a/secrets/s", &[]),
            Attributes::resource("get", "", "secrets", "", "a", "s")
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/secrets", &[("watch", "true")]),
            Attributes::resource("watch", "", "secrets", "", "", "")
        );
        assert_eq!(
            attrs(
                Method::PATCH,
                "/apis/orgops.io/v1alpha1/namespaces/t/organizations/o/status",
                &[]
            ),
            Attributes::resource("patch", "orgops.io", "organizations", "status", "t", "o")
        );
        assert_eq!(
            attrs(Method::DELETE, "/api/v1/namespaces/a/configmaps", &[]),
            Attributes::resource("deletecollection", "", "configmaps", "", "a", "")
        );
        // A namespace is in its own namespace, as on a real cluster.
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/a", &[]),
            Attributes::resource("get", "", "namespaces", "", "a", "a")
        );
        assert_eq!(
            attrs(Method::PUT, "/api/v1/namespaces/a/status", &[]),
            Attributes::resource("update", "", "namespaces", "status", "a", "a")
        );
        assert_eq!(
            attrs(
                Method::GET,
                "/api/v1/namespaces/a/secrets",
                &[("fieldSelector", "metadata.name=creds")]
            ),
            Attributes::resource("list", "", "secrets", "", "a", "creds")
        );
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for path in [
            "/metrics",
            "/healthz",
            "/api",
            "/api/v1",
            "/apis/rbac.authorization.k8s.io/v1",
        ] {
            let a = attrs(Method::GET, path, &[]);
            assert_eq!(a, Attributes::non_resource("get", path));
        }
        assert_eq!(
            attrs(Method::POST, "/metrics", &[]).verb,
            "post",
            "the lowercase method"
        );
    }
}
