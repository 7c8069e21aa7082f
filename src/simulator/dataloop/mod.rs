//! Dataloop simulator (the gate's REST API), in memory, built on the
//! [simulator kit](crate::simulator::kit), speaking the gate's wire format so that the official
//! Python SDK (PyPI `dtlpy` 1.126.5) works against it unchanged (design doc
//! `vendors/dataloop.md` §6). dtlpy is pointed at it with
//! `dl.add_environment(environment=<base_url>, gate_url=<gate_url>, …)`, `dl.setenv(<base_url>)`
//! and `dl.login_token(<jwt>)` (or `dl.login_m2m(email, password)`).
//!
//! Routes below `/api/v1` (every one needs `Authorization: Bearer <JWT>`; bodies are JSON,
//! `POST /projects` and `PATCH /projects/{id}/org` also take forms):
//!
//! | route | notes |
//! |---|---|
//! | `GET`/`POST /users/me` | the caller (`APIUser`); POST sets `org` (the active org new projects land in) and names |
//! | `POST /apiKeys {"userId"}` | `{"jwt"}`, a one-year token of the caller |
//! | `GET /orgs`, `GET /orgs/{id}` | arrays / `APIOrg` with `members` (full users), `groups`, `integrations`, `account`, `plan`; epoch-ms times |
//! | `POST /orgs` | 403: orgs are made by Dataloop, never through the API |
//! | `DELETE /orgs/{id}` | 500 with a JSON message, as the vendor's own tests expect |
//! | `PATCH /orgs/{id} {"name"}` | owners/admins; names stay unique (409) |
//! | `PATCH /orgs/{id}/plan {"plan"}` | superusers only (403), `premium\|freemium` (400) |
//! | `GET`/`POST`/`PATCH /orgs/{id}/members`, `DELETE …/members/{memberId}` | invitations pending until accepted ([`DataloopSimulator::accept_invitation`]); 409 on a second add |
//! | `GET /orgs/{id}/groups`, `/integrations`, `/availableIntegrations`, `/projects` | arrays |
//! | `POST`/`PATCH /orgs/{id}/integrations`, `GET`/`DELETE …/integrations/{id}` | `options` write-only, never served |
//! | `POST /services/fs-cache?mode=apply-filestore\|get\|apply\|destroy`, `POST /services/cache?mode=apply\|destroy` | `{"state"}` (`READY`, `PENDING`, `NONE`) / 204 |
//! | `POST /groups`, `GET`/`PATCH`/`DELETE /groups/{id}`, `…/members[/{id}]`, `…/subgroups[/{id}]`, `PATCH …/owner` | |
//! | `GET`/`POST /projects`, `GET`/`PATCH`/`DELETE /projects/{id}`, `GET /projects/{name}/name`, `PATCH /projects/{id}/org` | new projects land in the caller's active org |
//! | `GET /projects/{id}/members`, `POST`/`PATCH`/`DELETE …/members/{email}` | arrays of contributors |
//! | `GET /projects/{id}/subgroups`, `POST`/`PATCH`/`DELETE …/subgroups/{groupId}` | group roles |
//! | `GET`/`POST /drivers`, `GET`/`PATCH`/`DELETE /drivers/{id}` | payload served flat; `integrationId` of the project's org |
//! | `GET /ontologies` (paged), `POST`, `GET`/`PUT`/`DELETE /ontologies/{id}`, `PATCH …/labels`, `PATCH …/addLabels` | `id` and `roots` always; labels by full dotted tag |
//! | `GET /recipes` (paged, `&&` tolerated), `POST`, `GET`/`PATCH`/`DELETE /recipes/{id}`, `POST …/clone` | |
//! | `POST /datasets`, `POST /datasets/query` (paged), `GET`/`PATCH`/`DELETE /datasets/{id}` | empty datasets only |
//!
//! and at the root, `POST /token` (`?default`): `user_credentials` → `{id_token,
//! access_token, refresh_token}`, `refresh_token` → `{id_token}`.
//!
//! Tokens are HS256 JWTs signed with a key of this run, carrying `email`, `exp`, `iat`,
//! `sub`, `iss`; they expire after [`Options::token_lifetime`] (24 h by default). Errors are
//! JSON `{status, name, message}` (see [`error`]). Who may do what is in [`state`].
//!
//! Not simulated: items, annotations, FaaS, pipelines, apps, models, bots, settings, billing,
//! ontology attribute sub-routes, batch project-member adds.

mod error;
mod handlers;
pub mod seed;
pub mod setup;
pub mod state;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::Value;

pub use error::ApiError;
pub use handlers::{API_PREFIX, MAX_BODY, TOKEN_PATH};
pub use state::{KINDS, State};

use super::kit::{HandError, SimulatorHandle, WriteCounts};
use super::{FaultSpec, Running, ServeOptions, ServeStats};

/// How to start the simulator.
#[derive(Debug)]
pub struct Options {
    /// Transport faults, latency, rate limit.
    pub serve: ServeOptions,
    /// Seed for generated ids and the signing key (reproducible runs); random when `None`.
    pub id_seed: Option<u64>,
    /// Lifetime of tokens from `POST /token` and of the admin and user test tokens.
    pub token_lifetime: Duration,
    /// Whether the seeded admin is a superuser (may change plans); the plain user never is.
    pub admin_superuser: bool,
    /// How many cache-state polls answer `PENDING` after a cache is applied.
    pub cache_pending_polls: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            id_seed: None,
            token_lifetime: Duration::from_secs(24 * 3600),
            admin_superuser: true,
            cache_pending_polls: 0,
        }
    }
}

/// The router over a state (tests may call it with `oneshot`, without a socket).
pub fn router(state: Arc<Mutex<State>>) -> Router {
    Router::new().fallback(handlers::api).with_state(state)
}

/// A running Dataloop simulator.
#[derive(Debug)]
pub struct DataloopSimulator {
    /// `http://127.0.0.1:P/api/v1`: dtlpy's environment key, every REST call's base.
    pub base_url: String,
    /// `http://127.0.0.1:P`: dtlpy's `gate_url`, where `POST /token` goes.
    pub gate_url: String,
    /// A token of the seeded admin (owner of both orgs; a superuser unless
    /// [`Options::admin_superuser`] is off).
    pub admin_token: String,
    /// An API key of the admin (one year).
    pub admin_api_key: String,
    /// A token of the seeded plain user (a `member` of the template org).
    pub user_token: String,
    /// The template org's id.
    pub template_org_id: String,
    /// The target org's id (empty but for its owner and system project).
    pub target_org_id: String,
    /// Direct access to the state (tests that inspect or change the vendor side).
    pub state: Arc<Mutex<State>>,
    /// The server.
    pub running: Running,
}

impl DataloopSimulator {
    /// Starts a seeded simulator on `127.0.0.1:port` (0 = any free port).
    pub async fn start(port: u16, options: Options) -> Result<Self, String> {
        let listener = super::bind_loopback(port)
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let gate_url = format!("http://{addr}");
        let base_url = format!("{gate_url}{API_PREFIX}");
        let mut st = State::new(options.id_seed);
        st.base_url = base_url.clone();
        st.token_lifetime = options.token_lifetime;
        st.cache_pending_polls = options.cache_pending_polls;
        seed::load(&mut st)?;
        if let Some(u) = st.users.get_mut(seed::ADMIN_EMAIL) {
            u.superuser = options.admin_superuser;
        }
        let admin_token = st.issue_token(seed::ADMIN_EMAIL, options.token_lifetime);
        let admin_api_key = st.issue_token(seed::ADMIN_EMAIL, st.api_key_lifetime);
        let user_token = st.issue_token(seed::USER_EMAIL, options.token_lifetime);
        let state = Arc::new(Mutex::new(st));
        let running = super::serve(listener, router(state.clone()), options.serve)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base_url,
            gate_url,
            admin_token,
            admin_api_key,
            user_token,
            template_org_id: seed::TEMPLATE_ORG_ID.to_string(),
            target_org_id: seed::TARGET_ORG_ID.to_string(),
            state,
            running,
        })
    }

    /// Runs `f` on the state.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st)
    }

    /// A signed token for `email` (any e-mail; the gate refuses it unless that user exists),
    /// valid for `lifetime` (zero: expired already).
    pub fn issue_token(&self, email: &str, lifetime: Duration) -> String {
        self.with_state(|st| st.issue_token(email, lifetime))
    }

    /// Adds a Dataloop user who belongs to no org (someone a test invites, or logs in as
    /// with `password`). Not an API write.
    pub fn add_user(&self, email: &str, first: &str, last: &str, password: Option<&str>) {
        self.with_state(|st| st.add_user(email, Some(first), Some(last), password));
    }

    /// Makes `email` a superuser or not (plan changes need one).
    pub fn set_superuser(&self, email: &str, superuser: bool) -> Result<(), HandError> {
        self.with_state(|st| match st.users.get_mut(&email.to_ascii_lowercase()) {
            Some(u) => {
                u.superuser = superuser;
                Ok(())
            }
            None => Err(HandError::NotFound {
                kind: "users".into(),
                id: email.into(),
            }),
        })
    }

    /// The person invited as `email` to `org` accepts: the pending invitation becomes an
    /// active membership whose id is their e-mail. Not an API write.
    pub fn accept_invitation(&self, org: &str, email: &str) -> Result<(), HandError> {
        self.with_state(|st| st.accept_invitation(org, email))
            .map_err(HandError::Invalid)
    }

    /// `email` joins `org` with `role` directly (as someone added in the web UI). Not an API
    /// write.
    pub fn join_org(&self, org: &str, email: &str, role: &str) -> Result<(), HandError> {
        self.with_state(|st| st.join_org(org, email, role))
            .map_err(HandError::Invalid)
    }

    /// The write-only options (credentials) an integration was created or last updated with,
    /// as only the vendor side sees them.
    pub fn integration_options(&self, integration_id: &str) -> Option<Value> {
        self.with_state(|st| st.integration_options.get(integration_id).cloned())
    }

    /// How many cache-state polls answer `PENDING` after the next cache apply.
    pub fn set_cache_pending_polls(&self, polls: u32) {
        self.with_state(|st| st.cache_pending_polls = polls);
    }
}

fn kind_of(kind: &str) -> Result<&'static str, HandError> {
    crate::simulator::kit::handle::known_kind("dataloop", KINDS, kind)
}

impl SimulatorHandle for DataloopSimulator {
    fn vendor(&self) -> &'static str {
        "dataloop"
    }

    fn base_url(&self) -> &str {
        &self.base_url
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
