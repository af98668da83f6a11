//! /api/ws/<service>/...: a WebSocket handshake passed to the service with the caller's token,
//! then bytes both ways; cross-origin and anonymous sockets refused.

use anyhow::{Context, Result};
use apigateway::{ApigatewayConfig, Gateway, router};
use cloudcommon::config::CommonOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

async fn read_head(s: &mut TcpStream) -> Result<String> {
    let mut buf = vec![];
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(s.read(&mut b).await? == 1, "closed during the head: {}", String::from_utf8_lossy(&buf));
        buf.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&buf).to_string())
}

/// A service that accepts one WebSocket upgrade, reports the request head, and echoes bytes.
async fn echo_service() -> Result<(String, tokio::sync::oneshot::Receiver<String>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else { return };
        let Ok(head) = read_head(&mut s).await else { return };
        let _ = tx.send(head);
        let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    Ok((url, rx))
}

async fn handshake(gw: &str, token: Option<&str>, origin: Option<&str>) -> Result<(TcpStream, String)> {
    let host = gw.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).await?;
    let mut req = format!(
        "GET /api/ws/webconsole/websockify/abc?session=s1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Auth-Token: {t}\r\n"));
    }
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let head = read_head(&mut s).await?;
    Ok((s, head))
}

#[tokio::test]
async fn websocket_passes_through_with_the_callers_token() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("apigw-ws-{}", std::process::id()));
    let cfg = ApigatewayConfig {
        common: CommonOptions { auth_url: "http://127.0.0.1:9/v3".into(), data_dir: dir.clone(), ..Default::default() },
        ..Default::default()
    };
    let gw = Gateway::new(cfg)?;
    let (svc, seen) = echo_service().await?;
    gw.catalog.seed(
        &json!([{"type": "webconsole", "endpoints": [{"interface": "internal", "region_id": "region0", "url": svc}]}]),
    );
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    let app = router(gw.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });

    // Anonymous and cross-origin sockets are refused before the service is called.
    let (_, head) = handshake(&url, None, None).await?;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (_, head) = handshake(&url, Some("tok-1"), Some("http://evil.example")).await?;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");

    let origin = url.clone();
    let (mut s, head) = handshake(&url, Some("tok-1"), Some(&origin)).await?;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    let upstream = seen.await.context("the service saw no request")?;
    assert!(upstream.starts_with("GET /websockify/abc?session=s1 HTTP/1.1"), "{upstream}");
    assert!(upstream.contains("X-Auth-Token: tok-1"), "{upstream}");
    assert!(upstream.contains("sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ=="), "{upstream}");
    s.write_all(b"\x81\x04ping").await?;
    let mut back = [0u8; 6];
    s.read_exact(&mut back).await?;
    assert_eq!(&back, b"\x81\x04ping");

    // A service that is down: 503, not a hang.
    gw.catalog.seed(&json!([{"type": "webconsole", "endpoints": [{"interface": "internal", "region_id": "region0", "url": "http://127.0.0.1:9"}]}]));
    let (_, head) = handshake(&url, Some("tok-1"), None).await?;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    server.abort();
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
