//! What to log in with: the identity method and the scope of the token asked for.
//!
//! The request body is keystone v3's `POST /v3/auth/tokens`:
//! `{"auth":{"identity":{"methods":[..],..},"scope":{..},"context":{"source":"cli"}}}`.

use std::fmt;

use serde_json::{Map, Value, json};

/// How the caller proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A user name, the name of the user's domain, and the password.
    Password { user: String, domain: String, password: String },
    /// An existing token, re-scoped by keystone.
    Token { id: String },
}

/// What the token is asked to be valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// No scope: the token only proves the identity (no catalog).
    #[default]
    Unscoped,
    /// A project by name, with the name of the project's domain.
    Project { name: String, domain: String },
    /// A project by id.
    ProjectId(String),
    /// A domain by name.
    Domain { name: String },
    /// The whole system.
    System,
}

/// Everything needed to log in, and to log in again when the token nears its expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthParams {
    pub method: AuthMethod,
    pub scope: Scope,
    /// Who is logging in, as keystone records it: `cli`, `srv`, `api`, `web`.
    pub source: String,
}

impl AuthParams {
    /// Password login of `user` in domain `domain` (usually `Default`), unscoped until a scope is set.
    pub fn password(user: impl Into<String>, domain: impl Into<String>, password: impl Into<String>) -> Self {
        AuthParams {
            method: AuthMethod::Password { user: user.into(), domain: domain.into(), password: password.into() },
            scope: Scope::Unscoped,
            source: "cli".to_string(),
        }
    }

    /// Login with an existing token.
    pub fn token(id: impl Into<String>) -> Self {
        AuthParams { method: AuthMethod::Token { id: id.into() }, scope: Scope::Unscoped, source: "cli".to_string() }
    }

    /// Scope to project `name` of domain `domain`.
    pub fn with_project(mut self, name: impl Into<String>, domain: impl Into<String>) -> Self {
        self.scope = Scope::Project { name: name.into(), domain: domain.into() };
        self
    }

    /// Scope to the project with this id.
    pub fn with_project_id(mut self, id: impl Into<String>) -> Self {
        self.scope = Scope::ProjectId(id.into());
        self
    }

    /// Scope to domain `name`.
    pub fn with_domain(mut self, name: impl Into<String>) -> Self {
        self.scope = Scope::Domain { name: name.into() };
        self
    }

    /// Scope to the whole system.
    pub fn with_system(mut self) -> Self {
        self.scope = Scope::System;
        self
    }

    /// Sets the login source (`cli` by default; services use `srv`).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// True when logging in again gives a fresh token (a token login cannot outlive its token).
    pub fn can_renew(&self) -> bool {
        matches!(self.method, AuthMethod::Password { .. })
    }

    /// The `POST /auth/tokens` body.
    pub fn to_request_body(&self) -> Value {
        let identity = match &self.method {
            AuthMethod::Password { user, domain, password } => json!({
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": domain}, "password": password}},
            }),
            AuthMethod::Token { id } => json!({"methods": ["token"], "token": {"id": id}}),
        };
        let mut auth = Map::new();
        auth.insert("identity".into(), identity);
        let scope = match &self.scope {
            Scope::Unscoped => None,
            Scope::Project { name, domain } => Some(json!({"project": {"name": name, "domain": {"name": domain}}})),
            Scope::ProjectId(id) => Some(json!({"project": {"id": id}})),
            Scope::Domain { name } => Some(json!({"domain": {"name": name}})),
            Scope::System => Some(json!({"system": {"all": true}})),
        };
        if let Some(scope) = scope {
            auth.insert("scope".into(), scope);
        }
        auth.insert("context".into(), json!({"source": self.source}));
        json!({ "auth": auth })
    }
}

impl fmt::Debug for AuthParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match &self.method {
            AuthMethod::Password { user, domain, .. } => format!("password(user={user}, domain={domain})"),
            AuthMethod::Token { .. } => "token".to_string(),
        };
        f.debug_struct("AuthParams")
            .field("method", &method)
            .field("scope", &self.scope)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::Password { user, domain, .. } => {
                f.debug_struct("Password").field("user", user).field("domain", domain).finish_non_exhaustive()
            }
            AuthMethod::Token { .. } => f.debug_struct("Token").finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_project_body() {
        let p = AuthParams::password("sysadmin", "Default", "secret").with_project("system", "Default");
        assert_eq!(
            p.to_request_body(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "sysadmin", "domain": {"name": "Default"}, "password": "secret"}}},
                "scope": {"project": {"name": "system", "domain": {"name": "Default"}}},
                "context": {"source": "cli"},
            }})
        );
        assert!(p.can_renew());
    }

    #[test]
    fn token_bodies() {
        let p = AuthParams::token("abc").with_system().with_source("srv");
        assert_eq!(
            p.to_request_body(),
            json!({"auth": {
                "identity": {"methods": ["token"], "token": {"id": "abc"}},
                "scope": {"system": {"all": true}},
                "context": {"source": "srv"},
            }})
        );
        assert!(!p.can_renew());
        let unscoped = AuthParams::token("abc").to_request_body();
        assert!(unscoped["auth"].get("scope").is_none());
        let domain = AuthParams::token("abc").with_domain("d1").to_request_body();
        assert_eq!(domain["auth"]["scope"], json!({"domain": {"name": "d1"}}));
    }

    #[test]
    fn debug_hides_secrets() {
        let p = AuthParams::password("u", "Default", "hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{:?}", AuthParams::token("tok123").method).contains("tok123"));
    }
}
