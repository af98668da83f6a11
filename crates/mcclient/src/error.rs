//! The one error type of the SDK, and how a failed HTTP answer becomes one.
//!
//! Cloudpods services answer errors with `{"code":404,"class":"ResourceNotFoundError","details":"..."}`.
//! Keystone may add an OpenStack `{"error":{"code","title","message"}}` object; `class` and
//! `details` win when both are present. Anything else (a proxy's HTML page, an empty body)
//! keeps the raw text, cut to a readable length.

use serde_json::Value;

/// Errors returned by every call of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an HTTP status >= 400.
    #[error("{}", fmt_http(*status, class, details))]
    Http { status: u16, class: String, details: String },

    /// The request never got an answer: connection refused, timeout, broken body.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),

    /// The catalog has no endpoint for the service.
    #[error("{}", fmt_no_endpoint(service_type, interface, region.as_deref()))]
    NoEndpoint { service_type: String, interface: String, region: Option<String> },

    /// The server answered 2xx with something this client cannot use.
    #[error("invalid response: {0}")]
    InvalidResponse(String),

    /// A URL (auth URL or catalog endpoint) cannot be parsed.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),

    /// A local file of an upload or download.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status of an [`Error::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Builds the error for a non-2xx answer from its status and raw body.
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        if let Ok(v) = serde_json::from_slice::<Value>(body)
            && let Some(e) = from_json_body(status, &v)
        {
            return e;
        }
        let text = String::from_utf8_lossy(body);
        Error::Http { status, class: default_class(status), details: truncate(text.trim(), 512) }
    }
}

fn from_json_body(status: u16, v: &Value) -> Option<Error> {
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let class = text(v.get("class")).filter(|s| !s.is_empty());
    let details = text(v.get("details")).filter(|s| !s.is_empty());
    if class.is_some() || details.is_some() {
        return Some(Error::Http {
            status,
            class: class.unwrap_or_else(|| default_class(status)),
            details: details.unwrap_or_default(),
        });
    }
    match v.get("error")? {
        Value::Object(o) => Some(Error::Http {
            status,
            class: text(o.get("title")).filter(|s| !s.is_empty()).unwrap_or_else(|| default_class(status)),
            details: text(o.get("message")).unwrap_or_default(),
        }),
        Value::String(s) => Some(Error::Http { status, class: default_class(status), details: s.clone() }),
        _ => None,
    }
}

/// A class name for answers that carry none: the reason phrase without spaces, e.g. `NotFound`.
fn default_class(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
    match reason {
        Some(r) => r.split_whitespace().collect(),
        None => "HttpError".to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str("...");
    out
}

fn fmt_http(status: u16, class: &str, details: &str) -> String {
    if details.is_empty() { format!("{class} ({status})") } else { format!("{class} ({status}): {details}") }
}

fn fmt_no_endpoint(service_type: &str, interface: &str, region: Option<&str>) -> String {
    match region {
        Some(r) => format!("no {interface} endpoint for service type {service_type} in region {r}"),
        None => format!("no {interface} endpoint for service type {service_type}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudpods_body() {
        let e = Error::from_response(
            404,
            br#"{"code":404,"class":"ResourceNotFoundError","details":"user alice not found"}"#,
        );
        assert_eq!(e.to_string(), "ResourceNotFoundError (404): user alice not found");
        assert!(e.is_not_found());
    }

    #[test]
    fn cloudpods_body_wins_over_openstack() {
        let e = Error::from_response(
            401,
            br#"{"code":401,"class":"InvalidCredentialError","details":"wrong password",
                 "error":{"code":401,"title":"Unauthorized","message":"The request you have made requires authentication."}}"#,
        );
        assert_eq!(e.to_string(), "InvalidCredentialError (401): wrong password");
    }

    #[test]
    fn openstack_body() {
        let e = Error::from_response(
            403,
            br#"{"error":{"code":403,"title":"Forbidden","message":"You are not authorized"}}"#,
        );
        assert_eq!(e.to_string(), "Forbidden (403): You are not authorized");
    }

    #[test]
    fn raw_body() {
        let e = Error::from_response(502, b"<html>bad gateway</html>\n");
        assert_eq!(e.to_string(), "BadGateway (502): <html>bad gateway</html>");
        let e = Error::from_response(500, b"");
        assert_eq!(e.to_string(), "InternalServerError (500)");
        let long = "x".repeat(600);
        let e = Error::from_response(500, long.as_bytes());
        assert!(e.to_string().ends_with("..."));
    }

    #[test]
    fn no_endpoint() {
        let e = Error::NoEndpoint {
            service_type: "image".into(),
            interface: "internal".into(),
            region: Some("RegionOne".into()),
        };
        assert_eq!(e.to_string(), "no internal endpoint for service type image in region RegionOne");
    }
}
