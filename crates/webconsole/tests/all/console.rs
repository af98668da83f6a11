//! `POST /webconsole/server/<id>` and `/websockify/` end to end: the region decides with the
//! caller's token, a token opens one stream, the stream carries the guest's VNC bytes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use test_harness::simhost::{RFB_BANNER, SimHost, SimHostSpec};
use test_harness::{TestCloud, wait_for};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CEILING: Duration = Duration::from_secs(30);

async fn ok(tc: &TestCloud, method: Method, url: &str, token: &str, body: Option<Value>) -> Result<Value> {
    let r = tc.call(method.clone(), url, Some(token), body).await?;
    if !r.status.is_success() {
        bail!("{method} {url}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

/// A raw 4 MiB image, active in glance; its id.
async fn image(tc: &TestCloud, token: &str) -> Result<String> {
    tc.upload_image(token, "cirros", "raw", vec![0u8; 4 << 20]).await
}

async fn wait_server(tc: &TestCloud, token: &str, id: &str, want: &str) -> Result<()> {
    let url = format!("{}/servers/{id}", tc.region_url());
    wait_for(CEILING, || async {
        tc.call(Method::GET, &url, Some(token), None).await.map(|r| r.body["server"]["status"] == want).unwrap_or(false)
    })
    .await
    .with_context(|| format!("server {id} never became {want}"))
}

async fn server_action(tc: &TestCloud, token: &str, id: &str, action: &str) -> Result<()> {
    let url = format!("{}/servers/{id}/{action}", tc.region_url());
    ok(tc, Method::POST, &url, token, Some(json!({"server": {}}))).await.map(drop)
}

/// A cloud with one simulated host and one server of the admin's, `running`; (cloud, admin
/// token, host, server id).
async fn running_server() -> Result<(TestCloud, String, SimHost, String)> {
    running_server_with(&[]).await
}

/// [`running_server`] with these service settings (`region.host_offline_seconds=1`).
async fn running_server_with(sets: &[&str]) -> Result<(TestCloud, String, SimHost, String)> {
    let tc = TestCloud::start_with(sets).await?;
    let admin = tc.admin_token().await?;
    let host = SimHost::start(&tc.sim_target(), SimHostSpec::new("sim1", 8, 16384, 200).on_wires(&["bcast0"])).await?;
    let img = image(&tc, &admin).await?;
    let body = json!({"server": {"name": "vm1", "vcpu_count": 1, "vmem_size": "512m",
        "disks": [format!("{img}:1g")], "nets": [{"network": "default"}], "password": "Passw0rd!"}});
    let s = ok(&tc, Method::POST, &format!("{}/servers", tc.region_url()), &admin, Some(body)).await?;
    let id = s["server"]["id"].as_str().context("server id")?.to_string();
    wait_server(&tc, &admin, &id, "ready").await?;
    server_action(&tc, &admin, &id, "start").await?;
    wait_server(&tc, &admin, &id, "running").await?;
    Ok((tc, admin, host, id))
}

fn console_url(tc: &TestCloud, server: &str) -> String {
    format!("{}/webconsole/server/{server}", tc.url("webconsole"))
}

fn pending_tokens(tc: &TestCloud) -> usize {
    let state = tc.state("webconsole").expect("webconsole state");
    webconsole::webconsole(&state).expect("webconsole ext").sessions.len()
}

/// Opens `url` as a WebSocket offering subprotocol `binary`.
async fn open(
    url: &str,
) -> Result<
    (tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, Option<String>),
    tokio_tungstenite::tungstenite::Error,
> {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", "binary".parse().expect("header"));
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    let proto = resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok((ws, proto))
}

/// The HTTP status a refused WebSocket handshake got.
async fn refused(url: &str) -> Option<u16> {
    match open(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        _ => None,
    }
}

/// Reads binary frames until `n` bytes came.
async fn read_bytes<S>(ws: &mut S, n: usize) -> Result<Vec<u8>>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut got = vec![];
    while got.len() < n {
        let m =
            tokio::time::timeout(CEILING, ws.next()).await.context("no frame in time")?.context("stream ended")??;
        match m {
            Message::Binary(b) => got.extend_from_slice(&b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected frame {other:?} after {got:?}"),
        }
    }
    Ok(got)
}

#[tokio::test]
async fn console_streams_the_servers_vnc_once() -> Result<()> {
    let (tc, admin, host, id) = running_server().await?;

    // The region tells where the screen is, from the host agent.
    let vnc = ok(&tc, Method::GET, &format!("{}/servers/{id}/vnc", tc.region_url()), &admin, None).await?;
    assert_eq!(vnc["id"], id.as_str());
    assert_eq!(vnc["host"], "127.0.0.1");
    assert_eq!(vnc["protocol"], "vnc");
    assert!(vnc["port"].as_u64().is_some_and(|p| p > 0), "{vnc}");

    // A session (by name, as climc allows), answered with a one-time token.
    let s = ok(&tc, Method::POST, &console_url(&tc, "vm1"), &admin, Some(json!({}))).await?;
    let token = s["access_token"].as_str().context("access_token")?.to_string();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert_eq!(s["protocol"], "vnc");
    assert_eq!(s["instance_id"], id.as_str());
    let url = s["url"].as_str().context("url")?.to_string();
    assert_eq!(url, format!("{}/websockify/?access_token={token}", tc.url("webconsole")));
    let params = base64::engine::general_purpose::STANDARD.decode(s["connect_params"].as_str().context("params")?)?;
    let params = String::from_utf8(params)?;
    assert!(params.starts_with(&format!("access_token={token}&")), "{params}");
    assert_eq!(pending_tokens(&tc), 1);

    // Not a WebSocket: refused, and the token is still good.
    let r = tc.call(Method::GET, &url, None, None).await?;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(pending_tokens(&tc), 1);

    // The stream: the RFB banner first, then bytes both ways (the simulated host's VNC server
    // echoes a client that answers with no RFB version it knows).
    let (mut ws, proto) = open(&url).await?;
    assert_eq!(proto.as_deref(), Some("binary"));
    assert_eq!(read_bytes(&mut ws, RFB_BANNER.len()).await?, RFB_BANNER);
    ws.send(Message::Binary(b"RFB 000.000\n".to_vec().into())).await?;
    assert_eq!(read_bytes(&mut ws, 12).await?, b"RFB 000.000\n");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await?;
    assert_eq!(read_bytes(&mut ws, big.len()).await?, big);
    assert_eq!(pending_tokens(&tc), 0);

    // The same token again: refused with 401, while the first stream still works.
    assert_eq!(refused(&url).await, Some(401));
    let r = tc.call(Method::GET, &url, None, None).await?;
    assert_eq!(r.status.as_u16(), 400);
    ws.send(Message::Binary(b"ping".to_vec().into())).await?;
    assert_eq!(read_bytes(&mut ws, 4).await?, b"ping");
    // A clean close: the server answers the client's Close.
    ws.close(None).await?;
    let end = tokio::time::timeout(CEILING, async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server never closed");

    // A token that never was.
    let bogus = format!("{}/websockify/?access_token={}", tc.url("webconsole"), "ab".repeat(32));
    assert_eq!(refused(&bogus).await, Some(401));
    assert_eq!(refused(&format!("{}/websockify/", tc.url("webconsole"))).await, Some(401));

    host.stop().await;
    tc.stop().await
}

#[tokio::test]
async fn console_is_decided_by_the_region_with_the_callers_token() -> Result<()> {
    let (tc, admin, host, id) = running_server().await?;
    let url = console_url(&tc, &id);

    // No token, or a bad one: the webconsole's own authentication.
    let r = tc.call(Method::POST, &url, None, Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let r = tc.call(Method::POST, &url, Some("not-a-token"), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);

    // Another project's member does not see the admin's server: the region's 404 passes
    // through and no token is issued.
    let other = tc.member(&admin, "alice", "demo").await?;
    let r = tc.call(Method::POST, &url, Some(&other), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 404, "{}", r.body);
    assert_eq!(r.body["class"], "ResourceNotFoundError", "{}", r.body);
    assert!(r.body.get("access_token").is_none());
    assert_eq!(pending_tokens(&tc), 0);
    let r = tc.call(Method::GET, &format!("{}/servers/{id}/vnc", tc.region_url()), Some(&other), None).await?;
    assert_eq!(r.status.as_u16(), 404, "{}", r.body);

    // A member of the server's own project: the region lets them, so a session is issued.
    let member = tc.member(&admin, "bob", "system").await?;
    let r = tc.call(Method::POST, &url, Some(&member), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(pending_tokens(&tc), 1);
    let t = r.body["access_token"].as_str().context("access_token")?;
    let (mut ws, _) = open(&format!("{}/websockify/?access_token={t}", tc.url("webconsole"))).await?;
    assert_eq!(read_bytes(&mut ws, RFB_BANNER.len()).await?, RFB_BANNER);
    // A real RFB client's version: the security types (one, None) come back.
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into())).await?;
    assert_eq!(read_bytes(&mut ws, 2).await?, [1, 1]);
    ws.close(None).await?;
    assert_eq!(pending_tokens(&tc), 0);

    // An unknown server.
    let r = tc.call(Method::POST, &console_url(&tc, "no-such-server"), Some(&admin), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 404, "{}", r.body);

    // A stopped server has no console: 409 from the region, passed through.
    server_action(&tc, &admin, &id, "stop").await?;
    wait_server(&tc, &admin, &id, "ready").await?;
    let r = tc.call(Method::POST, &url, Some(&admin), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 409, "{}", r.body);
    assert_eq!(r.body["class"], "InvalidStatusError", "{}", r.body);
    assert!(r.body["details"].as_str().unwrap_or_default().contains("running"), "{}", r.body);
    assert_eq!(pending_tokens(&tc), 0);

    host.stop().await;
    tc.stop().await
}

/// `climc server-vnc <server>`: planned as `POST webconsole/server/<server>` on the catalog's
/// `webconsole`, sent with the caller's session, printed with the URL.
#[tokio::test]
async fn climc_server_vnc_prints_the_url() -> Result<()> {
    use climc::{cli, output, plan};

    let (tc, _admin, host, _id) = running_server().await?;
    let cmds = cli::commands(&climc::resources::all());
    let m = cli::build(&cmds).try_get_matches_from(["climc", "server-vnc", "vm1"])?;
    let (name, sub) = m.subcommand().context("no subcommand")?;
    let cmd = cmds.iter().find(|c| c.name == name).context("no server-vnc")?;
    let no_files = |_: &str| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    let p = plan::plan(cmd, &cli::values(cmd, sub), &no_files).map_err(|e| anyhow::anyhow!("{e}"))?;
    let call = &p.calls[0];
    assert_eq!((call.to_string().as_str(), call.service), ("POST webconsole/server/vm1", "webconsole"));

    let session =
        cloudcommon::client::ServiceSession::new(&tc.auth_url, "sysadmin", &tc.admin_password, "system", "Default")
            .session()
            .await?;
    assert_eq!(session.service_url("webconsole")?.trim_end_matches('/'), tc.url("webconsole"));
    let req = mcclient::ApiRequest::new(mcclient::Method::Post, &["webconsole", "server", "vm1"])
        .with_body(call.body.clone().unwrap_or(json!({})));
    let answer = session.request(call.service, call.version, &req).await?;
    let text = climc::exec::render(&p.show, &answer, output::Format::Table)?;
    let token = answer["access_token"].as_str().context("access_token")?;
    assert!(text.contains(&format!("{}/websockify/?access_token={token}", tc.url("webconsole"))), "{text}");

    host.stop().await;
    tc.stop().await
}

/// The dashboard's path: the session through the gateway's raw proxy, the stream through its
/// WebSocket pass-through, both with the caller's token.
#[tokio::test]
async fn console_through_the_apigateway() -> Result<()> {
    let (tc, admin, host, id) = running_server().await?;
    let gw = tc.url("apigateway");
    let s = ok(&tc, Method::POST, &format!("{gw}/api/s/webconsole/webconsole/server/{id}"), &admin, Some(json!({})))
        .await?;
    let token = s["access_token"].as_str().context("access_token")?;
    let ws_url = format!("{gw}/api/ws/webconsole/websockify/?access_token={token}").replacen("http://", "ws://", 1);
    let mut req = ws_url.into_client_request()?;
    req.headers_mut().insert("X-Auth-Token", admin.parse()?);
    req.headers_mut().insert("Sec-WebSocket-Protocol", "binary".parse()?);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("binary"));
    assert_eq!(read_bytes(&mut ws, RFB_BANNER.len()).await?, RFB_BANNER);
    ws.send(Message::Binary(b"hello".to_vec().into())).await?;
    assert_eq!(read_bytes(&mut ws, 5).await?, b"hello");
    ws.close(None).await?;
    // The spent token is refused through the gateway too, with the console's own 401.
    let mut again = format!("{gw}/api/ws/webconsole/websockify/?access_token={token}")
        .replacen("http://", "ws://", 1)
        .into_client_request()?;
    again.headers_mut().insert("X-Auth-Token", admin.parse()?);
    match tokio_tungstenite::connect_async(again).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => {
            anyhow::bail!("a spent token opened a console through the gateway: {:?}", other.map(|(_, r)| r.status()))
        }
    }

    host.stop().await;
    tc.stop().await
}

/// A running server whose host agent does not answer: 503 from the region, passed through.
#[tokio::test]
async fn console_of_an_unreachable_host_is_unavailable() -> Result<()> {
    let (tc, admin, host, id) = running_server().await?;
    host.stop().await;
    let r = tc.call(Method::POST, &console_url(&tc, &id), Some(&admin), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert!(r.body["details"].as_str().unwrap_or_default().contains("unreachable"), "{}", r.body);
    assert_eq!(pending_tokens(&tc), 0);
    tc.stop().await
}

/// The host stopped pinging: offline, its server `unknown`; the console is 503, not 409.
#[tokio::test]
async fn console_of_a_server_on_an_offline_host_is_unavailable() -> Result<()> {
    let (tc, admin, host, id) = running_server_with(&["region.host_offline_seconds=1"]).await?;
    host.stop().await;
    wait_server(&tc, &admin, &id, "unknown").await?;
    let r = tc.call(Method::POST, &console_url(&tc, &id), Some(&admin), Some(json!({}))).await?;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert!(r.body["details"].as_str().unwrap_or_default().contains("offline"), "{}", r.body);
    tc.stop().await
}
