//! OpenLattice's error answers, produced in one place: `ErrorsDTO` bodies
//! (`{"errors":[{"error":{"type","code"},"message"}]}`) with the server's exception-to-status
//! mapping, and Spring's own bodiless 404/405/415.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The `ApiExceptions` of an `ErrorDTO` (type name and code in the body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiException {
    /// `resourceNotFound` (404).
    ResourceNotFound,
    /// `illegalArgument` (400): `require`, `checkArgument`, unreadable bodies.
    IllegalArgument,
    /// `illegalState` (500): `check`, `checkState`.
    IllegalState,
    /// `forbidden` (code 403, answered with HTTP 401).
    Forbidden,
    /// `tokenNeedsRefresh` (401).
    TokenNeedsRefresh,
    /// `tokenError` (401).
    TokenError,
    /// `otherError` (500): any other exception.
    OtherError,
}

impl ApiException {
    fn type_name(self) -> &'static str {
        match self {
            Self::ResourceNotFound => "resourceNotFound",
            Self::IllegalArgument => "illegalArgument",
            Self::IllegalState => "illegalState",
            Self::Forbidden => "forbidden",
            Self::TokenNeedsRefresh => "tokenNeedsRefresh",
            Self::TokenError => "tokenError",
            Self::OtherError => "otherError",
        }
    }

    fn code(self) -> u16 {
        match self {
            Self::ResourceNotFound => 404,
            Self::IllegalArgument => 400,
            Self::Forbidden => 403,
            Self::TokenNeedsRefresh | Self::TokenError => 401,
            Self::IllegalState | Self::OtherError => 500,
        }
    }

    fn status(self) -> u16 {
        match self {
            // The datastore's exception handler answers ForbiddenException with 401.
            Self::Forbidden => 401,
            other => other.code(),
        }
    }
}

/// An error answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// An `ErrorsDTO` body.
    Dto {
        /// Exception kind.
        kind: ApiException,
        /// Message (never holds a credential).
        message: String,
    },
    /// Spring's answer with no body: 404 (no handler), 405 (with `Allow`), 415 (with
    /// `Accept`).
    Framework {
        /// Status.
        status: u16,
        /// `Allow` (405) or `Accept` (415) value.
        header: Option<(&'static str, String)>,
    },
}

impl ApiError {
    fn dto(kind: ApiException, message: impl Into<String>) -> Self {
        Self::Dto {
            kind,
            message: message.into(),
        }
    }

    /// 400 `illegalArgument`.
    pub fn illegal_argument(message: impl Into<String>) -> Self {
        Self::dto(ApiException::IllegalArgument, message)
    }

    /// 500 `illegalState`.
    pub fn illegal_state(message: impl Into<String>) -> Self {
        Self::dto(ApiException::IllegalState, message)
    }

    /// 404 `resourceNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::dto(ApiException::ResourceNotFound, message)
    }

    /// 401 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::dto(ApiException::Forbidden, message)
    }

    /// 401 `tokenError`.
    pub fn token_error(message: impl Into<String>) -> Self {
        Self::dto(ApiException::TokenError, message)
    }

    /// 401 `tokenNeedsRefresh`.
    pub fn token_needs_refresh(message: impl Into<String>) -> Self {
        Self::dto(ApiException::TokenNeedsRefresh, message)
    }

    /// 500 `otherError`, message `"<Class>: <msg>"` as the server renders unexpected exceptions.
    pub fn other(message: impl Into<String>) -> Self {
        Self::dto(ApiException::OtherError, message)
    }

    /// 404 with no body: no handler for the path.
    pub fn no_handler() -> Self {
        Self::Framework {
            status: 404,
            header: None,
        }
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(allow: String) -> Self {
        Self::Framework {
            status: 405,
            header: Some(("allow", allow)),
        }
    }

    /// 415 with `Accept`.
    pub fn unsupported_media_type(accept: &str) -> Self {
        Self::Framework {
            status: 415,
            header: Some(("accept", accept.to_string())),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Dto { kind, .. } => kind.status(),
            Self::Framework { status, .. } => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self {
            Self::Dto { kind, message } => {
                let body = json!({"errors": [{
                    "error": {"type": kind.type_name(), "code": kind.code()},
                    "message": message,
                }]});
                (status, axum::Json(body)).into_response()
            }
            Self::Framework { header, .. } => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = status;
                if let Some((name, value)) = header
                    && let Ok(v) = HeaderValue::from_str(&value)
                {
                    r.headers_mut().insert(name, v);
                }
                r
            }
        }
    }
}
