//! OpenLattice simulator (organizations API of the datastore), in memory, built on the
//! [simulator kit](crate::simulator::kit), speaking the server's wire format so that the
//! official JS SDK (npm `lattice` 0.98) works against it unchanged (design doc
//! `vendors/openlattice.md` §7).
//!
//! Routes under `/datastore/organizations`, with or without a trailing slash; `{userId}` is
//! any percent-decoded segment (`google-oauth2%7C123`):
//!
//! | route | body | notes |
//! |---|---|---|
//! | `GET ""`, `GET /metadata` | | organizations (members, roles) / OrganizationPrincipals the caller can read |
//! | `POST ""` | JSON Organization | client `id` honoured; duplicate `principal.id` → 400; id reused under another name → 500; unknown keys → 400; answers `"<uuid>"`; creates the admin role, the creator becomes a member holding it |
//! | `GET`/`DELETE /{id}` | | full Organization shape / everything in the org |
//! | `PUT /{id}/title`, `PUT /{id}/description` | `text/plain` only (JSON → 415) | |
//! | `GET`/`PUT`/`POST`/`DELETE /{id}/email-domains` | JSON `string[]` (also on DELETE) | GET: owner; writes: global admins |
//! | `PUT`/`DELETE /{id}/email-domains/{domain}` | | global admins |
//! | `POST`/`PUT`/`DELETE /{id}/connections` | JSON `string[]` | global admins |
//! | `GET`/`PATCH /{id}/database` | PATCH: `text/plain` or form | |
//! | `GET /{id}/principals/members`, `PUT`/`DELETE …/members/{userId}` | | OrganizationMember (principal, Auth0 profile, roles); unknown user → 500 |
//! | `POST /roles` | JSON Role with `@class` | principal type ROLE; a duplicate role name creates nothing and still answers the request's id |
//! | `GET /{id}/principals/roles[/{roleId}]`, `DELETE …/{roleId}` | | the admin role cannot be deleted (400) |
//! | `PUT …/roles/{roleId}/title`, `PUT …/description` | `text/plain` only (POST → 405) | |
//! | `PUT …/roles/{roleId}/grant` | JSON Grant | stored as `grants[roleId][grantType]` on the org |
//! | `GET …/roles/{roleId}/members`, `PUT`/`DELETE …/members/{userId}` | | Auth0 users of the role; grants are no-ops when already so |
//!
//! and, for looking people up, these of `/datastore/principals` (the server's
//! `PrincipalDirectoryController`; any valid JWT may call them, admin or not; none is a write):
//!
//! | route | body | notes |
//! |---|---|---|
//! | `GET /users` | | `{ "<userId>": <Auth0 user> }` of every known user |
//! | `POST /users` | JSON `string[]` of user ids | the same map, of the known ones |
//! | `GET /users/{userId}` | | one Auth0 user; unknown → 500 `NoSuchElementException: Key … is missing in the map.` |
//! | `POST /users/search` | JSON `{"email": ..}` or `{"name": ..}` (exactly one, not blank; else 400) | `{ "<userId>": <Auth0 user> }`, `{}` when none match; case-insensitive, `*` any run of characters, `"…"` exact |
//!
//! The known users are the seeded ones, every JWT subject that has called (with the token's
//! `email` claim), and those added by hand ([`OpenLatticeSimulator::add_user`]: someone who
//! has an Auth0 account but belongs to no organization).
//!
//! Every call needs `Authorization: Bearer <JWT>`; the caller is the JWT's `sub` (the signature
//! is not checked; an `exp` in the past is a 401). Void answers are 200 with an empty body.
//! Errors are `ErrorsDTO` bodies with the server's mapping: an unknown organization is a 500
//! `Organization [<id>] does not exist.`, a missing permission a 401 `forbidden`, a bad argument
//! a 400; Spring's own 404/405/415 have no body. An unknown role is a 401 like any role the
//! caller may not read, because the server checks READ on `[org, role]` before looking it up.
//!
//! Not simulated: entity sets, integration accounts, member/role counts, data sources; of the
//! principals routes, securable principals, roles, database accounts, sync, principal trees,
//! user deletion and the deprecated GET searches.

mod error;
mod handlers;
pub mod seed;
pub mod state;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

pub use error::{ApiError, ApiException};
pub use handlers::{PREFIX, PRINCIPALS_PREFIX};
pub use state::{KINDS, State};

use super::kit::{HandError, SimulatorHandle, WriteCounts, auth};
use super::{FaultSpec, Running, ServeOptions, ServeStats};

/// How to start the simulator.
#[derive(Debug, Default)]
pub struct Options {
    /// Transport faults, latency, rate limit.
    pub serve: ServeOptions,
    /// Subjects that are global admins besides the seeded admin.
    pub admins: Vec<String>,
    /// Seed for generated ids (reproducible runs); random when `None`.
    pub id_seed: Option<u64>,
}

/// The router over a state (tests may call it with `oneshot`, without a socket). Every path
/// goes to one handler: the real server authenticates before it looks for a route, so an
/// unknown path without a token is a 401 too.
pub fn router(state: Arc<Mutex<State>>) -> Router {
    Router::new().fallback(handlers::api).with_state(state)
}

/// An unsigned JWT for `subject` (`alg: none`; OpenLattice clients only pass it along),
/// expiring after `lifetime` when given.
pub fn token_for(subject: &str, email: Option<&str>, lifetime: Option<Duration>) -> String {
    let now = auth::unix_now();
    let mut claims = json!({
        "sub": subject,
        "iss": "https://orgops-simulator.invalid/",
        "aud": "lattice",
        "iat": now,
    });
    if let Some(e) = email {
        claims["email"] = json!(e);
    }
    if let Some(l) = lifetime {
        claims["exp"] = json!(now + l.as_secs() as i64);
    }
    auth::unsigned_jwt(&claims)
}

/// A running OpenLattice simulator.
#[derive(Debug)]
pub struct OpenLatticeSimulator {
    /// `http://127.0.0.1:P` (the SDK appends `/datastore/organizations`).
    pub base_url: String,
    /// A token of the seeded global admin, who created (and owns) the template org.
    pub admin_token: String,
    /// A token of the seeded non-admin user, a plain member of the template org.
    pub user_token: String,
    /// The template organization's id.
    pub template_org_id: String,
    /// Direct access to the state (tests that inspect or change the vendor side).
    pub state: Arc<Mutex<State>>,
    /// The server.
    pub running: Running,
}

impl OpenLatticeSimulator {
    /// Starts a seeded simulator on `127.0.0.1:port` (0 = any free port).
    pub async fn start(port: u16, options: Options) -> Result<Self, String> {
        let listener = super::bind_loopback(port)
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut st = State::new(options.id_seed);
        seed::load(&mut st, &options.admins)?;
        let state = Arc::new(Mutex::new(st));
        let running = super::serve(listener, router(state.clone()), options.serve)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base_url: format!("http://{addr}"),
            admin_token: token_for(seed::ADMIN_SUBJECT, Some("admin@orgops.example"), None),
            user_token: token_for(seed::USER_SUBJECT, Some("user@orgops.example"), None),
            template_org_id: seed::TEMPLATE_ORG_ID.to_string(),
            state,
            running,
        })
    }

    /// The organizations API's base, `<base_url>/datastore/organizations`.
    pub fn api_url(&self) -> String {
        format!("{}{PREFIX}", self.base_url)
    }

    /// Runs `f` on the state.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st)
    }

    /// The principals API's base, `<base_url>/datastore/principals`.
    pub fn principals_url(&self) -> String {
        format!("{}{PRINCIPALS_PREFIX}", self.base_url)
    }

    /// Adds a person with an Auth0 account (who has not called and belongs to no
    /// organization), so that the principals routes find them: by e-mail in a search, by
    /// subject in a look-up, and as someone an organization may add. A subject already known
    /// keeps its profile. Not a write through the API: no counter moves.
    pub fn add_user(&self, subject: &str, email: &str, given: &str, family: &str) {
        self.with_state(|st| st.add_user(subject, Some(email), given, family));
    }

    /// A token for `subject` (any subject: unknown ones become users on first use).
    pub fn issue_token(&self, subject: &str, lifetime: Option<Duration>) -> String {
        token_for(subject, None, lifetime)
    }
}

fn kind_of(kind: &str) -> Result<&'static str, HandError> {
    crate::simulator::kit::handle::known_kind("openlattice", KINDS, kind)
}

impl SimulatorHandle for OpenLatticeSimulator {
    fn vendor(&self) -> &'static str {
        "openlattice"
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
        self.with_state(|st| {
            st.store
                .find(state::ORGS, |_, r| {
                    r.value["title"] == name || r.value["principal"]["id"] == name
                })
                .map(|(id, _)| id.to_string())
        })
    }

    fn org_ids(&self, name: &str) -> Vec<String> {
        self.with_state(|st| {
            st.store
                .list(state::ORGS)
                .into_iter()
                .filter(|(_, r)| r.value["title"] == name || r.value["principal"]["id"] == name)
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
