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
//! - **Auth**: [`TokenCache`] logs in once per scope and re-logs-in once on a 401.
//! - **Origin pinning**: a [`Transport`] sends only to the origin (scheme, host, port) of the base
//!   URL it was created with. A request, a "next" link or a redirect to any other origin is
//!   refused with [`HttpError::OffOrigin`] before anything is sent there, so a credential never
//!   leaves the vendor.
//! - **Redirects**: GET and HEAD follow at most [`MAX_REDIRECTS`] redirects within the origin;
//!   every other method never follows one (a body is never replayed): the 3xx becomes
//!   [`HttpError::Status`] naming where the vendor redirected to.
//! - **Pagination**: [`Transport::get_all_pages`] follows a vendor's "next" link (absolute, or
//!   relative to the page it came from).
//! - **Response size cap**: a body longer than [`HttpConfig::max_response_bytes`] is refused
//!   ([`HttpError::ResponseTooLarge`]): by its `Content-Length` before reading, or as soon as a
//!   streamed body passes the cap.
//! - **Credentials** live in [`SecretString`]s; the `Authorization` header is marked sensitive,
//!   and no error carries a request body.
//! - **Write fence**: with [`HttpConfig::fence`] set, a request whose method is not GET or HEAD is
//!   sent only while the [`Fence`] holds (the leader keeps it up while it can prove it holds its
//!   Lease); after that it is refused with [`HttpError::NotLeader`], unsent, even when the
//!   process was frozen and resumed in the middle of a reconcile.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::oneshot;
use url::Url;

/// Redirects a GET or HEAD follows (within its origin) before the answer counts as an error.
pub const MAX_REDIRECTS: usize = 5;

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
            HttpError::Decode { .. }
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
}

/// Whether a request may be sent again after an unknown outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Reads and idempotent writes, and POSTs that have no lasting effect (login).
    Safe,
    /// Creates: sent again only when the server provably did not process it.
    Unsafe,
}

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
    /// Whether repeating is safe.
    pub repeat: Repeat,
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
            repeat,
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
}

impl Response {
    /// The body as JSON (`{}` for an empty body, as `204 No Content` has).
    pub fn json(&self) -> Result<Value, HttpError> {
        if self.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            path: self.path.clone(),
            cause: e.to_string(),
        })
    }
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
        })
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

    /// Request counts of this endpoint (shared with every transport of the same endpoint).
    pub fn stats(&self) -> &RequestStats {
        &self.endpoint.stats
    }

    /// Sends `req`, retrying where that is safe. Statuses ≥ 400 and redirects that are not
    /// followed become [`HttpError::Status`]. A URL outside the transport's origin is refused
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
                    return Ok(Response { status, body, path });
                }
                Attempt::Answered {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    retry_after,
                    ..
                } => {
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
                Attempt::Answered { status, body, .. } => {
                    let retryable = matches!(status.as_u16(), 408 | 500 | 502 | 503 | 504);
                    if !retryable {
                        return Err(HttpError::Status {
                            method: req.method.clone(),
                            path,
                            status: status.as_u16(),
                            detail: error_detail(&body),
                        });
                    }
                    if req.repeat == Repeat::Unsafe {
                        return Err(HttpError::OutcomeUnknown {
                            method: req.method.clone(),
                            path,
                            cause: format!("HTTP {}", status.as_u16()),
                        });
                    }
                    RetryCause::Status(status.as_u16(), error_detail(&body))
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
        if let Some(auth) = &req.authorization {
            let mut value = HeaderValue::from_str(auth.expose_secret())
                .map_err(|_| "credential is not a valid header value".to_string())?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let builder = match &req.body {
            Body::Empty => builder,
            Body::Json(v) => builder.json(v),
            Body::Form(fields) => builder.form(fields),
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
            if pages > 10_000 {
                return Err(HttpError::Decode {
                    path: url.path().to_string(),
                    cause: "more than 10000 pages; the next link loops".into(),
                });
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

/// Extracts a short message from a vendor error body (DRF `detail`, field errors, or text).
fn error_detail(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => {
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
        Ok(other) => other.to_string(),
        Err(_) => String::from_utf8_lossy(body).to_string(),
    };
    truncate(&text, 300)
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

/// A cache of bearer tokens per scope (e.g. per organization) with single-flight login.
#[derive(Debug)]
pub struct TokenCache<K> {
    slots: Mutex<HashMap<K, Arc<tokio::sync::Mutex<Option<SecretString>>>>>,
}

impl<K> Default for TokenCache<K> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> TokenCache<K> {
    fn slot(&self, key: &K) -> Arc<tokio::sync::Mutex<Option<SecretString>>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(key.clone()).or_default().clone()
    }

    /// The cached token of `key`, or the result of `login` (run once even if many ask at once).
    pub async fn get<F, Fut, E>(&self, key: &K, login: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, E>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(token) = guard.as_ref() {
            return Ok(token.clone());
        }
        let token = login().await?;
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` for `key` (unless another caller already replaced it).
    pub async fn invalidate(&self, key: &K, stale: &SecretString) {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if guard
            .as_ref()
            .is_some_and(|t| t.expose_secret() == stale.expose_secret())
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
            .authorization(SecretString::from("Bearer hunter2"));
        assert!(!format!("{req:?}").contains("hunter2"));
    }
}
