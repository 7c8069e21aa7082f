//! Rendered.ai simulator (the platform's GraphQL API), in memory, built on the
//! [simulator kit](crate::simulator::kit), speaking the platform's wire format so that the
//! official Python SDK (PyPI `anatools` 6.1.2, and the 3.3.4 legacy operations) works against
//! it unchanged (design doc `vendors/renderedai.md` §6, §7). anatools 6 is pointed at it with
//! `anatools.client(endpoint=<graphql_url>, APIKey=…, interactive=False)`; 3.3.4 by patching
//! `anatools.anaclient.anaclient.envs['prod']` (`api` = [`RenderedAiSimulator::graphql_url`],
//! `statusAPI` = [`RenderedAiSimulator::status_url`]).
//!
//! | route | notes |
//! |---|---|
//! | `POST /graphql` | `{query, operationName?, variables?}`; always HTTP 200 with `{data, errors?}` |
//! | `POST /system` | the same executor; 3.3.4 asks it for `getSystemNotifications` at start-up |
//! | `GET /files/<token>` | a volume file, from a signed, expiring URL `getVolumeData` hands out |
//! | `PUT /upload/<uploadId>/<part>` | one part of a volume file upload (`uploadVolumeData`), answered with an `ETag` |
//!
//! The schema is the SDL in `schema.graphql` ([`graphql::SDL`]), parsed with `graphql-parser`;
//! validation, projection and `__type`/`__schema` introspection all come from it. An operation
//! name that names no operation falls back to the document's only operation (§6.12: several
//! SDK calls send mismatched names). Credentials: an `apikey` header (user, organization or
//! workspace scope), or a `signIn` session (`uid` + `Authorization: Bearer <idtoken>`, or 3.x's
//! `idtoken` header) that expires after [`Options::token_lifetime`]. Without one, only
//! introspection, `signIn`, `getSDKCompatibility` and the status fields answer; the rest is
//! `Unauthorized`. Who may do what is in [`state`].
//!
//! [`Options::serve_limits`] off drops the 3.3.4 limits operations from the schema (they then
//! fail validation as unknown fields, as on a server that no longer has them);
//! [`Options::serve_workspace_guests`] off drops `workspaceId` (and `invitationId`) from the
//! member operations. Limits are enforced either way.
//!
//! Volume files (`getVolumeData`, `uploadVolumeData` + part `PUT`s +
//! `uploadVolumeDataFinalizer`, `deleteVolumeData`) are simulated with bounded sizes
//! ([`state::VolumeFiles`]); the template's volumes hold a few small seeded files. Not
//! simulated: GAN model and annotation map uploads, datasets and other job outputs, channel
//! deployment, templates, services beyond listing.

mod error;
pub mod graphql;
mod handlers;
pub mod seed;
pub mod state;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::Value;

pub use error::GqlError;
pub use handlers::{GRAPHQL_PATH, MAX_BODY, STATUS_PATH};
pub use state::{KINDS, Scope, State};

use super::kit::{HandError, SimulatorHandle, WriteCounts};
use super::{FaultSpec, Running, ServeOptions, ServeStats};

/// How to start the simulator.
#[derive(Debug)]
pub struct Options {
    /// Transport faults, latency, rate limit.
    pub serve: ServeOptions,
    /// Seed for generated ids (reproducible runs); random when `None`.
    pub id_seed: Option<u64>,
    /// Lifetime of `signIn` idtokens (`None`: they never expire). `signIn` reports it as
    /// `expires`.
    pub token_lifetime: Option<Duration>,
    /// Whether the 3.3.4 limits operations are served.
    pub serve_limits: bool,
    /// Whether the 3.3.4 workspace guest flows are served.
    pub serve_workspace_guests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            id_seed: None,
            token_lifetime: Some(Duration::from_secs(24 * 3600)),
            serve_limits: true,
            serve_workspace_guests: true,
        }
    }
}

/// The router over a state (tests may call it with `oneshot`, without a socket).
pub fn router(state: Arc<Mutex<State>>) -> Router {
    Router::new().fallback(handlers::api).with_state(state)
}

/// A running Rendered.ai simulator.
#[derive(Debug)]
pub struct RenderedAiSimulator {
    /// `http://127.0.0.1:P`.
    pub base_url: String,
    /// `http://127.0.0.1:P/graphql`: the SDK's `endpoint`.
    pub graphql_url: String,
    /// The admin's user-scoped API key.
    pub api_key: String,
    /// The admin's e-mail (`signIn`).
    pub admin_email: String,
    /// The admin's password.
    pub admin_password: String,
    /// The template org's id.
    pub template_org_id: String,
    /// The target org's id.
    pub target_org_id: String,
    /// Direct access to the state (tests that inspect or change the vendor side).
    pub state: Arc<Mutex<State>>,
    /// The server.
    pub running: Running,
}

impl RenderedAiSimulator {
    /// Starts a seeded simulator on `127.0.0.1:port` (0 = any free port).
    pub async fn start(port: u16, options: Options) -> Result<Self, String> {
        let listener = super::bind_loopback(port)
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut st = State::new(options.id_seed);
        st.files.base_url = format!("http://{addr}");
        st.token_lifetime = options.token_lifetime;
        st.limits_served = options.serve_limits;
        st.guests_served = options.serve_workspace_guests;
        seed::load(&mut st)?;
        let state = Arc::new(Mutex::new(st));
        let running = super::serve(listener, router(state.clone()), options.serve)
            .map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}");
        Ok(Self {
            graphql_url: format!("{base_url}{GRAPHQL_PATH}"),
            base_url,
            api_key: seed::API_KEY.to_string(),
            admin_email: seed::ADMIN_EMAIL.to_string(),
            admin_password: seed::ADMIN_PASSWORD.to_string(),
            template_org_id: seed::TEMPLATE_ORG_ID.to_string(),
            target_org_id: seed::TARGET_ORG_ID.to_string(),
            state,
            running,
        })
    }

    /// `http://127.0.0.1:P/system`: anatools 3.3.4's `statusAPI`.
    pub fn status_url(&self) -> String {
        format!("{}{STATUS_PATH}", self.base_url)
    }

    /// Runs `f` on the state.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st)
    }

    /// Adds a person with an account (who belongs to no org), able to `signIn` with
    /// `password` when given. Returns their user id. Not an API write.
    pub fn add_user(&self, email: &str, name: &str, password: Option<&str>) -> String {
        self.with_state(|st| st.add_user(email, name, password))
    }

    /// The person invited as `email` to `org` (or, for a 3.3.4 guest invitation, to a
    /// workspace) signs up if needed and accepts: the invitation becomes a membership. Not an
    /// API write.
    pub fn accept_invitation(&self, org: &str, email: &str) -> Result<(), HandError> {
        self.with_state(|st| st.accept_invitation(org, email))
            .map_err(HandError::Invalid)
    }

    /// `email` joins `org` with `role` (`admin|member`) directly, as someone added in the web
    /// UI. Not an API write.
    pub fn join_org(&self, org: &str, email: &str, role: &str) -> Result<(), HandError> {
        self.with_state(|st| st.join_org(org, email, role))
            .map_err(HandError::Invalid)
    }

    /// Serves the 3.3.4 limits operations or not, from the next request on.
    pub fn set_limits_served(&self, served: bool) {
        self.with_state(|st| st.limits_served = served);
    }

    /// Serves the 3.3.4 workspace guest flows or not, from the next request on.
    pub fn set_workspace_guests_served(&self, served: bool) {
        self.with_state(|st| st.guests_served = served);
    }

    /// Issues an API key of `email` with `scope`, expiring at `expires_at`
    /// (`%Y-%m-%dT%H:%M:%S.%fZ`; `None`: never). Returns the key. Not an API write.
    pub fn issue_api_key(
        &self,
        email: &str,
        name: &str,
        scope: Scope,
        expires_at: Option<&str>,
    ) -> Result<String, HandError> {
        self.with_state(|st| st.issue_api_key(email, name, scope, expires_at, None, false))
            .map_err(HandError::Invalid)
    }

    /// Stores `bytes` as file `key` of `volume` (new or replaced), as if uploaded in the web UI.
    /// Returns its hash (MD5 hex). Not an API write.
    pub fn put_volume_file(
        &self,
        volume: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<String, HandError> {
        self.with_state(|st| st.put_volume_file(volume, key, bytes))
            .map_err(HandError::Invalid)
    }

    /// The bytes of file `key` of `volume`, if it exists.
    pub fn volume_file(&self, volume: &str, key: &str) -> Option<Vec<u8>> {
        self.with_state(|st| st.volume_file(volume, key).map(|b| b.to_vec()))
    }

    /// `uploadVolumeData` calls accepted so far.
    pub fn volume_uploads(&self) -> u64 {
        self.with_state(|st| st.files.uploads_started)
    }

    /// Ends every signed-in session, as if every idtoken had expired.
    pub fn expire_sessions(&self) {
        self.with_state(State::expire_sessions);
    }
}

fn kind_of(kind: &str) -> Result<&'static str, HandError> {
    crate::simulator::kit::handle::known_kind("renderedai", KINDS, kind)
}

impl SimulatorHandle for RenderedAiSimulator {
    fn vendor(&self) -> &'static str {
        "renderedai"
    }

    // A client is configured with the GraphQL endpoint, not the host.
    #[allow(clippy::misnamed_getters)]
    fn base_url(&self) -> &str {
        &self.graphql_url
    }

    fn stats(&self) -> &ServeStats {
        &self.running.stats
    }

    fn total_writes(&self) -> u64 {
        self.with_state(|st| st.store.write_requests())
    }

    fn writes(&self, kind: &str) -> Option<WriteCounts> {
        let kind = kind_of(kind).ok()?;
        Some(self.with_state(|st| st.store.writes(kind)))
    }

    fn kinds(&self) -> Vec<&'static str> {
        KINDS.to_vec()
    }

    fn org_id(&self, name: &str) -> Option<String> {
        self.org_ids(name).into_iter().next()
    }

    fn org_ids(&self, name: &str) -> Vec<String> {
        self.with_state(|st| {
            st.store
                .list(state::ORGS)
                .into_iter()
                .filter(|(_, r)| r.value["name"] == name)
                .map(|(id, _)| id.to_string())
                .collect()
        })
    }

    fn objects(&self, kind: &str, org: &str) -> Result<Vec<Value>, HandError> {
        let kind = kind_of(kind)?;
        Ok(self.with_state(|st| {
            st.store
                .in_org(kind, org)
                .into_iter()
                .map(|(_, r)| r.value.clone())
                .collect()
        }))
    }

    fn patch_object(&self, kind: &str, id: &str, patch: &Value) -> Result<(), HandError> {
        let kind = kind_of(kind)?;
        self.with_state(|st| st.store.hand_patch(kind, id, patch))
            .map_err(HandError::from)
    }

    fn delete_object(&self, kind: &str, id: &str) -> Result<(), HandError> {
        let kind = kind_of(kind)?;
        self.with_state(|st| st.store.hand_remove(kind, id))
            .map(|_| ())
            .map_err(HandError::from)
    }

    fn set_faults(&self, faults: FaultSpec) {
        self.running.set_faults(faults);
    }
}
