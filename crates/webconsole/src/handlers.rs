//! `POST /webconsole/server/<id>`: a console session for a server, decided by the region with
//! the caller's own token.

use std::sync::Arc;

use apis::Error;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine;
use cloudcommon::auth::UserCred;
use cloudcommon::service::{ServiceState, request_token};
use serde_json::{Value, json};

use crate::sessions::Target;

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new().route("/webconsole/server/{id}", post(server_console))
}

async fn server_console(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let token = request_token(&headers).ok_or_else(|| Error::Unauthorized("missing X-Auth-Token".into()))?;
    let w = crate::webconsole(&state)?;
    let target = server_vnc(&w, token, &id).await?;
    tracing::info!(server = %target.server_id, user = %cred.user, "console session issued");
    let server_id = target.server_id.clone();
    let protocol = target.protocol.clone();
    let access_token = w.sessions.issue(target);
    Ok(Json(session_answer(&w.public_url, &server_id, &protocol, &access_token, w.sessions.ttl().as_secs())))
}

/// The answer to a session request: the token, the stream URL, and Cloudpods' base64
/// `connect_params` (a query string) that the dashboard's console page reads.
pub fn session_answer(public_url: &str, server_id: &str, protocol: &str, access_token: &str, ttl: u64) -> Value {
    let url = format!("{public_url}/websockify/?access_token={access_token}");
    let params = format!(
        "access_token={access_token}&api_server={}&protocol={protocol}&instance_id={}",
        urlencode(public_url),
        urlencode(server_id)
    );
    json!({
        "access_token": access_token,
        "protocol": protocol,
        "instance_id": server_id,
        "url": url,
        "api_server": public_url,
        "expires_in": ttl,
        "connect_params": base64::engine::general_purpose::STANDARD.encode(params),
    })
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// region `GET /servers/<id>/vnc` with the caller's token; the region's errors pass through.
async fn server_vnc(w: &crate::Webconsole, token: &str, id: &str) -> Result<Target, Error> {
    if id.is_empty() || id.contains('/') {
        return Err(Error::not_found("server", id));
    }
    let region = w.region_url().await?;
    let resp = w
        .http
        .get(format!("{region}/servers/{}/vnc", urlencode(id)))
        .header("X-Auth-Token", token)
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("region unreachable: {e}")))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let class = body.get("class").and_then(Value::as_str).unwrap_or_default();
        let details = body.get("details").and_then(Value::as_str).map(str::to_string).unwrap_or(body.to_string());
        return Err(Error::from_body(status, class, details));
    }
    let host = body.get("host").and_then(Value::as_str).filter(|h| !h.is_empty());
    let port = body.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
    let (Some(host), Some(port)) = (host, port) else {
        return Err(Error::Unavailable(format!("the region gave no VNC address for server {id}: {body}")));
    };
    let protocol = body.get("protocol").and_then(Value::as_str).unwrap_or("vnc");
    if protocol != "vnc" {
        return Err(Error::NotImplemented(format!("console protocol {protocol}")));
    }
    let server_id = body.get("id").and_then(Value::as_str).unwrap_or(id);
    Ok(Target { server_id: server_id.into(), host: host.into(), port, protocol: protocol.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_params_are_a_base64_query() {
        let v = session_answer("http://h:1", "srv-1", "vnc", "ab12", 60);
        assert_eq!(v["url"], "http://h:1/websockify/?access_token=ab12");
        let raw = base64::engine::general_purpose::STANDARD.decode(v["connect_params"].as_str().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "access_token=ab12&api_server=http%3A%2F%2Fh%3A1&protocol=vnc&instance_id=srv-1"
        );
    }
}
