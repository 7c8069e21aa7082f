//! `queues`: where documents arrive. A new queue gets Rossum's five default e-mail templates;
//! deleting a queue only requests its deletion (it stays, no longer live, out of its
//! workspace); its hooks are set from either side (see `REFS`).

use serde_json::{Map, Value, json};

use super::{Deletion, KindRules, New, email_templates};
use crate::simulator::rossum::db::{Db, Rec, now_iso};
use crate::simulator::rossum::error::ApiError;

/// `queues`.
pub struct Queues;

impl KindRules for Queues {
    fn name(&self) -> &'static str {
        "queues"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name", "schema"]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("workspace", json!(null)),
            ("connector", json!(null)),
            ("inbox", json!(null)),
            ("users", json!([])),
            ("session_timeout", json!("01:00:00")),
            ("rir_url", json!(null)),
            ("rir_params", json!(null)),
            ("dedicated_engine", json!(null)),
            ("generic_engine", json!(null)),
            ("engine", json!(null)),
            ("default_score_threshold", json!(0.8)),
            ("automation_enabled", json!(false)),
            ("automation_level", json!("never")),
            ("locale", json!("en_GB")),
            ("metadata", json!({})),
            ("use_confirmed_state", json!(false)),
            ("settings", json!({})),
            ("document_lifetime", json!(null)),
            ("delete_after", json!(null)),
            ("training_enabled", json!(true)),
            ("workflows", json!([])),
        ]
    }

    fn prepare(&self, _db: &Db, _new: &New, v: &mut Map<String, Value>) -> Result<(), ApiError> {
        if v["name"].as_str().is_some_and(|n| n.len() > 255) {
            return Err(ApiError::field(
                "name",
                "Ensure this field has no more than 255 characters.",
            ));
        }
        v.insert("status".into(), json!("active"));
        // An inbox is attached by creating one for the queue.
        v.insert("inbox".into(), json!(null));
        v.insert("counts".into(), counts());
        Ok(())
    }

    fn created(&self, db: &mut Db, new: &New) {
        email_templates::create_defaults(db, new.org, &new.url);
    }

    fn live(&self, v: &Value) -> bool {
        v["status"] == "active"
    }

    fn delete(&self, _rec: Rec<'_>) -> Result<Deletion, ApiError> {
        Ok(Deletion::Soft(|q| {
            q["status"] = json!("deletion_requested");
            q["delete_after"] = json!(now_iso());
            q["workspace"] = Value::Null;
        }))
    }
}

/// Document counts by status, all zero (the simulator holds no documents).
fn counts() -> Value {
    let mut m = Map::new();
    for k in [
        "importing",
        "split",
        "failed_import",
        "to_review",
        "reviewing",
        "confirmed",
        "exporting",
        "postponed",
        "failed_export",
        "exported",
        "deleted",
        "purged",
        "rejected",
    ] {
        m.insert(k.into(), json!(0));
    }
    Value::Object(m)
}
