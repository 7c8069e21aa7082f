//! Request handling: one GraphQL endpoint (`POST /graphql`), and the status endpoint
//! (`POST /system`, where anatools 3.3.4 asks for notifications at start-up) served by the
//! same executor. Every POST is answered with HTTP 200 and a JSON body, errors included; the
//! SDK never reads status codes. Volume file transfers go to the URLs `getVolumeData` and
//! `uploadVolumeData` hand out (`GET /files/<token>`, `PUT /upload/<uploadId>/<part>`),
//! answered the way S3 answers presigned URLs.

use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::graphql::{self, GqlError, Schema};
use super::state::{FILES_PATH, FileAnswer, State, UPLOAD_PATH};
use crate::simulator::kit::auth;

/// Shared simulator state.
pub type Shared = Arc<Mutex<State>>;

/// The GraphQL endpoint's path.
pub const GRAPHQL_PATH: &str = "/graphql";
/// The status endpoint's path.
pub const STATUS_PATH: &str = "/system";
/// Largest body read; larger ones get a GraphQL error.
pub const MAX_BODY: usize = 1 << 20;

/// The schema parsed from the SDL, once.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::parse(graphql::SDL) {
        Ok(s) => s,
        // The SDL is part of the crate and parsed by a unit test; it cannot fail at run time.
        Err(e) => panic!("the simulator's SDL does not parse: {e}"),
    })
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A file transfer's answer: S3-like, an `ETag` on success, a small XML error otherwise.
fn file_answer(answer: FileAnswer) -> Response {
    match answer {
        FileAnswer::Ok { body, etag } => {
            let mut r = (StatusCode::OK, body).into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&etag) {
                r.headers_mut().insert("etag", v);
            }
            r.headers_mut().insert(
                "content-type",
                axum::http::HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        FileAnswer::Err(status, code) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            [("content-type", "application/xml")],
            format!("<Error><Code>{code}</Code></Error>"),
        )
            .into_response(),
    }
}

/// `GET /files/<token>` (a download URL `getVolumeData` handed out) and
/// `PUT /upload/<uploadId>/<part>` (an upload part URL `uploadVolumeData` handed out).
async fn transfer(state: &Shared, method: &Method, path: &str, body: axum::body::Body) -> Response {
    if let Some(token) = path.strip_prefix(FILES_PATH) {
        if *method != Method::GET {
            return file_answer(FileAnswer::Err(405, "MethodNotAllowed"));
        }
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        return file_answer(st.download(token));
    }
    let rest = path.strip_prefix(UPLOAD_PATH).unwrap_or_default();
    let Some((upload, part)) = rest.split_once('/') else {
        return file_answer(FileAnswer::Err(404, "NoSuchUpload"));
    };
    if *method != Method::PUT {
        return file_answer(FileAnswer::Err(405, "MethodNotAllowed"));
    }
    let limit = {
        let st = state.lock().unwrap_or_else(|p| p.into_inner());
        usize::try_from(st.files.part_size).unwrap_or(usize::MAX)
    };
    // One byte more than a part may hold, so an oversized part is refused, not cut.
    let Ok(bytes) = axum::body::to_bytes(body, limit.saturating_add(1)).await else {
        return file_answer(FileAnswer::Err(400, "EntityTooLarge"));
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.store.note_write_request();
    file_answer(st.put_part(upload, part, bytes))
}

/// The single entry point for every path.
pub async fn api(AxumState(state): AxumState<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/');
    if path.starts_with(FILES_PATH) || path.starts_with(UPLOAD_PATH) {
        return transfer(&state, &parts.method, path, body).await;
    }
    if path != GRAPHQL_PATH && path != STATUS_PATH {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"errors": [{"message": "Not found."}]})),
        )
            .into_response();
    }
    if parts.method != Method::POST {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({"errors": [{"message": "GraphQL only supports POST requests."}]})),
        )
            .into_response();
        r.headers_mut()
            .insert("allow", axum::http::HeaderValue::from_static("POST"));
        return r;
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ok(graphql::error_body(&[GqlError::new(format!(
            "The request body is larger than {MAX_BODY} bytes."
        ))]));
    };
    let Ok(json_body) = serde_json::from_slice::<Value>(&bytes) else {
        return ok(graphql::error_body(&[GqlError::new(
            "POST body sent invalid JSON.",
        )]));
    };
    let request = match graphql::Request::from_json(&json_body) {
        Ok(r) => r,
        Err(e) => return ok(graphql::error_body(&[e])),
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    ok(run(&mut st, &parts.headers, &request))
}

/// Runs one request against the state: authenticate, prepare against the schema this server
/// serves, resolve.
pub fn run(st: &mut State, headers: &HeaderMap, request: &graphql::Request) -> Value {
    let full = schema();
    let restricted;
    let schema = if st.limits_served && st.guests_served {
        full
    } else {
        restricted = full.restricted(|f, a| st.hides(f, a));
        &restricted
    };
    let prepared = match graphql::prepare(schema, request) {
        Ok(p) => p,
        Err(errors) => return graphql::error_body(&errors),
    };
    // 6.x sends `Authorization: Bearer <idtoken>` with `uid`; 3.x sent `idtoken` and `uid`.
    let apikey = auth::header_token(headers, "apikey");
    let bearer = auth::bearer(headers).or_else(|| auth::header_token(headers, "idtoken"));
    let uid = auth::header_token(headers, "uid");
    let caller = st.authenticate(apikey, bearer, uid);
    graphql::execute(schema, prepared, |kind, field, args| {
        st.resolve(caller.as_ref(), kind, field, args)
    })
}
