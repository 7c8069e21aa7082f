//! `labels`: a name and a colour in an organization.

use serde_json::{Value, json};

use super::KindRules;

/// `labels`.
pub struct Labels;

impl KindRules for Labels {
    fn name(&self) -> &'static str {
        "labels"
    }

    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn sets_organization(&self) -> bool {
        true
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![("color", json!(null))]
    }
}
