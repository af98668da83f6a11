//! Authentication of incoming requests.
//!
//! Every request carries `X-Auth-Token` (or `Authorization: Bearer`). A [`TokenVerifier`]
//! turns it into a [`UserCred`]: keystone verifies its own tokens directly; every other
//! service asks keystone over HTTP ([`RemoteVerifier`]), caches the answer for the token's
//! life, and polls keystone's revocation list so a revoked token stops working within a
//! few seconds.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apis::Error;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::policy::PolicySet;

/// The scope a request is allowed in, or asks for with `scope=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    User,
    Project,
    Domain,
    System,
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "system" | "max" => Scope::System,
            "domain" => Scope::Domain,
            "project" => Scope::Project,
            "user" => Scope::User,
            _ => {
                return Err(Error::invalid("scope", format!("{s:?} is not one of system, domain, project, user")));
            }
        })
    }
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Domain => "domain",
            Scope::Project => "project",
            Scope::User => "user",
        }
    }
}

/// Who is calling: the verified identity behind a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserCred {
    pub user_id: String,
    pub user: String,
    pub domain_id: String,
    pub domain: String,
    pub project_id: String,
    pub project: String,
    pub project_domain_id: String,
    pub project_domain: String,
    pub roles: Vec<String>,
    pub role_ids: Vec<String>,
    pub expires_at: String,
    pub system_scoped: bool,
    pub policies: PolicySet,
    /// SHA-256 of the token, the key under which it is cached and revoked.
    pub token_hash: String,
}

impl UserCred {
    /// Builds the credential from a keystone v3 token body (`{"token": {...}}` or the inner object).
    pub fn from_token_body(body: &Value, policies: PolicySet, token_hash: String) -> Result<UserCred, Error> {
        let t = body.get("token").unwrap_or(body);
        let s = |v: &Value, path: &[&str]| -> String {
            let mut cur = v;
            for p in path {
                cur = match cur.get(p) {
                    Some(c) => c,
                    None => return String::new(),
                };
            }
            cur.as_str().unwrap_or_default().to_string()
        };
        let user_id = s(t, &["user", "id"]);
        if user_id.is_empty() {
            return Err(Error::Unauthorized("token has no user".into()));
        }
        let roles = t.get("roles").and_then(Value::as_array).cloned().unwrap_or_default();
        let (project_domain_id, project_domain) = if t.get("project").is_some() {
            (s(t, &["project", "domain", "id"]), s(t, &["project", "domain", "name"]))
        } else {
            (s(t, &["domain", "id"]), s(t, &["domain", "name"]))
        };
        Ok(UserCred {
            user: s(t, &["user", "name"]),
            domain_id: s(t, &["user", "domain", "id"]),
            domain: s(t, &["user", "domain", "name"]),
            project_id: s(t, &["project", "id"]),
            project: s(t, &["project", "name"]),
            project_domain_id,
            project_domain,
            roles: roles.iter().map(|r| s(r, &["name"])).collect(),
            role_ids: roles.iter().map(|r| s(r, &["id"])).collect(),
            expires_at: s(t, &["expires_at"]),
            system_scoped: t.get("system").is_some(),
            policies,
            token_hash,
            user_id,
        })
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r == name)
    }
}

/// SHA-256 of a token, hex. Tokens are only ever stored and logged in this form.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Turns a token into the caller's identity.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    async fn verify(&self, token: &str) -> Result<Arc<UserCred>, Error>;
}

/// A cached credential and when it stops being valid.
type CacheEntry = (Arc<UserCred>, chrono::DateTime<chrono::Utc>);

/// Verified credentials, cached for the token's life.
#[derive(Default)]
pub struct CredCache {
    entries: RwLock<HashMap<String, CacheEntry>>,
}

const CACHE_MAX: usize = 65536;

impl CredCache {
    pub fn get(&self, hash: &str) -> Option<Arc<UserCred>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (cred, exp) = entries.get(hash)?;
        (chrono::Utc::now() < *exp).then(|| cred.clone())
    }

    pub fn put(&self, cred: Arc<UserCred>) {
        let exp = crate::db::parse_time(&cred.expires_at).unwrap_or_else(chrono::Utc::now);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            let now = chrono::Utc::now();
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(cred.token_hash.clone(), (cred, exp));
    }

    pub fn remove(&self, hash: &str) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(hash);
    }
}

/// Provides the service's own token, the caller of token validation.
#[async_trait]
pub trait ServiceToken: Send + Sync {
    async fn token(&self) -> Result<String, Error>;
}

/// Verifies tokens by asking keystone (`GET /v3/auth/tokens` and `GET /v3/auth/policies`).
pub struct RemoteVerifier {
    http: reqwest::Client,
    /// keystone's v3 URL.
    auth_url: String,
    service: Arc<dyn ServiceToken>,
    cache: CredCache,
}

impl RemoteVerifier {
    pub fn new(auth_url: &str, service: Arc<dyn ServiceToken>) -> Arc<RemoteVerifier> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Arc::new(RemoteVerifier {
            http,
            auth_url: auth_url.trim_end_matches('/').to_string(),
            service,
            cache: CredCache::default(),
        })
    }

    async fn get_json(&self, path: &str, headers: &[(&str, &str)]) -> Result<Value, Error> {
        let mut req = self.http.get(format!("{}{path}", self.auth_url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.map_err(|e| Error::Unavailable(format!("keystone unreachable: {e}")))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            let details = body.get("details").and_then(Value::as_str).unwrap_or("keystone refused").to_string();
            return Err(match status {
                401 | 404 => Error::Unauthorized("invalid or expired token".into()),
                _ => Error::Unavailable(format!("keystone: {details}")),
            });
        }
        Ok(body)
    }

    /// Polls keystone's revocation list and evicts revoked tokens, while `self` lives.
    pub fn spawn_revocation_poller(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut since = crate::db::now();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { return };
                let started = crate::db::now();
                match this.revoked_since(&since).await {
                    Ok(hashes) => {
                        for h in hashes {
                            this.cache.remove(&h);
                        }
                        since = started;
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot fetch revoked tokens"),
                }
            }
        })
    }

    async fn revoked_since(&self, since: &str) -> Result<Vec<String>, Error> {
        let admin = self.service.token().await?;
        let path = format!("/auth/tokens/invalid?since={since}");
        let body = self.get_json(&path, &[("x-auth-token", &admin)]).await?;
        Ok(body
            .get("tokens")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl TokenVerifier for RemoteVerifier {
    async fn verify(&self, token: &str) -> Result<Arc<UserCred>, Error> {
        let hash = token_hash(token);
        if let Some(c) = self.cache.get(&hash) {
            return Ok(c);
        }
        let admin = self.service.token().await?;
        let verify_headers = [("x-auth-token", admin.as_str()), ("x-subject-token", token)];
        let policy_headers = [("x-auth-token", token)];
        let (body, policies) = tokio::join!(
            self.get_json("/auth/tokens", &verify_headers),
            self.get_json("/auth/policies", &policy_headers)
        );
        let policies: PolicySet = serde_json::from_value(policies?.get("policies").cloned().unwrap_or_default())
            .map_err(|e| Error::Internal(format!("bad policies from keystone: {e}")))?;
        let cred = Arc::new(UserCred::from_token_body(&body?, policies, hash)?);
        self.cache.put(cred.clone());
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cred_from_token_body() {
        let body = json!({"token": {
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "user": {"id": "u1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": "r1", "name": "member"}]
        }});
        let c = UserCred::from_token_body(&body, PolicySet::default(), "h".into()).unwrap();
        assert_eq!((c.user.as_str(), c.project.as_str(), c.project_domain_id.as_str()), ("alice", "demo", "default"));
        assert!(c.has_role("member"));
        let cache = CredCache::default();
        cache.put(Arc::new(c));
        assert!(cache.get("h").is_some());
        cache.remove("h");
        assert!(cache.get("h").is_none());
        assert!(UserCred::from_token_body(&json!({}), PolicySet::default(), "x".into()).is_err());
    }
}
