//! Request handling: body decoding, auth, scoping, lists, and per-endpoint logic.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::db::{Db, Rec, Session, id_in, now_iso};
use super::error::ApiError;
use super::kinds::{Api, computed_fields, served};
use crate::simulator::kit::auth::{self, AuthFailure};
use crate::simulator::kit::paging::{self, PageError};

/// Shared simulator state.
pub type Shared = Arc<Mutex<Db>>;

const MAX_TOKEN_LIFETIME: u64 = 583_200;
const IGNORED_PARAMS: &[&str] = &[
    "page",
    "page_size",
    "ordering",
    "include_total",
    "sideload",
    "content.schema_id",
    "include_membership_organizations",
    "fields",
    "fields!",
];

/// The single entry point under `/api/v1`.
pub async fn api(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .trim_start_matches("/api/v1")
        .trim_matches('/')
        .to_string();
    let segments: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = match decode_body(&headers, &body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut db = match state.lock() {
        Ok(db) => db,
        Err(poisoned) => poisoned.into_inner(),
    };
    if method != Method::GET && segments.first() != Some(&"auth") {
        db.note_write_request();
    }
    let req = Req {
        method: &method,
        segments: &segments,
        query: &query,
        headers: &headers,
        body,
    };
    match route(&mut db, &req) {
        Ok((status, value)) => {
            if status == StatusCode::NO_CONTENT {
                status.into_response()
            } else {
                (status, axum::Json(value)).into_response()
            }
        }
        Err(e) => e.into_response(),
    }
}

struct Req<'a> {
    method: &'a Method,
    segments: &'a [&'a str],
    query: &'a [(String, String)],
    headers: &'a HeaderMap,
    body: Value,
}

type Answer = Result<(StatusCode, Value), ApiError>;

fn ok(v: Value) -> Answer {
    Ok((StatusCode::OK, v))
}

fn created(v: Value) -> Answer {
    Ok((StatusCode::CREATED, v))
}

fn route(db: &mut Db, req: &Req<'_>) -> Answer {
    let m = req.method;
    match req.segments {
        [] if m == Method::GET => ok(index(db)),
        ["auth", "login"] if m == Method::POST => login(db, &req.body),
        ["organizations", "create"] if m == Method::POST => create_org(db, &req.body),
        _ => {
            let session = authenticate(db, req.headers)?;
            authed(db, req, &session)
        }
    }
}

fn authed(db: &mut Db, req: &Req<'_>, token: &Session) -> Answer {
    let m = req.method;
    let get = m == Method::GET;
    let write = m == Method::PATCH || m == Method::PUT;
    match req.segments {
        ["auth", "logout"] if m == Method::POST => {
            if let Some(key) = token_of(req.headers) {
                db.tokens.revoke(key);
            }
            ok(json!({"detail": "Successfully logged out."}))
        }
        ["auth", "user"] if get => db
            .render("users", token.user)
            .map(ok)
            .unwrap_or_else(|| Err(ApiError::not_found())),
        ["auth", "membership_token"] if m == Method::POST => membership_token(db, token, &req.body),
        ["organizations"] if get => organizations(db, req, token),
        ["organizations", id] if get => {
            let id = parse_id(id)?;
            visible_org(db, token, id)?;
            db.render("organizations", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
        ["organizations", id, "billing_history"] if get => {
            let id = parse_id(id)?;
            visible_org(db, token, id)?;
            db.usage_reads += 1;
            let entries = db.billing_history.get(&id).cloned().unwrap_or_else(|| {
                vec![billing_period(
                    &jiff::Timestamp::now().to_string()[..4],
                    json!({}),
                )]
            });
            let mut page = paginate(
                db,
                req,
                &format!("organizations/{id}/billing_history"),
                &entries,
                Value::clone,
            )?;
            page.1["totals"] = billing_totals(&entries);
            page.1["updated_at"] = json!(jiff::Timestamp::now().to_string()[..10]);
            Ok(page)
        }
        ["organizations", id, "limits"] if get => {
            visible_org(db, token, parse_id(id)?)?;
            db.usage_reads += 1;
            ok(
                json!({"email_limits": {"count_today": 0, "count_today_notification": 0, "count_total": 0,
                "email_per_day_limit": 1000, "email_per_day_limit_notification": 1000,
                "email_total_limit": 100000, "last_sent_at": null, "last_sent_at_notification": null}}),
            )
        }
        ["organizations", id] if write => patch_org(db, token, parse_id(id)?, &req.body),
        ["organization_groups"] if get => {
            let g = db.group_of(token.org);
            let items: Vec<Value> = db
                .org_groups
                .iter()
                .filter(|(id, _)| Some(**id) == g)
                .map(|(_, v)| v.clone())
                .collect();
            paginate(db, req, "organization_groups", &items, Value::clone)
        }
        ["organization_groups", g] if get => {
            let g = parse_id(g)?;
            if db.group_of(token.org) != Some(g) {
                return Err(ApiError::not_found());
            }
            db.org_groups
                .get(&g)
                .cloned()
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
        ["organization_groups", g, rest @ ..] => group_views(db, req, token, parse_id(g)?, rest),
        ["groups"] if get => list(db, req, "groups", db.in_org("groups", token.org), 0),
        ["groups", id] if get => {
            let id = parse_id(id)?;
            scoped(db, "groups", id, token.org)?;
            db.render("groups", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
        ["users"] if get => {
            let members: HashSet<u64> = member_user_ids(db, token.org).into_iter().collect();
            let recs = if members.is_empty() {
                db.in_org("users", token.org)
            } else {
                db.all("users")
                    .into_iter()
                    .filter(|r| r.org == token.org || members.contains(&r.id))
                    .collect()
            };
            list(db, req, "users", recs, 0)
        }
        ["users"] if m == Method::POST => create_user(db, token, &req.body),
        ["users", id] if get || write || m == Method::DELETE => {
            user_detail(db, req, token, parse_id(id)?)
        }
        [kind] if get && readable(kind) => list(db, req, kind, db.in_org(kind, token.org), 0),
        [kind] if m == Method::POST && served(kind, Api::Crud).is_some() => {
            require_writer(db, token)?;
            created(db.create_object(kind, token.org, req.body.clone())?)
        }
        [kind, id] if readable(kind) => {
            let id = parse_id(id)?;
            scoped(db, kind, id, token.org)?;
            let crud = served(kind, Api::Crud).is_some();
            match *m {
                Method::GET => db
                    .render(kind, id)
                    .map(ok)
                    .unwrap_or_else(|| Err(ApiError::not_found())),
                Method::PATCH | Method::PUT if crud => {
                    require_writer(db, token)?;
                    ok(db.update_object(kind, id, token.org, req.body.clone())?)
                }
                Method::DELETE if crud => {
                    require_writer(db, token)?;
                    db.delete_object(kind, id)?;
                    Ok((StatusCode::NO_CONTENT, Value::Null))
                }
                _ if crud => Err(ApiError::method_not_allowed()),
                // Read-only kinds have no other routes.
                _ => Err(ApiError::not_found()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Kinds whose lists and objects the generic routes serve.
fn readable(kind: &str) -> bool {
    served(kind, Api::Crud).is_some() || served(kind, Api::ReadOnly).is_some()
}

fn index(db: &Db) -> Value {
    let mut m = Map::new();
    for k in [
        "organizations",
        "workspaces",
        "schemas",
        "connectors",
        "inboxes",
        "queues",
        "documents",
        "users",
        "groups",
        "annotations",
        "pages",
        "hooks",
        "email_templates",
        "labels",
        "rules",
    ] {
        m.insert(k.into(), json!(format!("{}/{k}", db.base)));
    }
    Value::Object(m)
}

fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        let mut out = Map::new();
        for (k, mut vs) in map {
            let list_field = matches!(
                k.as_str(),
                "queues" | "groups" | "events" | "run_after" | "hooks" | "sideload"
            );
            let value = if vs.len() > 1 || (list_field && !vs[0].trim_start().starts_with('[')) {
                json!(vs)
            } else {
                let v = vs.remove(0);
                let t = v.trim_start();
                if t.starts_with('{') || t.starts_with('[') {
                    serde_json::from_str(&v).unwrap_or(Value::String(v))
                } else {
                    Value::String(v)
                }
            };
            out.insert(k, value);
        }
        return Ok(Value::Object(out));
    }
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: 400,
        body: json!({"detail": format!("JSON parse error - {e}")}),
    })
}

/// The key of `Authorization: Bearer <key>` or `Token <key>` (any case), as Rossum takes both.
fn token_of(headers: &HeaderMap) -> Option<&str> {
    auth::scheme_token(headers, "bearer").or_else(|| auth::scheme_token(headers, "token"))
}

fn authenticate(db: &mut Db, headers: &HeaderMap) -> Result<Session, ApiError> {
    let session = *auth::authenticate(token_of(headers), &mut db.tokens, |f| {
        ApiError::unauthorized(match f {
            AuthFailure::Missing => "Authentication credentials were not provided.",
            AuthFailure::Expired => "Token has expired.",
            AuthFailure::Unknown | AuthFailure::Malformed => "Invalid token.",
        })
    })?;
    let active = db
        .get("users", session.user)
        .is_some_and(|u| u.value["is_active"] == json!(true));
    if !active {
        return Err(ApiError::unauthorized("User inactive or deleted."));
    }
    Ok(session)
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn login(db: &mut Db, body: &Value) -> Answer {
    let (Some(username), Some(password)) =
        (str_field(body, "username"), str_field(body, "password"))
    else {
        return Err(ApiError::fields(
            &["username", "password"],
            "This field is required.",
        ));
    };
    let user = db
        .by_field("users", "username", username)
        .into_iter()
        .find(|u| u.value["is_active"] == json!(true))
        .map(|u| (u.id, u.org));
    let Some((uid, org)) =
        user.filter(|(uid, _)| db.passwords.get(uid).map(String::as_str) == Some(password))
    else {
        return Err(ApiError::unauthorized(
            "Unable to log in with provided credentials.",
        ));
    };
    let lifetime = body
        .get("max_token_lifetime_s")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(MAX_TOKEN_LIFETIME)
        .min(MAX_TOKEN_LIFETIME);
    let session = Session { user: uid, org };
    let key = db
        .tokens
        .issue(session, Some(Duration::from_secs(lifetime)));
    db.logins += 1;
    // The vendor's own bookkeeping, not a write.
    db.update_uncounted("users", uid, |u| u["last_login"] = json!(now_iso()));
    let domain = db.get("organizations", org).and_then(|o| {
        o.value["domain"]
            .as_str()
            .map(|d| format!("{d}.rossum.app"))
    });
    ok(json!({"key": key, "domain": domain}))
}

fn membership_token(db: &mut Db, token: &Session, body: &Value) -> Answer {
    let Some(org) = str_field(body, "organization").and_then(id_in) else {
        return Err(ApiError::field("organization", "This field is required."));
    };
    if db.get("organizations", org).is_none() {
        return Err(ApiError::field(
            "organization",
            "Invalid hyperlink - Object does not exist.",
        ));
    }
    if !db.can_reach(token.user, org) {
        return Err(ApiError::forbidden(
            "You do not have permission to access this organization.",
        ));
    }
    let session = Session {
        user: token.user,
        org,
    };
    let key = db
        .tokens
        .issue(session, Some(Duration::from_secs(MAX_TOKEN_LIFETIME)));
    ok(json!({"key": key, "organization": db.url("organizations", org)}))
}

fn create_org(db: &mut Db, body: &Value) -> Answer {
    let required = [
        "template_name",
        "organization_name",
        "user_fullname",
        "user_email",
        "create_key",
    ];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|f| str_field(body, f).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::fields(&missing, "This field is required."));
    }
    let key = str_field(body, "create_key").unwrap_or_default();
    let Some(&group) = db.create_keys.get(key) else {
        return Err(ApiError::forbidden("Invalid create_key."));
    };
    let template = str_field(body, "template_name").unwrap_or_default();
    const TEMPLATES: &[&str] = &[
        "Empty Organization Template",
        "CZ Demo Template",
        "Tax Invoice EU Demo Template",
        "Tax Invoice US Demo Template",
        "Tax Invoice UK Demo Template",
        "Delivery Note Demo Template",
        "Tax Invoice CN Demo Template",
        "Certificates of Analysis Demo Template",
    ];
    if !TEMPLATES.contains(&template) {
        return Err(ApiError::field(
            "template_name",
            &format!("\"{template}\" is not a valid choice."),
        ));
    }
    let email = str_field(body, "user_email").unwrap_or_default();
    if !email.contains('@') {
        return Err(ApiError::field(
            "user_email",
            "Enter a valid email address.",
        ));
    }
    let password = str_field(body, "user_password")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", fastrand::u64(..)));
    let id = db.create_org(
        group,
        str_field(body, "organization_name").unwrap_or_default(),
        json!({}),
        Some((
            email,
            str_field(body, "user_fullname").unwrap_or_default(),
            &password,
        )),
    )?;
    created(json!({"organization": db.render("organizations", id)}))
}

/// `GET organizations`: those the token's user reaches (a group admin: every organization of
/// the group). The operator looks its organizations up by name here, once per organization it
/// creates, so a name filter runs before the (costlier) reach check: both are plain filters,
/// and the filter reads the field the first reachable organization has, as [`list`] decides.
fn organizations(db: &Db, req: &Req<'_>, token: &Session) -> Answer {
    let reach: Box<dyn Fn(&Rec<'_>) -> bool + '_> = if db.is_group_admin(token.user) {
        let group = db.get("users", token.user).and_then(|u| db.group_of(u.org));
        Box::new(move |r: &Rec<'_>| {
            db.get("organizations", r.org).is_some() && db.group_of(r.org) == group
        })
    } else {
        let orgs: HashSet<u64> = db.reachable_orgs(token.user).into_iter().collect();
        Box::new(move |r: &Rec<'_>| orgs.contains(&r.org))
    };
    let (filters, _) = list_params(req.query);
    let first = filters
        .first()
        .filter(|(k, _)| !computed_filter("organizations", k));
    let field = first.and_then(|(k, _)| {
        let first_reached = db.iter("organizations").find(|r| reach(r))?;
        filter_field(first_reached.value, k)
    });
    let (Some(&(_, wants)), Some(field)) = (first, field) else {
        let recs = db.iter("organizations").filter(|r| reach(r)).collect();
        return list(db, req, "organizations", recs, 0);
    };
    let wants: Vec<&str> = wants.split(',').collect();
    let recs = db
        .iter("organizations")
        .filter(|r| filter_matches(r.value, &field, &wants))
        .filter(|r| reach(r))
        .collect();
    list(db, req, "organizations", recs, 1)
}

fn visible_org(db: &Db, token: &Session, org: u64) -> Result<(), ApiError> {
    if db.can_reach(token.user, org) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn patch_org(db: &mut Db, token: &Session, id: u64, body: &Value) -> Answer {
    visible_org(db, token, id)?;
    if token.org != id && !db.is_group_admin(token.user) {
        return Err(ApiError::forbidden(
            "You do not have permission to perform this action.",
        ));
    }
    if let Some(m) = body.get("metadata")
        && m.to_string().len() > 4096
    {
        return Err(ApiError::field(
            "metadata",
            "Metadata must not exceed 4 kB.",
        ));
    }
    db.update("organizations", id, |org| {
        for k in ["name", "ui_settings", "metadata", "settings", "sandbox"] {
            if let Some(v) = body.get(k) {
                org[k] = v.clone();
            }
        }
        org["modified_at"] = json!(now_iso());
    })?;
    db.render("organizations", id)
        .map(ok)
        .unwrap_or_else(|| Err(ApiError::not_found()))
}

fn scoped(db: &Db, kind: &str, id: u64, org: u64) -> Result<(), ApiError> {
    match db.get(kind, id) {
        Some(r) if r.org == org => Ok(()),
        _ => Err(ApiError::not_found()),
    }
}

fn require_writer(db: &Db, token: &Session) -> Result<(), ApiError> {
    let roles = db.user_roles(token.user);
    if roles
        .iter()
        .any(|r| r == "admin" || r == "organization_group_admin" || r == "manager")
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "You do not have permission to perform this action.",
        ))
    }
}

fn member_user_ids(db: &Db, org: u64) -> Vec<u64> {
    db.all("memberships")
        .into_iter()
        .filter(|m| m.value["organization"].as_str().and_then(id_in) == Some(org))
        .filter_map(|m| m.value["user"].as_str().and_then(id_in))
        .collect()
}

fn create_user(db: &mut Db, token: &Session, body: &Value) -> Answer {
    require_writer(db, token)?;
    let Some(org) = str_field(body, "organization").and_then(id_in) else {
        return Err(ApiError::field("organization", "This field is required."));
    };
    if !db.can_reach(token.user, org) {
        return Err(ApiError::field(
            "organization",
            "Invalid hyperlink - Object does not exist.",
        ));
    }
    let Some(username) = str_field(body, "username") else {
        return Err(ApiError::field("username", "This field is required."));
    };
    let mut roles = Vec::new();
    for g in body
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = g
            .as_str()
            .and_then(id_in)
            .and_then(|gid| db.get("groups", gid))
            .filter(|r| r.org == org)
            .and_then(|r| r.value["name"].as_str().map(str::to_string));
        match role {
            Some(r) if r == "organization_group_admin" => {
                return Err(ApiError::field(
                    "groups",
                    "Organization group admin cannot be assigned through the API.",
                ));
            }
            Some(r) => roles.push(r),
            None => {
                return Err(ApiError::field(
                    "groups",
                    "Invalid hyperlink - Object does not exist.",
                ));
            }
        }
    }
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let id = db.insert_user(
        org,
        username,
        str_field(body, "email").unwrap_or(""),
        str_field(body, "first_name").unwrap_or(""),
        str_field(body, "last_name").unwrap_or(""),
        &roles,
        str_field(body, "password").unwrap_or(""),
    )?;
    // The rest of the same create: not a second write.
    db.update_uncounted("users", id, |u| {
        if let Some(q) = body.get("queues").filter(|q| q.is_array()) {
            u["queues"] = q.clone();
        }
        for k in ["metadata", "ui_settings"] {
            if let Some(v) = body.get(k).filter(|v| v.is_object()) {
                u[k] = v.clone();
            }
        }
    });
    created(db.render("users", id).unwrap_or(Value::Null))
}

fn user_detail(db: &mut Db, req: &Req<'_>, token: &Session, id: u64) -> Answer {
    let visible = db.get("users", id).is_some_and(|u| u.org == token.org)
        || member_user_ids(db, token.org).contains(&id);
    if !visible {
        return Err(ApiError::not_found());
    }
    match *req.method {
        Method::GET => db
            .render("users", id)
            .map(ok)
            .unwrap_or_else(|| Err(ApiError::not_found())),
        Method::DELETE => {
            require_writer(db, token)?;
            if db.is_group_admin(id) {
                return Err(ApiError::forbidden(
                    "Organization group admin cannot be deleted.",
                ));
            }
            db.soft_delete("users", id, |u| {
                u["is_active"] = json!(false);
                u["deleted"] = json!(true);
            });
            db.tokens.retain(|s| s.user != id);
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        _ => {
            require_writer(db, token)?;
            let user_org = db.get("users", id).map(|u| u.org).unwrap_or(token.org);
            if let Some(groups) = req.body.get("groups").and_then(Value::as_array) {
                for g in groups {
                    let ok = g
                        .as_str()
                        .and_then(id_in)
                        .and_then(|gid| db.get("groups", gid))
                        .is_some_and(|r| {
                            r.org == user_org && r.value["name"] != "organization_group_admin"
                        });
                    if !ok {
                        return Err(ApiError::field(
                            "groups",
                            "Invalid hyperlink - Object does not exist.",
                        ));
                    }
                }
            }
            db.update("users", id, |u| {
                for k in [
                    "first_name",
                    "last_name",
                    "groups",
                    "queues",
                    "is_active",
                    "ui_settings",
                    "metadata",
                    "phone_number",
                ] {
                    if let Some(v) = req.body.get(k) {
                        u[k] = v.clone();
                    }
                }
            })?;
            db.render("users", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
    }
}

fn group_views(db: &mut Db, req: &Req<'_>, token: &Session, g: u64, rest: &[&str]) -> Answer {
    if db.group_of(token.org) != Some(g) || !db.is_group_admin(token.user) {
        return Err(ApiError::forbidden(
            "You do not have permission to perform this action.",
        ));
    }
    let base = format!("{}/organization_groups/{g}", db.base);
    let in_group = |db: &Db, org: u64| db.group_of(org) == Some(g);
    let m = req.method;
    match rest {
        ["memberships"] if *m == Method::GET => {
            let items: Vec<Value> = db
                .all("memberships")
                .into_iter()
                .map(|r| r.value.clone())
                .collect();
            let items = filter_items(items, req.query);
            paginate(
                db,
                req,
                &format!("organization_groups/{g}/memberships"),
                &items,
                Value::clone,
            )
        }
        ["memberships"] if *m == Method::POST => {
            let user = str_field(&req.body, "user").and_then(id_in);
            let org = str_field(&req.body, "organization").and_then(id_in);
            let (Some(user), Some(org)) = (user, org) else {
                return Err(ApiError::fields(
                    &["user", "organization"],
                    "This field is required.",
                ));
            };
            if !db.get("users", user).is_some_and(|u| in_group(db, u.org)) {
                return Err(ApiError::field(
                    "user",
                    "Invalid hyperlink - Object does not exist.",
                ));
            }
            if db.get("organizations", org).is_none() || !in_group(db, org) {
                return Err(ApiError::field(
                    "organization",
                    "Invalid hyperlink - Object does not exist.",
                ));
            }
            let dup = db
                .find("memberships", |r| {
                    r.value["user"].as_str().and_then(id_in) == Some(user)
                        && r.value["organization"].as_str().and_then(id_in) == Some(org)
                })
                .is_some();
            if dup {
                return Err(ApiError::non_field(
                    "The fields user, organization must make a unique set.",
                ));
            }
            let queues: Vec<Value> = req
                .body
                .get("queues")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|q| q.as_str().and_then(id_in))
                .map(|q| json!(format!("{base}/queues/{q}")))
                .collect();
            let id = db.next_id("memberships");
            let v = json!({"id": id, "url": format!("{base}/memberships/{id}"),
                "user": format!("{base}/users/{user}"), "organization": format!("{base}/organizations/{org}"),
                "queues": queues, "expires_at": req.body.get("expires_at").cloned().unwrap_or(Value::Null)});
            db.insert("memberships", org, id, v.clone());
            created(v)
        }
        ["memberships", id] => {
            let id = parse_id(id)?;
            if db.get("memberships", id).is_none() {
                return Err(ApiError::not_found());
            }
            match *m {
                Method::GET => ok(db
                    .get("memberships", id)
                    .map(|r| r.value.clone())
                    .unwrap_or_default()),
                Method::DELETE => {
                    db.remove("memberships", id);
                    Ok((StatusCode::NO_CONTENT, Value::Null))
                }
                Method::PATCH | Method::PUT => {
                    let queues = req.body.get("queues").and_then(Value::as_array).map(|qs| {
                        qs.iter()
                            .filter_map(|q| q.as_str().and_then(id_in))
                            .map(|q| json!(format!("{base}/queues/{q}")))
                            .collect::<Vec<_>>()
                    });
                    let updated = db.update("memberships", id, |r| {
                        if let Some(q) = queues {
                            r["queues"] = json!(q);
                        }
                        if let Some(e) = req.body.get("expires_at") {
                            r["expires_at"] = e.clone();
                        }
                        r.clone()
                    })?;
                    ok(updated)
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        ["users"] if *m == Method::GET => {
            let items: Vec<Value> = db
                .all("users")
                .into_iter()
                .filter(|u| in_group(db, u.org))
                .map(|u| group_user(&base, u))
                .collect();
            let items = filter_items(items, req.query);
            paginate(
                db,
                req,
                &format!("organization_groups/{g}/users"),
                &items,
                Value::clone,
            )
        }
        // Every group view is served by id too, as at the real API.
        ["users", id] if *m == Method::GET => {
            let id = parse_id(id)?;
            match db.get("users", id) {
                Some(u) if in_group(db, u.org) => ok(group_user(&base, u)),
                _ => Err(ApiError::not_found()),
            }
        }
        ["organizations"] if *m == Method::GET => {
            let items: Vec<Value> = db
                .all("organizations")
                .into_iter()
                .filter(|o| in_group(db, o.id))
                .map(|o| group_org(&base, o))
                .collect();
            let items = filter_items(items, req.query);
            paginate(
                db,
                req,
                &format!("organization_groups/{g}/organizations"),
                &items,
                Value::clone,
            )
        }
        ["organizations", id] if *m == Method::GET => {
            let id = parse_id(id)?;
            match db.get("organizations", id) {
                Some(o) if in_group(db, id) => ok(group_org(&base, o)),
                _ => Err(ApiError::not_found()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// A user as the organization-group views show it.
fn group_user(base: &str, u: Rec<'_>) -> Value {
    let id = u.id;
    json!({"id": id, "url": format!("{base}/users/{id}"), "email": u.value["email"],
        "username": u.value["username"], "organization": format!("{base}/organizations/{}", u.org)})
}

/// An organization as the organization-group views show it.
fn group_org(base: &str, o: Rec<'_>) -> Value {
    let id = o.id;
    json!({"id": id, "url": format!("{base}/organizations/{id}"), "name": o.value["name"]})
}

fn parse_id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found())
}

/// A list of `kind` from the visible objects `recs` (in creation order): filtered, ordered
/// and paged as Rossum does. Rendering fills in reverse lists (a queue's hooks, an
/// organization's users), which costs a look at the organization's other objects; so filters
/// and orderings on stored fields run on the stored objects and only the page served is
/// rendered. A filter or ordering that names a computed field (and every one after it, so
/// that each sees the same items as before) runs on rendered objects.
/// `applied`: how many of the query's filters the caller applied to `recs` already.
fn list(db: &Db, req: &Req<'_>, kind: &str, recs: Vec<Rec<'_>>, applied: usize) -> Answer {
    let (filters, ordering) = list_params(req.query);
    let filters = &filters[applied.min(filters.len())..];
    let is_computed = |k: &str| computed_filter(kind, k);
    let split = filters
        .iter()
        .position(|&(k, _)| is_computed(k))
        .unwrap_or(filters.len());
    let recs = apply_filters(recs, &filters[..split], |r| r.value);
    let order_computed =
        ordering.is_some_and(|o| o.split(',').any(|k| is_computed(k.trim_start_matches('-'))));
    if split < filters.len() || order_computed {
        let items: Vec<Value> = recs.into_iter().map(|r| db.render_rec(kind, r)).collect();
        let mut items = apply_filters(items, &filters[split..], |v| v);
        apply_ordering(&mut items, ordering, |v| v);
        return paginate(db, req, kind, &items, |v| v.clone());
    }
    let mut recs = recs;
    apply_ordering(&mut recs, ordering, |r| r.value);
    paginate(db, req, kind, &recs, |r| db.render_rec(kind, *r))
}

fn value_matches(field: &Value, want: &str) -> bool {
    match field {
        Value::String(s) => s == want || id_in(s).is_some_and(|id| id.to_string() == want),
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => b.to_string() == want,
        Value::Array(items) => items.iter().any(|i| value_matches(i, want)),
        Value::Null => want.is_empty() || want == "null",
        Value::Object(_) => false,
    }
}

/// A list query's field filters, in order, and its ordering (the last `ordering` given).
fn list_params(query: &[(String, String)]) -> (Vec<(&str, &str)>, Option<&str>) {
    let mut ordering: Option<&str> = None;
    let mut filters = Vec::new();
    for (k, v) in query {
        if k == "ordering" {
            ordering = Some(v.as_str()).filter(|o| !o.is_empty());
            continue;
        }
        if IGNORED_PARAMS.contains(&k.as_str()) {
            continue;
        }
        filters.push((k.as_str(), v.as_str()));
    }
    (filters, ordering)
}

fn filter_items(items: Vec<Value>, query: &[(String, String)]) -> Vec<Value> {
    let (filters, ordering) = list_params(query);
    let mut items = apply_filters(items, &filters, |v| v);
    apply_ordering(&mut items, ordering, |v| v);
    items
}

/// Whether a filter (or ordering) on `k` may read a field rendering computes: a filter on `k`
/// reads `k`, or `ks` when the first item has no `k`.
fn computed_filter(kind: &str, k: &str) -> bool {
    computed_fields(kind)
        .iter()
        .any(|c| *c == k || c.strip_suffix('s') == Some(k))
}

/// The field a filter on `k` reads, decided by the first item: `k`, else `ks`; `None`: the
/// filter is ignored, as Rossum ignores unknown query parameters.
fn filter_field(first: &Value, k: &str) -> Option<String> {
    if first.get(k).is_some() {
        Some(k.to_string())
    } else {
        let plural = format!("{k}s");
        first.get(&plural).is_some().then_some(plural)
    }
}

/// Whether `item`'s `field` matches one of `wants`.
fn filter_matches(item: &Value, field: &str, wants: &[&str]) -> bool {
    wants
        .iter()
        .any(|w| value_matches(item.get(field).unwrap_or(&Value::Null), w))
}

/// Keeps the items every filter accepts; `object` is the JSON an item stands for.
fn apply_filters<T>(
    mut items: Vec<T>,
    filters: &[(&str, &str)],
    object: impl Fn(&T) -> &Value,
) -> Vec<T> {
    for (k, v) in filters {
        let wants: Vec<&str> = v.split(',').collect();
        let Some(f) = items.first().and_then(|i| filter_field(object(i), k)) else {
            continue;
        };
        items.retain(|item| filter_matches(object(item), &f, &wants));
    }
    items
}

/// Sorts by `ordering` (`a,-b`), stably, as Django orders.
fn apply_ordering<T>(items: &mut [T], ordering: Option<&str>, object: impl Fn(&T) -> &Value) {
    if let Some(ordering) = ordering {
        for key in ordering.split(',').rev() {
            let (desc, key) = key
                .strip_prefix('-')
                .map(|k| (true, k))
                .unwrap_or((false, key));
            items.sort_by(|a, b| {
                let o = cmp_values(object(a).get(key), object(b).get(key));
                if desc { o.reverse() } else { o }
            });
        }
    }
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// Counters of a billing history entry, as the API reference's example shows them.
const BILLING_COUNTERS: &[&str] = &[
    "billable_documents",
    "non_billable_documents",
    "billable_pages",
    "non_billable_pages",
    "purchased_documents",
    "purchased_pages",
    "extracted_pages_with_learning",
    "extracted_pages_without_learning",
    "split_pages_with_learning",
    "split_pages_without_learning",
    "extracted_documents_with_learning",
    "extracted_documents_without_learning",
    "split_documents_with_learning",
    "split_documents_without_learning",
    "ocr_only_pages",
    "ocr_only_documents",
];

/// One contracted period of `GET organizations/{id}/billing_history` for calendar year `year`
/// (current), every counter 0 except those `values` sets. Tests build histories with it.
pub fn billing_period(year: &str, values: Value) -> Value {
    let mut v = Map::new();
    for k in BILLING_COUNTERS {
        v.insert((*k).into(), json!(0));
    }
    v.insert("is_current".into(), json!(true));
    if let Value::Object(given) = values {
        v.extend(given);
    }
    json!({"begin_date": format!("{year}-01-01"), "end_date": format!("{year}-12-31"), "values": v})
}

/// The `totals` of a billing history: every counter summed over its entries.
fn billing_totals(entries: &[Value]) -> Value {
    let mut totals = Map::new();
    for k in BILLING_COUNTERS {
        let sum: u64 = entries
            .iter()
            .filter_map(|e| e["values"][*k].as_u64())
            .sum();
        totals.insert((*k).into(), json!(sum));
    }
    Value::Object(totals)
}

/// Rossum's page envelope: `page`/`page_size` (default 20, at most 100), absolute
/// `next`/`previous` links, 404 past the last page; `render` makes the served JSON of the
/// page's items only.
fn paginate<T>(
    db: &Db,
    req: &Req<'_>,
    path: &str,
    items: &[T],
    render: impl Fn(&T) -> Value,
) -> Answer {
    let params = paging::numbered_params(req.query, 20, 100);
    let page = paging::numbered(items, params).map_err(|PageError::InvalidPage| ApiError {
        status: 404,
        body: json!({"detail": "Invalid page."}),
    })?;
    let link = |p: usize| paging::page_link(&db.base, path, req.query, p);
    ok(json!({
        "pagination": {
            "total": page.total,
            "total_pages": page.total_pages,
            "next": page.next().map(link),
            "previous": page.previous().map(link),
        },
        "results": page.items.iter().map(render).collect::<Vec<Value>>(),
    }))
}
