//! Optional RBAC: requests that carry a given bearer token (the operator's identity) are
//! checked against a set of PolicyRules; every other caller is a cluster admin.

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::registry::ResourceType;
use crate::status::ApiError;

/// One PolicyRule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

/// The rules granted to one identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Rbac {
    token: String,
    user: String,
    rules: Vec<Rule>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Rbac {
    /// `rules` is a JSON array of PolicyRules (as in a ClusterRole); `user` names the identity
    /// in 403 messages.
    pub fn new(token: &str, user: &str, rules: &Value) -> Self {
        let rules = rules
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Rule {
                api_groups: strings(r, "apiGroups"),
                resources: strings(r, "resources"),
                verbs: strings(r, "verbs"),
                resource_names: strings(r, "resourceNames"),
            })
            .collect();
        Self {
            token: token.into(),
            user: user.into(),
            rules,
        }
    }

    /// Allows or forbids one request.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        verb: &str,
        rt: &ResourceType,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Result<(), ApiError> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if bearer != Some(self.token.as_str()) {
            return Ok(());
        }
        let resource = match sub {
            Some(s) => format!("{}/{s}", rt.plural),
            None => rt.plural.clone(),
        };
        let any = |list: &[String], x: &str| list.iter().any(|i| i == "*" || i == x);
        let allowed = self.rules.iter().any(|r| {
            any(&r.api_groups, &rt.group)
                && any(&r.resources, &resource)
                && any(&r.verbs, verb)
                && (r.resource_names.is_empty()
                    || name.is_some_and(|n| r.resource_names.iter().any(|x| x == n)))
        });
        if allowed {
            return Ok(());
        }
        let what = if rt.group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{}", rt.group)
        };
        let subject = match name {
            Some(n) => format!("{what} \"{n}\" is forbidden"),
            None => format!("{what} is forbidden"),
        };
        let scope = match ns {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        Err(ApiError::forbidden(format!(
            "{subject}: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\"{scope}",
            self.user, rt.group
        )))
    }
}

/// The RBAC verb of a request.
pub fn verb(method: &Method, named: bool, watch: bool) -> &'static str {
    match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}
