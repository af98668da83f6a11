//! The HTTP client and keystone's token endpoints.
//!
//! [`Client`] owns the connection pool, the timeout and the debug switch. Every request goes
//! through [`Client::send`], which adds `X-Auth-Token`, turns error answers into
//! [`Error::Http`] and, with debug on, prints one line per request to stderr. Tokens and
//! passwords never reach that line: headers are not printed and request bodies are redacted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{Map, Value};

use crate::auth::AuthParams;
use crate::error::{Error, Result};
use crate::manager::Method;
use crate::session::Session;
use crate::token::Token;

/// A keystone-aware HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth_url: String,
    debug: bool,
}

/// One HTTP request, fully resolved to a URL.
pub(crate) struct HttpRequest<'a> {
    pub method: Method,
    pub url: &'a str,
    pub token: Option<&'a str>,
    pub subject_token: Option<&'a str>,
    pub query: &'a [(String, String)],
    pub body: Option<&'a Value>,
}

/// A 2xx answer.
pub(crate) struct HttpResponse {
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("auth_url", &self.inner.auth_url).field("debug", &self.inner.debug).finish()
    }
}

impl Client {
    /// A client for the keystone at `auth_url` (e.g. `http://127.0.0.1:30500/v3`).
    /// `timeout` bounds every request; `debug` prints each request line to stderr.
    pub fn new(auth_url: impl Into<String>, timeout: Duration, debug: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .build()
            // Building only fails when a TLS backend cannot start; this client has none.
            .unwrap_or_default();
        let auth_url = auth_url.into().trim_end_matches('/').to_string();
        Client { inner: Arc::new(Inner { http, auth_url, debug }) }
    }

    /// keystone's URL as given to [`Client::new`], without a trailing `/`.
    pub fn auth_url(&self) -> &str {
        &self.inner.auth_url
    }

    pub fn debug(&self) -> bool {
        self.inner.debug
    }

    /// Logs in (`POST /auth/tokens`) and returns a session that renews itself when it can.
    pub async fn authenticate(&self, params: &AuthParams) -> Result<Session> {
        let token = self.issue_token(params).await?;
        Ok(Session::new(self.clone(), token, Some(params.clone())))
    }

    /// Logs in and returns the bare token.
    pub async fn issue_token(&self, params: &AuthParams) -> Result<Token> {
        let url = format!("{}/auth/tokens", self.auth_url());
        let body = params.to_request_body();
        let resp = self
            .send(HttpRequest {
                method: Method::Post,
                url: &url,
                token: None,
                subject_token: None,
                query: &[],
                body: Some(&body),
            })
            .await?;
        let id = resp
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::InvalidResponse("keystone answered without an X-Subject-Token header".into()))?;
        let token = resp
            .body
            .get("token")
            .filter(|t| t.is_object())
            .cloned()
            .ok_or_else(|| Error::InvalidResponse("keystone answered without a token object".into()))?;
        Ok(Token::new(id, token))
    }

    /// Validates `subject_token` with `admin_token` as the caller (`GET /auth/tokens`) and
    /// returns the `token` object. An invalid token is an [`Error::Http`] 404 or 401.
    pub async fn verify_token(&self, admin_token: &str, subject_token: &str) -> Result<Value> {
        let url = format!("{}/auth/tokens", self.auth_url());
        let resp = self
            .send(HttpRequest {
                method: Method::Get,
                url: &url,
                token: Some(admin_token),
                subject_token: Some(subject_token),
                query: &[],
                body: None,
            })
            .await?;
        match resp.body {
            Value::Object(mut o) => match o.remove("token") {
                Some(t @ Value::Object(_)) => Ok(t),
                _ => Err(Error::InvalidResponse("keystone answered without a token object".into())),
            },
            _ => Err(Error::InvalidResponse("keystone answered without a token object".into())),
        }
    }

    /// Revokes `subject_token` (`DELETE /auth/tokens`).
    pub async fn revoke_token(&self, admin_token: &str, subject_token: &str) -> Result<()> {
        let url = format!("{}/auth/tokens", self.auth_url());
        self.send(HttpRequest {
            method: Method::Delete,
            url: &url,
            token: Some(admin_token),
            subject_token: Some(subject_token),
            query: &[],
            body: None,
        })
        .await?;
        Ok(())
    }

    /// Ids (or hashes) of tokens revoked since `since` (`GET /auth/tokens/invalid?since=`).
    /// Accepts a bare array or an object holding one, of strings or of objects with `id`.
    pub async fn revoked_tokens(&self, admin_token: &str, since: &str) -> Result<Vec<String>> {
        let url = format!("{}/auth/tokens/invalid", self.auth_url());
        let query = if since.is_empty() { vec![] } else { vec![("since".to_string(), since.to_string())] };
        let resp = self
            .send(HttpRequest {
                method: Method::Get,
                url: &url,
                token: Some(admin_token),
                subject_token: None,
                query: &query,
                body: None,
            })
            .await?;
        Ok(parse_token_list(&resp.body))
    }

    /// The policies matched by `token` (`GET /auth/policies`), as keystone returns them.
    pub async fn token_policies(&self, token: &str) -> Result<Value> {
        let url = format!("{}/auth/policies", self.auth_url());
        let resp = self
            .send(HttpRequest {
                method: Method::Get,
                url: &url,
                token: Some(token),
                subject_token: None,
                query: &[],
                body: None,
            })
            .await?;
        Ok(resp.body)
    }

    /// Sends one request. Non-2xx answers become [`Error::Http`]; an empty body is `Null`,
    /// a body that is not JSON is a JSON string.
    pub(crate) async fn send(&self, req: HttpRequest<'_>) -> Result<HttpResponse> {
        let mut url = Url::parse(req.url).map_err(|_| Error::InvalidUrl(req.url.to_string()))?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let shown = if self.debug() { Some(redact_url(&url)) } else { None };
        let mut builder = self.inner.http.request(req.method.to_reqwest(), url);
        if let Some(t) = req.token {
            builder = builder.header("X-Auth-Token", t);
        }
        if let Some(t) = req.subject_token {
            builder = builder.header("X-Subject-Token", t);
        }
        if let Some(b) = req.body {
            builder = builder.json(b);
        }
        if let (Some(shown), Some(body)) = (&shown, req.body) {
            eprintln!("DEBUG {} {shown} body: {}", req.method, redact(body));
        }
        let started = Instant::now();
        let result = builder.send().await;
        let elapsed = started.elapsed().as_millis();
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(shown) = &shown {
                    eprintln!("DEBUG {} {shown} -> failed ({elapsed} ms)", req.method);
                }
                tracing::debug!(method = %req.method, url = req.url, error = %e, "request failed");
                return Err(Error::Transport(e));
            }
        };
        let status = resp.status();
        if let Some(shown) = &shown {
            eprintln!("DEBUG {} {shown} -> {status} ({elapsed} ms)", req.method);
        }
        tracing::debug!(method = %req.method, url = req.url, status = status.as_u16(), elapsed_ms = elapsed as u64);
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            return Err(Error::from_response(status.as_u16(), &bytes));
        }
        Ok(HttpResponse { headers, body: parse_body(&bytes) })
    }
}

/// A request whose body streams (an image upload) or whose answer streams (a download).
pub(crate) struct RawRequest<'a> {
    pub method: Method,
    pub url: &'a str,
    pub token: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: Option<reqwest::Body>,
    /// Replaces the client's timeout for this request (transfers take longer).
    pub timeout: Duration,
}

impl Client {
    /// Sends a raw request; a non-2xx answer becomes [`Error::Http`], a 2xx one is returned
    /// unread so its body can stream.
    pub(crate) async fn send_raw(&self, req: RawRequest<'_>) -> Result<reqwest::Response> {
        let mut url = Url::parse(req.url).map_err(|_| Error::InvalidUrl(req.url.to_string()))?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        if self.debug() {
            eprintln!("DEBUG {} {} (streamed)", req.method, redact_url(&url));
        }
        let mut builder = self.inner.http.request(req.method.to_reqwest(), url).timeout(req.timeout);
        builder = builder.header("X-Auth-Token", req.token);
        for (k, v) in req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(b) = req.body {
            builder = builder.body(b);
        }
        let resp = builder.send().await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await?;
            return Err(Error::from_response(status.as_u16(), &bytes));
        }
        Ok(resp)
    }
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn parse_token_list(body: &Value) -> Vec<String> {
    let list = match body {
        Value::Array(a) => Some(a),
        Value::Object(o) => o.values().find_map(Value::as_array),
        _ => None,
    };
    let item = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => {
                ["id", "token_hash", "token"].iter().find_map(|k| o.get(*k).and_then(Value::as_str)).map(str::to_string)
            }
            _ => None,
        }
    };
    list.map(|a| a.iter().filter_map(item).collect()).unwrap_or_default()
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "private_key"].iter().any(|s| k.contains(s))
}

/// A copy of `v` with the values of secret-looking keys replaced by `"***"`.
pub(crate) fn redact(v: &Value) -> Value {
    let stars = || Value::String("***".into());
    match v {
        Value::Object(o) => {
            let mut out = Map::with_capacity(o.len());
            for (k, val) in o {
                let shown = match val {
                    // `"token": {"id": ..}` in an auth body: keep the shape, hide the id.
                    Value::Object(inner) if k.eq_ignore_ascii_case("token") => Value::Object(
                        inner
                            .iter()
                            .map(|(ik, iv)| (ik.clone(), if ik == "id" { stars() } else { redact(iv) }))
                            .collect(),
                    ),
                    Value::Object(_) | Value::Array(_) => redact(val),
                    _ if is_secret_key(k) => stars(),
                    _ => val.clone(),
                };
                out.insert(k.clone(), shown);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn redact_url(url: &Url) -> String {
    if url.query().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if is_secret_key(&k) { "***".to_string() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_auth_bodies() {
        let body = AuthParams::password("alice", "Default", "hunter2").to_request_body();
        let shown = redact(&body).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
        let body = AuthParams::token("tok-secret").to_request_body();
        let shown = redact(&body).to_string();
        assert!(!shown.contains("tok-secret"), "{shown}");
        let body = json!({"user": {"name": "bob", "password": "p", "access_key_secret": "s"}});
        assert_eq!(redact(&body), json!({"user": {"name": "bob", "password": "***", "access_key_secret": "***"}}));
    }

    #[test]
    fn redacts_query() {
        let url = Url::parse("http://h/v3/users?name=a&password=b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(redact_url(&url), "http://h/v3/users?name=a&password=***");
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b""), Value::Null);
        assert_eq!(parse_body(b"{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_body(b"v1.0"), json!("v1.0"));
    }

    #[test]
    fn token_lists() {
        assert_eq!(parse_token_list(&json!(["a", "b"])), vec!["a", "b"]);
        assert_eq!(parse_token_list(&json!({"tokens": [{"id": "a"}, {"token_hash": "b"}]})), vec!["a", "b"]);
        assert!(parse_token_list(&json!({"total": 0})).is_empty());
    }
}
