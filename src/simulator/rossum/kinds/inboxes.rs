//! `inboxes`: the e-mail address of exactly one queue. Rossum generates the address from the
//! prefix and the organization's domain, and the queue's `inbox` points back.

use serde_json::{Map, Value, json};

use super::{KindRules, New};
use crate::simulator::rossum::db::{Db, id_in};
use crate::simulator::rossum::error::ApiError;

/// `inboxes`.
pub struct Inboxes;

impl KindRules for Inboxes {
    fn name(&self) -> &'static str {
        "inboxes"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name", "queues"]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("email_prefix", json!(null)),
            ("bounce_email_to", json!(null)),
            ("bounce_unprocessable_attachments", json!(false)),
            ("bounce_postponed_annotations", json!(false)),
            ("bounce_deleted_annotations", json!(false)),
            ("bounce_email_with_no_attachments", json!(true)),
            ("metadata", json!({})),
            (
                "filters",
                json!({"allowed_senders": [], "denied_senders": []}),
            ),
            ("dmarc_check_action", json!("accept")),
        ]
    }

    /// The inbox ↔ queue link is fixed at creation.
    fn immutable(&self) -> &'static [&'static str] {
        &["queues"]
    }

    fn prepare(&self, db: &Db, new: &New, v: &mut Map<String, Value>) -> Result<(), ApiError> {
        let queue = queue_of(v).filter(|q| db.get("queues", *q).is_some_and(|r| r.org == new.org));
        let queues = v["queues"].as_array().map_or(0, Vec::len);
        if queues != 1 {
            return Err(ApiError::field(
                "queues",
                "It is possible to have only one queue per inbox.",
            ));
        }
        let Some(queue) = queue else {
            return Err(ApiError::field(
                "queues",
                "Invalid hyperlink - Object does not exist.",
            ));
        };
        if db
            .get("queues", queue)
            .is_some_and(|q| !q.value["inbox"].is_null())
        {
            return Err(ApiError::field(
                "queues",
                "This queue already has an inbox.",
            ));
        }
        let email = match v.get("email").and_then(Value::as_str) {
            Some(e) if !e.is_empty() => e.to_string(),
            _ => generated_address(db, new.org, v)?,
        };
        let taken = !db.by_field("inboxes", "email", &email).is_empty();
        if taken {
            return Err(ApiError::field(
                "email",
                "inbox with this email already exists.",
            ));
        }
        v.insert("email".into(), json!(email));
        Ok(())
    }

    fn created(&self, db: &mut Db, new: &New) {
        let queue = db
            .get("inboxes", new.id)
            .and_then(|i| i.value.as_object().and_then(queue_of));
        if let Some(q) = queue {
            // Part of the inbox's creation: not a write of the queue.
            db.update_uncounted("queues", q, |q| q["inbox"] = json!(new.url));
        }
    }
}

/// The id of the inbox's (first) queue.
fn queue_of(v: &Map<String, Value>) -> Option<u64> {
    v.get("queues")?
        .as_array()?
        .first()?
        .as_str()
        .and_then(id_in)
}

/// `<prefix>-<6 hex digits>@<org domain>.rossum.app`.
fn generated_address(db: &Db, org: u64, v: &Map<String, Value>) -> Result<String, ApiError> {
    let prefix = v.get("email_prefix").and_then(Value::as_str).unwrap_or("");
    if prefix.is_empty() {
        return Err(ApiError::field("email_prefix", "This field is required."));
    }
    if prefix.len() > 57 {
        return Err(ApiError::field(
            "email_prefix",
            "Ensure this field has no more than 57 characters.",
        ));
    }
    let domain = db
        .get("organizations", org)
        .and_then(|o| o.value.get("domain").and_then(Value::as_str))
        .unwrap_or("org");
    Ok(format!(
        "{prefix}-{:06x}@{domain}.rossum.app",
        fastrand::u32(..0x100_0000)
    ))
}
