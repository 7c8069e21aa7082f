//! Rossum (Elis API v1) simulator, in memory, speaking Rossum's wire format so that the orgops
//! client and Rossum's own SDK (`rossum-api`) work against it unchanged.
//!
//! Routes under `/api/v1` (design/vendors/rossum.md §7):
//!
//! | route | notes |
//! |---|---|
//! | `POST auth/login` | JSON or form; `{"key","domain"}`; 401 on bad credentials; `max_token_lifetime_s` |
//! | `POST auth/logout`, `GET auth/user` | |
//! | `POST auth/membership_token` | primary org, membership orgs, any group org for group admins; else 403 |
//! | `POST organizations/create` | no auth; `create_key` → group; 201 `{"organization"}`; first user (admin) + a workspace |
//! | `GET organizations[/{id}]`, `PATCH/PUT organizations/{id}`, `GET organizations/{id}/limits`, `GET organizations/{id}/billing_history` (one current contract period unless a test sets [`Db::billing_history`]) | group admins see the whole group |
//! | `GET organization_groups[/{id}]` | |
//! | `… organization_groups/{g}/memberships[/{id}]` | list/get/POST 201/PATCH/PUT/DELETE 204; plain or membership-form URLs in, membership form out |
//! | `GET organization_groups/{g}/users|organizations` | membership views |
//! | `GET groups[/{id}]` | the 8 roles of the token's org |
//! | `users[/{id}]` | list, POST 201, GET/PATCH/PUT, DELETE = soft delete 204 |
//! | `workspaces`, `schemas`, `connectors`, `queues`, `inboxes`, `hooks`, `email_templates`, `labels`, `rules` | list, POST 201, GET, PATCH/PUT, DELETE 204 |
//! | `GET triggers[/{id}]` | auto-created with default email templates |
//!
//! Every reference is an absolute URL; lists use the `pagination` envelope (`page`, `page_size`
//! ≤ 100, absolute `next`/`previous`); errors are DRF-shaped; tokens are scoped to one
//! organization. Side effects: a queue creates its 5 default email templates (3 with triggers),
//! an inbox generates its address and sets `queue.inbox`, `hook.queues` and `queue.hooks` are
//! one many-to-many relation, deleting a workspace with queues or a linked schema is a 409, and
//! deleting a queue only requests its deletion.
//!
//! The simulator is built on the kit: objects live in a [`kit::Store`] (write counters per
//! kind), tokens in a [`kit::auth::TokenRegistry`], lists are paged by [`kit::paging`]. Each
//! kind's rules are one declaration in `kinds/`, applied by one generic create, update, delete
//! and render.
//!
//! [`kit::Store`]: crate::simulator::kit::Store
//! [`kit::auth::TokenRegistry`]: crate::simulator::kit::auth::TokenRegistry
//! [`kit::paging`]: crate::simulator::kit::paging

mod db;
mod error;
mod handlers;
pub(crate) mod kinds;
pub mod seed;

use std::sync::{Arc, Mutex};

use axum::Router;
use serde_json::Value;

pub use db::{Db, Rec};
pub use handlers::billing_period;
pub use seed::{Admin, Seed};

use super::{Running, ServeOptions};

/// Default test credentials printed by `orgops simulate`.
pub const DEFAULT_ADMIN: &str = "admin@orgops.example";
/// Default test password (of a simulator, never of a real account).
pub const DEFAULT_PASSWORD: &str = "simulator-password";
/// Default create key.
pub const DEFAULT_CREATE_KEY: &str = "simulator-create-key";
/// Name of the template org in the shipped fixture.
pub const TEMPLATE_ORG: &str = "Template org";

/// The router for a database (tests may call it with `oneshot`, without a socket).
pub fn router(db: Arc<Mutex<Db>>) -> Router {
    Router::new()
        .route("/api/v1", axum::routing::any(handlers::api))
        .route("/api/v1/", axum::routing::any(handlers::api))
        .route("/api/v1/{*rest}", axum::routing::any(handlers::api))
        .with_state(db)
}

/// A running Rossum simulator.
#[derive(Debug)]
pub struct RossumSimulator {
    /// `http://127.0.0.1:P/api/v1`.
    pub base_url: String,
    /// Direct access to the state (for tests that inspect or change the vendor side).
    pub db: Arc<Mutex<Db>>,
    /// The server.
    pub running: Running,
}

impl RossumSimulator {
    /// Starts a simulator on `127.0.0.1:port` (0 = any free port), seeded with `seed`.
    pub async fn start(
        port: u16,
        seed: &Seed,
        admins: &[Admin],
        options: ServeOptions,
    ) -> Result<Self, String> {
        let listener = super::bind_loopback(port)
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}/api/v1");
        let mut db = Db::new(&base_url);
        seed::load(&mut db, seed, admins)?;
        let db = Arc::new(Mutex::new(db));
        let running =
            super::serve(listener, router(db.clone()), options).map_err(|e| e.to_string())?;
        Ok(Self {
            base_url,
            db,
            running,
        })
    }

    /// Runs `f` on the database (tests: inspect or change the vendor side directly). Writes
    /// through `Db`'s methods count as API writes of their kind; hand edits that must not count
    /// go through [`SimulatorHandle`](crate::simulator::kit::SimulatorHandle) or `Db::hand_*`.
    pub fn with_db<T>(&self, f: impl FnOnce(&mut Db) -> T) -> T {
        let mut db = match self.db.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        f(&mut db)
    }

    /// The id of the (first) organization named `name`.
    pub fn org_id(&self, name: &str) -> Option<u64> {
        self.org_ids(name).first().copied()
    }

    /// The ids of every organization named `name`, in creation order.
    pub fn org_ids(&self, name: &str) -> Vec<u64> {
        self.with_db(|db| {
            db.all("organizations")
                .into_iter()
                .filter(|o| o.value["name"].as_str() == Some(name))
                .map(|o| o.id)
                .collect()
        })
    }

    /// Objects of `kind` in `org`, as served.
    pub fn objects(&self, kind: &str, org: u64) -> Vec<Value> {
        self.with_db(|db| {
            db.in_org(kind, org)
                .into_iter()
                .map(|r| db.render_rec(kind, r))
                .collect()
        })
    }

    /// Every object of `kind` in any organization, as stored (tests that look across
    /// organizations: users by name, memberships).
    pub fn all_objects(&self, kind: &str) -> Vec<Value> {
        self.with_db(|db| db.all(kind).into_iter().map(|r| r.value.clone()).collect())
    }
}
