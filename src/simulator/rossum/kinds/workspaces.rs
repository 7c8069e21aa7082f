//! `workspaces`: a name in an organization; lists its queues (see `REFS`).

use serde_json::{Value, json};

use super::KindRules;

/// `workspaces`.
pub struct Workspaces;

impl KindRules for Workspaces {
    fn name(&self) -> &'static str {
        "workspaces"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn sets_organization(&self) -> bool {
        true
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![("autopilot", json!(false)), ("metadata", json!({}))]
    }
}
