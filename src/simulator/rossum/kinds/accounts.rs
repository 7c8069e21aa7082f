//! Organizations, users, roles (`groups`) and memberships: kinds with routes of their own
//! (`handlers.rs`) and account rules in `db.rs`; here only what the generic code needs.

use serde_json::{Value, json};

use super::{Api, KindRules};
use crate::simulator::rossum::db::{Db, Rec};

/// `organizations`: lists its workspaces and users on render.
pub struct Organizations;

impl KindRules for Organizations {
    fn name(&self) -> &'static str {
        "organizations"
    }

    fn api(&self) -> Api {
        Api::Custom
    }

    fn computed(&self) -> &'static [&'static str] {
        &["workspaces", "users"]
    }

    fn render(&self, db: &Db, rec: Rec<'_>, v: &mut Value) {
        for (field, kind) in [("workspaces", "workspaces"), ("users", "users")] {
            let urls: Vec<String> = db
                .in_org(kind, rec.id)
                .iter()
                .map(|o| db.url(kind, o.id))
                .collect();
            v[field] = json!(urls);
        }
    }
}

/// `users`.
pub struct Users;

impl KindRules for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    fn api(&self) -> Api {
        Api::Custom
    }
}

/// `groups`: the roles of an organization.
pub struct Groups;

impl KindRules for Groups {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn api(&self) -> Api {
        Api::Custom
    }
}

/// `memberships`: a user's access to an organization other than their own.
pub struct Memberships;

impl KindRules for Memberships {
    fn name(&self) -> &'static str {
        "memberships"
    }

    fn api(&self) -> Api {
        Api::Custom
    }
}
