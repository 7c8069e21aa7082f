//! `hooks`: extensions Rossum calls on events. `secrets` are write-only; `queues` is one side
//! of the hook ↔ queue relation and `run_after` orders hooks (both in `REFS`).

use serde_json::{Map, Value, json};

use super::{KindRules, New};
use crate::simulator::rossum::db::{Db, id_in, now_iso};
use crate::simulator::rossum::error::ApiError;

const EVENTS: &[&str] = &[
    "annotation_status.changed",
    "annotation_status",
    "annotation_content.initialize",
    "annotation_content.started",
    "annotation_content.user_update",
    "annotation_content.updated",
    "annotation_content.confirm",
    "annotation_content.export",
    "annotation_content",
    "upload.created",
    "email.received",
    "email",
    "invocation.scheduled",
    "invocation.manual",
    "invocation.interface",
    "invocation",
];

const TYPES: &[&str] = &["webhook", "function", "job"];

/// `hooks`.
pub struct Hooks;

impl KindRules for Hooks {
    fn name(&self) -> &'static str {
        "hooks"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("type", json!("webhook")),
            ("queues", json!([])),
            ("run_after", json!([])),
            ("active", json!(true)),
            ("events", json!([])),
            ("sideload", json!([])),
            ("metadata", json!({})),
            ("config", json!({})),
            ("test", json!({})),
            ("token_owner", json!(null)),
            ("token_lifetime_s", json!(null)),
            ("description", json!("")),
            ("extension_source", json!("custom")),
            ("settings", json!({})),
            ("settings_schema", json!(null)),
            (
                "secrets_schema",
                json!({"type": "object", "properties": {}}),
            ),
            ("guide", json!(null)),
            ("read_more_url", json!(null)),
            ("extension_image_url", json!(null)),
            ("hook_template", json!(null)),
            ("status", json!("ready")),
        ]
    }

    fn write_only(&self) -> &'static [&'static str] {
        &["secrets"]
    }

    fn discarded(&self) -> &'static [&'static str] {
        // A private key is accepted and never served back.
        &["config/client_ssl_key"]
    }

    fn prepare(&self, db: &Db, _new: &New, v: &mut Map<String, Value>) -> Result<(), ApiError> {
        let t = v["type"].as_str().unwrap_or("");
        if !TYPES.contains(&t) {
            return Err(ApiError::field(
                "type",
                &format!("\"{t}\" is not a valid choice."),
            ));
        }
        if let Some(events) = v.get("events").and_then(Value::as_array)
            && let Some(bad) = events
                .iter()
                .filter_map(Value::as_str)
                .find(|e| !EVENTS.contains(e))
        {
            return Err(ApiError::field(
                "events",
                &format!("\"{bad}\" is not a valid choice."),
            ));
        }
        if let Some(owner) = v.get("token_owner").and_then(Value::as_str).and_then(id_in)
            && db.is_group_admin(owner)
        {
            return Err(ApiError::field(
                "token_owner",
                "Organization group admin cannot be a token owner.",
            ));
        }
        v.insert("created_at".into(), json!(now_iso()));
        Ok(())
    }
}
