//! The one public error type of every API surface, and its wire form.
//!
//! On the wire an error is Cloudpods' `{"code": <http status>, "class": "<ErrClass>",
//! "details": "..."}`. An OpenStack-style `error` object is added beside it so that
//! keystoneauth and python-openstackclient print the message unchanged.

use serde::{Deserialize, Serialize};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Semantic API errors. Each maps to one HTTP status and one Cloudpods error class.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Duplicate(String),
    #[error("{field}: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidStatus(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    InvalidCredential(String),
    #[error("{0}")]
    InsufficientResource(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput { field: field.into(), reason: reason.into() }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        Error::invalid(field, "is required")
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        Error::NotFound(format!("{kind} {id} not found"))
    }

    pub fn status_code(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Duplicate(_) | Error::Conflict(_) | Error::InvalidStatus(_) => 409,
            Error::InvalidInput { .. } | Error::BadRequest(_) | Error::InsufficientResource(_) => 400,
            Error::Forbidden(_) => 403,
            Error::Unauthorized(_) | Error::InvalidCredential(_) => 401,
            Error::NotImplemented(_) => 501,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// Cloudpods' error class names (`httperrors` in the Go code).
    pub fn class(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "ResourceNotFoundError",
            Error::Duplicate(_) => "DuplicateNameError",
            Error::Conflict(_) => "ConflictError",
            Error::InvalidInput { .. } => "InputParameterError",
            Error::BadRequest(_) => "BadRequestError",
            Error::InvalidStatus(_) => "InvalidStatusError",
            Error::Forbidden(_) => "ForbiddenError",
            Error::Unauthorized(_) => "UnauthorizedError",
            Error::InvalidCredential(_) => "InvalidCredentialError",
            Error::InsufficientResource(_) => "InsufficientResourceError",
            Error::NotImplemented(_) => "NotImplementedError",
            Error::Unavailable(_) => "ServiceUnavailableError",
            Error::Internal(_) => "InternalServerError",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let code = self.status_code();
        let details = self.to_string();
        ErrorBody {
            code,
            class: self.class().to_string(),
            details: details.clone(),
            error: Some(OpenStackError { code, title: title(code).to_string(), message: details }),
        }
    }

    /// Rebuild an error received from another service.
    pub fn from_body(code: u16, class: &str, details: String) -> Self {
        match (code, class) {
            (_, "ResourceNotFoundError") | (404, _) => Error::NotFound(details),
            (_, "DuplicateNameError") => Error::Duplicate(details),
            (_, "InvalidStatusError") => Error::InvalidStatus(details),
            (_, "InputParameterError") => Error::BadRequest(details),
            (_, "InvalidCredentialError") => Error::InvalidCredential(details),
            (401, _) => Error::Unauthorized(details),
            (403, _) => Error::Forbidden(details),
            (409, _) => Error::Conflict(details),
            (400, _) => Error::BadRequest(details),
            (503, _) | (502, _) => Error::Unavailable(details),
            _ => Error::Internal(details),
        }
    }
}

fn title(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// The error body on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: u16,
    pub class: String,
    pub details: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OpenStackError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenStackError {
    pub code: u16,
    pub title: String,
    pub message: String,
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status_code())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_cloudpods_and_openstack() {
        let e = Error::not_found("user", "alice");
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "code": 404, "class": "ResourceNotFoundError", "details": "user alice not found",
                "error": {"code": 404, "title": "Not Found", "message": "user alice not found"}
            })
        );
        let e = Error::invalid("name", "is required");
        assert_eq!(e.body().details, "name: is required");
        assert_eq!(e.status_code(), 400);
    }
}
