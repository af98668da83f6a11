//! Where each service lives: keystone's catalog, cached.
//!
//! The catalog is the same for every caller, so one copy serves all: it is seeded from each
//! login's token and fetched again (`GET /v3/auth/catalog` with the caller's token) when it is
//! older than [`MAX_AGE`] or lacks the service asked for (at most once per [`RETRY`]).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use apis::Error;
use serde_json::Value;

pub const MAX_AGE: Duration = Duration::from_secs(60);
pub const RETRY: Duration = Duration::from_secs(2);

pub struct Catalog {
    auth_url: String,
    region: String,
    http: reqwest::Client,
    cache: RwLock<Cached>,
}

#[derive(Default)]
struct Cached {
    urls: HashMap<String, String>,
    fetched: Option<Instant>,
}

impl Catalog {
    pub fn new(auth_url: &str, region: &str, http: reqwest::Client) -> Catalog {
        Catalog {
            auth_url: auth_url.trim_end_matches('/').to_string(),
            region: region.to_string(),
            http,
            cache: RwLock::new(Cached::default()),
        }
    }

    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    /// Replaces the cache with a catalog array from a token or `/auth/catalog`.
    pub fn seed(&self, catalog: &Value) {
        let urls = parse(catalog, &self.region);
        if urls.is_empty() {
            return;
        }
        let mut c = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.urls = urls;
        c.fetched = Some(Instant::now());
    }

    fn cached(&self, service_type: &str) -> (Option<String>, Option<Instant>) {
        let c = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (c.urls.get(service_type).cloned(), c.fetched)
    }

    /// The base URL of `service_type` (identity is keystone's own URL).
    pub async fn url(&self, service_type: &str, token: &str) -> Result<String, Error> {
        if service_type == "identity" {
            return Ok(self.auth_url.clone());
        }
        let (url, fetched) = self.cached(service_type);
        let age = fetched.map(|f| f.elapsed());
        match (&url, age) {
            (Some(u), Some(a)) if a < MAX_AGE => return Ok(u.clone()),
            (None, Some(a)) if a < RETRY => return Err(missing(service_type)),
            _ => {}
        }
        match self.refresh(token).await {
            Ok(()) => self.cached(service_type).0.ok_or_else(|| missing(service_type)),
            // keystone is down or refuses this token: a known endpoint is still the best guess,
            // and the service itself will judge the token.
            Err(e) => url.ok_or(e),
        }
    }

    async fn refresh(&self, token: &str) -> Result<(), Error> {
        let url = format!("{}/auth/catalog", self.auth_url);
        let resp = self.http.get(&url).header("X-Auth-Token", token).send().await.map_err(|e| {
            Error::Unavailable(format!("identity service at {} is unreachable: {}", self.auth_url, root_cause(&e)))
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(crate::proxy::error_from(status.as_u16(), &body, "identity"));
        }
        self.seed(body.get("catalog").unwrap_or(&Value::Null));
        let mut c = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.fetched = Some(Instant::now());
        Ok(())
    }
}

fn missing(service_type: &str) -> Error {
    Error::Unavailable(format!("no {service_type} service is registered in the catalog"))
}

/// The innermost error message of a reqwest error (the one that says what happened).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Service type -> URL, preferring the internal interface, in `region` when it has one.
fn parse(catalog: &Value, region: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, (u8, String)> = HashMap::new();
    for s in catalog.as_array().into_iter().flatten() {
        let Some(ty) = s.get("type").and_then(Value::as_str) else { continue };
        for e in s.get("endpoints").and_then(Value::as_array).into_iter().flatten() {
            let Some(url) = e.get("url").and_then(Value::as_str) else { continue };
            if e.get("enabled").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let r = e.get("region_id").or_else(|| e.get("region")).and_then(Value::as_str).unwrap_or_default();
            let rank = match (r == region || region.is_empty(), e.get("interface").and_then(Value::as_str)) {
                (true, Some("internal")) => 0,
                (true, _) => 1,
                (false, Some("internal")) => 2,
                (false, _) => 3,
            };
            let better = out.get(ty).is_none_or(|(best, _)| rank < *best);
            if better {
                out.insert(ty.to_string(), (rank, url.trim_end_matches('/').to_string()));
            }
        }
    }
    out.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefers_internal_in_region() {
        let cat = json!([
            {"type": "compute_v2", "endpoints": [
                {"interface": "public", "region_id": "r0", "url": "http://pub/"},
                {"interface": "internal", "region_id": "r1", "url": "http://other"},
                {"interface": "internal", "region_id": "r0", "url": "http://int"}
            ]},
            {"type": "image", "endpoints": [{"interface": "public", "region": "r0", "url": "http://g/v1"}]}
        ]);
        let m = parse(&cat, "r0");
        assert_eq!(m["compute_v2"], "http://int");
        assert_eq!(m["image"], "http://g/v1");
    }
}
