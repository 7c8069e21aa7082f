//! The simulator's one error shape: a GraphQL error (`{"message", "locations"?, "path"?}`),
//! answered inside an HTTP 200 body as the platform does. Messages never hold a credential.

use serde_json::{Map, Value, json};

/// One GraphQL error: `{"message", "locations"?, "path"?}`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct GqlError {
    /// Message.
    pub message: String,
    /// Where in the document (line, column).
    pub location: Option<(usize, usize)>,
    /// Response path (root field's response key).
    pub path: Option<String>,
}

impl GqlError {
    /// An error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: None,
            path: None,
        }
    }

    pub(super) fn at(message: impl Into<String>, pos: graphql_parser::Pos) -> Self {
        Self {
            message: message.into(),
            location: Some((pos.line, pos.column)),
            path: None,
        }
    }

    /// The error as JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("message".into(), json!(self.message));
        if let Some((line, column)) = self.location {
            m.insert(
                "locations".into(),
                json!([{"line": line, "column": column}]),
            );
        }
        if let Some(p) = &self.path {
            m.insert("path".into(), json!([p]));
        }
        Value::Object(m)
    }
}
