//! Request handling: body decoding, auth, scoping, lists, and per-endpoint logic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::db::{Db, SETUP_KINDS, Token, id_in};
use super::error::ApiError;

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
        db.writes += 1;
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
            let token = authenticate(db, req.headers)?;
            authed(db, req, &token)
        }
    }
}

fn authed(db: &mut Db, req: &Req<'_>, token: &Token) -> Answer {
    let m = req.method;
    let get = m == Method::GET;
    let write = m == Method::PATCH || m == Method::PUT;
    match req.segments {
        ["auth", "logout"] if m == Method::POST => {
            let key = bearer(req.headers).unwrap_or_default();
            db.tokens.remove(&key);
            ok(json!({"detail": "Successfully logged out."}))
        }
        ["auth", "user"] if get => db
            .render("users", token.user)
            .map(ok)
            .unwrap_or_else(|| Err(ApiError::not_found())),
        ["auth", "membership_token"] if m == Method::POST => membership_token(db, token, &req.body),
        ["organizations"] if get => {
            let orgs = db.reachable_orgs(token.user);
            list(db, req, "organizations", |_, r| orgs.contains(&r.org))
        }
        ["organizations", id] if get => {
            let id = parse_id(id)?;
            visible_org(db, token, id)?;
            db.render("organizations", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
        ["organizations", id, "limits"] if get => {
            visible_org(db, token, parse_id(id)?)?;
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
            paginate(db, req, "organization_groups", items)
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
        ["groups"] if get => list(db, req, "groups", |_, r| r.org == token.org),
        ["groups", id] if get => {
            let id = parse_id(id)?;
            scoped(db, "groups", id, token.org)?;
            db.render("groups", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
        ["users"] if get => {
            let members = member_user_ids(db, token.org);
            list(db, req, "users", |id, r| {
                r.org == token.org || members.contains(&id)
            })
        }
        ["users"] if m == Method::POST => create_user(db, token, &req.body),
        ["users", id] if get || write || m == Method::DELETE => {
            user_detail(db, req, token, parse_id(id)?)
        }
        ["triggers"] if get => list(db, req, "triggers", |_, r| r.org == token.org),
        ["triggers", id] if get => {
            let id = parse_id(id)?;
            scoped(db, "triggers", id, token.org)?;
            db.render("triggers", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
        [kind] if SETUP_KINDS.contains(kind) && get => {
            let kind = *kind;
            list(db, req, kind, |_, r| r.org == token.org)
        }
        [kind] if SETUP_KINDS.contains(kind) && m == Method::POST => {
            require_writer(db, token)?;
            created(db.create_object(kind, token.org, req.body.clone())?)
        }
        [kind, id] if SETUP_KINDS.contains(kind) => {
            let id = parse_id(id)?;
            scoped(db, kind, id, token.org)?;
            match *m {
                Method::GET => db
                    .render(kind, id)
                    .map(ok)
                    .unwrap_or_else(|| Err(ApiError::not_found())),
                Method::PATCH | Method::PUT => {
                    require_writer(db, token)?;
                    if *kind == "schemas" {
                        check_unmodified(db, id, &req.body)?;
                    }
                    ok(db.update_object(kind, id, token.org, req.body.clone())?)
                }
                Method::DELETE => {
                    require_writer(db, token)?;
                    db.delete_object(kind, id)?;
                    Ok((StatusCode::NO_CONTENT, Value::Null))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
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

fn bearer(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("authorization")?.to_str().ok()?;
    let (scheme, key) = raw.trim().split_once(' ')?;
    let scheme = scheme.to_ascii_lowercase();
    (scheme == "bearer" || scheme == "token").then(|| key.trim().to_string())
}

fn authenticate(db: &mut Db, headers: &HeaderMap) -> Result<Token, ApiError> {
    let Some(key) = bearer(headers) else {
        return Err(ApiError::unauthorized(
            "Authentication credentials were not provided.",
        ));
    };
    let Some(token) = db.tokens.get(&key).cloned() else {
        return Err(ApiError::unauthorized("Invalid token."));
    };
    if token.expires <= std::time::Instant::now() {
        db.tokens.remove(&key);
        return Err(ApiError::unauthorized("Token has expired."));
    }
    let active = db
        .get("users", token.user)
        .is_some_and(|u| u.value["is_active"] == json!(true));
    if !active {
        return Err(ApiError::unauthorized("User inactive or deleted."));
    }
    Ok(token)
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
        .kinds
        .get("users")
        .into_iter()
        .flatten()
        .find(|(_, u)| {
            u.value["username"].as_str() == Some(username) && u.value["is_active"] == json!(true)
        })
        .map(|(id, u)| (*id, u.org));
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
    let key = db.issue_token(uid, org, Duration::from_secs(lifetime));
    db.logins += 1;
    if let Some(u) = db.table("users").get_mut(&uid) {
        u.value["last_login"] = json!(super::db::now_iso());
    }
    let domain = db.get("organizations", org).and_then(|o| {
        o.value["domain"]
            .as_str()
            .map(|d| format!("{d}.rossum.app"))
    });
    ok(json!({"key": key, "domain": domain}))
}

fn membership_token(db: &mut Db, token: &Token, body: &Value) -> Answer {
    let Some(org) = str_field(body, "organization").and_then(id_in) else {
        return Err(ApiError::field("organization", "This field is required."));
    };
    if db.get("organizations", org).is_none() {
        return Err(ApiError::field(
            "organization",
            "Invalid hyperlink - Object does not exist.",
        ));
    }
    if !db.reachable_orgs(token.user).contains(&org) {
        return Err(ApiError::forbidden(
            "You do not have permission to access this organization.",
        ));
    }
    let key = db.issue_token(token.user, org, Duration::from_secs(MAX_TOKEN_LIFETIME));
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

fn visible_org(db: &Db, token: &Token, org: u64) -> Result<(), ApiError> {
    if db.reachable_orgs(token.user).contains(&org) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn patch_org(db: &mut Db, token: &Token, id: u64, body: &Value) -> Answer {
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
    let Some(rec) = db.table("organizations").get_mut(&id) else {
        return Err(ApiError::not_found());
    };
    for k in ["name", "ui_settings", "metadata", "settings", "sandbox"] {
        if let Some(v) = body.get(k) {
            rec.value[k] = v.clone();
        }
    }
    rec.value["modified_at"] = json!(super::db::now_iso());
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

fn require_writer(db: &Db, token: &Token) -> Result<(), ApiError> {
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
    db.kinds
        .get("memberships")
        .into_iter()
        .flatten()
        .filter(|(_, m)| m.value["organization"].as_str().and_then(id_in) == Some(org))
        .filter_map(|(_, m)| m.value["user"].as_str().and_then(id_in))
        .collect()
}

fn create_user(db: &mut Db, token: &Token, body: &Value) -> Answer {
    require_writer(db, token)?;
    let Some(org) = str_field(body, "organization").and_then(id_in) else {
        return Err(ApiError::field("organization", "This field is required."));
    };
    if !db.reachable_orgs(token.user).contains(&org) {
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
    if let Some(q) = body.get("queues").filter(|q| q.is_array())
        && let Some(u) = db.table("users").get_mut(&id)
    {
        u.value["queues"] = q.clone();
    }
    for k in ["metadata", "ui_settings"] {
        if let Some(v) = body.get(k).filter(|v| v.is_object())
            && let Some(u) = db.table("users").get_mut(&id)
        {
            u.value[k] = v.clone();
        }
    }
    created(db.render("users", id).unwrap_or(Value::Null))
}

fn user_detail(db: &mut Db, req: &Req<'_>, token: &Token, id: u64) -> Answer {
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
            if let Some(u) = db.table("users").get_mut(&id) {
                u.value["is_active"] = json!(false);
                u.value["deleted"] = json!(true);
            }
            db.tokens.retain(|_, t| t.user != id);
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
            let Some(u) = db.table("users").get_mut(&id) else {
                return Err(ApiError::not_found());
            };
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
                    u.value[k] = v.clone();
                }
            }
            db.render("users", id)
                .map(ok)
                .unwrap_or_else(|| Err(ApiError::not_found()))
        }
    }
}

fn group_views(db: &mut Db, req: &Req<'_>, token: &Token, g: u64, rest: &[&str]) -> Answer {
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
                .kinds
                .get("memberships")
                .into_iter()
                .flatten()
                .map(|(_, r)| r.value.clone())
                .collect();
            let items = filter_items(items, req.query);
            paginate(
                db,
                req,
                &format!("organization_groups/{g}/memberships"),
                items,
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
                .kinds
                .get("memberships")
                .into_iter()
                .flatten()
                .any(|(_, r)| {
                    r.value["user"].as_str().and_then(id_in) == Some(user)
                        && r.value["organization"].as_str().and_then(id_in) == Some(org)
                });
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
            db.table("memberships").insert(
                id,
                super::db::Rec {
                    org,
                    value: v.clone(),
                },
            );
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
                    db.table("memberships").remove(&id);
                    Ok((StatusCode::NO_CONTENT, Value::Null))
                }
                Method::PATCH | Method::PUT => {
                    let queues = req.body.get("queues").and_then(Value::as_array).map(|qs| {
                        qs.iter()
                            .filter_map(|q| q.as_str().and_then(id_in))
                            .map(|q| json!(format!("{base}/queues/{q}")))
                            .collect::<Vec<_>>()
                    });
                    let Some(r) = db.table("memberships").get_mut(&id) else {
                        return Err(ApiError::not_found());
                    };
                    if let Some(q) = queues {
                        r.value["queues"] = json!(q);
                    }
                    if let Some(e) = req.body.get("expires_at") {
                        r.value["expires_at"] = e.clone();
                    }
                    ok(r.value.clone())
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        ["users"] if *m == Method::GET => {
            let items: Vec<Value> = db
                .kinds
                .get("users")
                .into_iter()
                .flatten()
                .filter(|(_, u)| in_group(db, u.org))
                .map(|(id, u)| group_user(&base, *id, u))
                .collect();
            let items = filter_items(items, req.query);
            paginate(db, req, &format!("organization_groups/{g}/users"), items)
        }
        // Every group view is served by id too, as at the real API.
        ["users", id] if *m == Method::GET => {
            let id = parse_id(id)?;
            match db.get("users", id) {
                Some(u) if in_group(db, u.org) => ok(group_user(&base, id, u)),
                _ => Err(ApiError::not_found()),
            }
        }
        ["organizations"] if *m == Method::GET => {
            let items: Vec<Value> = db
                .kinds
                .get("organizations")
                .into_iter()
                .flatten()
                .filter(|(id, _)| in_group(db, **id))
                .map(|(id, o)| group_org(&base, *id, o))
                .collect();
            let items = filter_items(items, req.query);
            paginate(
                db,
                req,
                &format!("organization_groups/{g}/organizations"),
                items,
            )
        }
        ["organizations", id] if *m == Method::GET => {
            let id = parse_id(id)?;
            match db.get("organizations", id) {
                Some(o) if in_group(db, id) => ok(group_org(&base, id, o)),
                _ => Err(ApiError::not_found()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// A user as the organization-group views show it.
fn group_user(base: &str, id: u64, u: &super::db::Rec) -> Value {
    json!({"id": id, "url": format!("{base}/users/{id}"), "email": u.value["email"],
        "username": u.value["username"], "organization": format!("{base}/organizations/{}", u.org)})
}

/// An organization as the organization-group views show it.
fn group_org(base: &str, id: u64, o: &super::db::Rec) -> Value {
    json!({"id": id, "url": format!("{base}/organizations/{id}"), "name": o.value["name"]})
}

/// A schema update that names the `modified_at` it was based on fails with 412 when the schema
/// changed since (Rossum answers concurrent schema modifications with 412).
fn check_unmodified(db: &Db, id: u64, body: &Value) -> Result<(), ApiError> {
    let Some(seen) = body.get("modified_at").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let current = db
        .get("schemas", id)
        .map(|r| r.value["modified_at"].clone())
        .unwrap_or(Value::Null);
    if &current != seen {
        return Err(ApiError::precondition_failed(
            "The schema was modified concurrently; fetch it again.",
        ));
    }
    Ok(())
}

fn parse_id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found())
}

fn list<F>(db: &Db, req: &Req<'_>, kind: &str, visible: F) -> Answer
where
    F: Fn(u64, &super::db::Rec) -> bool,
{
    let items: Vec<Value> = db
        .kinds
        .get(kind)
        .into_iter()
        .flatten()
        .filter(|(id, r)| visible(**id, r))
        .filter_map(|(id, _)| db.render(kind, *id))
        .collect();
    let items = filter_items(items, req.query);
    paginate(db, req, kind, items)
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

fn filter_items(mut items: Vec<Value>, query: &[(String, String)]) -> Vec<Value> {
    let mut ordering: Option<&str> = None;
    for (k, v) in query {
        if k == "ordering" {
            ordering = Some(v.as_str()).filter(|o| !o.is_empty());
            continue;
        }
        if IGNORED_PARAMS.contains(&k.as_str()) {
            continue;
        }
        let wants: Vec<&str> = v.split(',').collect();
        let field_name = |item: &Value| -> Option<String> {
            if item.get(k.as_str()).is_some() {
                Some(k.clone())
            } else {
                let plural = format!("{k}s");
                item.get(&plural).is_some().then_some(plural)
            }
        };
        let Some(f) = items.first().and_then(field_name) else {
            // Unknown filters are ignored, as Rossum ignores unknown query parameters.
            continue;
        };
        items.retain(|item| {
            wants
                .iter()
                .any(|w| value_matches(item.get(&f).unwrap_or(&Value::Null), w))
        });
    }
    if let Some(ordering) = ordering {
        for key in ordering.split(',').rev() {
            let (desc, key) = key
                .strip_prefix('-')
                .map(|k| (true, k))
                .unwrap_or((false, key));
            items.sort_by(|a, b| {
                let o = cmp_values(a.get(key), b.get(key));
                if desc { o.reverse() } else { o }
            });
        }
    }
    items
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

fn paginate(db: &Db, req: &Req<'_>, path: &str, items: Vec<Value>) -> Answer {
    let param = |k: &str| {
        req.query
            .iter()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
    };
    let page_size = param("page_size")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
        .min(100);
    let page = param("page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let total_pages = total.div_ceil(page_size).max(1);
    if page > total_pages {
        return Err(ApiError {
            status: 404,
            body: json!({"detail": "Invalid page."}),
        });
    }
    let link = |p: usize| -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in req.query.iter().filter(|(k, _)| k != "page") {
            s.append_pair(k, v);
        }
        s.append_pair("page", &p.to_string());
        format!("{}/{path}?{}", db.base, s.finish())
    };
    let results: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    ok(json!({
        "pagination": {
            "total": total,
            "total_pages": total_pages,
            "next": (page < total_pages).then(|| link(page + 1)),
            "previous": (page > 1).then(|| link(page - 1)),
        },
        "results": results,
    }))
}
