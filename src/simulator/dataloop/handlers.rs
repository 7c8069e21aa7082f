//! Request handling: the body (read up to a limit, JSON or form), authentication, then the
//! route. Everything below [`API_PREFIX`] needs a bearer JWT, as at the gate, so an unknown
//! path without a token is a 401 too; `POST /token` (at the root, where dtlpy sends its
//! logins) needs none.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::state::{Answer, Caller, Out, State};
use crate::simulator::kit::auth;
use crate::simulator::kit::http::{media_type, query_pairs, segments_below};

/// Shared simulator state.
pub type Shared = Arc<Mutex<State>>;

/// Where the REST API lives (dtlpy's environment key is `<host>/api/v1`).
pub const API_PREFIX: &str = "/api/v1";

/// dtlpy's login endpoint, at the gate's root (`{gate_url}/token?default`).
pub const TOKEN_PATH: &str = "/token";

/// Largest body the simulator reads; larger ones are a 413.
pub const MAX_BODY: usize = 4 << 20;

/// The single entry point for every path.
pub async fn api(AxumState(state): AxumState<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::too_large(format!(
                "The request body is larger than {MAX_BODY} bytes or could not be read"
            ))
            .into_response();
        }
    };
    let mut st = match state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    if counts_as_write(&parts.method, &parts.uri) {
        st.store.note_write_request();
    }
    match handle(&mut st, &parts.method, &parts.uri, &parts.headers, &bytes) {
        Ok(Out::Json(v)) => axum::Json(v).into_response(),
        Ok(Out::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Whether a request is a mutating call of the vendor API: every method but GET below
/// [`API_PREFIX`], except the POSTs that only read (the cache state poll, dataset queries).
/// Logins (`/token`) are not.
fn counts_as_write(method: &Method, uri: &Uri) -> bool {
    if *method == Method::GET || *method == Method::HEAD {
        return false;
    }
    let Some(segs) = segments_below(uri.path(), API_PREFIX) else {
        return false;
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mode_get = query_pairs(uri)
        .iter()
        .any(|(k, v)| k == "mode" && v == "get");
    !matches!(
        (segs.as_slice(), mode_get),
        (["services", "fs-cache"], true) | (["datasets", "query"], _)
    )
}

/// A request body as a JSON value: JSON (`application/json`, `*+json`, or no content type),
/// or a form (`application/x-www-form-urlencoded`, as dtlpy sends `POST /projects`) read as an
/// object of strings. An empty body is `{}`.
fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    let mt = media_type(headers);
    if mt.as_deref() == Some("application/x-www-form-urlencoded") {
        let mut m = Map::new();
        for (k, v) in url::form_urlencoded::parse(bytes) {
            m.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        return Ok(Value::Object(m));
    }
    let json_like = match mt.as_deref() {
        None => true,
        Some(t) => t == "application/json" || t.ends_with("+json"),
    };
    if !json_like {
        return Err(ApiError::unsupported_media_type(
            "Send application/json (or a form where the route takes one)",
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    // The message says where, never what: a body may hold a credential.
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "Invalid JSON body ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn route_not_found() -> ApiError {
    ApiError::not_found("Route not found")
}

fn handle(st: &mut State, method: &Method, uri: &Uri, headers: &HeaderMap, bytes: &[u8]) -> Answer {
    let path = uri.path();
    if path == TOKEN_PATH || path == "/token/" {
        if *method != Method::POST {
            return Err(route_not_found());
        }
        let body = parse_body(headers, bytes)?;
        return st.token_grant(&body);
    }
    let segs = segments_below(path, API_PREFIX).ok_or_else(route_not_found)?;
    let caller = st.authenticate(auth::bearer(headers))?;
    let body = if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        parse_body(headers, bytes)?
    } else {
        Value::Null
    };
    let query = query_pairs(uri);
    let flag = |k: &str| query.iter().any(|(q, v)| q == k && v == "true");
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    route(st, &caller, method, &segs, &body, &query, flag("system"))
}

#[allow(clippy::too_many_lines)]
fn route(
    st: &mut State,
    c: &Caller,
    method: &Method,
    segs: &[&str],
    body: &Value,
    query: &[(String, String)],
    system: bool,
) -> Answer {
    use Method as M;
    let m = method.clone();
    match (m, segs) {
        // users and keys
        (M::GET, ["users", "me"]) => st.me(c),
        (M::POST, ["users", "me"]) => st.update_me(c, body),
        (M::POST, ["apiKeys"]) => st.create_api_key(c, body),

        // organizations
        (M::GET, ["orgs"]) => st.list_orgs(c),
        (M::POST, ["orgs"]) => Err(ApiError::forbidden(
            "Organizations are created by Dataloop; ask support for one, then adopt it by id",
        )),
        (M::GET, ["orgs", o]) => st.get_org(c, o),
        (M::PATCH, ["orgs", o]) => st.rename_org(c, o, body),
        (M::DELETE, ["orgs", o]) => {
            st.org_value(o)?;
            Err(ApiError::new(500, "Organizations cannot be deleted"))
        }
        (M::PATCH, ["orgs", o, "plan"]) => st.set_plan(c, o, body),
        (M::GET, ["orgs", o, "members"]) => st.list_members(c, o),
        (M::POST, ["orgs", o, "members"]) => st.add_members(c, o, body),
        (M::PATCH, ["orgs", o, "members"]) => st.update_member(c, o, body),
        (M::DELETE, ["orgs", o, "members", mid]) => st.remove_member(c, o, mid),
        (M::GET, ["orgs", o, "groups"]) => st.list_groups(c, o),
        (M::GET, ["orgs", o, "integrations"]) => st.list_integrations(c, o),
        (M::POST, ["orgs", o, "integrations"]) => st.create_integration(c, o, body),
        (M::PATCH, ["orgs", o, "integrations"]) => st.update_integration(c, o, body),
        (M::GET, ["orgs", o, "integrations", i]) => st.get_integration(c, o, i),
        (M::DELETE, ["orgs", o, "integrations", i]) => st.delete_integration(c, o, i),
        (M::GET, ["orgs", o, "availableIntegrations"]) => st.available_integrations(c, o),
        (M::GET, ["orgs", o, "projects"]) => st.list_org_projects(c, o),

        // cache (dtlpy's cache_action)
        (M::POST, ["services", service @ ("fs-cache" | "cache")]) => {
            let mode = query
                .iter()
                .find(|(k, _)| k == "mode")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            st.cache(c, service, mode, body)
        }

        // groups
        (M::POST, ["groups"]) => st.create_group(c, body),
        (M::GET, ["groups", g]) => st.get_group(c, g),
        (M::PATCH, ["groups", g]) => st.update_group(c, g, body),
        (M::DELETE, ["groups", g]) => st.delete_group(c, g),
        (M::GET, ["groups", g, "members"]) => st.list_group_members(c, g),
        (M::POST, ["groups", g, "members"]) => st.add_group_member(c, g, body),
        (M::DELETE, ["groups", g, "members", u]) => st.remove_group_member(c, g, u),
        (M::GET, ["groups", g, "subgroups"]) => st.list_subgroups(c, g),
        (M::POST, ["groups", g, "subgroups"]) => st.add_subgroup(c, g, body),
        (M::DELETE, ["groups", g, "subgroups", s]) => st.remove_subgroup(c, g, s),
        (M::PATCH, ["groups", g, "owner"]) => st.set_group_owner(c, g, body),

        // projects
        (M::GET, ["projects"]) => st.list_projects(c),
        (M::POST, ["projects"]) => st.create_project(c, body),
        (M::GET, ["projects", p]) => st.get_project(c, p),
        (M::PATCH, ["projects", p]) => st.update_project(c, p, body),
        (M::DELETE, ["projects", p]) => st.delete_project(c, p),
        (M::GET, ["projects", name, "name"]) => st.projects_by_name(c, name),
        (M::PATCH, ["projects", p, "org"]) => st.move_project(c, p, body),
        (M::GET, ["projects", p, "members"]) => st.list_project_members(c, p),
        (M::POST, ["projects", p, "members", e]) => st.add_project_member(c, p, e, body),
        (M::PATCH, ["projects", p, "members", e]) => st.update_project_member(c, p, e, body),
        (M::DELETE, ["projects", p, "members", e]) => st.remove_project_member(c, p, e),
        (M::GET, ["projects", p, "subgroups"]) => st.list_project_groups(c, p),
        (M::POST, ["projects", p, "subgroups", g]) => st.set_project_group(c, p, g, body, true),
        (M::PATCH, ["projects", p, "subgroups", g]) => st.set_project_group(c, p, g, body, false),
        (M::DELETE, ["projects", p, "subgroups", g]) => st.remove_project_group(c, p, g),

        // drivers
        (M::GET, ["drivers"]) => st.list_drivers(c, query),
        (M::POST, ["drivers"]) => st.create_driver(c, body),
        (M::GET, ["drivers", d]) => st.get_driver(c, d),
        (M::PATCH, ["drivers", d]) => st.update_driver(c, d, body),
        (M::DELETE, ["drivers", d]) => st.delete_driver(c, d),

        // ontologies
        (M::GET, ["ontologies"]) => st.list_ontologies(c, query),
        (M::POST, ["ontologies"]) => st.create_ontology(c, body),
        (M::GET, ["ontologies", o]) => st.get_ontology(c, o),
        (M::PUT, ["ontologies", o]) => st.put_ontology(c, o, body, system),
        (M::DELETE, ["ontologies", o]) => st.delete_ontology(c, o),
        (M::PATCH, ["ontologies", o, "labels"]) => st.patch_labels(c, o, body, false),
        (M::PATCH, ["ontologies", o, "addLabels"]) => st.patch_labels(c, o, body, true),

        // recipes
        (M::GET, ["recipes"]) => st.list_recipes(c, query),
        (M::POST, ["recipes"]) => st.create_recipe(c, body),
        (M::GET, ["recipes", r]) => st.get_recipe(c, r),
        (M::PATCH, ["recipes", r]) => st.update_recipe(c, r, body, system),
        (M::DELETE, ["recipes", r]) => st.delete_recipe(c, r),
        (M::POST, ["recipes", r, "clone"]) => st.clone_recipe(c, r, body),

        // datasets
        (M::POST, ["datasets"]) => st.create_dataset(c, body),
        (M::POST, ["datasets", "query"]) => st.query_datasets(c, body),
        (M::GET, ["datasets", d]) => st.get_dataset(c, d),
        (M::PATCH, ["datasets", d]) => st.update_dataset(c, d, body, system),
        (M::DELETE, ["datasets", d]) => st.delete_dataset(c, d),

        _ => Err(route_not_found()),
    }
}
