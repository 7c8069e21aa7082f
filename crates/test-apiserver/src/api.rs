//! HTTP: discovery, the REST verbs on every resource path, patches, watches and tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::attributes::Attributes;
use crate::auth::{self, Tokens, UserInfo};
use crate::media::Output;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, FieldValidation, Store, WriteOpts};
use crate::{rbac, reviews};

/// Shared state.
pub struct Shared {
    /// The store.
    pub store: Mutex<Store>,
    /// Requests served, by `METHOD path-pattern` (for tests and benchmarks).
    pub requests: Mutex<HashMap<String, u64>>,
    /// The tokens the server knows (taken before `store` when both are needed).
    pub auth: Mutex<Tokens>,
    /// Every request, in order, with who sent it and how it was answered.
    pub log: Mutex<Vec<LoggedRequest>>,
}

/// One request as the server saw and answered it (`TestApiServer::request_log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The user its credentials name (before impersonation); `""` for an unknown token.
    pub user: String,
    /// Its RBAC attributes: verb, group, resource, subresource, namespace, name (a list or
    /// watch by `metadata.name` field selector has the name), or the non-resource path.
    pub attributes: Attributes,
    /// The `as=` of the media type the response was negotiated to (`Table`,
    /// `PartialObjectMetadata`, `PartialObjectMetadataList`); `""` for the object itself.
    pub as_kind: &'static str,
    /// The response's status code (a watch's is that of its start).
    pub status: u16,
}

type S = Arc<Shared>;

fn lock(s: &S) -> std::sync::MutexGuard<'_, Store> {
    match s.store.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn tokens(s: &S) -> std::sync::MutexGuard<'_, Tokens> {
    match s.auth.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Authenticates a request, applies impersonation and authorizes it: the name its
/// credentials authenticate (`""` if none), and the user it acts as or 401/403 as a Status.
fn admit(s: &S, headers: &HeaderMap, attrs: &Attributes) -> (String, Result<UserInfo, ApiError>) {
    let tokens = tokens(s);
    let store = lock(s);
    let decide = |user: &UserInfo, a: &Attributes| -> Result<(), ApiError> {
        let d = rbac::authorize(&store, tokens.legacy.as_ref(), user, a);
        if d.allowed {
            Ok(())
        } else {
            Err(rbac::forbidden(user, a, &d.reason))
        }
    };
    let authenticated = match tokens.user_of(headers, &store) {
        Ok(user) => user,
        Err(e) => return (String::new(), Err(e)),
    };
    let name = authenticated.username.clone();
    let admitted = auth::impersonate(authenticated, headers, decide).and_then(|user| {
        decide(&user, attrs)?;
        Ok(user)
    });
    (name, admitted)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v.clone())).into_response()
}

/// Entry point for every request.
pub async fn handle(
    State(s): State<S>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let attrs = Attributes::from_request(&method, uri.path(), &segs, &query);
    let as_kind = Output::negotiate(&headers).as_kind();
    let (who, admitted) = admit(&s, &headers, &attrs);
    let response = match admitted {
        Ok(user) => match route(&s, &user, &method, &segs, &query, &headers, body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    };
    if let Ok(mut log) = s.log.lock() {
        log.push(LoggedRequest {
            user: who,
            attributes: attrs,
            as_kind,
            status: response.status().as_u16(),
        });
    }
    response
}

async fn route(
    s: &S,
    user: &UserInfo,
    method: &Method,
    segs: &[&str],
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    match segs {
        ["version"] => Ok(json_response(
            StatusCode::OK,
            &json!({
            "major": "1", "minor": "35", "gitVersion": "v1.35.0-orgops-test", "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}),
        )),
        ["healthz"] | ["livez"] | ["readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        )),
        ["api", "v1"] => Ok(json_response(
            StatusCode::OK,
            &resource_list(&lock(s), "", "v1"),
        )),
        ["apis"] => Ok(json_response(StatusCode::OK, &group_list(&lock(s)))),
        ["apis", g] => {
            let list = group_list(&lock(s));
            let group = list["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == *g)
                .cloned();
            group
                .map(|mut v| {
                    v["kind"] = json!("APIGroup");
                    v["apiVersion"] = json!("v1");
                    json_response(StatusCode::OK, &v)
                })
                .ok_or_else(ApiError::no_route)
        }
        ["apis", g, v] => {
            let store = lock(s);
            if !store
                .registry
                .iter()
                .any(|r| r.group == *g && r.version == *v)
            {
                return Err(ApiError::no_route());
            }
            Ok(json_response(StatusCode::OK, &resource_list(&store, g, v)))
        }
        ["openapi", "v3"] => Ok(json_response(StatusCode::OK, &openapi_root(&lock(s)))),
        ["openapi", "v3", "api", "v1"] => Ok(json_response(
            StatusCode::OK,
            &openapi_gv(&lock(s), "", "v1"),
        )),
        ["openapi", "v3", "apis", g, v] => {
            Ok(json_response(StatusCode::OK, &openapi_gv(&lock(s), g, v)))
        }
        ["openapi", "v2"] => Err(ApiError::no_route()),
        ["api", "v1", rest @ ..] => {
            let at = Location {
                group: "",
                version: "v1",
                rest,
            };
            resource(s, user, method, at, q, headers, body).await
        }
        ["apis", group, version, rest @ ..] => {
            let at = Location {
                group,
                version,
                rest,
            };
            resource(s, user, method, at, q, headers, body).await
        }
        _ => Err(ApiError::no_route()),
    }
}

/// `/openapi/v3`: one entry per group/version. kubectl reads it to learn that the server
/// validates fields itself (`fieldValidation` on PATCH), so it does not validate client-side.
fn openapi_root(store: &Store) -> Value {
    let mut paths = serde_json::Map::new();
    for r in &store.registry {
        let key = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        let hash = format!("{:016X}", store.rv);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of one group/version: operations with their GVK and parameters,
/// and the custom resources' schemas.
fn openapi_gv(store: &Store, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let params = json!([
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
    ]);
    for r in store
        .registry
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let op = |action: &str| json!({"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": action, "parameters": params, "responses": {"200": {"description": "OK"}}});
        if r.review {
            let collection = match r.namespaced {
                true => format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
                false => format!("{prefix}/{}", r.plural),
            };
            paths.insert(collection, json!({"post": op("post")}));
            continue;
        }
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        let collection = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
        if let Some(schema) = &r.schema {
            let mut schema = schema.clone();
            schema["x-kubernetes-group-version-kind"] = json!([gvk]);
            let name = format!(
                "{}.{}.{}",
                r.group.split('.').rev().collect::<Vec<_>>().join("."),
                r.version,
                r.kind
            );
            schemas.insert(name, schema);
        }
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.35.0"}, "paths": paths, "components": {"schemas": schemas}})
}

fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in store.registry.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
            Some(_) => {}
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in store
        .registry
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(r.api_resource());
        if r.status {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.group.is_empty() && r.plural == "serviceaccounts" {
            resources.push(json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// What a path names.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn resolve(store: &Store, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let find = |plural: &str| store.find(group, version, plural).cloned();
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, sub] => (*p, Some(n.to_string()), Some(sub.to_string())),
        _ => return Err(ApiError::no_route()),
    };
    let rt = find(plural).ok_or_else(ApiError::no_route)?;
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = &sub
        && !(sub == "status" && rt.status)
        && !(sub == "token" && rt.group.is_empty() && rt.plural == "serviceaccounts")
    {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        sub,
    })
}

fn field_validation(q: &HashMap<String, String>) -> FieldValidation {
    match q.get("fieldValidation").map(String::as_str) {
        Some("Strict") => FieldValidation::Strict,
        Some("Warn") => FieldValidation::Warn,
        _ => FieldValidation::Ignore,
    }
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") {
        return crate::protobuf::decode(body);
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
}

/// A resource path: group, version and what follows.
struct Location<'a> {
    group: &'a str,
    version: &'a str,
    rest: &'a [&'a str],
}

async fn resource(
    s: &S,
    user: &UserInfo,
    method: &Method,
    at: Location<'_>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = resolve(&lock(s), at.group, at.version, at.rest)?;
    let pattern = format!(
        "{method} {}{}{}",
        target.rt.storage_key(),
        if target.name.is_some() { "/{name}" } else { "" },
        target
            .sub
            .as_deref()
            .map(|x| format!("/{x}"))
            .unwrap_or_default()
    );
    if let Ok(mut r) = s.requests.lock() {
        *r.entry(pattern).or_default() += 1;
    }
    if target.rt.review {
        if *method != Method::POST || target.name.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let review = parse_body(headers, &body)?;
        let tokens = tokens(s);
        let answered = reviews::answer(
            &target.rt,
            target.namespace.as_deref(),
            review,
            user,
            &tokens,
            &lock(s),
        )?;
        return Ok(json_response(StatusCode::CREATED, &answered));
    }
    if let (Some(name), Some("token")) = (&target.name, target.sub.as_deref()) {
        if *method != Method::POST {
            return Err(ApiError::method_not_allowed());
        }
        let request = parse_body(headers, &body)?;
        let mut tokens = tokens(s);
        let ns = target.namespace.as_deref().unwrap_or("");
        let issued = reviews::token_request(ns, name, request, &mut tokens, &lock(s))?;
        return Ok(json_response(StatusCode::CREATED, &issued));
    }
    let ns = target.namespace.clone().unwrap_or_default();
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    let rt = target.rt.clone();
    let out = Output::negotiate(headers);
    let answer = |code: StatusCode, obj: Value| -> Result<Response, ApiError> {
        Ok(json_response(code, &out.one(&rt, obj)?))
    };
    match (method, &target.name) {
        (&Method::GET, None) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch(s, &target, q, out.check_watch()?).await;
            }
            list(s, &target, q, out)
        }
        (&Method::GET, Some(name)) => answer(StatusCode::OK, lock(s).get(&rt, &ns, name)?),
        (&Method::POST, None) => {
            let obj = parse_body(headers, &body)?;
            let created = lock(s).create(
                &rt,
                &ns,
                obj,
                WriteOpts {
                    fields: field_validation(q),
                    dry_run,
                },
            )?;
            answer(StatusCode::CREATED, created)
        }
        (&Method::PUT, Some(name)) => {
            let obj = parse_body(headers, &body)?;
            let updated = lock(s).update(
                &rt,
                &ns,
                name,
                obj,
                target.sub.is_some(),
                WriteOpts {
                    fields: field_validation(q),
                    dry_run,
                },
            )?;
            answer(StatusCode::OK, updated)
        }
        (&Method::PATCH, Some(name)) => {
            let (code, patched) = patch(s, &target, name, q, headers, &body)?;
            answer(code, patched)
        }
        (&Method::DELETE, Some(name)) => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&body).unwrap_or(json!({}))
            };
            let precondition = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            let deleted = lock(s).delete(&rt, &ns, name, precondition.as_deref(), dry_run)?;
            answer(StatusCode::OK, deleted)
        }
        (&Method::DELETE, None) => {
            let mut store = lock(s);
            let doomed: Vec<(String, String)> = filtered(&store, &target, q)?
                .into_iter()
                .map(|o| {
                    let field = |p: &str| {
                        o.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    (field("/metadata/namespace"), field("/metadata/name"))
                })
                .collect();
            for (ons, n) in &doomed {
                let _ = store.delete(&rt, ons, n, None, dry_run);
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The objects a list (or collection delete) selects, as stored: they are rendered (copied)
/// only once a page of them is served.
fn filtered<'a>(
    store: &'a Store,
    target: &'a Target,
    q: &HashMap<String, String>,
) -> Result<Vec<&'a Value>, ApiError> {
    let labels = q
        .get("labelSelector")
        .map(|l| LabelSelector::parse(l))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let fields = q
        .get("fieldSelector")
        .map(|f| FieldSelector::parse(f))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let rt = &target.rt;
    Ok(store
        .stored(rt, target.namespace.as_deref())
        .filter(|o| labels.as_ref().is_none_or(|l| l.matches(o)))
        .filter(|o| {
            fields.as_ref().is_none_or(|f| {
                // A stored object carries the version it was written as.
                if f.reads_type() {
                    f.matches(&Store::present(rt, o))
                } else {
                    f.matches(o)
                }
            })
        })
        .collect())
}

fn list(
    s: &S,
    target: &Target,
    q: &HashMap<String, String>,
    out: Output,
) -> Result<Response, ApiError> {
    let store = lock(s);
    let mut items = filtered(&store, target, q)?;
    let mut rv = store.rv;
    let mut start = 0usize;
    if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
        let token_rv = decoded["rv"].as_u64().unwrap_or(0);
        if token_rv < store.compacted {
            return Err(ApiError::gone(token_rv, store.compacted));
        }
        start = decoded["offset"].as_u64().unwrap_or(0) as usize;
        rv = token_rv;
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let total = items.len();
    items.drain(..start.min(total));
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit
        && items.len() > limit
    {
        items.truncate(limit);
        let next = json!({"rv": rv, "offset": start + limit});
        meta["continue"] =
            json!(base64::engine::general_purpose::STANDARD.encode(next.to_string()));
        meta["remainingItemCount"] = json!(total - start - limit);
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|o| Store::present(&target.rt, o))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &out.list(&target.rt, &items, meta)?,
    ))
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn patch(
    s: &S,
    target: &Target,
    name: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(StatusCode, Value), ApiError> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let rt = &target.rt;
    let ns = target.namespace.clone().unwrap_or_default();
    let status_only = target.sub.is_some();
    let fv = field_validation(q);
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    let mut store = lock(s);
    let current = store.get(rt, &ns, name);
    let new = match ct.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let mut p: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            strip_directives(&mut p);
            let mut doc = current?;
            json_patch::merge(&mut doc, &p);
            doc
        }
        "application/json-patch+json" => {
            let p: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut doc = current?;
            for (i, op) in p.0.into_iter().enumerate() {
                // As the apiserver's JSON patch library does, `test` of null passes on a missing
                // path (kube-rs's finalizer helper relies on it).
                if let json_patch::PatchOperation::Test(t) = &op
                    && t.value.is_null()
                    && doc.pointer(t.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(&mut doc, &json_patch::Patch(vec![op])).map_err(|e| ApiError {
                    code: 422,
                    reason: "Invalid",
                    message: format!("the server rejected our request due to an error in our request: operation {i}: {e}"),
                    details: None,
                })?;
            }
            doc
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            if !q.contains_key("fieldManager") {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply-patch content type must provide a fieldManager",
                ));
            }
            let applied = parse_body(headers, body)?;
            match current {
                Err(e) if e.code == 404 && !status_only => {
                    let mut obj = applied;
                    obj["metadata"]["name"] = json!(name);
                    let created = store.create(
                        rt,
                        &ns,
                        obj,
                        WriteOpts {
                            fields: fv,
                            dry_run,
                        },
                    )?;
                    return Ok((StatusCode::CREATED, created));
                }
                Err(e) => return Err(e),
                Ok(mut doc) => {
                    // Server-side apply, simplified: the applied configuration is merged in
                    // (fields are not removed when a manager stops applying them).
                    let mut applied = applied;
                    if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    json_patch::merge(&mut doc, &applied);
                    doc
                }
            }
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let updated = store.update(
        rt,
        &ns,
        name,
        new,
        status_only,
        WriteOpts {
            fields: fv,
            dry_run,
        },
    )?;
    Ok((StatusCode::OK, updated))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The object of a watch event as the client asked for it: the object itself, a one-row
/// Table for `kubectl get -w`, or its PartialObjectMetadata.
fn watch_object(rt: &ResourceType, object: &Value, out: Output) -> Value {
    out.one(rt, Store::present(rt, object))
        .unwrap_or_else(|e| e.to_status())
}

/// A BOOKMARK's object: only metadata, in the form the client asked for (a Table client gets
/// the bare object, as kubectl never asks for bookmarks).
fn bookmark(rt: &ResourceType, metadata: Value, out: Output) -> Value {
    let object = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata});
    match out {
        Output::Metadata(_) => watch_object(rt, &object, out),
        _ => object,
    }
}

async fn watch(
    s: &S,
    target: &Target,
    q: &HashMap<String, String>,
    out: Output,
) -> Result<Response, ApiError> {
    let labels = q
        .get("labelSelector")
        .map(|l| LabelSelector::parse(l))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let fields = q
        .get("fieldSelector")
        .map(|f| FieldSelector::parse(f))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let initial_events = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let rt = target.rt.clone();
    let key = rt.storage_key();
    let ns = target.namespace.clone();
    let matches = move |o: &Value| {
        labels.as_ref().is_none_or(|l| l.matches(o)) && fields.as_ref().is_none_or(|f| f.matches(o))
    };

    // Everything up to "now" is taken under the lock together with the subscription, so no
    // event falls between the replay and the live stream.
    let (mut first, rx, start_rv, gone) = {
        let store = lock(s);
        let rx = store.tx.subscribe();
        let requested: Option<u64> = q.get("resourceVersion").and_then(|r| r.parse().ok());
        let mut first: Vec<Bytes> = Vec::new();
        let mut gone = None;
        if initial_events || requested.is_none() || requested == Some(0) {
            // No resourceVersion (or 0, or streaming list): start with the current state.
            for o in store
                .list(&rt, ns.as_deref())
                .into_iter()
                .filter(|o| matches(o))
            {
                first.push(event_line("ADDED", &watch_object(&rt, &o, out)));
            }
            if initial_events {
                let meta = json!({"resourceVersion": store.rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}});
                first.push(event_line("BOOKMARK", &bookmark(&rt, meta, out)));
            }
        } else if let Some(rv) = requested {
            match store.events_since(rv, &key, ns.as_deref()) {
                Ok(events) => {
                    for e in events.iter().filter(|e| matches(&e.object)) {
                        first.push(event_line(e.kind, &watch_object(&rt, &e.object, out)));
                    }
                }
                Err(e) => gone = Some(e),
            }
        }
        (first, rx, store.rv, gone)
    };
    if let Some(e) = gone {
        first = vec![event_line("ERROR", &e.to_status())];
        let stream = futures::stream::iter(first.into_iter().map(Ok::<_, std::io::Error>));
        return Ok(watch_response(Body::from_stream(stream)));
    }
    let state = WatchState {
        rx,
        last_rv: start_rv,
        rt,
        key,
        ns,
        deadline: tokio::time::Instant::now() + timeout,
        bookmarks,
        out,
    };
    let live = futures::stream::unfold((state, matches), |(mut st, matches)| async move {
        loop {
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep_until(st.deadline) => return None,
                ev = st.rx.recv() => match ev {
                    Ok(Event { rv, key, namespace, kind, object }) => {
                        let object: &Value = &object;
                        if rv <= st.last_rv || key != st.key || st.ns.as_deref().is_some_and(|n| n != namespace) {
                            continue;
                        }
                        st.last_rv = rv;
                        if !matches(object) {
                            continue;
                        }
                        let line = event_line(kind, &watch_object(&st.rt, object, st.out));
                        return Some((Ok::<_, std::io::Error>(line), (st, matches)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::gone(st.last_rv, st.last_rv);
                        return Some((Ok(event_line("ERROR", &e.to_status())), (st, matches)));
                    }
                    Err(_) => return None,
                },
                _ = tick, if st.bookmarks => {
                    let bm = bookmark(&st.rt, json!({"resourceVersion": st.last_rv.to_string()}), st.out);
                    return Some((Ok(event_line("BOOKMARK", &bm)), (st, matches)));
                }
            }
        }
    });
    let initial = futures::stream::iter(first.into_iter().map(Ok::<_, std::io::Error>));
    use futures::StreamExt;
    Ok(watch_response(Body::from_stream(initial.chain(live))))
}

struct WatchState {
    rx: tokio::sync::broadcast::Receiver<Event>,
    last_rv: u64,
    rt: ResourceType,
    key: String,
    ns: Option<String>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    out: Output,
}

fn watch_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(body)
        .unwrap_or_default()
}
