//! Request handling: authentication, route and method matching, content types, bodies — in
//! the order the real server applies them (the security filter, then Spring's handler
//! mapping with its 404/405/415, then argument conversion with its 400s, then the controller).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use super::state::{Caller, Out, SetOp, State, uuid};
use crate::simulator::kit::auth::{self, AuthFailure};
use crate::simulator::kit::http::{media_type, segments_below};

/// Shared simulator state.
pub type Shared = Arc<Mutex<State>>;

/// Where every organizations route lives.
pub const PREFIX: &str = "/datastore/organizations";

/// Where the principals routes (users: list, look up, search) live.
pub const PRINCIPALS_PREFIX: &str = "/datastore/principals";

/// What a route consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Consumes {
    /// No body is read; any content type.
    Nothing,
    /// `application/json`.
    Json,
    /// `text/plain`.
    Text,
    /// `text/plain` or `application/x-www-form-urlencoded` (database rename).
    TextOrForm,
}

/// One operation, with its path variables as sent.
#[derive(Clone, Debug)]
enum Op<'a> {
    ListOrgs,
    CreateOrg,
    Metadata,
    CreateRole,
    GetOrg(&'a str),
    DeleteOrg(&'a str),
    OrgText(&'a str, &'static str),
    GetDomains(&'a str),
    Domains(&'a str, SetOp),
    Domain(&'a str, &'a str, SetOp),
    Connections(&'a str, SetOp),
    GetDatabase(&'a str),
    RenameDatabase(&'a str),
    GetMembers(&'a str),
    AddMember(&'a str, &'a str),
    RemoveMember(&'a str, &'a str),
    GetRoles(&'a str),
    GetRole(&'a str, &'a str),
    DeleteRole(&'a str, &'a str),
    RoleText(&'a str, &'a str, &'static str),
    RoleGrant(&'a str, &'a str),
    GetRoleMembers(&'a str, &'a str),
    AddRoleMember(&'a str, &'a str, &'a str),
    RemoveRoleMember(&'a str, &'a str, &'a str),
    AllUsers,
    UsersById,
    GetUser(&'a str),
    SearchUsers,
}

type Endpoint<'a> = (Method, Consumes, Op<'a>);

/// Every principals handler whose path pattern matches `segs` (below [`PRINCIPALS_PREFIX`]),
/// literal patterns before variable ones. `GET /users/search` is `getUser("search")`, as
/// Spring maps it.
fn principal_endpoints<'a>(segs: &[&'a str]) -> Vec<Endpoint<'a>> {
    use Consumes::{Json, Nothing};
    use Method as M;
    let mut out: Vec<Endpoint<'a>> = Vec::new();
    match segs {
        ["users"] => {
            out.push((M::GET, Nothing, Op::AllUsers));
            out.push((M::POST, Json, Op::UsersById));
        }
        ["users", u] => {
            if *u == "search" {
                out.push((M::POST, Json, Op::SearchUsers));
            }
            out.push((M::GET, Nothing, Op::GetUser(u)));
        }
        _ => {}
    }
    out
}

/// Every organizations handler whose path pattern matches `segs` (below [`PREFIX`]), literal
/// patterns before variable ones (as Spring ranks them).
fn endpoints<'a>(segs: &[&'a str]) -> Vec<Endpoint<'a>> {
    use Consumes::{Json, Nothing, Text, TextOrForm};
    use Method as M;
    let mut out: Vec<Endpoint<'a>> = Vec::new();
    match segs {
        [] => {
            out.push((M::GET, Nothing, Op::ListOrgs));
            out.push((M::POST, Json, Op::CreateOrg));
        }
        [one] => {
            if *one == "metadata" {
                out.push((M::GET, Nothing, Op::Metadata));
            }
            if *one == "roles" {
                out.push((M::POST, Json, Op::CreateRole));
            }
            out.push((M::GET, Nothing, Op::GetOrg(one)));
            out.push((M::DELETE, Nothing, Op::DeleteOrg(one)));
        }
        [o, "title"] => out.push((M::PUT, Text, Op::OrgText(o, "title"))),
        [o, "description"] => out.push((M::PUT, Text, Op::OrgText(o, "description"))),
        [o, "email-domains"] => {
            out.push((M::GET, Nothing, Op::GetDomains(o)));
            out.push((M::PUT, Json, Op::Domains(o, SetOp::Replace)));
            out.push((M::POST, Json, Op::Domains(o, SetOp::Add)));
            out.push((M::DELETE, Json, Op::Domains(o, SetOp::Remove)));
        }
        [o, "email-domains", d] => {
            out.push((M::PUT, Nothing, Op::Domain(o, d, SetOp::Add)));
            out.push((M::DELETE, Nothing, Op::Domain(o, d, SetOp::Remove)));
        }
        [o, "connections"] => {
            out.push((M::POST, Json, Op::Connections(o, SetOp::Add)));
            out.push((M::PUT, Json, Op::Connections(o, SetOp::Replace)));
            out.push((M::DELETE, Json, Op::Connections(o, SetOp::Remove)));
        }
        [o, "database"] => {
            out.push((M::GET, Nothing, Op::GetDatabase(o)));
            out.push((M::PATCH, TextOrForm, Op::RenameDatabase(o)));
        }
        [o, "principals", "members"] => out.push((M::GET, Nothing, Op::GetMembers(o))),
        [o, "principals", "members", u] => {
            out.push((M::PUT, Nothing, Op::AddMember(o, u)));
            out.push((M::DELETE, Nothing, Op::RemoveMember(o, u)));
        }
        [o, "principals", "roles"] => out.push((M::GET, Nothing, Op::GetRoles(o))),
        [o, "principals", "roles", r] => {
            out.push((M::GET, Nothing, Op::GetRole(o, r)));
            out.push((M::DELETE, Nothing, Op::DeleteRole(o, r)));
        }
        [o, "principals", "roles", r, "title"] => {
            out.push((M::PUT, Text, Op::RoleText(o, r, "title")));
        }
        [o, "principals", "roles", r, "description"] => {
            // PUT only: the OpenAPI spec's POST is a 405 on the real server.
            out.push((M::PUT, Text, Op::RoleText(o, r, "description")));
        }
        [o, "principals", "roles", r, "grant"] => out.push((M::PUT, Json, Op::RoleGrant(o, r))),
        [o, "principals", "roles", r, "members"] => {
            out.push((M::GET, Nothing, Op::GetRoleMembers(o, r)));
        }
        [o, "principals", "roles", r, "members", u] => {
            out.push((M::PUT, Nothing, Op::AddRoleMember(o, r, u)));
            out.push((M::DELETE, Nothing, Op::RemoveRoleMember(o, r, u)));
        }
        _ => {}
    }
    out
}

/// The single entry point for every path.
pub async fn api(
    AxumState(state): AxumState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = match state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    // Every principals route served here is a read, POSTs (search, look-up by ids) included.
    if method != Method::GET
        && method != Method::HEAD
        && segments_below(uri.path(), PRINCIPALS_PREFIX).is_none()
    {
        st.store.note_write_request();
    }
    match handle(&mut st, &method, &uri, &headers, &body) {
        Ok(Out::Json(v)) => axum::Json(v).into_response(),
        Ok(Out::Void) => axum::http::StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The caller named by the bearer JWT (signature unchecked, as the design asks).
fn authenticate(st: &mut State, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let failure = |f: AuthFailure| match f {
        AuthFailure::Expired => ApiError::token_needs_refresh("The token has expired."),
        AuthFailure::Missing => ApiError::token_error("A Bearer token is required."),
        AuthFailure::Malformed | AuthFailure::Unknown => {
            ApiError::token_error("The token is not a valid JWT.")
        }
    };
    let token = auth::bearer(headers).ok_or_else(|| failure(AuthFailure::Missing))?;
    let claims = auth::jwt_claims(token).map_err(failure)?;
    if auth::jwt_expired(&claims, auth::unix_now()) {
        return Err(failure(AuthFailure::Expired));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.len() <= 256)
        .ok_or_else(|| failure(AuthFailure::Malformed))?;
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| e.len() <= 256);
    Ok(st.caller(subject, email))
}

fn check_consumes(consumes: Consumes, headers: &HeaderMap) -> Result<(), ApiError> {
    let mt = media_type(headers);
    let ok = match consumes {
        Consumes::Nothing => true,
        Consumes::Json => mt.as_deref() == Some("application/json"),
        Consumes::Text => mt.as_deref() == Some("text/plain"),
        Consumes::TextOrForm => matches!(
            mt.as_deref(),
            Some("text/plain") | Some("application/x-www-form-urlencoded")
        ),
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::unsupported_media_type(match consumes {
        Consumes::Json => "application/json",
        Consumes::TextOrForm => "text/plain, application/x-www-form-urlencoded",
        _ => "text/plain",
    }))
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::illegal_argument(
            "Required request body is missing",
        ));
    }
    // The message says where, never what: a body may hold anything.
    serde_json::from_slice(body).map_err(|e| {
        ApiError::illegal_argument(format!(
            "JSON parse error: {:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn text_body(body: &[u8]) -> Result<String, ApiError> {
    if body.is_empty() {
        return Err(ApiError::illegal_argument(
            "Required request body is missing",
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::illegal_argument("The request body is not valid UTF-8"))
}

fn string_list(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let v = json_body(body)?;
    let Some(items) = v.as_array() else {
        return Err(ApiError::illegal_argument(
            "JSON parse error: expected an array of strings",
        ));
    };
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let s = i.as_str().ok_or_else(|| {
            ApiError::illegal_argument("JSON parse error: expected an array of strings")
        })?;
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

fn handle(
    st: &mut State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Out, ApiError> {
    let caller = authenticate(st, headers)?;
    let (segs, principals) = match segments_below(uri.path(), PREFIX) {
        Some(segs) => (segs, false),
        None => (
            segments_below(uri.path(), PRINCIPALS_PREFIX).ok_or_else(ApiError::no_handler)?,
            true,
        ),
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let candidates = if principals {
        principal_endpoints(&segs)
    } else {
        endpoints(&segs)
    };
    if candidates.is_empty() {
        return Err(ApiError::no_handler());
    }
    // HEAD is served by GET handlers, as in Spring.
    let wanted = if *method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    let Some((_, consumes, op)) = candidates.iter().find(|(m, _, _)| *m == wanted).cloned() else {
        let mut allow: Vec<&str> = Vec::new();
        for (m, _, _) in &candidates {
            if !allow.contains(&m.as_str()) {
                allow.push(m.as_str());
            }
        }
        return Err(ApiError::method_not_allowed(allow.join(", ")));
    };
    check_consumes(consumes, headers)?;
    run(st, &caller, op, body)
}

fn run(st: &mut State, caller: &Caller, op: Op<'_>, body: &[u8]) -> Result<Out, ApiError> {
    match op {
        Op::ListOrgs => st.list_orgs(caller),
        Op::Metadata => st.metadata(caller),
        Op::CreateOrg => {
            let v = json_body(body)?;
            st.create_org(caller, &v)
                .map(|id| Out::Json(Value::String(id)))
        }
        Op::CreateRole => {
            let v = json_body(body)?;
            st.create_role(caller, &v)
                .map(|id| Out::Json(Value::String(id)))
        }
        Op::GetOrg(o) => st.get_org(caller, &uuid(o)?),
        Op::DeleteOrg(o) => st.delete_org(caller, &uuid(o)?),
        Op::OrgText(o, field) => {
            let o = uuid(o)?;
            let text = text_body(body)?;
            st.set_org_text(caller, &o, field, &text)
        }
        Op::GetDomains(o) => st.get_domains(caller, &uuid(o)?),
        Op::Domains(o, set_op) => {
            let o = uuid(o)?;
            let items = string_list(body)?;
            st.change_set(caller, &o, "emailDomains", set_op, &items)
        }
        Op::Domain(o, d, set_op) => {
            let o = uuid(o)?;
            st.change_set(caller, &o, "emailDomains", set_op, &[d.to_string()])
        }
        Op::Connections(o, set_op) => {
            let o = uuid(o)?;
            let items = string_list(body)?;
            st.change_set(caller, &o, "connections", set_op, &items)
        }
        Op::GetDatabase(o) => st.get_database(caller, &uuid(o)?),
        Op::RenameDatabase(o) => {
            let o = uuid(o)?;
            let name = text_body(body)?;
            st.rename_database(caller, &o, name.trim())
        }
        Op::GetMembers(o) => st.get_members(caller, &uuid(o)?),
        Op::AddMember(o, u) => st.add_member(caller, &uuid(o)?, u),
        Op::RemoveMember(o, u) => st.remove_member(caller, &uuid(o)?, u),
        Op::GetRoles(o) => st.get_roles(caller, &uuid(o)?),
        Op::GetRole(o, r) => st.get_role(caller, &uuid(o)?, &uuid(r)?),
        Op::DeleteRole(o, r) => st.delete_role(caller, &uuid(o)?, &uuid(r)?),
        Op::RoleText(o, r, field) => {
            let (o, r) = (uuid(o)?, uuid(r)?);
            let text = text_body(body)?;
            st.set_role_text(caller, &o, &r, field, &text)
        }
        Op::RoleGrant(o, r) => {
            let (o, r) = (uuid(o)?, uuid(r)?);
            let grant = json_body(body)?;
            st.set_role_grant(caller, &o, &r, &grant)
        }
        Op::GetRoleMembers(o, r) => st.get_role_members(caller, &uuid(o)?, &uuid(r)?),
        Op::AddRoleMember(o, r, u) => st.add_role_member(caller, &uuid(o)?, &uuid(r)?, u),
        Op::RemoveRoleMember(o, r, u) => st.remove_role_member(caller, &uuid(o)?, &uuid(r)?, u),
        // The server asks for nothing beyond a valid JWT on these (any user may look anyone
        // up), so the caller plays no part.
        Op::AllUsers => st.all_users(),
        Op::UsersById => st.users_by_id(&json_body(body)?),
        Op::GetUser(u) => st.get_user(u),
        Op::SearchUsers => st.search_users(&json_body(body)?),
    }
}
