//! `rules`: conditions on a queue's documents and the actions they take.

use serde_json::{Map, Value, json};

use super::{KindRules, New};
use crate::simulator::rossum::db::Db;
use crate::simulator::rossum::error::ApiError;

/// `rules`.
pub struct Rules;

impl KindRules for Rules {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn sets_organization(&self) -> bool {
        true
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("enabled", json!(true)),
            ("queues", json!([])),
            ("schema", json!(null)),
            ("trigger_condition", json!("True")),
            ("actions", json!([])),
            ("rule_template", json!(null)),
            ("synchronized_from_template", json!(false)),
        ]
    }

    fn prepare(&self, _db: &Db, _new: &New, v: &mut Map<String, Value>) -> Result<(), ApiError> {
        let mut seen = Vec::new();
        for a in v["actions"].as_array().into_iter().flatten() {
            let aid = a.get("id").cloned().unwrap_or(Value::Null);
            if seen.contains(&aid) {
                return Err(ApiError::field(
                    "actions",
                    "Action ids must be unique within a rule.",
                ));
            }
            seen.push(aid);
        }
        Ok(())
    }
}
