//! `/api/v2/...`: calls the owning service with the caller's token, the way Cloudpods'
//! gateway does.
//!
//! ```text
//!  GET    /api/v2/<res>                      -> GET  <svc>/<res>          {"<res>": [..], total..}
//!                                                  => {"data": [..], "total", "limit", "offset"}
//!  GET    /api/v2/<ctx>/<id>/<res>           -> list in context, re-wrapped the same way
//!  GET    /api/v2/<res>/<id>[/<spec>]        -> {"<keyword>": {..}} => {..}
//!  POST   /api/v2/<res>/<action>?id=a&id=b   -> POST <svc>/<res>/a/<action>, .../b/<action>
//!  PUT    /api/v2/<res>?id=a&id=b            -> PUT  <svc>/<res>/a, <svc>/<res>/b
//!  DELETE /api/v2/<res>?id=a&id=b            -> DELETE each
//!                                                  => [{"id", "status", "data"}, ..] (200)
//!  anything else                             -> the same method and path on the service
//! ```
//! JSON answers are small and are read whole to be re-wrapped; any other body (an image
//! upload, a download) streams through in both directions. Errors from a service pass
//! through with their status and Cloudpods body; a service that cannot be reached is a 503.

use std::sync::Arc;

use apis::Error;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{Map, Value, json};

use crate::Gateway;
use crate::catalog::root_cause;
use crate::resources;
use crate::session::{self, CSRF_HEADER};

/// Largest JSON body the gateway reads whole (requests of batch actions, answers to re-wrap).
pub const MAX_JSON: usize = 16 << 20;

pub async fn forward(
    State(gw): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward_v2(&gw, method, &uri, &headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn raw(State(gw): State<Arc<Gateway>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    forward_raw(&gw, method, &uri, &headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn no_route(uri: Uri) -> Response {
    Error::NotFound(format!("no API route {}", uri.path())).into_response()
}

async fn forward_v2(
    gw: &Gateway,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let caller = session::authenticate(&gw.sessions, headers, &method)?;
    let rest = uri.path().strip_prefix("/api/v2/").unwrap_or_default();
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(plural) = segs.first().copied() else {
        return Err(Error::NotFound("no resource named in /api/v2/".into()));
    };
    let service = resources::service_type(plural);
    let base = gw.catalog.url(service, caller.token()).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default())
        .map_err(|e| Error::BadRequest(format!("query string: {e}")))?;
    let ids: Vec<String> = pairs.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.clone()).collect();
    let batch = !ids.is_empty()
        && match method {
            Method::POST => segs.len() == 2,
            Method::PUT | Method::PATCH | Method::DELETE => segs.len() == 1,
            _ => false,
        };
    if batch {
        let others: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "id").collect();
        let query = serde_urlencoded::to_string(others).unwrap_or_default();
        let body =
            axum::body::to_bytes(body, MAX_JSON).await.map_err(|e| Error::BadRequest(format!("request body: {e}")))?;
        return batch_call(gw, &method, &base, &segs, &ids, &query, headers, body, caller.token(), service).await;
    }
    let url = join_url(&base, rest, uri.query());
    let resp = send(gw, method.clone(), &url, headers, stream_body(headers, body), caller.token(), service).await?;
    respond(resp, &method, &segs, service).await
}

async fn forward_raw(
    gw: &Gateway,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let caller = session::authenticate(&gw.sessions, headers, &method)?;
    let rest = uri.path().strip_prefix("/api/s/").unwrap_or_default();
    let (service, path) = rest.split_once('/').unwrap_or((rest, ""));
    let base = gw.catalog.url(service, caller.token()).await?;
    let url = join_url(&base, path, uri.query());
    let resp = send(gw, method.clone(), &url, headers, stream_body(headers, body), caller.token(), service).await?;
    respond(resp, &method, &[], service).await
}

/// The request body, streamed; none when the request announced none (most GETs), so the
/// service sees no chunked empty body.
fn stream_body(headers: &HeaderMap, body: Body) -> reqwest::Body {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && length.is_none_or(|l| l.trim() == "0") {
        return reqwest::Body::from(bytes::Bytes::new());
    }
    reqwest::Body::wrap_stream(body.into_data_stream())
}

fn join_url(base: &str, path: &str, query: Option<&str>) -> String {
    let mut url = format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'));
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Request headers a service may need: content description, image metadata, request ids.
/// Credentials (the cookie, the CSRF value, the caller's own token header) are not copied.
fn forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(n, "content-type" | "content-length" | "accept" | "range" | "x-request-id")
        || (n.starts_with("x-") && !matches!(n, "x-auth-token" | "x-subject-token" | CSRF_HEADER))
}

async fn send(
    gw: &Gateway,
    method: Method,
    url: &str,
    headers: &HeaderMap,
    body: reqwest::Body,
    token: &str,
    service: &str,
) -> Result<reqwest::Response, Error> {
    let mut req = gw.http.request(method, url).header("X-Auth-Token", token);
    for (k, v) in headers.iter().filter(|(k, _)| forwarded(k)) {
        req = req.header(k, v);
    }
    req.body(body).send().await.map_err(|e| unreachable(service, url, &e))
}

fn unreachable(service: &str, url: &str, e: &reqwest::Error) -> Error {
    let host = url.split('/').take(3).collect::<Vec<_>>().join("/");
    if e.is_timeout() {
        Error::Unavailable(format!("the {service} service at {host} did not answer in time"))
    } else {
        Error::Unavailable(format!("the {service} service at {host} is unreachable: {}", root_cause(e)))
    }
}

fn is_json(headers: &reqwest::header::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

/// Turns a service's answer into the gateway's: JSON re-wrapped, anything else streamed.
async fn respond(resp: reqwest::Response, method: &Method, segs: &[&str], service: &str) -> Result<Response, Error> {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if *method == Method::HEAD {
        return Ok(stream_back(status, resp));
    }
    if !is_json(resp.headers()) {
        if status.is_client_error() || status.is_server_error() {
            let text = resp.text().await.unwrap_or_default();
            return Ok(error_from(status.as_u16(), &Value::String(text), service).into_response());
        }
        return Ok(stream_back(status, resp));
    }
    let bytes = read_limited(resp, service).await?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_client_error() || status.is_server_error() {
        if v.get("class").is_some_and(Value::is_string) && v.get("details").is_some() {
            return Ok((status, axum::Json(v)).into_response());
        }
        return Ok(error_from(status.as_u16(), &v, service).into_response());
    }
    Ok((status, axum::Json(reshape(v, method, segs))).into_response())
}

async fn read_limited(resp: reqwest::Response, service: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| Error::Unavailable(format!("the {service} service broke off its answer: {}", root_cause(&e))))?
    {
        if out.len() + chunk.len() > MAX_JSON {
            return Err(Error::Internal(format!("the {service} service answered more than {MAX_JSON} bytes of JSON")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn stream_back(status: StatusCode, resp: reqwest::Response) -> Response {
    let mut out = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if !matches!(k.as_str(), "connection" | "transfer-encoding" | "keep-alive" | "set-cookie") {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    out.body(Body::from_stream(resp.bytes_stream())).unwrap_or_else(|e| Error::Internal(e.to_string()).into_response())
}

/// A Cloudpods error for a service's error answer that is not one already.
pub fn error_from(status: u16, body: &Value, service: &str) -> Error {
    let class = body.get("class").and_then(Value::as_str).unwrap_or_default();
    let details = body
        .get("details")
        .and_then(Value::as_str)
        .or_else(|| body.pointer("/error/message").and_then(Value::as_str))
        .or_else(|| body.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("the {service} service answered {status}"));
    Error::from_body(status, class, details)
}

/// Cloudpods' gateway shapes: a list becomes `{"data", "total", "limit", "offset"}`; a single
/// object loses its keyword wrapper.
pub fn reshape(v: Value, method: &Method, segs: &[&str]) -> Value {
    let Value::Object(mut o) = v else { return v };
    let plural = segs.last().copied().unwrap_or_default();
    if *method == Method::GET && segs.len() % 2 == 1 && o.get(plural).is_some_and(Value::is_array) {
        let data = o.remove(plural).unwrap_or_default();
        let len = data.as_array().map(Vec::len).unwrap_or(0);
        let mut out = Map::new();
        out.insert("total".into(), o.remove("total").unwrap_or_else(|| json!(len)));
        out.insert("limit".into(), o.remove("limit").unwrap_or_else(|| json!(0)));
        out.insert("offset".into(), o.remove("offset").unwrap_or_else(|| json!(0)));
        o.remove("links");
        out.extend(o);
        out.insert("data".into(), data);
        return Value::Object(out);
    }
    if o.len() == 1 && o.values().next().is_some_and(Value::is_object) {
        return o.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null);
    }
    Value::Object(o)
}

#[allow(clippy::too_many_arguments)]
async fn batch_call(
    gw: &Gateway,
    method: &Method,
    base: &str,
    segs: &[&str],
    ids: &[String],
    query: &str,
    headers: &HeaderMap,
    body: bytes::Bytes,
    token: &str,
    service: &str,
) -> Result<Response, Error> {
    let calls = ids.iter().map(|id| {
        let mut path = format!("{}/{}", segs[0], mcclient::encode_segment(id));
        if let Some(action) = segs.get(1) {
            path = format!("{path}/{action}");
        }
        let url = join_url(base, &path, Some(query));
        let body = body.clone();
        async move {
            let one = async {
                let resp = send(gw, method.clone(), &url, headers, reqwest::Body::from(body), token, service).await?;
                let status = resp.status().as_u16();
                let bytes = read_limited(resp, service).await?;
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let data = if status >= 400 {
                    if v.get("class").is_some() { v } else { json!(error_from(status, &v, service).body()) }
                } else {
                    reshape(v, &Method::POST, &[])
                };
                Ok::<_, Error>(json!({"id": id, "status": status, "data": data}))
            };
            one.await.unwrap_or_else(|e| json!({"id": id, "status": e.status_code(), "data": e.body()}))
        }
    });
    let items = futures::future::join_all(calls).await;
    Ok(axum::Json(Value::Array(items)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_rewrapped() {
        let v = json!({"servers": [{"id": "a"}], "total": 7, "limit": 1, "offset": 2});
        let r = reshape(v, &Method::GET, &["servers"]);
        assert_eq!(r, json!({"total": 7, "limit": 1, "offset": 2, "data": [{"id": "a"}]}));
        let v = json!({"servers": [{"id": "a"}]});
        let r = reshape(v, &Method::GET, &["hosts", "h1", "servers"]);
        assert_eq!(r["total"], 1);
        assert_eq!(r["data"][0]["id"], "a");
    }

    #[test]
    fn single_objects_are_unwrapped() {
        assert_eq!(reshape(json!({"server": {"id": "a"}}), &Method::GET, &["servers", "a"]), json!({"id": "a"}));
        let meta = json!({"id": "a", "metadata": {}});
        assert_eq!(reshape(meta.clone(), &Method::GET, &["servers", "a", "metadata"]), meta);
        let batch = json!({"servers": [{"status": 200}]});
        assert_eq!(reshape(batch.clone(), &Method::POST, &["servers"]), batch);
    }

    #[test]
    fn foreign_errors_become_cloudpods_errors() {
        let e = error_from(502, &json!("<html>bad gateway</html>"), "image");
        assert_eq!((e.status_code(), e.class()), (503, "ServiceUnavailableError"));
        assert!(e.to_string().contains("bad gateway"));
        let e = error_from(404, &json!({"error": {"message": "no such user"}}), "identity");
        assert_eq!((e.status_code(), e.to_string().as_str()), (404, "no such user"));
        let e = error_from(500, &Value::Null, "compute_v2");
        assert_eq!(e.to_string(), "the compute_v2 service answered 500");
    }

    #[test]
    fn credentials_are_not_forwarded() {
        for h in ["cookie", "x-auth-token", "authorization", "x-csrf-token", "host"] {
            assert!(!forwarded(&HeaderName::from_static(h)), "{h}");
        }
        for h in ["content-type", "content-length", "x-image-meta-name", "x-request-id"] {
            assert!(forwarded(&HeaderName::from_static(h)), "{h}");
        }
    }
}
