//! Generic access to one kind of Cloudpods resource.
//!
//! A [`ResourceManager`] knows a service type, a keyword (`user`) and its plural (`users`).
//! Each operation is split in two: a pure `*_request` function that builds the
//! [`ApiRequest`] (method, path, query, body; testable without a server) and an async
//! function that sends it through a [`Session`] and unwraps the answer.
//!
//! | operation | request | answer |
//! |---|---|---|
//! | list | `GET /<plural>?...` | `{"<plural>":[..],"total","limit","offset"}` |
//! | get | `GET /<plural>/<id>` | `{"<keyword>":{..}}` |
//! | get_spec | `GET /<plural>/<id>/<spec>` | any JSON |
//! | create | `POST /<plural>` `{"<keyword>":{..}}` | `{"<keyword>":{..}}` |
//! | update | `PUT /<plural>/<id>` `{"<keyword>":{..}}` | `{"<keyword>":{..}}` |
//! | delete | `DELETE /<plural>/<id>` | `{"<keyword>":{..}}` |
//! | perform | `POST /<plural>/<id>/<action>` `{"<keyword>":{..}}` | `{"<keyword>":{..}}` |
//! | perform_class | `POST /<plural>/<action>` `{"<keyword>":{..}}` | any JSON |
//! | list_in_context | `GET /<ctx_plural>/<ctx_id>/<plural>` | list envelope |
//! | put/delete_in_contexts | `PUT`/`DELETE /<c1>/<id1>/.../<plural>/<id>` | any JSON |
//! | get/set_metadata | `GET`/`POST /<plural>/<id>/metadata` | `{k: v}` |

use std::fmt;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::session::Session;

/// HTTP methods used by the Cloudpods API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }

    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request relative to a service's base URL. `path` is already percent-encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn new(method: Method, segments: &[&str]) -> Self {
        ApiRequest { method, path: path_of(segments), query: Vec::new(), body: None }
    }

    pub fn with_query(mut self, query: Vec<(String, String)>) -> Self {
        self.query = query;
        self
    }

    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Joins path segments, percent-encoding each one (names may hold spaces or slashes).
pub fn path_of(segments: &[&str]) -> String {
    segments.iter().map(|s| encode_segment(s)).collect::<Vec<_>>().join("/")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query parameters of a list call. `extra` carries resource-specific filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListParams {
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub order_by: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
    pub details: Option<bool>,
    pub search: Option<String>,
    /// `col.op(args)` clauses, ANDed.
    pub filters: Vec<String>,
    /// `system`, `domain`, `project`, `user` or `max`.
    pub scope: Option<String>,
    pub extra: Vec<(String, String)>,
}

impl ListParams {
    /// The query string pairs, in a stable order.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut push = |k: &str, v: String| q.push((k.to_string(), v));
        if let Some(v) = self.limit {
            push("limit", v.to_string());
        }
        if let Some(v) = self.offset {
            push("offset", v.to_string());
        }
        if let Some(v) = &self.order_by {
            push("order_by", v.clone());
        }
        if let Some(v) = &self.order {
            push("order", v.clone());
        }
        if let Some(v) = self.details {
            push("details", v.to_string());
        }
        if let Some(v) = &self.search {
            push("search", v.clone());
        }
        for f in &self.filters {
            push("filter", f.clone());
        }
        if let Some(v) = &self.scope {
            push("scope", v.clone());
        }
        q.extend(self.extra.iter().cloned());
        q
    }
}

/// One page of a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListResult {
    pub data: Vec<Value>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    /// Marker for the next page, when the service pages by marker.
    pub next_marker: Option<String>,
}

impl ListResult {
    /// Parses `{"<plural>":[..],"total":N,"limit":L,"offset":O}`. A bare array is accepted too.
    pub fn parse(plural: &str, body: &Value) -> Result<ListResult> {
        let data = match body {
            Value::Array(a) => a.clone(),
            Value::Object(o) => match o.get(plural) {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None if o.contains_key("total") || o.is_empty() => Vec::new(),
                _ => {
                    return Err(Error::InvalidResponse(format!("expected a list under {plural:?}")));
                }
            },
            Value::Null => Vec::new(),
            _ => return Err(Error::InvalidResponse(format!("expected a list of {plural}"))),
        };
        let num = |k: &str| body.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        Ok(ListResult {
            total: num("total").unwrap_or(data.len() as u64),
            limit: num("limit").unwrap_or(0),
            offset: num("offset").unwrap_or(0),
            next_marker: body.get("next_marker").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
            data,
        })
    }
}

/// One answer of a batch create.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchItem {
    pub status: u16,
    pub body: Value,
}

/// Generic access to one resource kind of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceManager {
    /// Catalog service type: `identity`, `compute_v2`, `image`, `log`, ...
    pub service_type: &'static str,
    /// Version segment appended to the endpoint URL unless present (`v3` for identity).
    pub version: Option<&'static str>,
    pub keyword: &'static str,
    pub plural: &'static str,
}

/// Returns `body[key]` when the answer wraps the object in its keyword.
pub fn unwrap_keyword(key: &str, body: Value) -> Value {
    match body {
        Value::Object(mut o) if o.get(key).is_some_and(Value::is_object) => o.remove(key).unwrap_or_default(),
        other => other,
    }
}

impl ResourceManager {
    pub const fn new(service_type: &'static str, keyword: &'static str, plural: &'static str) -> Self {
        ResourceManager { service_type, version: None, keyword, plural }
    }

    pub const fn with_version(self, version: &'static str) -> Self {
        ResourceManager { version: Some(version), ..self }
    }

    fn wrap(&self, body: Value) -> Value {
        json!({ self.keyword: body })
    }

    // ---- pure request builders ----

    pub fn list_request(&self, params: &ListParams) -> ApiRequest {
        ApiRequest::new(Method::Get, &[self.plural]).with_query(params.to_query())
    }

    pub fn get_request(&self, id: &str, query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest::new(Method::Get, &[self.plural, id]).with_query(owned(query))
    }

    pub fn get_spec_request(&self, id: &str, spec: &str, query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest::new(Method::Get, &[self.plural, id, spec]).with_query(owned(query))
    }

    pub fn create_request(&self, body: Value, count: Option<u32>) -> ApiRequest {
        let mut wrapped = Map::new();
        wrapped.insert(self.keyword.to_string(), body);
        if let Some(n) = count.filter(|n| *n > 1) {
            wrapped.insert("count".into(), json!(n));
        }
        ApiRequest::new(Method::Post, &[self.plural]).with_body(Value::Object(wrapped))
    }

    pub fn update_request(&self, id: &str, body: Value) -> ApiRequest {
        ApiRequest::new(Method::Put, &[self.plural, id]).with_body(self.wrap(body))
    }

    pub fn delete_request(&self, id: &str, query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest::new(Method::Delete, &[self.plural, id]).with_query(owned(query))
    }

    pub fn perform_request(&self, id: &str, action: &str, body: Value) -> ApiRequest {
        ApiRequest::new(Method::Post, &[self.plural, id, action]).with_body(self.wrap(body))
    }

    pub fn perform_class_request(&self, action: &str, body: Value) -> ApiRequest {
        ApiRequest::new(Method::Post, &[self.plural, action]).with_body(self.wrap(body))
    }

    pub fn list_in_context_request(&self, ctx: &ResourceManager, ctx_id: &str, params: &ListParams) -> ApiRequest {
        ApiRequest::new(Method::Get, &[ctx.plural, ctx_id, self.plural]).with_query(params.to_query())
    }

    /// `<c1>/<id1>/<c2>/<id2>/.../<plural>/<id>`
    pub fn in_contexts_request(
        &self,
        method: Method,
        id: &str,
        contexts: &[(&ResourceManager, &str)],
        body: Option<Value>,
    ) -> ApiRequest {
        let mut segs: Vec<&str> = contexts.iter().flat_map(|(m, cid)| [m.plural, *cid]).collect();
        segs.extend([self.plural, id]);
        let req = ApiRequest::new(method, &segs);
        match body {
            Some(b) => req.with_body(self.wrap(b)),
            None => req,
        }
    }

    pub fn get_metadata_request(&self, id: &str) -> ApiRequest {
        ApiRequest::new(Method::Get, &[self.plural, id, "metadata"])
    }

    pub fn set_metadata_request(&self, id: &str, metadata: Map<String, Value>) -> ApiRequest {
        ApiRequest::new(Method::Post, &[self.plural, id, "metadata"]).with_body(Value::Object(metadata))
    }

    // ---- async calls ----

    /// Sends a request built by one of the `*_request` functions to this manager's service.
    pub async fn send(&self, session: &Session, req: &ApiRequest) -> Result<Value> {
        session.request(self.service_type, self.version, req).await
    }

    async fn send_unwrapped(&self, session: &Session, req: &ApiRequest) -> Result<Value> {
        Ok(unwrap_keyword(self.keyword, self.send(session, req).await?))
    }

    pub async fn list(&self, session: &Session, params: &ListParams) -> Result<ListResult> {
        ListResult::parse(self.plural, &self.send(session, &self.list_request(params)).await?)
    }

    /// One object by id or name.
    pub async fn get(&self, session: &Session, id: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.send_unwrapped(session, &self.get_request(id, query)).await
    }

    /// The id of the object with this id or name.
    pub async fn get_id(&self, session: &Session, id_or_name: &str) -> Result<String> {
        let obj = self.get(session, id_or_name, &[]).await?;
        obj.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidResponse(format!("{} {id_or_name} has no id", self.keyword)))
    }

    pub async fn get_spec(&self, session: &Session, id: &str, spec: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.send(session, &self.get_spec_request(id, spec, query)).await
    }

    /// Creates one object; `body` is the object's fields (wrapped in the keyword here).
    pub async fn create(&self, session: &Session, body: Value) -> Result<Value> {
        self.send_unwrapped(session, &self.create_request(body, None)).await
    }

    /// Creates `count` objects from one body; each answer carries its own status.
    pub async fn batch_create(&self, session: &Session, body: Value, count: u32) -> Result<Vec<BatchItem>> {
        let answer = self.send(session, &self.create_request(body, Some(count))).await?;
        if count <= 1 {
            return Ok(vec![BatchItem { status: 200, body: unwrap_keyword(self.keyword, answer) }]);
        }
        let items = answer
            .get(self.plural)
            .and_then(Value::as_array)
            .ok_or_else(|| Error::InvalidResponse(format!("expected a batch answer under {:?}", self.plural)))?;
        Ok(items
            .iter()
            .map(|i| BatchItem {
                status: i.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                body: unwrap_keyword(self.keyword, i.get("body").cloned().unwrap_or_default()),
            })
            .collect())
    }

    pub async fn update(&self, session: &Session, id: &str, body: Value) -> Result<Value> {
        self.send_unwrapped(session, &self.update_request(id, body)).await
    }

    pub async fn delete(&self, session: &Session, id: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.send_unwrapped(session, &self.delete_request(id, query)).await
    }

    pub async fn perform(&self, session: &Session, id: &str, action: &str, body: Value) -> Result<Value> {
        self.send_unwrapped(session, &self.perform_request(id, action, body)).await
    }

    pub async fn perform_class(&self, session: &Session, action: &str, body: Value) -> Result<Value> {
        self.send_unwrapped(session, &self.perform_class_request(action, body)).await
    }

    pub async fn list_in_context(
        &self,
        session: &Session,
        ctx: &ResourceManager,
        ctx_id: &str,
        params: &ListParams,
    ) -> Result<ListResult> {
        let req = self.list_in_context_request(ctx, ctx_id, params);
        ListResult::parse(self.plural, &ctx.send(session, &req).await?)
    }

    /// `PUT <c1>/<id1>/.../<plural>/<id>`, e.g. a role grant
    /// `ROLES.put_in_contexts(s, role, &[(&PROJECTS, p), (&USERS, u)], None)`.
    pub async fn put_in_contexts(
        &self,
        session: &Session,
        id: &str,
        contexts: &[(&ResourceManager, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        self.send_in_contexts(session, Method::Put, id, contexts, body).await
    }

    /// `DELETE <c1>/<id1>/.../<plural>/<id>`.
    pub async fn delete_in_contexts(
        &self,
        session: &Session,
        id: &str,
        contexts: &[(&ResourceManager, &str)],
    ) -> Result<Value> {
        self.send_in_contexts(session, Method::Delete, id, contexts, None).await
    }

    async fn send_in_contexts(
        &self,
        session: &Session,
        method: Method,
        id: &str,
        contexts: &[(&ResourceManager, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        let req = self.in_contexts_request(method, id, contexts, body);
        // The outermost context owns the URL space (e.g. identity for projects/.../roles).
        let owner = contexts.first().map(|(m, _)| *m).unwrap_or(self);
        owner.send(session, &req).await
    }

    pub async fn get_metadata(&self, session: &Session, id: &str) -> Result<Value> {
        self.send(session, &self.get_metadata_request(id)).await
    }

    pub async fn set_metadata(&self, session: &Session, id: &str, metadata: Map<String, Value>) -> Result<Value> {
        self.send(session, &self.set_metadata_request(id, metadata)).await
    }
}

fn owned(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: ResourceManager = ResourceManager::new("identity", "user", "users").with_version("v3");
    const PROJECTS: ResourceManager = ResourceManager::new("identity", "project", "projects").with_version("v3");
    const ROLES: ResourceManager = ResourceManager::new("identity", "role", "roles").with_version("v3");

    #[test]
    fn list_envelope() {
        let body = json!({"users": [{"id": "u1"}, {"id": "u2"}], "total": 12, "limit": 2, "offset": 4});
        let l = ListResult::parse("users", &body).unwrap_or_default();
        assert_eq!((l.data.len(), l.total, l.limit, l.offset), (2, 12, 2, 4));
        let empty = ListResult::parse("users", &json!({"total": 0})).unwrap_or_default();
        assert!(empty.data.is_empty());
        let bare = ListResult::parse("users", &json!([{"id": "u1"}])).unwrap_or_default();
        assert_eq!(bare.total, 1);
        assert!(ListResult::parse("users", &json!({"projects": []})).is_err());
        assert!(ListResult::parse("users", &json!("x")).is_err());
    }

    #[test]
    fn list_query() {
        let p = ListParams {
            limit: Some(20),
            details: Some(true),
            filters: vec!["name.contains(a)".into(), "enabled.equals(1)".into()],
            scope: Some("system".into()),
            extra: vec![("domain_id".into(), "default".into())],
            ..Default::default()
        };
        let req = USERS.list_request(&p);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "users");
        let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            q,
            [
                "limit=20",
                "details=true",
                "filter=name.contains(a)",
                "filter=enabled.equals(1)",
                "scope=system",
                "domain_id=default"
            ]
        );
    }

    #[test]
    fn requests() {
        let r = USERS.create_request(json!({"name": "alice"}), None);
        assert_eq!((r.method, r.path.as_str()), (Method::Post, "users"));
        assert_eq!(r.body, Some(json!({"user": {"name": "alice"}})));
        let r = USERS.create_request(json!({"name": "a"}), Some(3));
        assert_eq!(r.body, Some(json!({"user": {"name": "a"}, "count": 3})));
        let r = USERS.perform_request("alice smith", "enable", json!({}));
        assert_eq!(r.path, "users/alice%20smith/enable");
        assert_eq!(r.body, Some(json!({"user": {}})));
        let r = ROLES.in_contexts_request(Method::Put, "r1", &[(&PROJECTS, "p1"), (&USERS, "u1")], None);
        assert_eq!((r.method, r.path.as_str(), r.body), (Method::Put, "projects/p1/users/u1/roles/r1", None));
        let r = USERS.list_in_context_request(&PROJECTS, "p1", &ListParams::default());
        assert_eq!(r.path, "projects/p1/users");
        let mut md = Map::new();
        md.insert("k".into(), json!("v"));
        let r = USERS.set_metadata_request("u1", md);
        assert_eq!((r.path.as_str(), r.body), ("users/u1/metadata", Some(json!({"k": "v"}))));
    }

    #[test]
    fn unwrap() {
        assert_eq!(unwrap_keyword("user", json!({"user": {"id": 1}})), json!({"id": 1}));
        assert_eq!(unwrap_keyword("user", json!({"id": 1})), json!({"id": 1}));
    }
}
