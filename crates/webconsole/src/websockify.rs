//! `GET /websockify/?access_token=<t>`: a console stream, noVNC's websockify protocol.
//!
//! ```text
//!  client ── GET /websockify/?access_token=t  Upgrade: websocket [Sec-WebSocket-Protocol: binary]
//!    not an upgrade ─────────────────────────> 400 (the token is kept)
//!    token unknown, used or expired ─────────> 401 JSON
//!    TCP connect host:port fails ────────────> 503 JSON
//!    101 (subprotocol `binary` if offered) ──> pump:
//!       TCP bytes ──> one binary frame per read      client binary (or text) frames ──> TCP
//!       TCP EOF ──> Close 1000 to the client          client Close / gone ──> TCP shutdown
//! ```
//! The public route: the one-time token is the only credential.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use cloudcommon::service::ServiceState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sessions::TakeError;

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new().route("/websockify", get(websockify)).route("/websockify/", get(websockify))
}

async fn websockify(
    State(state): State<Arc<ServiceState>>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    let ws = ws.map_err(|e| Error::BadRequest(format!("expected a WebSocket upgrade: {e}")))?;
    let token = q.get("access_token").map(String::as_str).unwrap_or_default();
    if token.is_empty() {
        return Err(Error::Unauthorized("missing access_token".into()));
    }
    let w = crate::webconsole(&state)?;
    let target = w.sessions.take(token).map_err(|e| match e {
        TakeError::Unknown => Error::Unauthorized("unknown or already used access_token".into()),
        TakeError::Expired => Error::Unauthorized("expired access_token".into()),
    })?;
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((target.host.as_str(), target.port)))
        .await
        .map_err(|_| Error::Unavailable(format!("console of server {} at {addr}: timed out", target.server_id)))?
        .map_err(|e| Error::Unavailable(format!("console of server {} at {addr}: {e}", target.server_id)))?;
    let _ = tcp.set_nodelay(true);
    tracing::info!(server = %target.server_id, %addr, "console stream opened");
    let server_id = target.server_id.clone();
    Ok(ws.protocols(["binary"]).on_upgrade(move |socket| async move {
        pump(socket, tcp).await;
        tracing::info!(server = %server_id, "console stream closed");
    }))
}

/// Copies bytes both ways until either side closes, then closes the other.
async fn pump(mut socket: WebSocket, tcp: TcpStream) {
    let (mut rd, mut wr) = tcp.into_split();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    let frame = CloseFrame { code: close_code::NORMAL, reason: "the console closed".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    // Let the client's answer arrive (or give up) so the close is clean.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(m)) = socket.recv().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                    break;
                }
                Ok(n) => {
                    if socket.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            },
            m = socket.recv() => {
                let data = match m {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::copy_from_slice(t.as_str().as_bytes()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) => {
                        // Answered by the library on the next poll.
                        let _ = tokio::time::timeout(Duration::from_secs(1), socket.recv()).await;
                        break;
                    }
                    None | Some(Err(_)) => break,
                };
                if wr.write_all(&data).await.is_err() {
                    let frame = CloseFrame { code: close_code::ERROR, reason: "the console went away".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message as Msg;

    /// A WebSocket server whose every connection is pumped to `backend`; its ws:// URL.
    async fn proxy_to(backend: std::net::SocketAddr) -> String {
        let app = axum::Router::new().route(
            "/",
            get(move |ws: WebSocketUpgrade| async move {
                let tcp = TcpStream::connect(backend).await.expect("backend");
                ws.on_upgrade(move |s| pump(s, tcp))
            }),
        );
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/", l.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(l, app).await });
        url
    }

    #[tokio::test]
    async fn the_consoles_eof_closes_the_socket() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = backend.accept().await.unwrap();
            s.write_all(b"RFB 003.008\n").await.unwrap();
            // dropped: EOF
        });
        let (mut ws, _) = tokio_tungstenite::connect_async(proxy_to(addr).await).await.unwrap();
        let mut got = vec![];
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
                Some(Ok(Msg::Binary(b))) => got.extend_from_slice(&b),
                Some(Ok(Msg::Close(f))) => break f,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(got, b"RFB 003.008\n");
        assert_eq!(close.map(|f| u16::from(f.code)), Some(close_code::NORMAL));
    }

    #[tokio::test]
    async fn the_clients_close_ends_the_console_connection() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = backend.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut s, _) = backend.accept().await.unwrap();
            let mut all = vec![];
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        let (mut ws, _) = tokio_tungstenite::connect_async(proxy_to(addr).await).await.unwrap();
        ws.send(Msg::Binary(b"abc".to_vec().into())).await.unwrap();
        ws.send(Msg::Text("def".into())).await.unwrap();
        ws.close(None).await.unwrap();
        // The server answers the Close, then the stream ends.
        while let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            assert!(matches!(m, Msg::Close(_)), "{m:?}");
        }
        let all = tokio::time::timeout(Duration::from_secs(10), seen).await.unwrap().unwrap();
        assert_eq!(all, b"abcdef");
    }
}
