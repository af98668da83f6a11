//! A keystone token: its id, its body, and the catalog inside it.
//!
//! The body is the `token` object of keystone v3 (`user`, `project` or `domain` or `system`,
//! `roles`, `expires_at`, `catalog`). It is kept as JSON so fields this crate does not know
//! (Cloudpods' `policies`, `projects`, ...) stay reachable through [`Token::body`].

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Which endpoint of a service to use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Interface {
    Public,
    #[default]
    Internal,
    Admin,
    /// Cloudpods' extra interfaces (`console`, `apigateway`, ...).
    Other(String),
}

impl Interface {
    /// The name used in the catalog: `public`, `internal`, `admin`, ...
    pub fn as_str(&self) -> &str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
            Interface::Other(s) => s,
        }
    }
}

impl From<&str> for Interface {
    /// Accepts catalog names (`internal`) and OpenStack endpoint types (`internalURL`).
    fn from(s: &str) -> Self {
        match s {
            "public" | "publicURL" => Interface::Public,
            "internal" | "internalURL" => Interface::Internal,
            "admin" | "adminURL" => Interface::Admin,
            other => Interface::Other(other.strip_suffix("URL").unwrap_or(other).to_string()),
        }
    }
}

impl From<String> for Interface {
    fn from(s: String) -> Self {
        Interface::from(s.as_str())
    }
}

impl From<&Interface> for Interface {
    fn from(i: &Interface) -> Self {
        i.clone()
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An issued token. The id is a secret: it never appears in `Debug` output.
#[derive(Clone)]
pub struct Token {
    id: String,
    body: Value,
    expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("user", &self.user_name())
            .field("project", &self.project_name())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

impl Token {
    /// Wraps a token id and body; the body may be `{"token":{..}}` or the inner object.
    pub fn new(id: impl Into<String>, body: Value) -> Self {
        let body = match body {
            Value::Object(mut o) if o.get("token").is_some_and(Value::is_object) => {
                o.remove("token").unwrap_or_default()
            }
            other => other,
        };
        let expires_at = str_at(&body, &["expires_at"])
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        Token { id: id.into(), body, expires_at }
    }

    /// The token id, to send as `X-Auth-Token`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `token` object as keystone returned it.
    pub fn body(&self) -> &Value {
        &self.body
    }

    pub fn user_id(&self) -> Option<&str> {
        str_at(&self.body, &["user", "id"])
    }

    pub fn user_name(&self) -> Option<&str> {
        str_at(&self.body, &["user", "name"])
    }

    pub fn user_domain_id(&self) -> Option<&str> {
        str_at(&self.body, &["user", "domain", "id"])
    }

    pub fn user_domain_name(&self) -> Option<&str> {
        str_at(&self.body, &["user", "domain", "name"])
    }

    pub fn project_id(&self) -> Option<&str> {
        str_at(&self.body, &["project", "id"])
    }

    pub fn project_name(&self) -> Option<&str> {
        str_at(&self.body, &["project", "name"])
    }

    /// The domain the token is scoped to: the project's domain, or the domain of a domain-scoped token.
    pub fn domain_id(&self) -> Option<&str> {
        str_at(&self.body, &["project", "domain", "id"]).or_else(|| str_at(&self.body, &["domain", "id"]))
    }

    /// Name of [`Token::domain_id`].
    pub fn domain_name(&self) -> Option<&str> {
        str_at(&self.body, &["project", "domain", "name"]).or_else(|| str_at(&self.body, &["domain", "name"]))
    }

    /// True for a system-scoped token.
    pub fn is_system_scoped(&self) -> bool {
        self.body.get("system").is_some_and(|s| !s.is_null())
    }

    fn roles_field(&self, field: &str) -> Vec<&str> {
        let roles = self.body.get("roles").and_then(Value::as_array);
        roles.map(|rs| rs.iter().filter_map(|r| r.get(field).and_then(Value::as_str)).collect()).unwrap_or_default()
    }

    /// Names of the roles the token carries.
    pub fn roles(&self) -> Vec<&str> {
        self.roles_field("name")
    }

    /// Ids of the roles the token carries.
    pub fn role_ids(&self) -> Vec<&str> {
        self.roles_field("id")
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.roles().contains(&name)
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// True when the token expires within `margin` from now (or has no known expiry).
    pub fn expires_within(&self, margin: Duration) -> bool {
        let Some(exp) = self.expires_at else { return true };
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        Utc::now().checked_add_signed(margin).is_none_or(|limit| exp <= limit)
    }

    /// The URL of `service_type`'s endpoint with this interface, in `region` if given.
    /// A trailing `/` is removed.
    pub fn endpoint(&self, service_type: &str, interface: &Interface, region: Option<&str>) -> Option<&str> {
        let catalog = self.body.get("catalog")?.as_array()?;
        let services = catalog.iter().filter(|s| s.get("type").and_then(Value::as_str) == Some(service_type));
        let endpoints = services.filter_map(|s| s.get("endpoints")?.as_array()).flatten();
        endpoints
            .filter(|e| e.get("interface").and_then(Value::as_str) == Some(interface.as_str()))
            .filter(|e| match region {
                None => true,
                Some(r) => str_at(e, &["region_id"]) == Some(r) || str_at(e, &["region"]) == Some(r),
            })
            .filter(|e| e.get("enabled").and_then(Value::as_bool) != Some(false))
            .find_map(|e| e.get("url").and_then(Value::as_str))
            .map(|u| u.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Token {
        Token::new(
            "tok",
            json!({"token": {
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "user": {"id": "u1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
                "project": {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "member"}],
                "catalog": [
                    {"id": "s1", "name": "keystone", "type": "identity", "endpoints": [
                        {"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                         "url": "http://public:30500/v3/"},
                        {"id": "e2", "interface": "internal", "region": "RegionOne", "region_id": "RegionOne",
                         "url": "http://internal:30500/v3"}
                    ]},
                    {"id": "s2", "name": "region", "type": "compute_v2", "endpoints": [
                        {"id": "e3", "interface": "internal", "region": "RegionOne", "region_id": "RegionOne",
                         "url": "http://r1:30888"},
                        {"id": "e4", "interface": "internal", "region": "RegionTwo", "region_id": "RegionTwo",
                         "url": "http://r2:30888"}
                    ]}
                ]
            }}),
        )
    }

    #[test]
    fn accessors() {
        let t = sample();
        assert_eq!(t.id(), "tok");
        assert_eq!(t.user_id(), Some("u1"));
        assert_eq!(t.user_name(), Some("alice"));
        assert_eq!(t.user_domain_name(), Some("Default"));
        assert_eq!(t.project_id(), Some("p1"));
        assert_eq!(t.project_name(), Some("demo"));
        assert_eq!(t.domain_id(), Some("default"));
        assert_eq!(t.roles(), vec!["admin", "member"]);
        assert_eq!(t.role_ids(), vec!["r1", "r2"]);
        assert!(t.has_role("admin"));
        assert!(!t.is_system_scoped());
        assert!(!t.expires_within(Duration::from_secs(300)));
        assert!(!format!("{t:?}").contains("tok\""));
    }

    #[test]
    fn expiry() {
        let t = Token::new("x", json!({"expires_at": "2000-01-01T00:00:00Z"}));
        assert!(t.expires_within(Duration::from_secs(300)));
        let t = Token::new("x", json!({}));
        assert!(t.expires_within(Duration::ZERO));
    }

    #[test]
    fn catalog_lookup() {
        let t = sample();
        assert_eq!(t.endpoint("identity", &Interface::Internal, None), Some("http://internal:30500/v3"));
        assert_eq!(t.endpoint("identity", &"publicURL".into(), None), Some("http://public:30500/v3"));
        assert_eq!(t.endpoint("identity", &Interface::Admin, None), None);
        assert_eq!(t.endpoint("compute_v2", &Interface::Internal, Some("RegionTwo")), Some("http://r2:30888"));
        assert_eq!(t.endpoint("compute_v2", &Interface::Internal, None), Some("http://r1:30888"));
        assert_eq!(t.endpoint("compute_v2", &Interface::Internal, Some("RegionThree")), None);
        assert_eq!(t.endpoint("image", &Interface::Internal, None), None);
    }

    #[test]
    fn interface_names() {
        assert_eq!(Interface::from("internalURL"), Interface::Internal);
        assert_eq!(Interface::from("adminURL"), Interface::Admin);
        assert_eq!(Interface::from("public"), Interface::Public);
        assert_eq!(Interface::from("apigateway"), Interface::Other("apigateway".into()));
        assert_eq!(Interface::from("consoleURL").to_string(), "console");
    }
}
