//! DRF-style error responses, produced in one place.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer: status code and DRF-shaped body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `{"detail": …}` or `{"<field>": [ … ]}`.
    pub body: Value,
}

impl ApiError {
    fn detail(status: u16, detail: &str) -> Self {
        Self {
            status,
            body: json!({ "detail": detail }),
        }
    }

    /// 400 on one field.
    pub fn field(field: &str, msg: &str) -> Self {
        Self {
            status: 400,
            body: json!({ field: [msg] }),
        }
    }

    /// 400 on several fields with the same message.
    pub fn fields(fields: &[&str], msg: &str) -> Self {
        let mut m = serde_json::Map::new();
        for f in fields {
            m.insert((*f).to_string(), json!([msg]));
        }
        Self {
            status: 400,
            body: Value::Object(m),
        }
    }

    /// 400 not tied to a field.
    pub fn non_field(msg: &str) -> Self {
        Self {
            status: 400,
            body: json!({ "non_field_errors": [msg] }),
        }
    }

    /// 401.
    pub fn unauthorized(detail: &str) -> Self {
        Self::detail(401, detail)
    }

    /// 403.
    pub fn forbidden(detail: &str) -> Self {
        Self::detail(403, detail)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::detail(404, "Not found.")
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::detail(405, "Method not allowed.")
    }

    /// 409.
    pub fn conflict(detail: &str) -> Self {
        Self::detail(409, detail)
    }

    /// 412 (concurrent modification).
    pub fn precondition_failed(detail: &str) -> Self {
        Self::detail(412, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body)).into_response()
    }
}
