//! The browser session: an encrypted cookie, and CSRF protection for cookie-authenticated writes.
//!
//! ```text
//!  cloudpods_session = base64url( nonce[24] || XChaCha20-Poly1305(key, nonce,
//!                         {"t": token, "e": expiry (unix s), "c": csrf, "u": user}, aad) )
//!                      HttpOnly; SameSite=Strict; Path=/; Max-Age = token lifetime
//!  cloudpods_csrf    = the same csrf value, readable by the dashboard's JavaScript
//!                      (not HttpOnly); sent back as `X-CSRF-Token` on every write
//! ```
//! A write (any method but GET, HEAD, OPTIONS) that authenticates with the cookie must carry
//! `X-CSRF-Token` equal to the value sealed inside the session; a page on another origin can
//! neither read the csrf cookie nor forge the sealed value. A token sent as `X-Auth-Token` or
//! `Authorization: Bearer` needs no CSRF check: browsers never add those by themselves.

use std::path::Path;

use apis::Error;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub const SESSION_COOKIE: &str = "cloudpods_session";
pub const CSRF_COOKIE: &str = "cloudpods_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
const AAD: &[u8] = b"cloudpods-rs apigateway session v1";

/// What a session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    /// The keystone token.
    #[serde(rename = "t")]
    pub token: String,
    /// When the token expires, unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
    /// The session's CSRF value.
    #[serde(rename = "c")]
    pub csrf: String,
    /// The user's name, for logs.
    #[serde(rename = "u")]
    pub user: String,
}

impl SessionData {
    pub fn new(token: String, expires: i64, user: String) -> Self {
        SessionData { token, expires, csrf: random_hex(16), user }
    }
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Seals and opens session cookies.
pub struct Codec {
    cipher: XChaCha20Poly1305,
}

impl Codec {
    pub fn new(key: &[u8; 32]) -> Codec {
        Codec { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    pub fn seal(&self, data: &SessionData) -> Result<String, Error> {
        let plain = serde_json::to_vec(data).map_err(|e| Error::Internal(e.to_string()))?;
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: AAD })
            .map_err(|_| Error::Internal("cannot seal the session".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a cookie value; anything tampered with, truncated or sealed with another key is
    /// an invalid session.
    pub fn open(&self, value: &str) -> Result<SessionData, Error> {
        let invalid = || Error::Unauthorized("the session is invalid; log in again".into());
        let raw = URL_SAFE_NO_PAD.decode(value.trim()).map_err(|_| invalid())?;
        if raw.len() < 24 + 16 {
            return Err(invalid());
        }
        let (nonce, sealed) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| invalid())?;
        let plain =
            self.cipher.decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: AAD }).map_err(|_| invalid())?;
        serde_json::from_slice(&plain).map_err(|_| invalid())
    }
}

/// The configured key (64 hex characters), or one generated once under `data_dir`.
pub fn load_or_create_key(configured: &str, data_dir: &Path) -> Result<[u8; 32], Error> {
    let parse = |s: &str, what: &str| -> Result<[u8; 32], Error> {
        let v = hex::decode(s.trim()).map_err(|_| Error::invalid(what, "is not hex"))?;
        v.try_into().map_err(|_| Error::invalid(what, "must be 32 bytes (64 hex characters)"))
    };
    if !configured.is_empty() {
        return parse(configured, "session_key");
    }
    let path = data_dir.join("apigateway-session.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return parse(&text, &path.display().to_string());
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::Internal(format!("{}: {e}", data_dir.display())))?;
    let key = random_hex(32);
    write_private(&path, &key).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    parse(&key, "session_key")
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` values for a new session.
pub fn set_cookies(value: &str, data: &SessionData, secure: bool) -> Vec<HeaderValue> {
    let max_age = (data.expires - now_unix()).max(0);
    let secure = if secure { "; Secure" } else { "" };
    [
        format!("{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"),
        format!("{CSRF_COOKIE}={}; Path=/; Max-Age={max_age}; SameSite=Strict{secure}", data.csrf),
    ]
    .into_iter()
    .filter_map(|c| HeaderValue::from_str(&c).ok())
    .collect()
}

/// `Set-Cookie` values that remove the session.
pub fn clear_cookies() -> Vec<HeaderValue> {
    [
        format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
        format!("{CSRF_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict"),
    ]
    .into_iter()
    .filter_map(|c| HeaderValue::from_str(&c).ok())
    .collect()
}

/// How a request proved who it is.
#[derive(Debug, Clone)]
pub enum Caller {
    /// `X-Auth-Token` or `Authorization: Bearer`.
    Bearer(String),
    /// The session cookie (CSRF already checked for writes).
    Session(SessionData),
}

impl Caller {
    pub fn token(&self) -> &str {
        match self {
            Caller::Bearer(t) => t,
            Caller::Session(s) => &s.token,
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates a request: a bearer token as is, or the session cookie, which must be
/// intact and unexpired and, for writes, come with the session's CSRF value.
pub fn authenticate(codec: &Codec, headers: &HeaderMap, method: &Method) -> Result<Caller, Error> {
    if let Some(t) = cloudcommon::service::request_token(headers).filter(|t| !t.is_empty()) {
        return Ok(Caller::Bearer(t.to_string()));
    }
    let value = cookie(headers, SESSION_COOKIE)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Unauthorized("not logged in: no session cookie or X-Auth-Token".into()))?;
    let data = codec.open(value)?;
    if data.expires <= now_unix() {
        return Err(Error::Unauthorized("the session has expired; log in again".into()));
    }
    if !is_safe(method) {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if sent.is_empty() {
            return Err(Error::Forbidden("missing X-CSRF-Token header on a write with a session cookie".into()));
        }
        if !constant_time_eq(sent.as_bytes(), data.csrf.as_bytes()) {
            return Err(Error::Forbidden("X-CSRF-Token does not match the session".into()));
        }
    }
    Ok(Caller::Session(data))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> Codec {
        Codec::new(&[7u8; 32])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let c = codec();
        let d = SessionData::new("tok".into(), now_unix() + 60, "alice".into());
        let v = c.seal(&d).unwrap();
        assert_eq!(c.open(&v).unwrap(), d);
        assert_ne!(c.seal(&d).unwrap(), v, "a fresh nonce each time");
        let mut raw = URL_SAFE_NO_PAD.decode(&v).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(c.open(&URL_SAFE_NO_PAD.encode(&raw)).is_err());
        assert!(Codec::new(&[8u8; 32]).open(&v).is_err(), "another key");
        assert!(c.open("garbage").is_err());
        assert!(c.open("").is_err());
    }

    #[test]
    fn csrf_rules() {
        let c = codec();
        let d = SessionData::new("tok".into(), now_unix() + 60, "alice".into());
        let cookie = format!("a=b; {SESSION_COOKIE}={}", c.seal(&d).unwrap());
        let get = headers(&[("cookie", &cookie)]);
        assert!(matches!(authenticate(&c, &get, &Method::GET), Ok(Caller::Session(_))));
        let e = authenticate(&c, &get, &Method::POST).unwrap_err();
        assert_eq!(e.status_code(), 403);
        let forged = headers(&[("cookie", &cookie), (CSRF_HEADER, "0123")]);
        assert_eq!(authenticate(&c, &forged, &Method::DELETE).unwrap_err().status_code(), 403);
        let good = headers(&[("cookie", &cookie), (CSRF_HEADER, &d.csrf)]);
        assert_eq!(authenticate(&c, &good, &Method::POST).unwrap().token(), "tok");
        let bearer = headers(&[("authorization", "Bearer xyz")]);
        assert_eq!(authenticate(&c, &bearer, &Method::POST).unwrap().token(), "xyz");
        assert_eq!(authenticate(&c, &headers(&[]), &Method::GET).unwrap_err().status_code(), 401);
    }

    #[test]
    fn expired_session_is_refused() {
        let c = codec();
        let d = SessionData::new("tok".into(), now_unix() - 1, "alice".into());
        let cookie = format!("{SESSION_COOKIE}={}", c.seal(&d).unwrap());
        let e = authenticate(&c, &headers(&[("cookie", &cookie)]), &Method::GET).unwrap_err();
        assert_eq!(e.status_code(), 401);
        assert!(e.to_string().contains("expired"));
    }

    #[test]
    fn key_is_generated_once() {
        let dir = std::env::temp_dir().join(format!("apigw-key-{}", random_hex(4)));
        let a = load_or_create_key("", &dir).unwrap();
        let b = load_or_create_key("", &dir).unwrap();
        assert_eq!(a, b);
        assert!(load_or_create_key("abcd", &dir).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
