//! `/api/ws/<service-type>/<path>`: WebSocket connections (the webconsole's VNC and shell
//! streams) passed through to a service found in the catalog.
//!
//! ```text
//!  browser  GET /api/ws/webconsole/<path>  Upgrade: websocket, session cookie
//!    -> authenticate (cookie or bearer) and check Origin == Host (no cross-site sockets)
//!    -> TCP to the service, the same upgrade request with X-Auth-Token = the caller's token
//!    <- the service's answer: anything but 101 is returned as an error
//!    -> 101 to the browser with the service's handshake headers, then bytes copied both ways
//!       until either side closes
//! ```
//! The gateway does not parse WebSocket frames: after the handshake it is a byte pipe.

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Gateway;
use crate::catalog::root_cause;
use crate::session;

const MAX_HEAD: usize = 16 << 10;
/// Handshake headers copied from the browser to the service.
const REQUEST_HEADERS: [&str; 4] =
    ["sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions"];
/// Handshake headers copied from the service's answer to the browser.
const ANSWER_HEADERS: [&str; 3] = ["sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"];

pub async fn proxy(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    proxy_inner(&gw, req).await.unwrap_or_else(IntoResponse::into_response)
}

/// A browser page on another site must not open a socket with the user's cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin.split_once("://").map(|(_, h)| h.trim_end_matches('/')) == Some(host)
}

async fn proxy_inner(gw: &Gateway, mut req: Request) -> Result<Response, Error> {
    let headers = req.headers().clone();
    let caller = session::authenticate(&gw.sessions, &headers, req.method())?;
    if !same_origin(&headers) {
        return Err(Error::Forbidden("a WebSocket from another origin is refused".into()));
    }
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(Error::BadRequest("expected a WebSocket upgrade (Upgrade: websocket)".into()));
    }
    let rest = req.uri().path().strip_prefix("/api/ws/").unwrap_or_default().to_string();
    let (service, path) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let base = gw.catalog.url(service, caller.token()).await?;
    let base = base.strip_prefix("http://").ok_or_else(|| {
        Error::NotImplemented(format!("the {service} endpoint {base} is not plain http; cannot pass a WebSocket"))
    })?;
    let (authority, prefix) = base.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((base, String::new()));
    let mut target = format!("{}/{}", prefix.trim_end_matches('/'), path);
    if let Some(q) = req.uri().query() {
        target = format!("{target}?{q}");
    }

    let connect =
        tokio::time::timeout(Duration::from_secs(gw.cfg.connect_timeout_seconds.max(1)), TcpStream::connect(authority));
    let mut backend = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Error::Unavailable(format!("the {service} service at {authority} is unreachable: {e}")));
        }
        Err(_) => {
            return Err(Error::Unavailable(format!("the {service} service at {authority} did not accept in time")));
        }
    };
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Auth-Token: {}\r\n",
        caller.token()
    );
    for name in REQUEST_HEADERS {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    backend.write_all(head.as_bytes()).await.map_err(|e| Error::Unavailable(format!("{service}: {e}")))?;

    // The service's handshake answer, and whatever bytes came right after it.
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(Error::Unavailable(format!("the {service} service sent an oversized handshake")));
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(gw.cfg.read_timeout_seconds.max(1)), backend.read(&mut chunk))
            .await
            .map_err(|_| Error::Unavailable(format!("the {service} service did not answer the WebSocket handshake")))?
            .map_err(|e| Error::Unavailable(format!("{service}: {}", root_cause(&e))))?;
        if n == 0 {
            return Err(Error::Unavailable(format!(
                "the {service} service closed the connection during the handshake"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let answer: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if status != 101 {
        let body = String::from_utf8_lossy(&buf[end..]).to_string();
        let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
        // The backend's refusal passes through (a spent console token is its 401); a broken
        // answer is a bad gateway.
        let status = if (400..600).contains(&status) { status } else { 502 };
        return Err(crate::proxy::error_from(status, &v, service));
    }
    let leftover = buf[end..].to_vec();

    let on_upgrade = hyper::upgrade::on(&mut req);
    let svc = service.to_string();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(service = %svc, "websocket upgrade failed: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    });

    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    for (k, v) in answer.iter().filter(|(k, _)| ANSWER_HEADERS.contains(&k.as_str())) {
        if let (Ok(name), Ok(value)) = (header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(name, value);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("gw:30300"));
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://gw:30300"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
    }
}
