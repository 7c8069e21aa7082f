//! `schemas`: the fields of a queue's documents; a schema update that names the `modified_at`
//! it was based on fails with 412 when the schema changed since.

use serde_json::{Map, Value, json};

use super::{KindRules, New};
use crate::simulator::rossum::db::{Db, Rec, now_iso};
use crate::simulator::rossum::error::ApiError;

/// `schemas`.
pub struct Schemas;

impl KindRules for Schemas {
    fn name(&self) -> &'static str {
        "schemas"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name", "content"]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![("metadata", json!({}))]
    }

    fn discarded(&self) -> &'static [&'static str] {
        &["rules"]
    }

    fn prepare(&self, _db: &Db, _new: &New, v: &mut Map<String, Value>) -> Result<(), ApiError> {
        v.insert("modified_at".into(), json!(now_iso()));
        if !v["content"].is_array() {
            return Err(ApiError::field("content", "Expected a list of items."));
        }
        Ok(())
    }

    /// Rossum answers concurrent schema modifications with 412.
    fn check_update(&self, current: Rec<'_>, body: &Value) -> Result<(), ApiError> {
        let Some(seen) = body.get("modified_at").filter(|v| !v.is_null()) else {
            return Ok(());
        };
        if &current.value["modified_at"] != seen {
            return Err(ApiError::precondition_failed(
                "The schema was modified concurrently; fetch it again.",
            ));
        }
        Ok(())
    }
}
