//! Authorization as the apiserver's RBAC authorizer does it: the rules of the Roles and
//! ClusterRoles that the stored RoleBindings (in the request's namespace) and
//! ClusterRoleBindings (everywhere) grant a user or its groups, read at request time; plus the
//! fixed rules of `TestApiServer::enforce_rbac`. Members of `system:masters` may do anything.

use serde_json::{Value, json};

use crate::attributes::Attributes;
use crate::auth::{AUTHENTICATED, MASTERS, UserInfo};
use crate::status::ApiError;
use crate::store::Store;

const GROUP: &str = "rbac.authorization.k8s.io";

/// One PolicyRule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn any(list: &[String], x: &str) -> bool {
    list.iter().any(|i| i == "*" || i == x)
}

impl Rule {
    /// A PolicyRule from its JSON form.
    pub fn parse(v: &Value) -> Self {
        Self {
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            verbs: strings(v, "verbs"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// Whether the rule allows the request (the apiserver's `RuleAllows`).
    pub fn allows(&self, a: &Attributes) -> bool {
        if !any(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
            });
        }
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(&a.subresource))
        });
        any(&self.api_groups, &a.group)
            && resource
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }

    /// The rule's resource part (a SelfSubjectRulesReview `resourceRules` entry), if any.
    pub fn resource_rule(&self) -> Option<Value> {
        (!self.resources.is_empty()).then(|| {
            let mut v = json!({"verbs": self.verbs, "apiGroups": self.api_groups, "resources": self.resources});
            if !self.resource_names.is_empty() {
                v["resourceNames"] = json!(self.resource_names);
            }
            v
        })
    }

    /// The rule's non-resource part (a `nonResourceRules` entry), if any.
    pub fn non_resource_rule(&self) -> Option<Value> {
        (!self.non_resource_urls.is_empty())
            .then(|| json!({"verbs": self.verbs, "nonResourceURLs": self.non_resource_urls}))
    }
}

/// The identity of `TestApiServer::enforce_rbac`: one bearer token, one user, fixed rules
/// that apply cluster-wide (on top of whatever stored bindings grant the user).
#[derive(Clone, Debug, PartialEq)]
pub struct Rbac {
    token: String,
    user: String,
    rules: Vec<Rule>,
}

impl Rbac {
    /// `rules` is a JSON array of PolicyRules (as in a ClusterRole); `user` is the identity's
    /// user name.
    pub fn new(token: &str, user: &str, rules: &Value) -> Self {
        Self {
            token: token.into(),
            user: user.into(),
            rules: rules
                .as_array()
                .into_iter()
                .flatten()
                .map(Rule::parse)
                .collect(),
        }
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// An authorization decision and its reason (as a SubjectAccessReview reports them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed.
    pub allowed: bool,
    /// `RBAC: allowed by …`, or the errors met on the way (a binding to a missing role).
    pub reason: String,
}

/// Decides one request.
pub fn authorize(
    store: &Store,
    legacy: Option<&Rbac>,
    user: &UserInfo,
    a: &Attributes,
) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut allowed_by = None;
    let errors = visit(store, legacy, user, &a.namespace, &mut |source, rule| {
        if rule.allows(a) {
            allowed_by = Some(source.to_string());
            return false;
        }
        true
    });
    match allowed_by {
        Some(source) => Decision {
            allowed: true,
            reason: format!("RBAC: allowed by {source}"),
        },
        None => Decision {
            allowed: false,
            reason: match errors.as_slice() {
                [] => String::new(),
                [one] => format!("RBAC: {one}"),
                many => format!("RBAC: [{}]", many.join(", ")),
            },
        },
    }
}

/// Every rule that applies to `user` in `namespace` (`""`: cluster-wide only).
pub fn rules_for(
    store: &Store,
    legacy: Option<&Rbac>,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let errors = visit(store, legacy, user, namespace, &mut |_, rule| {
        rules.push(rule.clone());
        true
    });
    (rules, errors)
}

/// Calls `f(source, rule)` for each rule granted to `user` in `namespace`, until it returns
/// false: ClusterRoleBindings first, then RoleBindings of `namespace`, then the `enforce_rbac`
/// rules. Returns the errors met (bindings to missing roles).
fn visit(
    store: &Store,
    legacy: Option<&Rbac>,
    user: &UserInfo,
    namespace: &str,
    f: &mut dyn FnMut(&str, &Rule) -> bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    let objects = |plural: &str, ns: Option<&str>| -> Vec<Value> {
        store
            .find(GROUP, "v1", plural)
            .map(|rt| store.list(rt, ns))
            .unwrap_or_default()
    };
    let mut bindings: Vec<(&str, Value)> = objects("clusterrolebindings", None)
        .into_iter()
        .map(|b| ("ClusterRoleBinding", b))
        .collect();
    if !namespace.is_empty() {
        bindings.extend(
            objects("rolebindings", Some(namespace))
                .into_iter()
                .map(|b| ("RoleBinding", b)),
        );
    }
    for (kind, binding) in &bindings {
        let binding_ns = binding
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(subject) = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| applies(s, user, binding_ns))
        else {
            continue;
        };
        let role_kind = binding
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let role_name = binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let rules = match role_rules(store, kind, role_kind, role_name, binding_ns) {
            Ok(rules) => rules,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let source = match *kind {
            "RoleBinding" => format!(
                "RoleBinding \"{name}/{binding_ns}\" of {role_kind} \"{role_name}\" to {}",
                describe(subject, binding_ns)
            ),
            _ => format!(
                "ClusterRoleBinding \"{name}\" of {role_kind} \"{role_name}\" to {}",
                describe(subject, "")
            ),
        };
        for rule in &rules {
            if !f(&source, rule) {
                return errors;
            }
        }
    }
    if let Some(legacy) = legacy.filter(|l| l.user == user.username) {
        for rule in &legacy.rules {
            if !f("the rules given to TestApiServer::enforce_rbac", rule) {
                break;
            }
        }
    }
    errors
}

/// Whether a binding's subject is `user` (the apiserver's `appliesToUser`).
fn applies(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str() {
        Some("User") => user.username == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn describe(subject: &Value, binding_ns: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or("");
    let name = subject["name"].as_str().unwrap_or("");
    match kind {
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            format!("{kind} \"{name}/{ns}\"")
        }
        _ => format!("{kind} \"{name}\""),
    }
}

/// The rules of a binding's roleRef: a ClusterRole, or (for a RoleBinding) a Role in the
/// binding's namespace.
fn role_rules(
    store: &Store,
    binding_kind: &str,
    role_kind: &str,
    role_name: &str,
    binding_ns: &str,
) -> Result<Vec<Rule>, String> {
    let (plural, ns, singular) = match (binding_kind, role_kind) {
        (_, "ClusterRole") => ("clusterroles", "", "clusterrole"),
        ("RoleBinding", "Role") => ("roles", binding_ns, "role"),
        _ => return Err(format!("unsupported role reference kind: \"{role_kind}\"")),
    };
    let role = store
        .find(GROUP, "v1", plural)
        .and_then(|rt| store.get(rt, ns, role_name).ok())
        .ok_or_else(|| format!("{singular}.{GROUP} \"{role_name}\" not found"))?;
    Ok(role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Rule::parse)
        .collect())
}

/// The 403 the apiserver answers a denied request with.
pub fn forbidden(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let who = &user.username;
    let mut why = if !a.resource_request {
        format!("User \"{who}\" cannot {} path \"{}\"", a.verb, a.path)
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            " at the cluster scope".to_string()
        } else {
            format!(" in the namespace \"{}\"", a.namespace)
        };
        format!(
            "User \"{who}\" cannot {} resource \"{resource}\" in API group \"{}\"{scope}",
            a.verb, a.group
        )
    };
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    if !a.resource_request {
        return ApiError::forbidden(format!("forbidden: {why}"));
    }
    let what = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let mut e = if a.name.is_empty() {
        ApiError::forbidden(format!("{what} is forbidden: {why}"))
    } else {
        ApiError::forbidden(format!("{what} \"{}\" is forbidden: {why}", a.name))
    };
    let mut details = json!({"kind": a.resource});
    if !a.group.is_empty() {
        details["group"] = json!(a.group);
    }
    if !a.name.is_empty() {
        details["name"] = json!(a.name);
    }
    e.details = Some(details);
    e
}

/// The part of the bootstrap policy every cluster starts with that tests meet, as (plural,
/// object): `cluster-admin` for `system:masters`, discovery, health and version for every
/// authenticated user, the self-reviews (`kubectl auth can-i`, `kubectl auth whoami`), and the
/// unbound `system:auth-delegator`.
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let role = |name: &str, rules: Value| {
        (
            "clusterroles",
            json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": rules}),
        )
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
            .collect();
        (
            "clusterrolebindings",
            json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects}),
        )
    };
    let public_info = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let mut discovery: Vec<&str> = vec![
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/openapi",
        "/openapi/*",
    ];
    discovery.extend(public_info);
    vec![
        role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        binding("cluster-admin", &[MASTERS]),
        role(
            "system:discovery",
            json!([{"nonResourceURLs": discovery, "verbs": ["get"]}]),
        ),
        binding("system:discovery", &[AUTHENTICATED]),
        role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": public_info, "verbs": ["get"]}]),
        ),
        binding(
            "system:public-info-viewer",
            &[AUTHENTICATED, "system:unauthenticated"],
        ),
        role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ]),
        ),
        binding("system:basic-user", &[AUTHENTICATED]),
        // Bound by delegating servers (authenticated metrics): TokenReview and SubjectAccessReview.
        role(
            "system:auth-delegator",
            json!([
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FieldValidation, WriteOpts};

    fn rule(v: Value) -> Rule {
        Rule::parse(&v)
    }

    #[test]
    fn rules_match_as_the_apiserver_matches_them() {
        let get =
            |res: &str, sub: &str, name: &str| Attributes::resource("get", "", res, sub, "a", name);
        let secrets = rule(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
        assert!(secrets.allows(&get("secrets", "", "x")));
        assert!(
            !secrets.allows(&get("secrets", "status", "x")),
            "subresources are separate"
        );
        assert!(!secrets.allows(&get("configmaps", "", "x")));
        let named = rule(
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"], "resourceNames": ["creds"]}),
        );
        assert!(named.allows(&get("secrets", "", "creds")));
        assert!(!named.allows(&get("secrets", "", "other")));
        assert!(!named.allows(&Attributes::resource("list", "", "secrets", "", "a", "")));
        let status = rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}));
        assert!(status.allows(&get("pods", "status", "p")));
        assert!(!status.allows(&get("pods", "", "p")));
        let urls = rule(json!({"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}));
        assert!(urls.allows(&Attributes::non_resource("get", "/metrics")));
        assert!(urls.allows(&Attributes::non_resource("get", "/debug/pprof")));
        assert!(!urls.allows(&Attributes::non_resource("post", "/metrics")));
        assert!(!urls.allows(&Attributes::non_resource("get", "/metricsx")));
        assert!(
            !urls.allows(&get("metrics", "", "")),
            "URL rules grant no resources"
        );
    }

    fn store_with(objects: &[(&str, Value)]) -> Store {
        let mut store = Store::new();
        for (plural, obj) in objects {
            let rt = store.find(GROUP, "v1", plural).cloned().unwrap();
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            store
                .create(
                    &rt,
                    &ns,
                    obj.clone(),
                    WriteOpts {
                        fields: FieldValidation::Ignore,
                        dry_run: false,
                    },
                )
                .unwrap();
        }
        store
    }

    #[test]
    fn role_bindings_apply_in_their_namespace_only() {
        let store = store_with(&[
            (
                "roles",
                json!({"metadata": {"name": "read", "namespace": "default"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]}),
            ),
            (
                "rolebindings",
                json!({"metadata": {"name": "op", "namespace": "default"},
                "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "read"},
                "subjects": [{"kind": "ServiceAccount", "name": "orgops"}]}),
            ),
            (
                "rolebindings",
                json!({"metadata": {"name": "dangling", "namespace": "kube-system"},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "missing"},
                "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}),
            ),
        ]);
        let sa = UserInfo::authenticated("system:serviceaccount:default:orgops", "");
        let d = authorize(
            &store,
            None,
            &sa,
            &Attributes::resource("get", "", "secrets", "", "default", "s"),
        );
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason: "RBAC: allowed by RoleBinding \"op/default\" of Role \"read\" to ServiceAccount \"orgops/default\"".into()
            }
        );
        let elsewhere = Attributes::resource("get", "", "secrets", "", "kube-system", "s");
        let d = authorize(&store, None, &sa, &elsewhere);
        assert!(!d.allowed);
        assert_eq!(
            d.reason,
            "RBAC: clusterrole.rbac.authorization.k8s.io \"missing\" not found"
        );
        assert_eq!(
            forbidden(&sa, &elsewhere, "").message,
            "secrets \"s\" is forbidden: User \"system:serviceaccount:default:orgops\" cannot get resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
        );
        let all = Attributes::resource("list", "", "secrets", "", "", "");
        assert!(
            !authorize(&store, None, &sa, &all).allowed,
            "all namespaces need a cluster-wide grant"
        );
        // The bootstrap policy: discovery for everyone authenticated, anything for masters.
        assert!(
            authorize(
                &store,
                None,
                &sa,
                &Attributes::non_resource("get", "/apis/orgops.io/v1alpha1")
            )
            .allowed
        );
        assert!(
            !authorize(
                &store,
                None,
                &sa,
                &Attributes::non_resource("get", "/metrics")
            )
            .allowed
        );
        assert!(authorize(&store, None, &UserInfo::admin(), &all).allowed);
    }

    #[test]
    fn enforce_rbac_rules_apply_to_their_user_cluster_wide() {
        let store = Store::new();
        let legacy = Rbac::new(
            "t",
            "jane",
            &json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]),
        );
        let list = Attributes::resource("list", "", "configmaps", "", "", "");
        assert!(
            authorize(
                &store,
                Some(&legacy),
                &UserInfo::authenticated("jane", ""),
                &list
            )
            .allowed
        );
        assert!(
            !authorize(
                &store,
                Some(&legacy),
                &UserInfo::authenticated("joe", ""),
                &list
            )
            .allowed
        );
        let (rules, errors) = rules_for(
            &store,
            Some(&legacy),
            &UserInfo::authenticated("jane", ""),
            "",
        );
        assert!(errors.is_empty());
        assert!(rules.iter().any(|r| r.resource_rule()
            == Some(json!({"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"]}))));
        assert!(
            rules.iter().any(|r| r.non_resource_rule().is_some()),
            "discovery"
        );
    }
}
