//! The authentication and authorization APIs, answered from the same code the server enforces
//! and never stored: TokenRequest (`serviceaccounts/token`), TokenReview and SelfSubjectReview
//! (`authentication.k8s.io/v1`), SubjectAccessReview, LocalSubjectAccessReview,
//! SelfSubjectAccessReview and SelfSubjectRulesReview (`authorization.k8s.io/v1`).

use serde_json::{Value, json};

use crate::attributes::Attributes;
use crate::auth::{Tokens, UserInfo};
use crate::rbac;
use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};
use crate::store::Store;

/// The audience of this server's tokens when a TokenReview names none.
const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Answers a review created by `requester` at `namespace` (LocalSubjectAccessReview only):
/// the request with its `status` filled in.
pub fn answer(
    rt: &ResourceType,
    namespace: Option<&str>,
    mut review: Value,
    requester: &UserInfo,
    tokens: &Tokens,
    store: &Store,
) -> Result<Value, ApiError> {
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let legacy = tokens.legacy.as_ref();
    let status = match rt.kind.as_str() {
        "TokenReview" => token_review(&spec, tokens, store)?,
        "SelfSubjectReview" => json!({"userInfo": requester.to_json()}),
        "SubjectAccessReview" => {
            let user = UserInfo {
                username: str_at(&spec, "user").into(),
                uid: str_at(&spec, "uid").into(),
                groups: strings(&spec["groups"]),
            };
            if user.username.is_empty() && user.groups.is_empty() {
                return Err(invalid(
                    rt,
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            access(store, legacy, &user, &attributes(rt, &spec)?)
        }
        "LocalSubjectAccessReview" => {
            let ns = namespace.unwrap_or("");
            let given = spec
                .pointer("/resourceAttributes/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            if spec.get("nonResourceAttributes").is_some() {
                return Err(invalid(
                    rt,
                    "spec.nonResourceAttributes",
                    "Invalid value: \"null\": disallowed on this kind of request",
                ));
            }
            if !given.is_empty() && given != ns {
                return Err(invalid(
                    rt,
                    "spec.resourceAttributes.namespace",
                    &format!("Invalid value: \"{given}\": must match metadata.namespace"),
                ));
            }
            review["metadata"]["namespace"] = json!(ns);
            let user = UserInfo {
                username: str_at(&spec, "user").into(),
                uid: str_at(&spec, "uid").into(),
                groups: strings(&spec["groups"]),
            };
            let mut a = attributes(rt, &spec)?;
            a.namespace = ns.into();
            access(store, legacy, &user, &a)
        }
        "SelfSubjectAccessReview" => access(store, legacy, requester, &attributes(rt, &spec)?),
        "SelfSubjectRulesReview" => {
            rules_review(store, legacy, requester, str_at(&spec, "namespace"))
        }
        other => return Err(ApiError::bad_request(format!("no review of kind {other}"))),
    };
    review["apiVersion"] = json!(rt.api_version());
    review["kind"] = json!(rt.kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    Ok(review)
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn invalid(rt: &ResourceType, field: &str, message: &str) -> ApiError {
    let reason = if message.starts_with("Required") {
        "FieldValueRequired"
    } else {
        "FieldValueInvalid"
    };
    ApiError::invalid(
        &rt.kind,
        &rt.group,
        "",
        vec![Cause {
            reason,
            message: message.into(),
            field: field.into(),
        }],
    )
}

fn token_review(spec: &Value, tokens: &Tokens, store: &Store) -> Result<Value, ApiError> {
    let token = str_at(spec, "token");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    Ok(match tokens.authenticate(token, store) {
        Some(user) => {
            let mut audiences = strings(&spec["audiences"]);
            if audiences.is_empty() {
                audiences.push(API_AUDIENCE.into());
            }
            json!({"authenticated": true, "user": user.to_json(), "audiences": audiences})
        }
        None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
    })
}

/// The attributes of an access review: exactly one of `resourceAttributes` and
/// `nonResourceAttributes`.
fn attributes(rt: &ResourceType, spec: &Value) -> Result<Attributes, ApiError> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes::resource(
            str_at(r, "verb"),
            str_at(r, "group"),
            str_at(r, "resource"),
            str_at(r, "subresource"),
            str_at(r, "namespace"),
            str_at(r, "name"),
        )),
        (None, Some(n)) => Ok(Attributes::non_resource(
            str_at(n, "verb"),
            str_at(n, "path"),
        )),
        (Some(_), Some(_)) => Err(invalid(
            rt,
            "spec.nonResourceAttributes",
            "Invalid value: \"\": cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            rt,
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn access(store: &Store, legacy: Option<&rbac::Rbac>, user: &UserInfo, a: &Attributes) -> Value {
    let d = rbac::authorize(store, legacy, user, a);
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    status
}

fn rules_review(
    store: &Store,
    legacy: Option<&rbac::Rbac>,
    user: &UserInfo,
    namespace: &str,
) -> Value {
    let (rules, errors) = rbac::rules_for(store, legacy, user, namespace);
    let mut status = json!({
        "resourceRules": rules.iter().filter_map(rbac::Rule::resource_rule).collect::<Vec<_>>(),
        "nonResourceRules": rules.iter().filter_map(rbac::Rule::non_resource_rule).collect::<Vec<_>>(),
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

/// Issues a token for the ServiceAccount `namespace/name` (a TokenRequest), which must exist.
/// Tokens are opaque and do not expire, whatever `expirationSeconds` says.
pub fn token_request(
    namespace: &str,
    name: &str,
    mut request: Value,
    tokens: &mut Tokens,
    store: &Store,
) -> Result<Value, ApiError> {
    let rt = store
        .find("", "v1", "serviceaccounts")
        .ok_or_else(ApiError::no_route)?;
    store.get(rt, namespace, name)?;
    let token = format!("orgops-test-sa-{:032x}", fastrand::u128(..));
    tokens.add_service_account(&token, namespace, name);
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let now = jiff::Timestamp::now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(now);
    let format = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    if !request["spec"].is_object() {
        request["spec"] = json!({});
    }
    if strings(&request["spec"]["audiences"]).is_empty() {
        request["spec"]["audiences"] = json!([API_AUDIENCE]);
    }
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] =
        json!({"name": name, "namespace": namespace, "creationTimestamp": format(now)});
    request["status"] = json!({"token": token, "expirationTimestamp": format(expires)});
    Ok(request)
}
