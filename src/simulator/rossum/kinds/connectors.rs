//! `connectors`: an external service queues export through.

use serde_json::{Value, json};

use super::KindRules;

/// `connectors`.
pub struct Connectors;

impl KindRules for Connectors {
    fn name(&self) -> &'static str {
        "connectors"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name", "service_url"]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("params", json!(null)),
            ("client_ssl_certificate", json!(null)),
            ("authorization_type", json!("secret_key")),
            ("authorization_token", json!(null)),
            ("asynchronous", json!(true)),
            ("metadata", json!({})),
        ]
    }

    fn discarded(&self) -> &'static [&'static str] {
        // A private key is accepted and never served back.
        &["client_ssl_key"]
    }
}
