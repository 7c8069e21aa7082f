//! The HTTP layer every vendor client shares.
//!
//! - **Rate limit**: one token bucket per vendor endpoint ([`Endpoints`]), shared by every
//!   reconcile that talks to it (or one per [`HttpConfig::rate_key`], for a caller that owns its
//!   bucket). A `429` pauses the whole endpoint for `Retry-After` (seconds or an HTTP date), at
//!   most [`HttpConfig::max_retry_after`] at a time. A request that would wait on throttling
//!   longer than [`HttpConfig::max_throttle_wait`] in total gives up with its `429` (transient),
//!   so the controller backs the object off instead of holding a worker.
//! - **Fairness**: the requests waiting for an endpoint's bucket are admitted round-robin across
//!   *flows* (one token per flow per turn), so one busy organization cannot starve the others.
//!   A caller puts its requests in a flow with [`in_flow`]; requests outside any flow share one.
//! - **Retries** with exponential backoff and jitter, *only where repeating is safe*: reads and
//!   idempotent writes (PUT, PATCH, DELETE) are retried after 5xx, timeouts and resets; a POST is
//!   retried only when the server provably did not process it (connect error, 429). A POST whose
//!   response was lost surfaces as [`HttpError::OutcomeUnknown`] so the engine observes first.
//!   A request marked [`Repeat::Safe`] is retried like a GET whatever its method (a GraphQL
//!   read, a Dataloop query, a login).
//! - **Statuses the caller reads**: a request may name error statuses it handles itself
//!   ([`Request::accept_status`], [`Request::accept_when`]); those come back at once as
//!   [`HttpError::Status`], never retried (OpenLattice answers an unknown organization with 500).
//! - **Auth**: [`TokenCache`] logs in once per scope, renews a token shortly before it expires
//!   ([`Token`], e.g. from a JWT's `exp`), and re-logs-in once on a 401 (`invalidate`). The
//!   credential goes in `Authorization` ([`Request::authorization`]) or in a header of the
//!   vendor's choosing ([`Request::credential_header`], e.g. Rendered.ai's `apikey`).
//! - **Error bodies** are read in the vendor's format ([`ErrorFormat`], one per [`Transport`]):
//!   only the vendor's message, shortened, with the request's credentials blanked out should the
//!   vendor echo them. GraphQL errors arrive with HTTP 200: [`Response::graphql_data`].
//! - **Origin pinning**: a [`Transport`] sends only to the origin (scheme, host, port) of the base
//!   URL it was created with. A request, a "next" link or a redirect to any other origin is
//!   refused with [`HttpError::OffOrigin`] before anything is sent there, so a credential never
//!   leaves the vendor.
//! - **Redirects**: GET and HEAD follow at most [`MAX_REDIRECTS`] redirects within the origin;
//!   every other method never follows one (a body is never replayed): the 3xx becomes
//!   [`HttpError::Status`] naming where the vendor redirected to.
//! - **Pagination**: [`Transport::get_all_pages`] follows a vendor's "next" link (absolute, or
//!   relative to the page it came from); [`Transport::get_all_offset_pages`] walks page numbers
//!   (`pageOffset` + `hasNextPage`) and [`Transport::get_all_cursor_pages`] cursors (the last id
//!   seen). All stop after [`MAX_PAGES`] pages, and every page request is origin-checked.
//! - **Response size cap**: a body longer than [`HttpConfig::max_response_bytes`] is refused
//!   ([`HttpError::ResponseTooLarge`]): by its `Content-Length` before reading, or as soon as a
//!   streamed body passes the cap.
//! - **Credentials** live in [`SecretString`]s; their header (`Authorization` or another) is
//!   marked sensitive, and no error carries a request body.
//! - **Write fence**: with [`HttpConfig::fence`] set, a request whose method is not GET or HEAD is
//!   sent only while the [`Fence`] holds (the leader keeps it up while it can prove it holds its
//!   Lease); after that it is refused with [`HttpError::NotLeader`], unsent, even when the
//!   process was frozen and resumed in the middle of a reconcile.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::oneshot;
use url::Url;

/// Redirects a GET or HEAD follows (within its origin) before the answer counts as an error.
pub const MAX_REDIRECTS: usize = 5;

/// Pages one paginated listing may take; more means the vendor's pagination loops.
pub const MAX_PAGES: usize = 10_000;

/// Longest vendor message an error carries.
const MAX_DETAIL: usize = 300;

/// Tuning of the transport. `Default` suits a production SaaS API.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Retries after the first attempt for transient failures of safe requests.
    pub max_retries: u32,
    /// Retries after `429 Too Many Requests` (any method: the server did not process it).
    pub max_throttle_retries: u32,
    /// Longest pause one `429` imposes, whatever its `Retry-After` says.
    pub max_retry_after: Duration,
    /// Longest total time one request waits on throttling (its own `429`s and the endpoint's
    /// pause) before it gives up with `HTTP 429`.
    pub max_throttle_wait: Duration,
    /// First backoff delay; doubles per retry.
    pub backoff_base: Duration,
    /// Upper bound of one backoff delay.
    pub backoff_max: Duration,
    /// Requests per second allowed to one endpoint (set when its bucket is first created).
    pub rate_per_second: u32,
    /// The key of the token bucket in [`Endpoints`]; `None` keys it `"{vendor} {origin}"`, so
    /// every client of one vendor URL shares it. A caller that owns its own bucket and rate
    /// (a connection resource) sets its own key. Start it with the vendor name and a space
    /// (`rossum connection/ns/name`): metrics read the vendor from the first word of the key.
    pub rate_key: Option<String>,
    /// Longest response body read; a longer one fails with [`HttpError::ResponseTooLarge`].
    pub max_response_bytes: u64,
    /// Writes (every method but GET and HEAD) are sent only while this fence holds; `None`:
    /// always.
    pub fence: Option<Arc<Fence>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            max_throttle_retries: 20,
            max_retry_after: Duration::from_secs(60),
            max_throttle_wait: Duration::from_secs(120),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            rate_per_second: 10,
            max_response_bytes: 32 * 1024 * 1024,
            rate_key: None,
            fence: None,
        }
    }
}

/// A write fence: writes may start until a deadline on this process's monotonic clock.
///
/// The leader moves the deadline forward after each successful renewal of its Lease (to the
/// start of that renewal plus the renew deadline), so that once it cannot prove its leadership
/// no write starts, even in tasks that run before the leader loop notices. It starts closed.
#[derive(Debug)]
pub struct Fence {
    state: Mutex<FenceState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FenceState {
    /// Writes may start before this instant.
    Until(Instant),
    /// Writes may always start (no leader election).
    Open,
}

impl Default for Fence {
    fn default() -> Self {
        Self::closed()
    }
}

impl Fence {
    /// A fence that refuses every write until [`Fence::valid_until`] or [`Fence::valid_forever`].
    pub fn closed() -> Self {
        Self {
            state: Mutex::new(FenceState::Until(Instant::now())),
        }
    }

    fn state(&self) -> MutexGuard<'_, FenceState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Writes may start before `deadline` (and not after it).
    pub fn valid_until(&self, deadline: Instant) {
        *self.state() = FenceState::Until(deadline);
    }

    /// Writes may always start.
    pub fn valid_forever(&self) {
        *self.state() = FenceState::Open;
    }

    /// No write may start from now on (until the fence is made valid again).
    pub fn close(&self) {
        self.valid_until(Instant::now());
    }

    /// Whether a write may start at `now`.
    pub fn allows_at(&self, now: Instant) -> bool {
        match *self.state() {
            FenceState::Open => true,
            FenceState::Until(deadline) => now < deadline,
        }
    }

    /// `Ok` while a write may start; [`HttpError::NotLeader`] once the deadline has passed.
    pub fn check(&self) -> Result<(), HttpError> {
        if self.allows_at(Instant::now()) {
            Ok(())
        } else {
            Err(HttpError::NotLeader {
                request: "a write".into(),
            })
        }
    }
}

/// Errors of the HTTP layer. None of them carries a credential or a request body.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The vendor answered with an error status.
    #[error("{method} {path}: HTTP {status}: {detail}")]
    Status {
        /// Request method.
        method: Method,
        /// Request path (no query, no host).
        path: String,
        /// HTTP status code.
        status: u16,
        /// The vendor's error message, shortened.
        detail: String,
    },
    /// A non-idempotent request was sent and its outcome is unknown (response lost, 5xx or
    /// timeout). The caller must observe before trying again.
    #[error("{method} {path}: outcome unknown ({cause}); observe before retrying")]
    OutcomeUnknown {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
        /// What went wrong.
        cause: String,
    },
    /// The request failed in transport after every retry.
    #[error("{method} {path}: {cause}")]
    Transport {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
        /// What went wrong.
        cause: String,
    },
    /// A GraphQL endpoint answered (HTTP 200) with a non-empty `errors` list.
    #[error("{path}: GraphQL error: {detail}")]
    GraphQl {
        /// Request path.
        path: String,
        /// The vendor's messages, shortened.
        detail: String,
    },
    /// The response body was not what the vendor documents.
    #[error("{path}: unexpected response: {cause}")]
    Decode {
        /// Request path.
        path: String,
        /// What did not parse.
        cause: String,
    },
    /// The response body was longer than [`HttpConfig::max_response_bytes`]; it was not read
    /// beyond the cap.
    #[error("{method} {path}: the response is longer than the cap of {max_bytes} bytes")]
    ResponseTooLarge {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
        /// The cap, [`HttpConfig::max_response_bytes`].
        max_bytes: u64,
    },
    /// A URL could not be built.
    #[error("invalid URL {0}")]
    Url(String),
    /// A write was not sent because the [`Fence`] had lapsed: this replica may no longer be the
    /// leader. Transient: the leader retries the object.
    #[error(
        "{request}: not sent: this replica may no longer be the leader (its leader Lease was not renewed in time)"
    )]
    NotLeader {
        /// The refused request: method and path.
        request: String,
    },
    /// A request (or a "next" link, or a redirect) pointed outside the origin of the transport;
    /// nothing was sent there.
    #[error("refused to send a request to {url}: the connection's origin is {allowed}")]
    OffOrigin {
        /// The refused origin (no path, no query).
        url: String,
        /// The origin the transport is bound to.
        allowed: String,
    },
}

impl HttpError {
    /// HTTP status, when the vendor answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when trying again later may succeed without any change by a human.
    pub fn is_transient(&self) -> bool {
        match self {
            // 412: a concurrent modification (Rossum schemas); reading again and retrying works.
            HttpError::Status { status, .. } => {
                matches!(*status, 408 | 412 | 429) || *status >= 500
            }
            HttpError::OutcomeUnknown { .. }
            | HttpError::Transport { .. }
            | HttpError::NotLeader { .. } => true,
            // A GraphQL error answers the request as it stands (validation, permission, limit).
            HttpError::GraphQl { .. }
            | HttpError::Decode { .. }
            | HttpError::ResponseTooLarge { .. }
            | HttpError::Url(_)
            | HttpError::OffOrigin { .. } => false,
        }
    }
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `text/plain; charset=utf-8`: the raw string, no JSON quoting (OpenLattice titles and
    /// descriptions).
    Text(String),
}

/// Whether a request may be sent again after an unknown outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Reads and idempotent writes, and POSTs that have no lasting effect (login, a GraphQL
    /// query, a Dataloop DQL query): retried after 5xx, timeouts and resets whatever the method.
    Safe,
    /// Creates: sent again only when the server provably did not process it.
    Unsafe,
}

/// Decides from an error status and the vendor's message (as [`ErrorFormat`] read it) whether
/// the caller handles the answer itself, so it is returned at once instead of retried.
pub type AcceptWhen = fn(u16, &str) -> bool;

/// One HTTP request.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: Url,
    /// Body.
    pub body: Body,
    /// `Authorization` header value, e.g. `Bearer <key>`.
    pub authorization: Option<SecretString>,
    /// Another header carrying a credential (e.g. Rendered.ai's `apikey: <key>`).
    pub credential: Option<(HeaderName, SecretString)>,
    /// Credentials the request carries elsewhere (e.g. a password in a login body), blanked
    /// out of any message like the credential headers.
    pub extra_secrets: Vec<SecretString>,
    /// Whether repeating is safe.
    pub repeat: Repeat,
    /// Error statuses the caller reads itself: returned at once, never retried.
    pub accepted: Vec<u16>,
    /// Error answers the caller reads itself, by status and message.
    pub accept_when: Option<AcceptWhen>,
}

impl Request {
    /// A request with the default repeat policy of its method (POST unsafe, others safe).
    pub fn new(method: Method, url: Url) -> Self {
        let repeat = if method == Method::POST {
            Repeat::Unsafe
        } else {
            Repeat::Safe
        };
        Self {
            method,
            url,
            body: Body::Empty,
            authorization: None,
            credential: None,
            extra_secrets: Vec::new(),
            repeat,
            accepted: Vec::new(),
            accept_when: None,
        }
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// Sets a form body.
    pub fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    /// Sets a `text/plain` body: `text` as it is, not JSON-quoted.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.body = Body::Text(text.into());
        self
    }

    /// Overrides the repeat policy.
    pub fn repeat(mut self, repeat: Repeat) -> Self {
        self.repeat = repeat;
        self
    }

    /// Sets the `Authorization` header.
    pub fn authorization(mut self, value: SecretString) -> Self {
        self.authorization = Some(value);
        self
    }

    /// Sends the credential `value` in header `name` (e.g. `apikey`) instead of, or besides,
    /// `Authorization`. Like `Authorization`, the header is marked sensitive, never logged, and
    /// never sent outside the transport's origin.
    pub fn credential_header(mut self, name: HeaderName, value: SecretString) -> Self {
        self.credential = Some((name, value));
        self
    }

    /// Registers a credential the request carries outside its headers (a password in a login
    /// body): blanked out of every message taken from an answer to it, before shortening, on
    /// every path (error status, GraphQL errors), like the credential headers.
    pub fn secret(mut self, value: SecretString) -> Self {
        self.extra_secrets.push(value);
        self
    }

    /// Returns an answer with error status `status` at once as [`HttpError::Status`] (with the
    /// vendor's message), instead of retrying it: the caller knows what it means.
    pub fn accept_status(mut self, status: u16) -> Self {
        self.accepted.push(status);
        self
    }

    /// Like [`Request::accept_status`], deciding by status and message, so that one meaning of
    /// a status is read by the caller while the others are still retried (OpenLattice's 500
    /// "Organization [id] does not exist." versus a server failure).
    pub fn accept_when(mut self, accept: AcceptWhen) -> Self {
        self.accept_when = Some(accept);
        self
    }

    /// Whether the caller reads an error answer with `status` and `detail` itself.
    fn accepts(&self, status: u16, detail: &str) -> bool {
        self.accepted.contains(&status) || self.accept_when.is_some_and(|f| f(status, detail))
    }

    /// The credentials this request carries, to blank out should the vendor echo them.
    fn secrets(&self) -> Vec<SecretString> {
        self.authorization
            .iter()
            .chain(self.credential.iter().map(|(_, v)| v))
            .chain(self.extra_secrets.iter())
            .cloned()
            .collect()
    }
}

/// How a vendor shapes its error bodies; a [`Transport`] reads the message of an error answer
/// in its format ([`Transport::with_error_format`]). Whatever the format, the message is taken
/// from the response alone (never from the request), shortened, and anything unexpected falls
/// back to a `message`/`error`/`detail` field or the body text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorFormat {
    /// Django REST framework (Rossum): `{"detail": ".."}` or field errors
    /// `{"field": ["..", ..], ..}`.
    #[default]
    Drf,
    /// OpenLattice's `ErrorsDTO`: `{"errors": [{"error": {"type": .., "code": ..}, "message": ..}]}`.
    OpenLattice,
    /// GraphQL: `{"errors": [{"message": ..}, ..]}` (usually with HTTP 200: see
    /// [`Response::graphql_data`]).
    GraphQl,
    /// Dataloop: `{"status": .., "name": .., "message": ..}`, sometimes `{"error": ..}`.
    Dataloop,
}

impl ErrorFormat {
    /// The vendor's message in an error `body`, shortened (no credential blanking: see
    /// [`Transport::send`]).
    pub fn detail(self, body: &[u8]) -> String {
        shorten(&self.message(body))
    }

    /// The vendor's message in an error `body`, whole.
    fn message(self, body: &[u8]) -> String {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => match self {
                ErrorFormat::Drf => drf_detail(&value),
                ErrorFormat::OpenLattice => errors_list(&value, |e| {
                    let message = e.get("message").and_then(Value::as_str)?;
                    match e.pointer("/error/type").and_then(Value::as_str) {
                        Some(kind) => Some(format!("{kind}: {message}")),
                        None => Some(message.to_string()),
                    }
                })
                .unwrap_or_else(|| generic_detail(&value)),
                ErrorFormat::GraphQl => {
                    graphql_errors(&value).unwrap_or_else(|| generic_detail(&value))
                }
                ErrorFormat::Dataloop => generic_detail(&value),
            },
            // Only the start can show in the shortened message; a proxy's page may be long.
            Err(_) => String::from_utf8_lossy(&body[..body.len().min(4096)]).to_string(),
        }
    }
}

/// The messages of a non-empty GraphQL `errors` list, joined with `; ` (not shortened); `None`
/// when the body has no errors.
pub fn graphql_errors(body: &Value) -> Option<String> {
    errors_list(body, |e| {
        Some(match e.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => "an error without a message".to_string(),
        })
    })
}

/// `{"errors": [e, ..]}` with a non-empty list: each `e` through `message`, joined.
fn errors_list(body: &Value, message: impl Fn(&Value) -> Option<String>) -> Option<String> {
    let errors = body.get("errors")?.as_array()?;
    let messages: Vec<String> = errors.iter().take(10).filter_map(message).collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// DRF: `detail`, else field errors as `field: message`.
fn drf_detail(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(d)) = map.get("detail") {
                d.clone()
            } else {
                map.iter()
                    .map(|(k, v)| match v {
                        Value::Array(msgs) => format!(
                            "{k}: {}",
                            msgs.iter()
                                .map(|m| m.as_str().map(str::to_string).unwrap_or(m.to_string()))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        other => format!("{k}: {other}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        }
        other => other.to_string(),
    }
}

/// A message field any vendor (or a framework or proxy in front of it) may use: `message`,
/// `error` (a string or an object with a message), `detail`; else the JSON as text.
fn generic_detail(value: &Value) -> String {
    for key in ["message", "error", "detail", "error_description"] {
        match value.get(key) {
            Some(Value::String(m)) if !m.is_empty() => return m.clone(),
            Some(Value::Object(o)) => {
                if let Some(Value::String(m)) = o.get("message") {
                    return m.clone();
                }
            }
            _ => {}
        }
    }
    value.to_string()
}

/// At most [`MAX_DETAIL`] bytes, on one line.
fn shorten(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(one_line.trim(), MAX_DETAIL)
}

/// `text` with every credential in `secrets` replaced by `[redacted]`: a vendor (or a hostile
/// server) that echoes the request's credential in its error must not put it in a condition,
/// an event or a log. The token of `Bearer <token>` is blanked on its own too.
fn redact(text: &str, secrets: &[SecretString]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let whole = secret.expose_secret();
        let token = whole.rsplit(' ').next().unwrap_or(whole);
        for value in [whole, token] {
            // Very short values would blank ordinary words; real credentials are long.
            if value.len() >= 6 && out.contains(value) {
                out = out.replace(value, "[redacted]");
            }
        }
    }
    out
}

/// A response whose status is below 300 (redirects are followed or refused, errors become
/// [`HttpError::Status`]).
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Body bytes.
    pub body: bytes::Bytes,
    path: String,
    /// The request's credentials, blanked out of any message taken from this body.
    secrets: Vec<SecretString>,
}

impl Response {
    /// The request path (no query, no host), for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A [`HttpError::Decode`] about this response.
    pub fn decode_error(&self, cause: impl Into<String>) -> HttpError {
        HttpError::Decode {
            path: self.path.clone(),
            cause: cause.into(),
        }
    }

    /// The body as JSON (`{}` for an empty body, as `204 No Content` has).
    pub fn json(&self) -> Result<Value, HttpError> {
        if self.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| self.decode_error(e.to_string()))
    }

    /// The `data` of a GraphQL answer, or [`HttpError::GraphQl`] with the messages of its
    /// `errors` (shortened, credentials blanked) when that list is non-empty, even when `data`
    /// is present too: GraphQL reports failures with HTTP 200. A body with neither is a
    /// [`HttpError::Decode`].
    pub fn graphql_data(&self) -> Result<Value, HttpError> {
        let mut body = self.json()?;
        if let Some(messages) = graphql_errors(&body) {
            return Err(HttpError::GraphQl {
                path: self.path.clone(),
                detail: shorten(&redact(&messages, &self.secrets)),
            });
        }
        match body.get_mut("data").map(Value::take) {
            Some(data) if !data.is_null() => Ok(data),
            _ => Err(self.decode_error("a GraphQL answer without data or errors")),
        }
    }

    /// The page of a `pageOffset`-paginated list in Dataloop's shape,
    /// `{"items": [..], "hasNextPage": bool, ..}`: its items and whether another page follows.
    pub fn items_and_has_next_page(&self) -> Result<(Vec<Value>, bool), HttpError> {
        let mut page = self.json()?;
        let has_next = page
            .get("hasNextPage")
            .and_then(Value::as_bool)
            .ok_or_else(|| self.decode_error("a page without a boolean hasNextPage"))?;
        match page.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => Ok((items, has_next)),
            _ => Err(self.decode_error("a page without an items list")),
        }
    }
}

/// A `200` response with `body`, for unit tests of code that reads responses.
#[cfg(test)]
pub(crate) fn test_response(body: Vec<u8>) -> Response {
    Response {
        status: StatusCode::OK,
        body: body.into(),
        path: "/test".into(),
        secrets: Vec::new(),
    }
}

/// `url` asking for page `offset` (0-based) of `size` items, Dataloop's way: the query
/// parameters `pageOffset` and `pageSize` (replacing any already there).
pub fn page_offset_url(url: &Url, offset: u64, size: u32) -> Url {
    let mut out = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "pageOffset" && k != "pageSize")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    out.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("pageOffset", &offset.to_string())
        .append_pair("pageSize", &size.to_string());
    out
}

/// Request counts keyed by (method, status); status 0 = no response.
pub type RequestCounts = BTreeMap<(String, u16), u64>;

/// Counts of requests by method and status, for benchmarks, tests and metrics.
#[derive(Debug, Default)]
pub struct RequestStats {
    counts: Mutex<BTreeMap<(String, u16), u64>>,
}

impl RequestStats {
    fn record(&self, method: &Method, status: u16) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((method.to_string(), status)).or_default() += 1;
        }
    }

    /// Every attempt sent, retries included (status 0 = no response).
    pub fn total(&self) -> u64 {
        self.counts
            .lock()
            .map(|c| c.values().sum())
            .unwrap_or_default()
    }

    /// Attempts with a method other than GET.
    pub fn writes(&self) -> u64 {
        self.counts
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|((m, _), _)| m != "GET")
                    .map(|(_, n)| n)
                    .sum()
            })
            .unwrap_or_default()
    }

    /// A copy of all counts.
    pub fn snapshot(&self) -> RequestCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

tokio::task_local! {
    /// The flow of the requests the current task makes (see [`in_flow`]).
    static FLOW: String;
}

/// Runs `fut` with every request it makes in flow `flow` (e.g. one organization's key).
///
/// An endpoint admits the requests waiting for its token bucket round-robin across flows, one
/// per flow per turn, so a flow with many requests queued does not starve one with a few.
/// Requests made outside any flow share the flow `""`. The flow is a task-local: a task spawned
/// inside `fut` starts outside it and needs its own `in_flow`.
pub async fn in_flow<F: Future>(flow: impl Into<String>, fut: F) -> F::Output {
    FLOW.scope(flow.into(), fut).await
}

/// The flow of the current task.
fn current_flow() -> String {
    FLOW.try_with(String::clone).unwrap_or_default()
}

/// The requests waiting for an endpoint's tokens, by flow.
#[derive(Debug, Default)]
struct Admission {
    /// Each flow's waiters, oldest first; a flow without waiters has no entry.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// The flows that have waiters, in turn order; each appears once.
    turns: VecDeque<String>,
    /// Whether a dispatcher task runs for this endpoint.
    dispatching: bool,
}

impl Admission {
    fn push(&mut self, flow: String, waiter: oneshot::Sender<()>) {
        let queue = self.waiting.entry(flow.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(flow);
        }
        queue.push_back(waiter);
    }

    /// Forgets waiters that gave up (their request was dropped); true when any is left.
    fn prune(&mut self) -> bool {
        self.waiting.retain(|_, queue| {
            queue.retain(|w| !w.is_closed());
            !queue.is_empty()
        });
        let waiting = &self.waiting;
        self.turns.retain(|flow| waiting.contains_key(flow));
        !self.turns.is_empty()
    }

    /// Hands a token to the oldest live waiter of the flow whose turn it is, skipping waiters
    /// that gave up; false when nobody took it.
    fn admit_next(&mut self) -> bool {
        while let Some(flow) = self.turns.pop_front() {
            let Some(queue) = self.waiting.get_mut(&flow) else {
                continue;
            };
            let mut admitted = false;
            while let Some(waiter) = queue.pop_front() {
                if waiter.send(()).is_ok() {
                    admitted = true;
                    break;
                }
            }
            if queue.is_empty() {
                self.waiting.remove(&flow);
            } else {
                self.turns.push_back(flow);
            }
            if admitted {
                return true;
            }
        }
        false
    }
}

/// The shared state of one vendor endpoint: its token bucket, a 429 pause, the requests waiting
/// for admission, and request counts.
#[derive(Debug)]
pub struct Endpoint {
    limiter: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
    admission: Mutex<Admission>,
    /// Requests sent to this endpoint.
    pub stats: RequestStats,
}

impl Endpoint {
    fn new(rate_per_second: u32) -> Self {
        let rate = NonZeroU32::new(rate_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        // A token bucket holding half a second of requests: bursts after idle time use the
        // allowance a per-second limit grants, while the other half stays as slack for
        // arrival jitter at the vendor's own bucket.
        let burst = NonZeroU32::new(rate.get() / 2).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Self {
            limiter: DefaultDirectRateLimiter::direct(quota),
            paused_until: Mutex::new(None),
            admission: Mutex::new(Admission::default()),
            stats: RequestStats::default(),
        }
    }

    fn admission(&self) -> MutexGuard<'_, Admission> {
        match self.admission.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Waits until the current task's flow may send one request.
    ///
    /// With nobody waiting, no pause and a token at hand the request goes at once; otherwise it
    /// queues in its flow and a dispatcher task (started on demand, gone when the queue is
    /// empty) hands out the tokens round-robin across flows.
    async fn admit(self: &Arc<Self>) {
        match self.enqueue() {
            Ticket::Now => {}
            Ticket::Queued(admitted) => {
                if admitted.await.is_err() {
                    // The dispatcher was stopped with its runtime; do not hang.
                    self.admit_directly().await;
                }
            }
            Ticket::Direct => self.admit_directly().await,
        }
    }

    /// Takes a token at once, or queues the current task's flow for one.
    fn enqueue(self: &Arc<Self>) -> Ticket {
        let mut admission = self.admission();
        if admission.turns.is_empty()
            && self.pause_remaining().is_none()
            && self.limiter.check().is_ok()
        {
            return Ticket::Now;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run a dispatcher on.
            return Ticket::Direct;
        };
        let (tx, rx) = oneshot::channel();
        admission.push(current_flow(), tx);
        if !admission.dispatching {
            admission.dispatching = true;
            runtime.spawn(Arc::clone(self).dispatch());
        }
        Ticket::Queued(rx)
    }

    async fn admit_directly(&self) {
        self.wait_out_pause().await;
        self.limiter.until_ready().await;
    }

    /// Hands out tokens while anyone waits, then ends.
    async fn dispatch(self: Arc<Self>) {
        let mut guard = DispatchGuard {
            endpoint: &self,
            armed: true,
        };
        loop {
            {
                let mut admission = self.admission();
                if !admission.prune() {
                    // Decided under the lock a waiter takes to start a dispatcher: no waiter
                    // is left behind.
                    admission.dispatching = false;
                    guard.armed = false;
                    return;
                }
            }
            self.wait_out_pause().await;
            self.limiter.until_ready().await;
            // A 429 may have paused the endpoint while we waited for the token.
            self.wait_out_pause().await;
            self.admission().admit_next();
        }
    }

    async fn wait_out_pause(&self) {
        while let Some(wait) = self.pause_remaining() {
            tokio::time::sleep(wait).await;
        }
    }

    /// What is left of the current 429 pause, if any.
    fn pause_remaining(&self) -> Option<Duration> {
        self.paused_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|wait| !wait.is_zero())
    }

    fn pause_for(&self, wait: Duration) {
        if let Ok(mut p) = self.paused_until.lock() {
            let until = Instant::now() + wait;
            if p.is_none_or(|current| current < until) {
                *p = Some(until);
            }
        }
    }
}

/// How a request gets its token.
enum Ticket {
    /// It took one at once.
    Now,
    /// It waits in its flow; the dispatcher sends `()` when its turn comes.
    Queued(oneshot::Receiver<()>),
    /// It waits for the bucket itself (no runtime to run a dispatcher on).
    Direct,
}

/// Resets an endpoint's dispatcher state when its task is dropped before it ended on its own
/// (its runtime shut down): the waiters are released to wait for the bucket themselves.
struct DispatchGuard<'a> {
    endpoint: &'a Endpoint,
    armed: bool,
}

impl Drop for DispatchGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut admission = self.endpoint.admission();
            admission.dispatching = false;
            admission.waiting.clear();
            admission.turns.clear();
        }
    }
}

/// Registry of endpoints, so that every client of one vendor URL shares one rate limit.
#[derive(Debug, Default)]
pub struct Endpoints {
    map: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl Endpoints {
    /// The endpoint for `key` ([`HttpConfig::rate_key`], or vendor + origin), created with
    /// `rate_per_second` on first use; later calls get the same endpoint whatever their rate.
    pub fn get(&self, key: &str, rate_per_second: u32) -> Arc<Endpoint> {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(key.to_string())
            .or_insert_with(|| Arc::new(Endpoint::new(rate_per_second)))
            .clone()
    }
}

impl Endpoints {
    /// Request counts of every endpoint, keyed like [`Endpoints::get`]: `vendor origin` or the
    /// [`HttpConfig::rate_key`].
    pub fn snapshot(&self) -> Vec<(String, RequestCounts)> {
        let map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.iter()
            .map(|(k, e)| (k.clone(), e.stats.snapshot()))
            .collect()
    }
}

/// Sends requests to one vendor endpoint under its rate limit and retry policy, and only to the
/// origin of the base URL it was created with.
#[derive(Clone, Debug)]
pub struct Transport {
    http: reqwest::Client,
    endpoint: Arc<Endpoint>,
    config: HttpConfig,
    origin: url::Origin,
    error_format: ErrorFormat,
}

impl Transport {
    /// A transport for the endpoint of `base_url`, sharing its limiter through `endpoints`
    /// (under [`HttpConfig::rate_key`] when set). It is bound to the origin of `base_url`, which
    /// must be an `http` or `https` URL.
    pub fn new(
        vendor: &str,
        base_url: &Url,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, HttpError> {
        let origin = base_url.origin();
        if !origin.is_tuple() || !matches!(base_url.scheme(), "http" | "https") {
            return Err(HttpError::Url(format!(
                "{}: a vendor endpoint must be an http or https URL",
                origin_of(base_url)
            )));
        }
        // Redirects are followed by hand (see `follow`), where the method and origin are known.
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("orgops/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|e| HttpError::Transport {
                method: Method::GET,
                path: String::new(),
                cause: format!("cannot build HTTP client: {e}"),
            })?;
        let key = match &config.rate_key {
            Some(key) => key.clone(),
            None => format!("{vendor} {}", origin.ascii_serialization()),
        };
        let endpoint = endpoints.get(&key, config.rate_per_second);
        Ok(Self {
            http,
            endpoint,
            config,
            origin,
            error_format: ErrorFormat::default(),
        })
    }

    /// This transport reading error bodies in the vendor's `format` (default
    /// [`ErrorFormat::Drf`]).
    pub fn with_error_format(mut self, format: ErrorFormat) -> Self {
        self.error_format = format;
        self
    }

    /// The format error bodies are read in.
    pub fn error_format(&self) -> ErrorFormat {
        self.error_format
    }

    /// The message of an error `body` to `req`: in the vendor's format, shortened, the
    /// request's credentials blanked out.
    fn detail(&self, req: &Request, body: &[u8]) -> String {
        // Blanked before shortening, so a credential cut in two by the cap cannot survive.
        shorten(&redact(&self.error_format.message(body), &req.secrets()))
    }

    /// Refuses `url` unless it has the origin of this transport.
    fn check_origin(&self, url: &Url) -> Result<(), HttpError> {
        if url.origin() == self.origin {
            return Ok(());
        }
        Err(HttpError::OffOrigin {
            url: origin_of(url),
            allowed: self.origin.ascii_serialization(),
        })
    }

    /// Refuses a write (any method but GET and HEAD) once the fence has lapsed.
    fn check_fence(&self, req: &Request) -> Result<(), HttpError> {
        let Some(fence) = &self.config.fence else {
            return Ok(());
        };
        if matches!(req.method, Method::GET | Method::HEAD) {
            return Ok(());
        }
        fence.check().map_err(|_| HttpError::NotLeader {
            request: format!("{} {}", req.method, req.url.path()),
        })
    }

    /// The HTTP client underneath, for transfers to URLs a vendor hands out (presigned storage
    /// URLs, which may lie outside the transport's origin): no origin pinning, no rate limit,
    /// no credential (it has no default headers), no redirect followed. The caller vets the URL
    /// and checks the write fence ([`Transport::check_write`]).
    pub fn raw_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Refuses a write made with [`Transport::raw_client`] (`request` says what, without a
    /// query string) once the [`HttpConfig::fence`] has lapsed.
    pub fn check_write(&self, request: &str) -> Result<(), HttpError> {
        match &self.config.fence {
            Some(fence) => fence.check().map_err(|_| HttpError::NotLeader {
                request: request.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Request counts of this endpoint (shared with every transport of the same endpoint).
    pub fn stats(&self) -> &RequestStats {
        &self.endpoint.stats
    }

    /// Sends `req`, retrying where that is safe. Statuses ≥ 400 and redirects that are not
    /// followed become [`HttpError::Status`]; a status the request accepts
    /// ([`Request::accept_status`], [`Request::accept_when`]) does so at once, unretried. A URL outside the transport's origin is refused
    /// with [`HttpError::OffOrigin`], and a write after the [`HttpConfig::fence`] lapsed with
    /// [`HttpError::NotLeader`], before anything is sent.
    pub async fn send(&self, req: &Request) -> Result<Response, HttpError> {
        self.check_origin(&req.url)?;
        self.check_fence(req)?;
        let path = req.url.path().to_string();
        let mut transient_attempt = 0u32;
        let mut throttle_attempt = 0u32;
        // Time this request has waited (or is about to wait) on the endpoint's 429 pause.
        let mut throttled = Duration::ZERO;
        loop {
            if let Some(pause) = self.endpoint.pause_remaining() {
                throttled += pause;
                if throttled > self.config.max_throttle_wait {
                    return Err(HttpError::Status {
                        method: req.method.clone(),
                        path,
                        status: 429,
                        detail: format!(
                            "rate limited for longer than {:?} (HttpConfig::max_throttle_wait)",
                            self.config.max_throttle_wait
                        ),
                    });
                }
            }
            self.endpoint.admit().await;
            let outcome = match self.attempt(req).await {
                Attempt::Fenced(error) => return Err(error),
                outcome => outcome,
            };
            let status = match &outcome {
                Attempt::Answered { status, .. } | Attempt::Refused { status, .. } => {
                    status.as_u16()
                }
                _ => 0,
            };
            self.endpoint.stats.record(&req.method, status);
            let retry = match outcome {
                // A create the vendor answered (successfully or not) with a body too large to
                // read may have happened: the engine must observe before doing it again.
                Attempt::Refused {
                    error: HttpError::ResponseTooLarge { max_bytes, .. },
                    status,
                } if req.repeat == Repeat::Unsafe && status.as_u16() < 400 => {
                    return Err(HttpError::OutcomeUnknown {
                        method: req.method.clone(),
                        path,
                        cause: format!("response larger than {max_bytes} bytes"),
                    });
                }
                Attempt::Refused { error, .. } | Attempt::Fenced(error) => return Err(error),
                Attempt::Answered { status, body, .. } if status.as_u16() < 400 => {
                    return Ok(Response {
                        status,
                        body,
                        path,
                        secrets: req.secrets(),
                    });
                }
                Attempt::Answered {
                    status,
                    body,
                    retry_after,
                } => {
                    let status = status.as_u16();
                    let detail = self.detail(req, &body);
                    if req.accepts(status, &detail) {
                        return Err(HttpError::Status {
                            method: req.method.clone(),
                            path,
                            status,
                            detail,
                        });
                    }
                    if status == 429 {
                        let wait = retry_after
                            .unwrap_or(DEFAULT_RETRY_AFTER)
                            .min(self.config.max_retry_after);
                        self.endpoint.pause_for(wait);
                        throttle_attempt += 1;
                        if throttle_attempt > self.config.max_throttle_retries {
                            return Err(HttpError::Status {
                                method: req.method.clone(),
                                path,
                                status: 429,
                                detail: "rate limited on every retry".into(),
                            });
                        }
                        tracing::debug!(%path, ?wait, "throttled by the vendor");
                        continue;
                    }
                    let retryable = matches!(status, 408 | 500 | 502 | 503 | 504);
                    if !retryable {
                        return Err(HttpError::Status {
                            method: req.method.clone(),
                            path,
                            status,
                            detail,
                        });
                    }
                    if req.repeat == Repeat::Unsafe {
                        return Err(HttpError::OutcomeUnknown {
                            method: req.method.clone(),
                            path,
                            cause: format!("HTTP {status}"),
                        });
                    }
                    RetryCause::Status(status, detail)
                }
                Attempt::NotSent(cause) => RetryCause::Transport(cause),
                Attempt::Lost(cause) => {
                    if req.repeat == Repeat::Unsafe {
                        return Err(HttpError::OutcomeUnknown {
                            method: req.method.clone(),
                            path,
                            cause,
                        });
                    }
                    RetryCause::Transport(cause)
                }
            };
            transient_attempt += 1;
            if transient_attempt > self.config.max_retries {
                return Err(match retry {
                    RetryCause::Status(status, detail) => HttpError::Status {
                        method: req.method.clone(),
                        path,
                        status,
                        detail,
                    },
                    RetryCause::Transport(cause) => HttpError::Transport {
                        method: req.method.clone(),
                        path,
                        cause,
                    },
                });
            }
            let delay = backoff(
                self.config.backoff_base,
                self.config.backoff_max,
                transient_attempt,
            );
            tracing::debug!(%path, attempt = transient_attempt, ?delay, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt of `req`, following the redirects [`Transport::follow`] allows.
    async fn attempt(&self, req: &Request) -> Attempt {
        let mut url = req.url.clone();
        let mut hops = 0;
        let response = loop {
            let request = match self.build(req, &url) {
                Ok(r) => r,
                Err(cause) => return Attempt::NotSent(cause),
            };
            // Checked last, the body already encoded: waiting for a token, a backoff or a frozen
            // process may have outlived the fence. Only a freeze between here and the socket
            // write escapes it.
            if let Err(error) = self.check_fence(req) {
                return Attempt::Fenced(error);
            }
            let response = match self.http.execute(request).await {
                Ok(r) => r,
                Err(e) if e.is_connect() => return Attempt::NotSent(describe(&e)),
                Err(e) if e.is_builder() => return Attempt::NotSent(describe(&e)),
                Err(e) => return Attempt::Lost(describe(&e)),
            };
            let status = response.status();
            if !status.is_redirection() {
                break response;
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok());
            match self.follow(req, status, location, hops) {
                Ok(next) => {
                    tracing::debug!(
                        path = %req.url.path(),
                        to = %next.path(),
                        "following a redirect"
                    );
                    url = next;
                    hops += 1;
                }
                Err(error) => return Attempt::Refused { status, error },
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        match self.read_body(req, response).await {
            Ok(body) => Attempt::Answered {
                status,
                body,
                retry_after,
            },
            Err(BodyError::TooLarge(error)) => Attempt::Refused { status, error },
            Err(BodyError::Lost(cause)) => Attempt::Lost(cause),
        }
    }

    /// Reads the body of `response`, at most [`HttpConfig::max_response_bytes`] of it.
    async fn read_body(
        &self,
        req: &Request,
        mut response: reqwest::Response,
    ) -> Result<bytes::Bytes, BodyError> {
        let max_bytes = self.config.max_response_bytes;
        let too_large = || {
            BodyError::TooLarge(HttpError::ResponseTooLarge {
                method: req.method.clone(),
                path: req.url.path().to_string(),
                max_bytes,
            })
        };
        if req.method != Method::HEAD && response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| BodyError::Lost(describe(&e)))?
        {
            if (body.len() as u64).saturating_add(chunk.len() as u64) > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// The request `req` sent to `url` (the request's own URL or a redirect target), its body
    /// encoded.
    fn build(&self, req: &Request, url: &Url) -> Result<reqwest::Request, String> {
        let mut builder = self.http.request(req.method.clone(), url.clone());
        let sensitive = |secret: &SecretString| {
            let mut value = HeaderValue::from_str(secret.expose_secret())
                .map_err(|_| "credential is not a valid header value".to_string())?;
            value.set_sensitive(true);
            Ok::<_, String>(value)
        };
        if let Some(auth) = &req.authorization {
            builder = builder.header(AUTHORIZATION, sensitive(auth)?);
        }
        if let Some((name, secret)) = &req.credential {
            builder = builder.header(name.clone(), sensitive(secret)?);
        }
        let builder = match &req.body {
            Body::Empty => builder,
            Body::Json(v) => builder.json(v),
            Body::Form(fields) => builder.form(fields),
            // With its charset: a text/plain body without one is ISO-8859-1 to a Spring server.
            Body::Text(text) => builder
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(text.clone()),
        };
        builder.build().map_err(|e| describe(&e))
    }

    /// Where a redirect answer to `req` leads, when it may be followed: GET and HEAD only,
    /// within the transport's origin, at most [`MAX_REDIRECTS`] hops. Anything else is an error,
    /// and the target is never contacted.
    fn follow(
        &self,
        req: &Request,
        status: StatusCode,
        location: Option<Url>,
        hops: usize,
    ) -> Result<Url, HttpError> {
        let refuse = |detail: String| HttpError::Status {
            method: req.method.clone(),
            path: req.url.path().to_string(),
            status: status.as_u16(),
            detail,
        };
        let Some(target) = location else {
            return Err(refuse(
                "the vendor redirected without a usable Location".into(),
            ));
        };
        let to = origin_of(&target);
        if !matches!(req.method, Method::GET | Method::HEAD) {
            return Err(refuse(format!(
                "the vendor redirected to {to}; only GET and HEAD follow redirects"
            )));
        }
        if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Err(refuse(format!("unexpected redirect status towards {to}")));
        }
        self.check_origin(&target)?;
        if hops >= MAX_REDIRECTS {
            return Err(refuse(format!(
                "the vendor redirected more than {MAX_REDIRECTS} times"
            )));
        }
        Ok(target)
    }

    /// GETs `first` and every page after it. `split` returns a page's items and its next URL;
    /// a relative next URL is resolved against the page's URL, and one outside the transport's
    /// origin is refused with [`HttpError::OffOrigin`].
    pub async fn get_all_pages<F>(
        &self,
        first: Url,
        authorization: Option<SecretString>,
        split: F,
    ) -> Result<Vec<Value>, HttpError>
    where
        F: Fn(Value) -> Result<(Vec<Value>, Option<String>), String>,
    {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(too_many_pages(url.path(), "the next link loops"));
            }
            let mut req = Request::new(Method::GET, url.clone());
            req.authorization = authorization.clone();
            let page = self.send(&req).await?.json()?;
            let (mut page_items, next_url) = split(page).map_err(|cause| HttpError::Decode {
                path: url.path().to_string(),
                cause,
            })?;
            items.append(&mut page_items);
            next = match next_url {
                Some(n) => {
                    let n = url.join(&n).map_err(|_| HttpError::Url(n))?;
                    self.check_origin(&n)?;
                    Some(n)
                }
                None => None,
            };
        }
        Ok(items)
    }

    /// Every page of a list paginated by page number: `request(n)` is the request for page `n`
    /// (0, 1, …; e.g. a GET of [`page_offset_url`], or a POST query marked [`Repeat::Safe`]),
    /// `split` returns a page's items and whether another page follows (e.g.
    /// [`Response::items_and_has_next_page`]). Stops at the first page that says none follows
    /// or has no items. Each request is origin-checked like any other.
    pub async fn get_all_offset_pages<R, S>(
        &self,
        request: R,
        split: S,
    ) -> Result<Vec<Value>, HttpError>
    where
        R: Fn(u64) -> Request,
        S: Fn(&Response) -> Result<(Vec<Value>, bool), HttpError>,
    {
        let mut items = Vec::new();
        for page in 0u64.. {
            let req = request(page);
            if page as usize >= MAX_PAGES {
                return Err(too_many_pages(req.url.path(), "hasNextPage never ends"));
            }
            let (mut page_items, has_next) = split(&self.send(&req).await?)?;
            let empty = page_items.is_empty();
            items.append(&mut page_items);
            if !has_next || empty {
                break;
            }
        }
        Ok(items)
    }

    /// Every page of a list paginated by cursor: `request(None)` asks for the first page,
    /// `request(Some(c))` for the page after cursor `c` (Rendered.ai: the id of the last item
    /// seen); `split` returns a page's items and the next cursor, `None` after the last page
    /// (e.g. when a page is shorter than the limit asked for). A cursor that comes back a
    /// second time is an error (the vendor's pagination loops), as is passing [`MAX_PAGES`].
    pub async fn get_all_cursor_pages<R, S>(
        &self,
        request: R,
        split: S,
    ) -> Result<Vec<Value>, HttpError>
    where
        R: Fn(Option<&str>) -> Request,
        S: Fn(&Response) -> Result<(Vec<Value>, Option<String>), HttpError>,
    {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        for page in 0usize.. {
            let req = request(cursor.as_deref());
            if page >= MAX_PAGES {
                return Err(too_many_pages(req.url.path(), "the cursor never ends"));
            }
            let response = self.send(&req).await?;
            let (mut page_items, next) = split(&response)?;
            items.append(&mut page_items);
            match next {
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(response.decode_error(format!(
                        "the cursor {} came back a second time; the pagination loops",
                        truncate(&next, 100)
                    )));
                }
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(items)
    }
}

fn too_many_pages(path: &str, why: &str) -> HttpError {
    HttpError::Decode {
        path: path.to_string(),
        cause: format!("more than {MAX_PAGES} pages; {why}"),
    }
}

enum Attempt {
    /// The vendor answered below 400 or with an error status to handle.
    Answered {
        status: StatusCode,
        body: bytes::Bytes,
        retry_after: Option<Duration>,
    },
    /// The vendor answered, and the answer is an error as it stands (a redirect that is not
    /// followed).
    Refused {
        status: StatusCode,
        error: HttpError,
    },
    /// The request never reached the server.
    NotSent(String),
    /// The request may have reached the server; its response did not arrive.
    Lost(String),
    /// The write was not sent: the fence had lapsed.
    Fenced(HttpError),
}

enum BodyError {
    /// Longer than the cap.
    TooLarge(HttpError),
    /// The connection failed while reading.
    Lost(String),
}

enum RetryCause {
    Status(u16, String),
    Transport(String),
}

/// The wait a `429` without a usable `Retry-After` imposes.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The wait a `Retry-After` value asks for at `now`: delta-seconds or an HTTP date (IMF-fixdate,
/// e.g. `Sun, 06 Nov 1994 08:49:37 GMT`). `None` for garbage, a negative number or a date that
/// has passed; the caller then waits [`DEFAULT_RETRY_AFTER`]. At most a day (callers cap it
/// further).
fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    const DAY: f64 = 86_400.0;
    static HTTP_DATE: jiff::fmt::rfc2822::DateTimeParser =
        jiff::fmt::rfc2822::DateTimeParser::new().relaxed_weekday(true);
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(DAY)));
    }
    let at = HTTP_DATE.parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    if !wait.is_positive() {
        return None;
    }
    Duration::try_from(wait)
        .ok()
        .map(|w| w.min(Duration::from_secs_f64(DAY)))
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half random.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(fastrand::f64())
}

/// The origin of `url` as text (`https://host:port`); the scheme alone for a URL without one.
fn origin_of(url: &Url) -> String {
    let origin = url.origin();
    if origin.is_tuple() {
        origin.ascii_serialization()
    } else {
        format!("{}:", url.scheme())
    }
}

fn describe(e: &reqwest::Error) -> String {
    // Our URLs never carry credentials (tokens go in headers), so the URL may show.
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A token and when it stops working.
#[derive(Clone, Debug)]
pub struct Token {
    value: SecretString,
    obtained: Instant,
    expires: Option<Instant>,
}

impl Token {
    /// A token that does not expire (until the vendor answers 401).
    pub fn new(value: SecretString) -> Self {
        Self {
            value,
            obtained: Instant::now(),
            expires: None,
        }
    }

    /// A token valid for `lifetime` from now (e.g. an OAuth `expires_in`).
    pub fn with_lifetime(value: SecretString, lifetime: Duration) -> Self {
        let obtained = Instant::now();
        Self {
            value,
            obtained,
            // Beyond what the clock represents: never, in practice.
            expires: obtained.checked_add(lifetime),
        }
    }

    /// A token valid until `at` (wall clock).
    pub fn expiring_at(value: SecretString, at: jiff::Timestamp) -> Self {
        let left =
            Duration::try_from(at.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO);
        Self::with_lifetime(value, left)
    }

    /// A JWT, valid until its `exp` claim (read without checking the signature, as the vendor's
    /// own SDKs do); a token that is not a JWT, or has no `exp`, does not expire.
    pub fn from_jwt(value: SecretString) -> Self {
        match jwt_expiry(&value) {
            Some(at) => Self::expiring_at(value, at),
            None => Self::new(value),
        }
    }

    /// The token.
    pub fn value(&self) -> &SecretString {
        &self.value
    }

    /// When it expires, if it does.
    pub fn expires(&self) -> Option<Instant> {
        self.expires
    }

    /// Whether it should be renewed at `now`: within `margin` of its expiry, the margin being at
    /// most half its lifetime (so a short-lived token is still used, not renewed at once).
    pub fn due_at(&self, now: Instant, margin: Duration) -> bool {
        let Some(expires) = self.expires else {
            return false;
        };
        let lifetime = expires.saturating_duration_since(self.obtained);
        now.checked_add(margin.min(lifetime / 2))
            .is_none_or(|renew_from| renew_from >= expires)
    }
}

/// The `exp` claim of a JWT, read without verifying anything; `None` when `token` is not a JWT
/// with a numeric `exp`.
pub fn jwt_expiry(token: &SecretString) -> Option<jiff::Timestamp> {
    let exp = jwt_claims(token)?.get("exp")?.as_f64()?;
    if !exp.is_finite() {
        return None;
    }
    // Clamped to what jiff represents; a far-future expiry is "never" in practice.
    let exp = exp.clamp(0.0, 253_402_207_199.0) as i64;
    jiff::Timestamp::from_second(exp).ok()
}

/// The `sub` claim of a JWT (who the token speaks for), read without checking the signature.
/// An identity, not a credential: fit for status and messages.
pub fn jwt_subject(token: &SecretString) -> Option<String> {
    jwt_claim(token, "sub")
}

/// A string claim of a JWT (`sub`, `email`), read without checking the signature: an identity,
/// not a credential, fit for status and messages; `None` when absent, not a string, longer than
/// 256 bytes or not printable.
pub fn jwt_claim(token: &SecretString, claim: &str) -> Option<String> {
    let value = jwt_claims(token)?.get(claim)?.as_str()?.to_string();
    // Bounded, printable: it ends up in status.
    (value.len() <= 256 && !value.chars().any(char::is_control)).then_some(value)
}

/// A JWT's claims, unverified; `None` for anything that is not a small three-part JWT.
fn jwt_claims(token: &SecretString) -> Option<Value> {
    use base64::Engine as _;
    let token = token.expose_secret();
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    // A hostile "token" must not cost much to look at.
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&payload).ok()
}

/// A cache of tokens per scope (e.g. per organization) with single-flight login; a token that
/// expires is renewed shortly before it does (see [`Token::due_at`]), so no request fails with
/// an expired token first.
#[derive(Debug)]
pub struct TokenCache<K> {
    slots: Mutex<HashMap<K, Arc<tokio::sync::Mutex<Option<Token>>>>>,
    margin: Duration,
}

/// How long before its expiry a token is renewed, at most (dtlpy's own margin).
pub const DEFAULT_RENEW_MARGIN: Duration = Duration::from_secs(60);

impl<K> Default for TokenCache<K> {
    fn default() -> Self {
        Self::with_margin(DEFAULT_RENEW_MARGIN)
    }
}

impl<K> TokenCache<K> {
    /// A cache that renews tokens `margin` before they expire (at most half their lifetime).
    pub fn with_margin(margin: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            margin,
        }
    }
}

impl<K: Eq + Hash + Clone> TokenCache<K> {
    fn slot(&self, key: &K) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(key.clone()).or_default().clone()
    }

    /// The cached token of `key`, or the result of `login` (run once even if many ask at once).
    /// Tokens from this call do not expire; see [`TokenCache::get_token`].
    pub async fn get<F, Fut, E>(&self, key: &K, login: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, E>>,
    {
        self.get_token(key, || async { login().await.map(Token::new) })
            .await
    }

    /// The cached token of `key` unless it is due for renewal, else the result of `login`
    /// (run once even if many ask at once).
    pub async fn get_token<F, Fut, E>(&self, key: &K, login: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(token) = guard.as_ref()
            && !token.due_at(Instant::now(), self.margin)
        {
            return Ok(token.value.clone());
        }
        let token = login().await?;
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    /// Forgets `stale` for `key` (unless another caller already replaced it), e.g. after the
    /// vendor answered it with 401.
    pub async fn invalidate(&self, key: &K, stale: &SecretString) {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if guard
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == stale.expose_secret())
        {
            *guard = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..20 {
            let d = backoff(base, max, attempt);
            let full = base
                .saturating_mul(2u32.saturating_pow(attempt - 1))
                .min(max);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, max, 30) <= max);
    }

    #[test]
    fn error_detail_reads_drf_bodies() {
        let error_detail = |b: &[u8]| ErrorFormat::Drf.detail(b);
        assert_eq!(error_detail(br#"{"detail":"Not found."}"#), "Not found.");
        assert_eq!(
            error_detail(br#"{"name":["This field is required."]}"#),
            "name: This field is required."
        );
        assert_eq!(error_detail(b"oops"), "oops");
        assert!(error_detail("x".repeat(1000).as_bytes()).len() < 320);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: jiff::Timestamp = "1994-11-06T08:49:07Z".parse().unwrap();
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p("120"), Some(Duration::from_secs(120)));
        assert_eq!(p(" 0 "), Some(Duration::ZERO));
        assert_eq!(p("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(
            p("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::from_secs(30))
        );
        // A wrong weekday is tolerated; the date counts.
        assert_eq!(
            p("Mon, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(60))
        );
        // Garbage, negative numbers and past dates fall back to the default.
        for bad in [
            "",
            "soon",
            "-5",
            "NaN",
            "inf",
            "Sun, 06 Nov 1994 08:00:00 GMT",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        // Absurd values are bounded before any conversion can overflow.
        assert_eq!(p("1e300"), Some(Duration::from_secs(86_400)));
        assert_eq!(
            p("Sat, 01 Jan 9000 00:00:00 GMT"),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn admission_takes_turns_across_flows_and_skips_waiters_that_gave_up() {
        let mut admission = Admission::default();
        let mut a: Vec<_> = (0..4)
            .map(|_| {
                let (tx, rx) = oneshot::channel();
                admission.push("a".into(), tx);
                rx
            })
            .collect();
        let (tx, mut b) = oneshot::channel();
        admission.push("b".into(), tx);
        // a[0] gave up before its turn: it does not take a token, a[1] gets a's turn.
        drop(a.remove(0));
        assert!(admission.admit_next());
        assert!(a[0].try_recv().is_ok());
        assert!(admission.admit_next());
        assert!(
            b.try_recv().is_ok(),
            "b's turn comes before a's second request"
        );
        assert!(admission.admit_next());
        assert!(a[1].try_recv().is_ok());
        // The last waiter gives up too: pruning leaves nobody, and no token is handed out.
        drop(a.remove(2));
        assert!(!admission.prune());
        assert!(!admission.admit_next());
        assert!(admission.waiting.is_empty() && admission.turns.is_empty());
    }

    #[tokio::test]
    async fn the_dispatcher_ends_when_nobody_waits() {
        let endpoint = Arc::new(Endpoint::new(50));
        for round in 0..2 {
            let admits = (0..40).map(|i| {
                let endpoint = endpoint.clone();
                in_flow(
                    format!("flow-{}", i % 3),
                    async move { endpoint.admit().await },
                )
            });
            futures::future::join_all(admits).await;
            // The dispatcher task lets go of the endpoint once the queue is empty.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Arc::strong_count(&endpoint) > 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(Arc::strong_count(&endpoint), 1, "round {round}");
            assert!(!endpoint.admission().dispatching, "round {round}");
        }
    }

    #[tokio::test]
    async fn token_cache_logs_in_once_and_relogs_after_invalidate() {
        let cache: TokenCache<u8> = TokenCache::default();
        let logins = std::sync::atomic::AtomicU32::new(0);
        let login = || async {
            let n = logins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(SecretString::from(format!("t{n}")))
        };
        let a = cache.get(&1, login).await.unwrap();
        let b = cache.get(&1, login).await.unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        cache.invalidate(&1, &a).await;
        let c = cache.get(&1, login).await.unwrap();
        assert_eq!(c.expose_secret(), "t1");
        // A stale invalidate does not drop the fresh token.
        cache.invalidate(&1, &a).await;
        assert_eq!(cache.get(&1, login).await.unwrap().expose_secret(), "t1");
    }

    #[test]
    fn a_fence_starts_closed_holds_until_its_deadline_and_can_be_closed_or_opened() {
        let now = Instant::now();
        let fence = Fence::closed();
        assert!(!fence.allows_at(now + Duration::from_millis(1)));
        assert!(matches!(fence.check(), Err(HttpError::NotLeader { .. })));
        assert!(fence.check().unwrap_err().is_transient());

        fence.valid_until(now + Duration::from_secs(10));
        assert!(fence.allows_at(now + Duration::from_secs(9)));
        assert!(fence.check().is_ok());
        // The deadline itself is too late.
        assert!(!fence.allows_at(now + Duration::from_secs(10)));
        assert!(!fence.allows_at(now + Duration::from_secs(3600)));

        fence.close();
        assert!(fence.check().is_err());
        assert!(!fence.allows_at(now + Duration::from_secs(9)));

        fence.valid_forever();
        assert!(fence.allows_at(now + Duration::from_secs(1_000_000)));
        assert!(fence.check().is_ok());
    }

    #[tokio::test]
    async fn a_lapsed_fence_refuses_writes_unsent_and_lets_reads_through() {
        // Nothing listens here: a request that were sent would fail with a transport error,
        // after retries; a refused one fails at once with NotLeader.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}/api/")).unwrap();
        let fence = Arc::new(Fence::closed());
        let config = HttpConfig {
            fence: Some(fence.clone()),
            max_retries: 0,
            ..HttpConfig::default()
        };
        let transport = Transport::new("rossum", &base, config, &Endpoints::default()).unwrap();
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let err = transport
                .send(&Request::new(method.clone(), base.join("queues").unwrap()))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, HttpError::NotLeader { request } if request == &format!("{method} /api/queues")),
                "{err}"
            );
        }
        assert_eq!(transport.stats().total(), 0, "a refused write was sent");
        let read = transport
            .send(&Request::new(Method::GET, base.join("queues").unwrap()))
            .await
            .unwrap_err();
        assert!(matches!(read, HttpError::Transport { .. }), "{read}");
        assert_eq!(transport.stats().total(), 1);

        // Valid again: the write goes out (and meets the closed port).
        fence.valid_until(Instant::now() + Duration::from_secs(60));
        let err = transport
            .send(&Request::new(Method::PUT, base.join("queues/1").unwrap()))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Transport { .. }), "{err}");
        assert_eq!(transport.stats().writes(), 1);
    }

    #[test]
    fn request_debug_hides_the_credential() {
        let req = Request::new(Method::GET, Url::parse("http://x/").unwrap())
            .authorization(SecretString::from("Bearer hunter2"))
            .credential_header(
                HeaderName::from_static("apikey"),
                SecretString::from("key-hunter3"),
            );
        let debug = format!("{req:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("hunter3"),
            "{debug}"
        );
    }

    #[test]
    fn each_error_format_reads_its_vendors_body() {
        let ol = br#"{"errors":[{"error":{"type":"illegalState","code":500},"message":"Organization [00000000-0000-0000-0000-000000000001] does not exist."}]}"#;
        assert_eq!(
            ErrorFormat::OpenLattice.detail(ol),
            "illegalState: Organization [00000000-0000-0000-0000-000000000001] does not exist."
        );
        let two = br#"{"errors":[{"error":{"type":"forbidden","code":403},"message":"a"},{"message":"b"}]}"#;
        assert_eq!(ErrorFormat::OpenLattice.detail(two), "forbidden: a; b");
        // Spring's own error body (a 415 or 405 before the controller).
        let spring = br#"{"timestamp":"2022-01-01T00:00:00Z","status":415,"error":"Unsupported Media Type","message":"Content type 'application/json' not supported","path":"/x"}"#;
        assert_eq!(
            ErrorFormat::OpenLattice.detail(spring),
            "Content type 'application/json' not supported"
        );

        let gql = br#"{"data":null,"errors":[{"message":"The Datasets limit has been reached by this workspace","path":["createDataset"]}]}"#;
        assert_eq!(
            ErrorFormat::GraphQl.detail(gql),
            "The Datasets limit has been reached by this workspace"
        );

        let dl = br#"{"status":404,"name":"NotFound","message":"Project not found"}"#;
        assert_eq!(ErrorFormat::Dataloop.detail(dl), "Project not found");
        assert_eq!(
            ErrorFormat::Dataloop.detail(br#"{"error":"Unauthorized"}"#),
            "Unauthorized"
        );
        // The DRF reading would have listed every field instead.
        assert_eq!(
            ErrorFormat::Drf.detail(dl),
            "message: \"Project not found\"; name: \"NotFound\"; status: 404"
        );

        // Whatever the format: one line, at most the cap, from anything.
        let long = format!(r#"{{"message":"line one\nline two {}"}}"#, "x".repeat(5000));
        for format in [
            ErrorFormat::Drf,
            ErrorFormat::OpenLattice,
            ErrorFormat::GraphQl,
            ErrorFormat::Dataloop,
        ] {
            let d = format.detail(long.as_bytes());
            assert!(
                d.len() <= MAX_DETAIL + 3 && !d.contains('\n'),
                "{format:?}: {d}"
            );
            assert_eq!(
                format.detail(b"<html>Bad Gateway</html>"),
                "<html>Bad Gateway</html>"
            );
            assert_eq!(format.detail(&[0xff, 0xfe, b'x']), "\u{fffd}\u{fffd}x");
            assert_eq!(format.detail(b""), "");
        }
    }

    #[test]
    fn an_echoed_credential_is_blanked_even_where_the_cap_cuts_it() {
        let secrets = [
            SecretString::from("Bearer eyJhbGciOi.secret-part.sig"),
            SecretString::from("apikey-0123456789"),
        ];
        let text = "token eyJhbGciOi.secret-part.sig and apikey-0123456789 rejected";
        assert_eq!(
            redact(text, &secrets),
            "token [redacted] and [redacted] rejected"
        );
        // Short values are not credentials; ordinary words stay.
        assert_eq!(redact("a b c", &[SecretString::from("b")]), "a b c");

        // Through a transport: the key sits across the 300-byte cap.
        let t = Transport::new(
            "test",
            &Url::parse("http://127.0.0.1:9/").unwrap(),
            HttpConfig::default(),
            &Endpoints::default(),
        )
        .unwrap()
        .with_error_format(ErrorFormat::Dataloop);
        let req = Request::new(Method::GET, Url::parse("http://127.0.0.1:9/x").unwrap())
            .credential_header(
                HeaderName::from_static("apikey"),
                SecretString::from("apikey-0123456789"),
            );
        // Cut at the cap without blanking first, "apikey-01234" would remain.
        let body = format!(
            r#"{{"message":"{}apikey-0123456789"}}"#,
            "y".repeat(MAX_DETAIL - 12)
        );
        let detail = t.detail(&req, body.as_bytes());
        assert!(!detail.contains("apikey-01"), "{detail}");
        assert!(detail.ends_with("y[redacted]"), "{detail}");
    }

    fn jwt(claims: Value) -> SecretString {
        use base64::Engine as _;
        let enc = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        SecretString::from(format!(
            "{}.{}.c2lnbmF0dXJl",
            enc(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
            enc(&claims)
        ))
    }

    #[test]
    fn a_jwt_expires_at_its_exp_claim_and_anything_else_never() {
        let exp = jiff::Timestamp::now().as_second() + 3600;
        let token = jwt(serde_json::json!({"sub": "google-oauth2|1", "exp": exp}));
        assert_eq!(jwt_expiry(&token).map(|t| t.as_second()), Some(exp));
        let bearer = SecretString::from(format!("Bearer {}", token.expose_secret()));
        assert_eq!(jwt_expiry(&bearer).map(|t| t.as_second()), Some(exp));
        let t = Token::from_jwt(token);
        let left = t.expires().unwrap() - Instant::now();
        assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));

        for not_expiring in [
            SecretString::from("opaque-api-key"),
            SecretString::from("a.b.c"),
            SecretString::from("a.b.c.d"),
            jwt(serde_json::json!({"sub": "x"})),
            jwt(serde_json::json!({"exp": "soon"})),
        ] {
            assert_eq!(jwt_expiry(&not_expiring), None);
            assert!(Token::from_jwt(not_expiring).expires().is_none());
        }
        // Absurd values neither panic nor wrap around.
        let far = Token::from_jwt(jwt(serde_json::json!({"exp": 1e300})));
        assert!(!far.due_at(Instant::now(), DEFAULT_RENEW_MARGIN));
        let past = Token::from_jwt(jwt(serde_json::json!({"exp": -5})));
        assert!(past.due_at(Instant::now(), DEFAULT_RENEW_MARGIN));
    }

    #[test]
    fn a_token_is_due_within_the_margin_of_its_expiry_but_never_before_half_its_life() {
        let now = Instant::now();
        let day = Token::with_lifetime("t".into(), Duration::from_secs(86_400));
        let margin = Duration::from_secs(60);
        assert!(!day.due_at(now, margin));
        assert!(!day.due_at(now + Duration::from_secs(86_400 - 61), margin));
        assert!(day.due_at(now + Duration::from_secs(86_400 - 59), margin));
        // A 10 s token with a 60 s margin is used for its first 5 s, not renewed on every call.
        let short = Token::with_lifetime("t".into(), Duration::from_secs(10));
        assert!(!short.due_at(now + Duration::from_secs(4), margin));
        assert!(short.due_at(now + Duration::from_secs(6), margin));
        assert!(!Token::new("t".into()).due_at(now + Duration::from_secs(1 << 40), margin));
    }

    #[tokio::test]
    async fn an_expiring_token_is_renewed_before_use_without_a_401() {
        let cache: TokenCache<u8> = TokenCache::with_margin(Duration::from_millis(200));
        let logins = std::sync::atomic::AtomicU32::new(0);
        let login = || async {
            let n = logins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(Token::with_lifetime(
                SecretString::from(format!("t{n}")),
                Duration::from_millis(1000),
            ))
        };
        assert_eq!(
            cache.get_token(&1, login).await.unwrap().expose_secret(),
            "t0"
        );
        assert_eq!(
            cache.get_token(&1, login).await.unwrap().expose_secret(),
            "t0"
        );
        assert_eq!(logins.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Within the margin of the expiry (800 ms on): renewed, though nobody invalidated it.
        tokio::time::sleep(Duration::from_millis(820)).await;
        assert_eq!(
            cache.get_token(&1, login).await.unwrap().expose_secret(),
            "t1"
        );
        assert_eq!(
            cache.get_token(&1, login).await.unwrap().expose_secret(),
            "t1"
        );
        assert_eq!(logins.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Another scope has its own token.
        assert_eq!(
            cache.get_token(&2, login).await.unwrap().expose_secret(),
            "t2"
        );
    }

    #[test]
    fn page_offset_url_replaces_the_page_and_keeps_the_filters() {
        let url =
            Url::parse("http://x/api/v1/recipes?projects=p1&pageOffset=7&pageSize=3").unwrap();
        assert_eq!(
            page_offset_url(&url, 2, 1000).as_str(),
            "http://x/api/v1/recipes?projects=p1&pageOffset=2&pageSize=1000"
        );
    }
}
