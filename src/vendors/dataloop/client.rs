//! The typed Dataloop client: the gate's REST API (`…/api/v1`) with its JWT, sent the way
//! dtlpy 1.126.5 sends it (design/vendors/dataloop.md).
//!
//! Things the gate does that shape this client:
//! - **Tokens expire** (~24 h) and the gate never renews one by itself. The credentials Secret
//!   holds either an API key (`apiKey`, a JWT used as it is) or `username` + `password`,
//!   exchanged at `POST {gate}/token?default` (`user_credentials`, the M2M login of
//!   `dl.login_m2m`) for an `id_token`. Every token goes through a [`TokenCache`] that reads
//!   its `exp` and logs in again shortly before it (as dtlpy checks `exp - 60 s` before every
//!   call), so no request is ever sent with an expired token; a 401 after a login logs in
//!   once more. An API key cannot be renewed here: once expired it is reported, unsent,
//!   naming the Secret, and a new key in the Secret builds a new client.
//! - **Lists** come three ways: plain JSON arrays (orgs, members, projects, groups,
//!   integrations, drivers), `pageOffset`/`pageSize` pages with `hasNextPage` (ontologies,
//!   recipes), and DQL query bodies `POST …/query` paged by `page` (datasets), which are
//!   reads and so repeated like GETs ([`Repeat::Safe`]).
//! - **Errors** are JSON `{status, name, message}` ([`ErrorFormat::Dataloop`]).
//! - **Creates are plain POSTs** without client ids or idempotency keys: a create whose answer
//!   was lost is [`HttpError::OutcomeUnknown`] and the engine looks again by natural key.
//!   `POST /projects` is a form body (`name=…`) and lands in the caller's *active* org: the
//!   client makes the target org the active one first (`POST /users/me {"org"}`), so that a
//!   project whose answer was lost is found there by name (not left in, say, the template
//!   org), and moves a project that landed elsewhere anyway (another reconcile changed the
//!   active org meanwhile) with `PATCH /projects/{id}/org` (form `org_id=…`).
//! - Write-only values (integration options, the password) are blanked out of every error
//!   message, should the gate echo them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::models::*;
use crate::vendors::http::{
    ErrorFormat, HttpConfig, HttpError, Repeat, Request, Response, Token, TokenCache, Transport,
    jwt_claim, jwt_expiry, page_offset_url,
};
use crate::vendors::{Credentials, Endpoints, VendorError};

/// Dataloop's production gate (dtlpy's `prod` environment).
pub const DEFAULT_ENDPOINT: &str = "https://gate.dataloop.ai/api/v1";
/// Dataloop's public API host.
pub const PUBLIC_ENDPOINTS: &[&str] = &["https://gate.dataloop.ai"];
/// Requests per second by default: Dataloop documents no limit (dtlpy throttles nothing and
/// retries a 429 only when it carries `Retry-After`), so the operators' usual 10/s.
pub const DEFAULT_RATE: u32 = 10;
/// The path of the REST API under the gate (the token endpoint is at the gate's root).
pub const API_PATH: &str = "/api/v1";
/// The Secret key of an API key (a JWT).
pub const API_KEY_KEY: &str = "apiKey";
/// The Secret key of the M2M login's user name (an e-mail).
pub const USERNAME_KEY: &str = "username";
/// Accepted instead of `username` (dtlpy calls it `email`).
pub const EMAIL_KEY: &str = "email";
/// The Secret key of the M2M login's password.
pub const PASSWORD_KEY: &str = "password";
/// Items per page asked for (the gate's maximum).
pub const PAGE_SIZE: u32 = 1000;
/// How long applying the cache may wait for `READY` before the reconcile moves on (the next
/// one looks again).
pub const CACHE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client authenticates.
enum Login {
    /// An API key (or any JWT) used as it is.
    ApiKey(SecretString),
    /// `POST {gate}/token?default` with `user_credentials`.
    Machine {
        username: String,
        password: SecretString,
    },
}

/// A client of one Dataloop gate with one set of credentials.
pub struct DataloopApi {
    /// `…/api/v1`, no trailing slash.
    base: Url,
    /// `{gate}/token?default`.
    token_url: Url,
    transport: Transport,
    credentials: Credentials,
    login: Login,
    tokens: TokenCache<()>,
    /// An API key was accepted by `GET /users/me` once.
    key_checked: AtomicBool,
    /// The caller's e-mail, looked up once where the token does not say.
    me: tokio::sync::OnceCell<String>,
    /// How long applying the cache waits for `READY`.
    cache_timeout: Duration,
}

impl std::fmt::Debug for DataloopApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataloopApi")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .finish()
    }
}

fn bearer(token: &SecretString) -> SecretString {
    SecretString::from(format!("Bearer {}", token.expose_secret()))
}

/// `e` with every value in `values` blanked out of its messages (write-only values the gate
/// might echo in an error).
fn scrub(e: HttpError, values: &[&str]) -> HttpError {
    let clean = |mut text: String| {
        for v in values {
            // Very short values would blank ordinary words; real secrets are longer.
            if v.len() >= 4 && text.contains(v) {
                text = text.replace(v, "[redacted]");
            }
        }
        text
    };
    match e {
        HttpError::Status {
            method,
            path,
            status,
            detail,
        } => HttpError::Status {
            method,
            path,
            status,
            detail: clean(detail),
        },
        HttpError::Decode { path, cause } => HttpError::Decode {
            path,
            cause: clean(cause),
        },
        HttpError::Transport {
            method,
            path,
            cause,
        } => HttpError::Transport {
            method,
            path,
            cause: clean(cause),
        },
        HttpError::OutcomeUnknown {
            method,
            path,
            cause,
        } => HttpError::OutcomeUnknown {
            method,
            path,
            cause: clean(cause),
        },
        other => other,
    }
}

/// `value` as `T`, or a decode error naming the response's path.
fn decode<T: DeserializeOwned>(resp: &Response, value: Value) -> Result<T, VendorError> {
    serde_json::from_value(value).map_err(|e| VendorError::Http(resp.decode_error(e.to_string())))
}

/// A JSON array answer, or a decode error.
fn array(resp: &Response) -> Result<Vec<Value>, VendorError> {
    match resp.json()? {
        Value::Array(items) => Ok(items),
        _ => Err(VendorError::Http(
            resp.decode_error("expected a JSON array"),
        )),
    }
}

/// Typed items of a JSON array answer; items that do not decode are dropped.
fn typed<T: DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|i| serde_json::from_value(i).ok())
        .collect()
}

impl DataloopApi {
    /// A client for `endpoint` (default [`DEFAULT_ENDPOINT`]: the API base, `…/api/v1`; a bare
    /// gate URL gets `/api/v1` appended) with the Secret's `username` + `password` (renewable)
    /// or its `apiKey`.
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, VendorError> {
        let raw = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        let gate = raw.strip_suffix(API_PATH).unwrap_or(raw);
        let base = Url::parse(&format!("{gate}{API_PATH}"))
            .map_err(|_| HttpError::Url(raw.to_string()))?;
        let mut token_url =
            Url::parse(&format!("{gate}/token")).map_err(|_| HttpError::Url(raw.to_string()))?;
        token_url.set_query(Some("default"));
        let login = Self::login_from(&credentials)?;
        let transport = Transport::new("dataloop", &base, config, endpoints)?
            .with_error_format(ErrorFormat::Dataloop);
        Ok(Self {
            base,
            token_url,
            transport,
            credentials,
            login,
            tokens: TokenCache::default(),
            key_checked: AtomicBool::new(false),
            me: tokio::sync::OnceCell::new(),
            cache_timeout: CACHE_READY_TIMEOUT,
        })
    }

    /// This client waiting at most `timeout` for the cache to become `READY`.
    pub fn with_cache_timeout(mut self, timeout: Duration) -> Self {
        self.cache_timeout = timeout;
        self
    }

    /// `username` + `password` when both are there (a token can be renewed from them), else
    /// `apiKey`; refused here when neither is usable.
    fn login_from(credentials: &Credentials) -> Result<Login, VendorError> {
        let username = credentials
            .get(USERNAME_KEY)
            .or_else(|| credentials.get(EMAIL_KEY));
        if let (Some(user), Some(password)) = (username, credentials.get(PASSWORD_KEY)) {
            let username = user.expose_secret().trim().to_string();
            if username.is_empty() || password.expose_secret().is_empty() {
                return Err(VendorError::InvalidCredentials {
                    secret: credentials.secret.clone(),
                    detail: format!("key {USERNAME_KEY:?} or {PASSWORD_KEY:?} is empty"),
                });
            }
            return Ok(Login::Machine {
                username,
                password: password.clone(),
            });
        }
        let Some(key) = credentials.get(API_KEY_KEY) else {
            // Name what is missing: the pair when half of it is there, else the API key.
            let missing = match (username, credentials.get(PASSWORD_KEY)) {
                (Some(_), None) => PASSWORD_KEY,
                (None, Some(_)) => USERNAME_KEY,
                _ => API_KEY_KEY,
            };
            return Err(VendorError::MissingCredential {
                secret: credentials.secret.clone(),
                key: missing.to_string(),
            });
        };
        let key = key.expose_secret().trim();
        let key = key.strip_prefix("Bearer ").unwrap_or(key).trim();
        // Refused here rather than as a transport error on every request.
        if key.is_empty()
            || reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(VendorError::InvalidCredentials {
                secret: credentials.secret.clone(),
                detail: format!("key {API_KEY_KEY:?} is not a usable bearer token"),
            });
        }
        Ok(Login::ApiKey(SecretString::from(key.to_string())))
    }

    /// The underlying transport (request counts).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The credentials' Secret name.
    pub fn secret_name(&self) -> &str {
        &self.credentials.secret
    }

    /// `<base>/<segments…>?<query>`: each segment percent-encoded as one path segment; an
    /// empty, `.` or `..` segment (which would change the path) is refused.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, VendorError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| HttpError::Url(self.base.to_string()))?;
            path.pop_if_empty();
            for s in segments {
                if matches!(*s, "" | "." | "..") {
                    return Err(VendorError::NotFound(format!("{s:?} is not a Dataloop id")));
                }
                path.push(s);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Request, VendorError> {
        Ok(Request::new(method, self.url(segments, query)?))
    }

    // ---- auth ----

    /// A new token: the API key (unless it has expired), or an M2M login.
    async fn login(&self) -> Result<Token, VendorError> {
        match &self.login {
            Login::ApiKey(key) => {
                if let Some(exp) = jwt_expiry(key)
                    && exp <= jiff::Timestamp::now()
                {
                    return Err(VendorError::InvalidCredentials {
                        secret: self.credentials.secret.clone(),
                        detail: format!(
                            "the API key (key {API_KEY_KEY:?}) expired at {exp}; put a new one in the Secret, or use {USERNAME_KEY:?} + {PASSWORD_KEY:?} so tokens are renewed"
                        ),
                    });
                }
                Ok(Token::from_jwt(key.clone()))
            }
            Login::Machine { username, password } => {
                let req = Request::new(Method::POST, self.token_url.clone())
                    .json(json!({
                        "username": username,
                        "password": password.expose_secret(),
                        "type": "user_credentials",
                    }))
                    // A login has no lasting effect: repeating it is safe.
                    .repeat(Repeat::Safe);
                let secret = [password.expose_secret()];
                match self.transport.send(&req).await {
                    Ok(resp) => {
                        let answer: TokenResponse =
                            decode(&resp, resp.json().map_err(|e| scrub(e, &secret))?)?;
                        match answer.id_token.filter(|t| !t.is_empty()) {
                            Some(t) => Ok(Token::from_jwt(SecretString::from(t))),
                            None => Err(VendorError::Http(
                                resp.decode_error("a login answer without an id_token"),
                            )),
                        }
                    }
                    Err(HttpError::Status {
                        status: 400 | 401 | 403,
                        detail,
                        ..
                    }) => Err(VendorError::InvalidCredentials {
                        secret: self.credentials.secret.clone(),
                        detail: format!(
                            "the gate refused the login of {username:?}: {}",
                            match scrub(
                                HttpError::Decode {
                                    path: String::new(),
                                    cause: detail
                                },
                                &secret
                            ) {
                                HttpError::Decode { cause, .. } => cause,
                                _ => String::new(),
                            }
                        ),
                    }),
                    Err(e) => Err(VendorError::Http(scrub(e, &secret))),
                }
            }
        }
    }

    /// The current token (renewed shortly before it expires).
    async fn token(&self) -> Result<SecretString, VendorError> {
        self.tokens.get_token(&(), || self.login()).await
    }

    /// Whether a new token may help after a 401 (an API key is what it is).
    fn renewable(&self) -> bool {
        matches!(self.login, Login::Machine { .. })
    }

    /// Runs `call` with the `Authorization` value of the current token; after a 401 with a
    /// renewable login it logs in again and calls once more.
    async fn authed<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let token = self.token().await.map_err(Failure::Token)?;
        match call(bearer(&token)).await {
            Err(HttpError::Status { status: 401, .. }) if self.renewable() => {
                self.tokens.invalidate(&(), &token).await;
                let fresh = self.token().await.map_err(Failure::Token)?;
                call(bearer(&fresh)).await.map_err(Failure::Http)
            }
            other => other.map_err(Failure::Http),
        }
    }

    /// Sends `req` with the token; the transport's errors with their statuses intact.
    async fn call_raw(&self, req: Request) -> Result<Response, Failure> {
        self.authed(|auth| {
            let mut req = req.clone();
            req.authorization = Some(auth);
            async move { self.transport.send(&req).await }
        })
        .await
    }

    /// Sends `req` with the token and maps the statuses that mean something.
    async fn call(&self, req: Request) -> Result<Response, VendorError> {
        self.call_raw(req).await.map_err(|e| self.fail(e))
    }

    /// The error of a failed call: a token problem as it is, an HTTP error classified.
    fn fail(&self, e: Failure) -> VendorError {
        match e {
            Failure::Token(e) => e,
            Failure::Http(e) => self.classify(e),
        }
    }

    /// Sends `req` and decodes its JSON answer as `T`.
    async fn fetch<T: DeserializeOwned>(&self, req: Request) -> Result<T, VendorError> {
        let resp = self.call(req).await?;
        decode(&resp, resp.json()?)
    }

    /// Sends `req` and returns its JSON array answer.
    async fn fetch_array(&self, req: Request) -> Result<Vec<Value>, VendorError> {
        array(&self.call(req).await?)
    }

    /// Every item of a `pageOffset`-paginated GET of `url`.
    async fn get_paged(&self, url: Url) -> Result<Vec<Value>, VendorError> {
        self.authed(|auth| {
            let url = url.clone();
            async move {
                self.transport
                    .get_all_offset_pages(
                        |n| {
                            Request::new(Method::GET, page_offset_url(&url, n, PAGE_SIZE))
                                .authorization(auth.clone())
                        },
                        Response::items_and_has_next_page,
                    )
                    .await
            }
        })
        .await
        .map_err(|e| self.fail(e))
    }

    /// Every item of a DQL query (`POST <segments>` with `query`, paged by its `page`).
    async fn query_all(
        &self,
        segments: &[&str],
        query: DqlQuery,
    ) -> Result<Vec<Value>, VendorError> {
        let url = self.url(segments, &[])?;
        self.authed(|auth| {
            let (url, query) = (url.clone(), query.clone());
            async move {
                self.transport
                    .get_all_offset_pages(
                        |n| {
                            let mut page = query.clone();
                            page.page = n;
                            Request::new(Method::POST, url.clone())
                                .json(serde_json::to_value(&page).unwrap_or(Value::Null))
                                // A query changes nothing: repeated like a GET.
                                .repeat(Repeat::Safe)
                                .authorization(auth.clone())
                        },
                        Response::items_and_has_next_page,
                    )
                    .await
            }
        })
        .await
        .map_err(|e| self.fail(e))
    }

    /// Maps statuses to errors: 401 → [`VendorError::InvalidCredentials`] naming the Secret,
    /// 403 → [`VendorError::Forbidden`], 404 → [`VendorError::NotFound`], 400/409/422 →
    /// [`VendorError::Rejected`]; a local credential problem keeps its own error.
    pub(crate) fn classify(&self, e: HttpError) -> VendorError {
        match e {
            HttpError::Status {
                status: 401,
                detail,
                ..
            } => {
                let mut detail = if detail.is_empty() {
                    "HTTP 401".to_string()
                } else {
                    detail
                };
                if let Login::ApiKey(key) = &self.login
                    && let Some(exp) = jwt_expiry(key)
                    && exp <= jiff::Timestamp::now()
                {
                    detail.push_str(&format!(" (the API key expired at {exp})"));
                }
                VendorError::InvalidCredentials {
                    secret: self.credentials.secret.clone(),
                    detail,
                }
            }
            HttpError::Status {
                status: 403,
                method,
                path,
                detail,
            } => VendorError::Forbidden(format!(
                "{method} {path}: {detail} (credentials from Secret {})",
                self.credentials.secret
            )),
            HttpError::Status {
                status: 404,
                method,
                path,
                detail,
            } => VendorError::NotFound(format!("{method} {path}: {detail}")),
            HttpError::Status {
                status: 400 | 409 | 422,
                method,
                path,
                detail,
            } => VendorError::Rejected(format!("{method} {path}: {detail}")),
            other => VendorError::Http(other),
        }
    }

    /// Checks the credentials: a token can be had (an M2M login succeeds; an API key has not
    /// expired) and, the first time, an API key is accepted by `GET /users/me`.
    pub async fn verify(&self) -> Result<(), VendorError> {
        self.token().await?;
        if !self.renewable() && !self.key_checked.load(Ordering::Relaxed) {
            self.me().await?;
            self.key_checked.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The caller's e-mail: the token's `email` claim (dtlpy's `dl.info()`), else the M2M
    /// user name, else `GET /users/me` (once).
    pub async fn caller_email(&self) -> Result<String, VendorError> {
        let token = self.token().await?;
        if let Some(email) = jwt_claim(&token, "email") {
            return Ok(email);
        }
        if let Login::Machine { username, .. } = &self.login {
            return Ok(username.clone());
        }
        self.me
            .get_or_try_init(|| async { Ok(self.me().await?.who().to_string()) })
            .await
            .cloned()
    }

    // ---- users and organizations ----

    /// `GET /users/me`.
    pub async fn me(&self) -> Result<Me, VendorError> {
        self.fetch(self.request(Method::GET, &["users", "me"], &[])?)
            .await
    }

    /// `POST /users/me` `{"org"}`: makes `org` the caller's active organization, where
    /// `POST /projects` puts new projects (a setting of the caller: repeating it is safe).
    pub async fn set_active_org(&self, org: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::POST, &["users", "me"], &[])?
            .json(json!({ "org": org }))
            .repeat(Repeat::Safe);
        self.call(req).await.map(|_| ())
    }

    /// `GET /orgs`: every organization the caller belongs to (a JSON array).
    pub async fn list_orgs(&self) -> Result<Vec<Org>, VendorError> {
        Ok(typed(
            self.fetch_array(self.request(Method::GET, &["orgs"], &[])?)
                .await?,
        ))
    }

    /// `GET /orgs/{id}`; `None` when the gate does not know it (404).
    pub async fn get_org(&self, id: &str) -> Result<Option<Org>, VendorError> {
        let req = match self.request(Method::GET, &["orgs", id], &[]) {
            Ok(r) => r.accept_status(404),
            // Not an id: nothing can exist under it.
            Err(VendorError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.fetch::<Org>(req).await {
            Ok(org) => Ok(Some(org)),
            Err(VendorError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PATCH /orgs/{id}` `{"name"}`.
    pub async fn rename_org(&self, id: &str, name: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::PATCH, &["orgs", id], &[])?
            .json(json!({ "name": name }));
        self.call(req).await.map(|_| ())
    }

    /// `PATCH /orgs/{id}/plan` `{"plan"}`: needs a superuser; the error keeps its status so
    /// the caller can name the setting.
    pub async fn set_plan(&self, id: &str, plan: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::PATCH, &["orgs", id, "plan"], &[])?
            .json(json!({ "plan": plan }))
            .accept_status(403);
        self.call(req).await.map(|_| ())
    }

    /// `POST /services/fs-cache?mode=get`: the state of the org's cache service. A 404 reads
    /// as "no cache" (no state).
    pub async fn cache_state(
        &self,
        org_id: &str,
        org_name: &str,
    ) -> Result<CacheState, VendorError> {
        let req = self
            .request(Method::POST, &["services", "fs-cache"], &[("mode", "get")])?
            .json(cache_body(org_id, org_name, None))
            // Reads the state; changes nothing.
            .repeat(Repeat::Safe)
            .accept_status(404)
            .accept_status(403);
        match self.fetch::<CacheState>(req).await {
            Ok(state) => Ok(state),
            Err(VendorError::NotFound(_)) => Ok(CacheState::default()),
            Err(e) => Err(e),
        }
    }

    /// One cache call: `POST /services/<service>?mode=<mode>` with dtlpy's body. Apply and
    /// destroy are declarative (the mode is the state asked for), so repeating one is safe.
    async fn cache_call(
        &self,
        service: &str,
        mode: &str,
        org_id: &str,
        org_name: &str,
        pod_type: &str,
    ) -> Result<Value, VendorError> {
        let req = self
            .request(Method::POST, &["services", service], &[("mode", mode)])?
            .json(cache_body(org_id, org_name, Some(pod_type)))
            .repeat(Repeat::Safe)
            .accept_status(403);
        self.call(req).await?.json().map_err(VendorError::from)
    }

    /// `cache_action(APPLY, pod_type)`: `fs-cache?mode=apply-filestore`, then `fs-cache?mode=get`
    /// until `READY` (at most the cache timeout: then a transient error, and the next reconcile
    /// looks again), then `fs-cache?mode=apply` and `cache?mode=apply`.
    pub async fn apply_cache(
        &self,
        org_id: &str,
        org_name: &str,
        pod_type: &str,
    ) -> Result<(), VendorError> {
        self.cache_call("fs-cache", "apply-filestore", org_id, org_name, pod_type)
            .await?;
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let answer = self
                .cache_call("fs-cache", "get", org_id, org_name, pod_type)
                .await?;
            let state: CacheState = serde_json::from_value(answer).unwrap_or_default();
            if state.is_ready() {
                break;
            }
            if started.elapsed() + wait > self.cache_timeout {
                return Err(VendorError::Http(HttpError::Transport {
                    method: Method::POST,
                    path: "/services/fs-cache".into(),
                    cause: format!(
                        "the cache was not READY within {:?} (state {:?}); looking again on the next reconcile",
                        self.cache_timeout,
                        state.state.unwrap_or_default()
                    ),
                }));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(8));
        }
        self.cache_call("fs-cache", "apply", org_id, org_name, pod_type)
            .await?;
        self.cache_call("cache", "apply", org_id, org_name, pod_type)
            .await?;
        Ok(())
    }

    /// `cache_action(DESTROY)`: `fs-cache?mode=destroy`, then `cache?mode=destroy`.
    pub async fn destroy_cache(
        &self,
        org_id: &str,
        org_name: &str,
        pod_type: &str,
    ) -> Result<(), VendorError> {
        self.cache_call("fs-cache", "destroy", org_id, org_name, pod_type)
            .await?;
        self.cache_call("cache", "destroy", org_id, org_name, pod_type)
            .await?;
        Ok(())
    }

    // ---- members ----

    /// `GET /orgs/{id}/members`: members and pending invitations.
    pub async fn members(&self, org: &str) -> Result<Vec<Member>, VendorError> {
        Ok(typed(
            self.fetch_array(self.request(Method::GET, &["orgs", org, "members"], &[])?)
                .await?,
        ))
    }

    /// `POST /orgs/{id}/members` `{"emails": [email], "role"}`: invites `email`. A 409 (the
    /// person is there already, e.g. an earlier attempt whose answer was lost) is success: the
    /// caller observes again either way.
    pub async fn add_member(&self, org: &str, email: &str, role: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::POST, &["orgs", org, "members"], &[])?
            .json(json!({ "emails": [email], "role": role }))
            .accept_status(409);
        match self.call_raw(req).await {
            Ok(_) | Err(Failure::Http(HttpError::Status { status: 409, .. })) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `PATCH /orgs/{id}/members` `{"role", "email"}`.
    pub async fn update_member(
        &self,
        org: &str,
        email: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(Method::PATCH, &["orgs", org, "members"], &[])?
            .json(json!({ "role": role, "email": email }));
        self.call(req).await.map(|_| ())
    }

    /// `DELETE /orgs/{id}/members/{memberId}` (a user id, or an invitation's id); one already
    /// gone is success.
    pub async fn delete_member(&self, org: &str, member: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::DELETE, &["orgs", org, "members", member], &[])?
            .accept_status(404);
        self.delete(req).await
    }

    /// Sends a DELETE; 404 counts as deleted.
    async fn delete(&self, req: Request) -> Result<(), VendorError> {
        match self.call_raw(req).await {
            Ok(_) | Err(Failure::Http(HttpError::Status { status: 404, .. })) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    // ---- groups ----

    /// `GET /orgs/{id}/groups`.
    pub async fn org_groups(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        self.fetch_array(self.request(Method::GET, &["orgs", org, "groups"], &[])?)
            .await
    }

    /// `POST /groups` `{"name", "orgId"}`.
    pub async fn create_group(&self, org: &str, name: &str) -> Result<Value, VendorError> {
        let req = self
            .request(Method::POST, &["groups"], &[])?
            .json(json!({ "name": name, "orgId": org }));
        self.fetch(req).await
    }

    /// `PATCH /groups/{id}` `{"name"}`.
    pub async fn rename_group(&self, id: &str, name: &str) -> Result<Value, VendorError> {
        let req = self
            .request(Method::PATCH, &["groups", id], &[])?
            .json(json!({ "name": name }));
        self.fetch(req).await
    }

    /// `DELETE /groups/{id}`; one already gone is success.
    pub async fn delete_group(&self, id: &str) -> Result<(), VendorError> {
        self.delete(
            self.request(Method::DELETE, &["groups", id], &[])?
                .accept_status(404),
        )
        .await
    }

    // ---- integrations ----

    /// `GET /orgs/{id}/integrations`.
    pub async fn org_integrations(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        self.fetch_array(self.request(Method::GET, &["orgs", org, "integrations"], &[])?)
            .await
    }

    /// `POST /orgs/{id}/integrations` `{"type", "name", "options", "metadata"?}`. The options
    /// are write-only: never logged, and blanked out of any error.
    pub async fn create_integration(
        &self,
        org: &str,
        kind: &str,
        name: &str,
        options: Value,
        metadata: Option<Value>,
    ) -> Result<Value, VendorError> {
        let mut secrets: Vec<String> = Vec::new();
        collect_strings(&options, &mut secrets);
        let mut body = json!({ "type": kind, "name": name, "options": options });
        if let Some(m) = metadata {
            body["metadata"] = m;
        }
        let req = self
            .request(Method::POST, &["orgs", org, "integrations"], &[])?
            .json(body);
        let values: Vec<&str> = secrets.iter().map(String::as_str).collect();
        match self.call_raw(req).await {
            Ok(resp) => match resp.json() {
                Ok(v) => Ok(v),
                Err(e) => Err(VendorError::Http(scrub(e, &values))),
            },
            Err(Failure::Http(e)) => Err(self.classify(scrub(e, &values))),
            Err(Failure::Token(e)) => Err(e),
        }
    }

    /// `PATCH /orgs/{id}/integrations` `{"integrationId", "name"}`: renames.
    pub async fn rename_integration(
        &self,
        org: &str,
        id: &str,
        name: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(Method::PATCH, &["orgs", org, "integrations"], &[])?
            .json(json!({ "integrationId": id, "name": name }));
        self.call(req).await.map(|_| ())
    }

    /// `DELETE /orgs/{id}/integrations/{integrationId}`; one already gone is success.
    pub async fn delete_integration(&self, org: &str, id: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::DELETE, &["orgs", org, "integrations", id], &[])?
            .accept_status(404);
        self.delete(req).await
    }

    // ---- projects ----

    /// `GET /orgs/{id}/projects` (the system project included), as the gate sends them.
    pub async fn org_projects(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        self.fetch_array(self.request(Method::GET, &["orgs", org, "projects"], &[])?)
            .await
    }

    /// `GET /projects/{id}`; `None` when it does not exist.
    pub async fn get_project(&self, id: &str) -> Result<Option<Project>, VendorError> {
        let req = self
            .request(Method::GET, &["projects", id], &[])?
            .accept_status(404);
        match self.fetch(req).await {
            Ok(p) => Ok(Some(p)),
            Err(VendorError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /projects/{name}/name`: every project the caller sees with that name (names are
    /// not unique).
    pub async fn projects_named(&self, name: &str) -> Result<Vec<Project>, VendorError> {
        let req = self
            .request(Method::GET, &["projects", name, "name"], &[])?
            .accept_status(404);
        match self.call(req).await {
            Ok(resp) => Ok(typed(array(&resp)?)),
            Err(VendorError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `POST /projects`, form `name=…` (as dtlpy sends it): the project lands in the caller's
    /// active organization.
    pub async fn create_project(&self, name: &str) -> Result<Project, VendorError> {
        let req = self
            .request(Method::POST, &["projects"], &[])?
            .form(vec![("name".to_string(), name.to_string())]);
        self.fetch(req).await
    }

    /// `PATCH /projects/{id}/org`, form `org_id=…`: moves the project into `org`.
    pub async fn move_project(&self, id: &str, org: &str) -> Result<Project, VendorError> {
        let req = self
            .request(Method::PATCH, &["projects", id, "org"], &[])?
            .form(vec![("org_id".to_string(), org.to_string())]);
        self.fetch(req).await
    }

    /// `PATCH /projects/{id}` `{"name"}`.
    pub async fn rename_project(&self, id: &str, name: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::PATCH, &["projects", id], &[])?
            .json(json!({ "name": name }));
        self.call(req).await.map(|_| ())
    }

    /// `DELETE /projects/{id}`; one already gone is success.
    pub async fn delete_project(&self, id: &str) -> Result<(), VendorError> {
        self.delete(
            self.request(Method::DELETE, &["projects", id], &[])?
                .accept_status(404),
        )
        .await
    }

    /// `GET /projects/{id}/members`.
    pub async fn project_members(&self, id: &str) -> Result<Vec<ProjectMember>, VendorError> {
        Ok(typed(
            self.fetch_array(self.request(Method::GET, &["projects", id, "members"], &[])?)
                .await?,
        ))
    }

    /// `POST /projects/{id}/members/{email}` `{"role"}`; a 409 (already a member) is success.
    pub async fn add_project_member(
        &self,
        id: &str,
        email: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        self.add_project_role(id, "members", email, role).await
    }

    /// `PATCH /projects/{id}/members/{email}` `{"role"}`.
    pub async fn update_project_member(
        &self,
        id: &str,
        email: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        self.update_project_role(id, "members", email, role).await
    }

    /// `DELETE /projects/{id}/members/{email}`; one already gone is success.
    pub async fn remove_project_member(&self, id: &str, email: &str) -> Result<(), VendorError> {
        self.remove_project_role(id, "members", email).await
    }

    /// `GET /projects/{id}/subgroups`: the groups with a role in the project.
    pub async fn project_groups(&self, id: &str) -> Result<Vec<Group>, VendorError> {
        Ok(typed(
            self.fetch_array(self.request(Method::GET, &["projects", id, "subgroups"], &[])?)
                .await?,
        ))
    }

    /// `POST /projects/{id}/subgroups/{groupId}` `{"role"}`; a 409 (already there) is success.
    pub async fn add_project_group(
        &self,
        id: &str,
        group: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        self.add_project_role(id, "subgroups", group, role).await
    }

    /// `PATCH /projects/{id}/subgroups/{groupId}` `{"role"}`.
    pub async fn update_project_group(
        &self,
        id: &str,
        group: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        self.update_project_role(id, "subgroups", group, role).await
    }

    /// `DELETE /projects/{id}/subgroups/{groupId}`; one already gone is success.
    pub async fn remove_project_group(&self, id: &str, group: &str) -> Result<(), VendorError> {
        self.remove_project_role(id, "subgroups", group).await
    }

    /// `POST /projects/{id}/{holders}/{who}` `{"role"}` (holders: `members` or `subgroups`);
    /// a 409 (already there) is success.
    async fn add_project_role(
        &self,
        id: &str,
        holders: &str,
        who: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(Method::POST, &["projects", id, holders, who], &[])?
            .json(json!({ "role": role }))
            .accept_status(409);
        match self.call_raw(req).await {
            Ok(_) | Err(Failure::Http(HttpError::Status { status: 409, .. })) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `PATCH /projects/{id}/{holders}/{who}` `{"role"}`.
    async fn update_project_role(
        &self,
        id: &str,
        holders: &str,
        who: &str,
        role: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(Method::PATCH, &["projects", id, holders, who], &[])?
            .json(json!({ "role": role }));
        self.call(req).await.map(|_| ())
    }

    /// `DELETE /projects/{id}/{holders}/{who}`; one already gone is success.
    async fn remove_project_role(
        &self,
        id: &str,
        holders: &str,
        who: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(Method::DELETE, &["projects", id, holders, who], &[])?
            .accept_status(404);
        self.delete(req).await
    }

    // ---- drivers ----

    /// `GET /drivers?projectId=…` (read shape: flat).
    pub async fn project_drivers(&self, project: &str) -> Result<Vec<Value>, VendorError> {
        self.fetch_array(self.request(Method::GET, &["drivers"], &[("projectId", project)])?)
            .await
    }

    /// `GET /drivers/{id}`.
    pub async fn get_driver(&self, id: &str) -> Result<Value, VendorError> {
        self.fetch(self.request(Method::GET, &["drivers", id], &[])?)
            .await
    }

    /// `POST /drivers` with a body in the write shape (`payload` nested).
    pub async fn create_driver(&self, body: Value) -> Result<Value, VendorError> {
        self.fetch(self.request(Method::POST, &["drivers"], &[])?.json(body))
            .await
    }

    /// `PATCH /drivers/{id}` with `PartialDriverPayload` (`{name?, payload}`).
    pub async fn patch_driver(&self, id: &str, body: Value) -> Result<Value, VendorError> {
        self.fetch(
            self.request(Method::PATCH, &["drivers", id], &[])?
                .json(body),
        )
        .await
    }

    /// `DELETE /drivers/{id}`; one already gone is success.
    pub async fn delete_driver(&self, id: &str) -> Result<(), VendorError> {
        self.delete(
            self.request(Method::DELETE, &["drivers", id], &[])?
                .accept_status(404),
        )
        .await
    }

    // ---- ontologies ----

    /// `GET /ontologies?projects=…&pageOffset=…&pageSize=…`, every page.
    pub async fn project_ontologies(&self, project: &str) -> Result<Vec<Value>, VendorError> {
        self.get_paged(self.url(&["ontologies"], &[("projects", project)])?)
            .await
    }

    /// `GET /ontologies/{id}`.
    pub async fn get_ontology(&self, id: &str) -> Result<Value, VendorError> {
        self.fetch(self.request(Method::GET, &["ontologies", id], &[])?)
            .await
    }

    /// `POST /ontologies` `{"roots", "projectIds", "attributes", "title"?}`.
    pub async fn create_ontology(&self, body: Value) -> Result<Value, VendorError> {
        self.fetch(self.request(Method::POST, &["ontologies"], &[])?.json(body))
            .await
    }

    /// `PUT /ontologies/{id}[?system=true]` with the whole entity (`system` to change its
    /// `metadata.system`, where the project links live).
    pub async fn put_ontology(
        &self,
        id: &str,
        body: Value,
        system: bool,
    ) -> Result<Value, VendorError> {
        let query: &[(&str, &str)] = if system { &[("system", "true")] } else { &[] };
        self.fetch(
            self.request(Method::PUT, &["ontologies", id], query)?
                .json(body),
        )
        .await
    }

    /// `DELETE /ontologies/{id}`; one already gone is success.
    pub async fn delete_ontology(&self, id: &str) -> Result<(), VendorError> {
        self.delete(
            self.request(Method::DELETE, &["ontologies", id], &[])?
                .accept_status(404),
        )
        .await
    }

    // ---- recipes ----

    /// `GET /recipes?projects=…&pageOffset=…&pageSize=…`, every page.
    pub async fn project_recipes(&self, project: &str) -> Result<Vec<Value>, VendorError> {
        self.get_paged(self.url(&["recipes"], &[("projects", project)])?)
            .await
    }

    /// `GET /recipes/{id}`.
    pub async fn get_recipe(&self, id: &str) -> Result<Value, VendorError> {
        self.fetch(self.request(Method::GET, &["recipes", id], &[])?)
            .await
    }

    /// `POST /recipes` `{"title", "projectIds", "ontologyIds", "uiSettings", …}`.
    pub async fn create_recipe(&self, body: Value) -> Result<Value, VendorError> {
        self.fetch(self.request(Method::POST, &["recipes"], &[])?.json(body))
            .await
    }

    /// `PATCH /recipes/{id}` with the whole entity (as dtlpy's `recipes.update`).
    pub async fn patch_recipe(&self, id: &str, body: Value) -> Result<Value, VendorError> {
        self.fetch(
            self.request(Method::PATCH, &["recipes", id], &[])?
                .json(body),
        )
        .await
    }

    /// `DELETE /recipes/{id}`; one already gone is success.
    pub async fn delete_recipe(&self, id: &str) -> Result<(), VendorError> {
        self.delete(
            self.request(Method::DELETE, &["recipes", id], &[])?
                .accept_status(404),
        )
        .await
    }

    // ---- datasets (DQL) ----

    /// `POST /datasets/query`: the datasets of `projects` matching the DQL `filter` (`{}` for
    /// all), every page. Not a copy kind (empty datasets are opt-in, which the contract's
    /// kinds cannot say yet); here for the CLI and the next contract.
    pub async fn query_datasets(
        &self,
        projects: &[&str],
        filter: Value,
    ) -> Result<Vec<Value>, VendorError> {
        let query = DqlQuery {
            filter,
            page: 0,
            page_size: PAGE_SIZE,
            resource: "datasets".into(),
            context: Some(json!({ "projects": projects })),
        };
        self.query_all(&["datasets", "query"], query).await
    }
}

/// Why an authenticated call failed: no token could be had, or the request failed.
enum Failure {
    /// Getting a token failed (credentials, or the login request).
    Token(VendorError),
    /// The request failed.
    Http(HttpError),
}

/// Every string inside `value`, for blanking out of messages.
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(values: &[(&str, &str)]) -> Credentials {
        Credentials::new(
            "ns/dl-creds",
            values
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect(),
        )
    }

    fn api(endpoint: &str, values: &[(&str, &str)]) -> Result<DataloopApi, VendorError> {
        DataloopApi::new(
            Some(endpoint),
            creds(values),
            HttpConfig::default(),
            &Endpoints::default(),
        )
    }

    #[test]
    fn the_base_ends_in_api_v1_once_and_the_token_endpoint_is_at_the_gate_root() {
        for endpoint in [
            "http://127.0.0.1:8443",
            "http://127.0.0.1:8443/",
            "http://127.0.0.1:8443/api/v1",
            "http://127.0.0.1:8443/api/v1/",
        ] {
            let api = api(endpoint, &[("apiKey", "k.k.k")]).unwrap();
            assert_eq!(
                api.url(&["orgs"], &[]).unwrap().as_str(),
                "http://127.0.0.1:8443/api/v1/orgs"
            );
            assert_eq!(
                api.token_url.as_str(),
                "http://127.0.0.1:8443/token?default"
            );
        }
        let api = api("https://gw.example/dl/api/v1", &[("apiKey", "k")]).unwrap();
        assert_eq!(
            api.token_url.as_str(),
            "https://gw.example/dl/token?default"
        );
    }

    #[test]
    fn ids_are_one_segment_each_and_path_steps_are_refused() {
        let api = api("http://127.0.0.1:1", &[("apiKey", "k")]).unwrap();
        assert_eq!(
            api.url(&["projects", "p1", "members", "a+b@x.example"], &[])
                .unwrap()
                .path(),
            "/api/v1/projects/p1/members/a+b@x.example"
        );
        assert_eq!(
            api.url(&["projects", "a/../b?c#d e", "name"], &[])
                .unwrap()
                .path(),
            "/api/v1/projects/a%2F..%2Fb%3Fc%23d%20e/name"
        );
        for bad in ["", ".", ".."] {
            assert!(matches!(
                api.url(&["orgs", bad], &[]),
                Err(VendorError::NotFound(_))
            ));
        }
        assert_eq!(
            api.url(&["drivers"], &[("projectId", "p&1")])
                .unwrap()
                .query(),
            Some("projectId=p%261")
        );
    }

    #[test]
    fn credentials_prefer_the_renewable_login_and_name_what_is_missing() {
        let both = api(
            "http://127.0.0.1:1",
            &[
                ("apiKey", "k"),
                ("username", "a@x.example"),
                ("password", "pw"),
            ],
        )
        .unwrap();
        assert!(both.renewable());
        let email = api(
            "http://127.0.0.1:1",
            &[("email", "a@x.example"), ("password", "pw")],
        )
        .unwrap();
        assert!(email.renewable());
        let key = api("http://127.0.0.1:1", &[("apiKey", "Bearer eyJ.x.y")]).unwrap();
        assert!(!key.renewable());
        match &key.login {
            Login::ApiKey(k) => assert_eq!(k.expose_secret(), "eyJ.x.y"),
            Login::Machine { .. } => unreachable!(),
        }
        for (values, missing) in [
            (&[][..], "apiKey"),
            (&[("username", "a@x.example")][..], "password"),
            (&[("password", "pw")][..], "username"),
        ] {
            let err = api("http://127.0.0.1:1", values).unwrap_err();
            assert!(
                matches!(&err, VendorError::MissingCredential { secret, key } if secret == "ns/dl-creds" && key == missing),
                "{err}"
            );
        }
        let err = api("http://127.0.0.1:1", &[("apiKey", "abc\ndef-secret")]).unwrap_err();
        assert!(matches!(err, VendorError::InvalidCredentials { .. }));
        assert!(!format!("{err} {err:?}").contains("def-secret"));
        assert!(
            api(
                "http://127.0.0.1:1",
                &[("username", " "), ("password", "p")]
            )
            .is_err()
        );
        assert!(!format!("{both:?}").contains("pw"));
    }

    #[test]
    fn echoed_secrets_are_blanked_out_of_errors() {
        let e = scrub(
            HttpError::Status {
                method: Method::POST,
                path: "/x".into(),
                status: 400,
                detail: "bad key AKIA-SECRET-1 for s".into(),
            },
            &["AKIA-SECRET-1", "s"],
        );
        assert_eq!(e.to_string(), "POST /x: HTTP 400: bad key [redacted] for s");
    }
}
