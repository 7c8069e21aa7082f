//! `email_templates`: messages a queue sends. Clients create only `custom` and `rejection`
//! templates and may delete only those; Rossum makes five defaults with every queue
//! ([`create_defaults`]), three of them with a trigger.

use serde_json::{Map, Value, json};

use super::{Deletion, KindRules, New};
use crate::simulator::rossum::db::{Db, Rec};
use crate::simulator::rossum::error::ApiError;

/// Types a client may create and delete.
const CLIENT_TYPES: &[&str] = &["custom", "rejection"];

/// `email_templates`.
pub struct EmailTemplates;

impl KindRules for EmailTemplates {
    fn name(&self) -> &'static str {
        "email_templates"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name", "queue"]
    }

    fn sets_organization(&self) -> bool {
        true
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("type", json!("custom")),
            ("subject", json!("")),
            ("message", json!("")),
            ("enabled", json!(true)),
            ("automate", json!(false)),
            ("triggers", json!([])),
            ("to", json!([])),
            ("cc", json!([])),
            ("bcc", json!([])),
        ]
    }

    fn prepare(&self, _db: &Db, _new: &New, v: &mut Map<String, Value>) -> Result<(), ApiError> {
        if !v["type"]
            .as_str()
            .is_some_and(|t| CLIENT_TYPES.contains(&t))
        {
            return Err(ApiError::field(
                "type",
                "Only custom and rejection templates can be created.",
            ));
        }
        Ok(())
    }

    fn delete(&self, rec: Rec<'_>) -> Result<Deletion, ApiError> {
        if rec.value["type"]
            .as_str()
            .is_some_and(|t| CLIENT_TYPES.contains(&t))
        {
            Ok(Deletion::Remove)
        } else {
            Err(ApiError::non_field(
                "This email template type cannot be deleted.",
            ))
        }
    }
}

/// Rossum's default templates of a new queue: name, type, and the event of its trigger.
const DEFAULTS: &[(&str, &str, Option<&str>)] = &[
    (
        "Annotation status change - confirmed",
        "custom",
        Some("annotation_confirmed"),
    ),
    (
        "Annotation status change - exported",
        "custom",
        Some("annotation_exported"),
    ),
    (
        "Annotation status change - received",
        "custom",
        Some("annotation_imported"),
    ),
    ("Default rejection template", "rejection_default", None),
    (
        "Email with no processable attachments",
        "email_with_no_processable_attachments",
        None,
    ),
];

/// Creates the default templates (and their triggers) of the queue at `queue_url`.
pub fn create_defaults(db: &mut Db, org: u64, queue_url: &str) {
    for (name, t, event) in DEFAULTS {
        let id = db.next_id("email_templates");
        let url = db.url("email_templates", id);
        let mut triggers = Vec::new();
        if let Some(event) = event {
            let tid = db.next_id("triggers");
            let turl = db.url("triggers", tid);
            let tv = json!({"id": tid, "url": turl, "queue": queue_url, "event": event,
                            "condition": {}, "email_templates": [url], "delete_recommendations": []});
            db.insert("triggers", org, tid, tv);
            triggers.push(turl);
        }
        let v = json!({"id": id, "url": url, "name": name, "queue": queue_url,
                       "organization": db.url("organizations", org), "triggers": triggers,
                       "type": t, "subject": name, "message": "<p>{{ default_message }}</p>",
                       "enabled": true, "automate": *t != "custom", "to": [], "cc": [], "bcc": []});
        db.insert("email_templates", org, id, v);
    }
}
