//! A logged-in session: a token, the catalog it carries, and where to send requests.
//!
//! ```text
//!  Session ──clone──> Session (same token, other region/interface)
//!     │
//!     └── Arc<Shared> { client, auth params, current token }
//!                                    │
//!          request() ── fresh_token() ┘  re-login when the token expires within 5 minutes
//!                                        (password logins only; serialised by a mutex)
//! ```
//!
//! Clones share the token, so one renewal serves them all. `with_region` and
//! `with_interface` only change how the catalog is read.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::auth::AuthParams;
use crate::client::{Client, HttpRequest};
use crate::error::{Error, Result};
use crate::manager::ApiRequest;
use crate::token::{Interface, Token};

/// Renew the token when it expires within this margin.
pub const RENEW_MARGIN: Duration = Duration::from_secs(300);

/// A logged-in session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Session {
    shared: Arc<Shared>,
    region: Option<String>,
    interface: Interface,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    auth: Option<AuthParams>,
    token: RwLock<Arc<Token>>,
    renewing: tokio::sync::Mutex<()>,
}

impl Session {
    /// A session around an issued token. With `auth`, the session logs in again before the
    /// token expires (password logins only).
    pub fn new(client: Client, token: Token, auth: Option<AuthParams>) -> Self {
        Session {
            shared: Arc::new(Shared {
                client,
                auth,
                token: RwLock::new(Arc::new(token)),
                renewing: tokio::sync::Mutex::new(()),
            }),
            region: None,
            interface: Interface::Internal,
        }
    }

    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The current token (it may be replaced by a renewal later).
    pub fn token(&self) -> Arc<Token> {
        self.shared.token.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The current token id, for `X-Auth-Token`.
    pub fn token_id(&self) -> String {
        self.token().id().to_string()
    }

    pub fn user_id(&self) -> Option<String> {
        self.token().user_id().map(str::to_string)
    }

    pub fn user_name(&self) -> Option<String> {
        self.token().user_name().map(str::to_string)
    }

    pub fn project_id(&self) -> Option<String> {
        self.token().project_id().map(str::to_string)
    }

    pub fn project_name(&self) -> Option<String> {
        self.token().project_name().map(str::to_string)
    }

    /// The domain the token is scoped to (the project's domain for a project token).
    pub fn domain_id(&self) -> Option<String> {
        self.token().domain_id().map(str::to_string)
    }

    pub fn roles(&self) -> Vec<String> {
        self.token().roles().into_iter().map(str::to_string).collect()
    }

    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.token().expires_at()
    }

    /// The region used for catalog lookups; `None` takes the first matching endpoint.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The interface used by [`Session::service_url`] (internal by default).
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The same session, reading the catalog of `region` only.
    pub fn with_region(&self, region: impl Into<String>) -> Session {
        let region = region.into();
        Session { region: (!region.is_empty()).then_some(region), ..self.clone() }
    }

    /// The same session, using `interface` (`internal`, `publicURL`, ...) by default.
    pub fn with_interface(&self, interface: impl Into<Interface>) -> Session {
        Session { interface: interface.into(), ..self.clone() }
    }

    /// The catalog URL of `service_type` for `interface` in the session's region.
    pub fn endpoint(&self, service_type: &str, interface: impl Into<Interface>) -> Result<String> {
        let interface = interface.into();
        let token = self.token();
        token.endpoint(service_type, &interface, self.region()).map(str::to_string).ok_or_else(|| Error::NoEndpoint {
            service_type: service_type.to_string(),
            interface: interface.to_string(),
            region: self.region.clone(),
        })
    }

    /// The base URL of a service with the session's interface. For `identity`, falls back
    /// to the auth URL when the catalog has no entry (unscoped tokens carry no catalog).
    pub fn service_url(&self, service_type: &str) -> Result<String> {
        match self.endpoint(service_type, &self.interface) {
            Err(Error::NoEndpoint { .. }) if service_type == "identity" => Ok(self.client().auth_url().to_string()),
            other => other,
        }
    }

    /// The current token, renewed first if it expires within [`RENEW_MARGIN`] and the
    /// session knows how to log in again.
    pub async fn fresh_token(&self) -> Result<Arc<Token>> {
        let current = self.token();
        let Some(auth) = self.shared.auth.as_ref().filter(|a| a.can_renew()) else { return Ok(current) };
        if !current.expires_within(RENEW_MARGIN) {
            return Ok(current);
        }
        let _guard = self.shared.renewing.lock().await;
        let current = self.token();
        if !current.expires_within(RENEW_MARGIN) {
            return Ok(current); // renewed by another task while we waited
        }
        let renewed = Arc::new(self.client().issue_token(auth).await?);
        *self.shared.token.write().unwrap_or_else(PoisonError::into_inner) = renewed.clone();
        tracing::debug!(user = renewed.user_name(), "token renewed");
        Ok(renewed)
    }

    /// Sends `req` to `service_type` (appending `/<version>` to the base URL unless it
    /// already ends with it) and returns the JSON answer (`Null` when empty).
    pub async fn request(&self, service_type: &str, version: Option<&str>, req: &ApiRequest) -> Result<Value> {
        let base = self.service_url(service_type)?;
        let url = join_url(&base, version, &req.path);
        let token = self.fresh_token().await?;
        let resp = self
            .client()
            .send(HttpRequest {
                method: req.method,
                url: &url,
                token: Some(token.id()),
                subject_token: None,
                query: &req.query,
                body: req.body.as_ref(),
            })
            .await?;
        Ok(resp.body)
    }
}

impl Session {
    /// Sends `method` to `path` of `service_type` with extra headers and an optional
    /// streaming body, and returns the answer unread (for uploads and downloads).
    #[allow(clippy::too_many_arguments)]
    pub async fn request_raw(
        &self,
        service_type: &str,
        version: Option<&str>,
        method: crate::Method,
        path: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<reqwest::Response> {
        let base = self.service_url(service_type)?;
        let url = join_url(&base, version, path);
        let token = self.fresh_token().await?;
        self.client()
            .send_raw(crate::client::RawRequest { method, url: &url, token: token.id(), query, headers, body, timeout })
            .await
    }
}

/// `base` + `/version` (unless already there) + `/path`.
pub(crate) fn join_url(base: &str, version: Option<&str>, path: &str) -> String {
    let mut url = base.trim_end_matches('/').to_string();
    if let Some(v) = version.filter(|v| !v.is_empty())
        && !url.ends_with(&format!("/{v}"))
    {
        url.push('/');
        url.push_str(v);
    }
    let path = path.trim_start_matches('/');
    if !path.is_empty() {
        url.push('/');
        url.push_str(path);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        assert_eq!(join_url("http://k:30500/v3/", Some("v3"), "users"), "http://k:30500/v3/users");
        assert_eq!(join_url("http://k:30500", Some("v3"), "users"), "http://k:30500/v3/users");
        assert_eq!(join_url("http://g:30292/v1", Some("v1"), ""), "http://g:30292/v1");
        assert_eq!(join_url("http://l:30999", None, "/actions"), "http://l:30999/actions");
    }

    fn session() -> Session {
        let token = Token::new(
            "t",
            json!({"catalog": [{"type": "log", "endpoints": [
                {"interface": "internal", "region_id": "R1", "url": "http://log1"},
                {"interface": "public", "region_id": "R1", "url": "http://log1-pub"},
                {"interface": "internal", "region_id": "R2", "url": "http://log2"}]}]}),
        );
        Session::new(Client::new("http://k:30500/v3", Duration::from_secs(5), false), token, None)
    }

    #[test]
    fn endpoint_selection() {
        let s = session();
        assert_eq!(s.service_url("log").ok().as_deref(), Some("http://log1"));
        assert_eq!(s.with_region("R2").service_url("log").ok().as_deref(), Some("http://log2"));
        assert_eq!(s.with_interface("publicURL").service_url("log").ok().as_deref(), Some("http://log1-pub"));
        assert_eq!(s.service_url("identity").ok().as_deref(), Some("http://k:30500/v3"));
        let err = s.with_region("R2").with_interface("admin").service_url("log");
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("no admin endpoint for service type log in region R2".to_string())
        );
    }
}
