//! `cargo xtask bench gateway`: what the apigateway adds to a call, on a real `cloudpods aio`
//! started as a child process.
//!
//! ```text
//! cloudpods aio --port-offset 15000 (region 45888, apigateway 45300); sysadmin token
//! three keep-alive connections, one request at a time, interleaved round by round so the
//! three series see the same machine:
//!   direct   GET region  /networks?limit=20            X-Auth-Token
//!   bearer   GET gateway /api/v2/networks?limit=20     X-Auth-Token       (catalog, forward,
//!                                                                          list re-wrap)
//!   cookie   GET gateway /api/v2/networks?limit=20     session cookie     (+ cookie open)
//!   warm-up 100 rounds, then --gateway-count rounds; p50/p99 of each series;
//!   added = gateway percentile - direct percentile
//! ```
//! Target (apigateway issue): added p50 < 2 ms. A missed target prints `MISSED`; the exit
//! status stays 0 (a report, not a test).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::bench::{Api, PORT_OFFSET, Server, connect, percentile_ms, send, verdict};

const REGION_PORT: u16 = 30888 + PORT_OFFSET;
const GATEWAY_PORT: u16 = 30300 + PORT_OFFSET;
const KEYSTONE_PORT: u16 = 30500 + PORT_OFFSET;
const WARMUP: usize = 100;
const TARGET_ADDED_P50_MS: f64 = 2.0;

pub async fn run(bin: &Path, count: usize, keep: bool) -> Result<()> {
    ensure!(count > 0, "--gateway-count must be positive");
    let keystone = Api::new(KEYSTONE_PORT);
    let mut server = Server::spawn(bin, keep)?;
    let r = measure(&mut server, &keystone, count).await;
    if r.is_err() {
        eprintln!("--- aio log (last lines):\n{}", server.log_tail());
    }
    server.stop().await;
    r
}

fn get(api: &Api, path: &str, token: Option<&str>, cookie: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = api.request(Method::GET, path, token, None);
    if let Some(c) = cookie {
        req.headers_mut().insert(http::header::COOKIE, c.parse().expect("a cookie is a header value"));
    }
    req
}

async fn measure(server: &mut Server, keystone: &Api, count: usize) -> Result<()> {
    server.wait_ready(keystone).await?;
    let (user, password) = server.admin_credentials()?;
    let token = keystone.token(&user, &password, "system").await?;
    let region = Api::new(REGION_PORT);
    let gateway = Api::new(GATEWAY_PORT);

    // A browser session: log in through the gateway, keep its session cookie.
    let login = gateway
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": user, "password": password})))
        .await?;
    ensure!(login.status == StatusCode::OK, "gateway login: {} {}", login.status, String::from_utf8_lossy(&login.body));
    let cookie = login
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|v| v.starts_with("cloudpods_session="))
        .context("no session cookie")?
        .to_string();

    let mut conns = [connect(region.addr).await?, connect(gateway.addr).await?, connect(gateway.addr).await?];
    let mut series: [Vec<Duration>; 3] = [vec![], vec![], vec![]];
    let path_direct = "/networks?limit=20";
    let path_gateway = "/api/v2/networks?limit=20";
    for round in 0..WARMUP + count {
        for (i, conn) in conns.iter_mut().enumerate() {
            let req = match i {
                0 => get(&region, path_direct, Some(&token), None),
                1 => get(&gateway, path_gateway, Some(&token), None),
                _ => get(&gateway, path_gateway, None, Some(&cookie)),
            };
            let t0 = Instant::now();
            let r = send(conn, req).await?;
            let took = t0.elapsed();
            ensure!(r.status == StatusCode::OK, "series {i}: {} {}", r.status, String::from_utf8_lossy(&r.body));
            if round >= WARMUP {
                series[i].push(took);
            }
        }
    }
    for s in &mut series {
        s.sort_unstable();
    }
    let p = |i: usize, q: f64| percentile_ms(&series[i], q);
    println!("\napigateway: added latency over a direct region call ({count} rounds, one request at a time)");
    println!("  {:<38} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    for (i, name) in
        ["direct  GET region /networks", "bearer  GET gateway /api/v2/networks", "cookie  GET gateway /api/v2/networks"]
            .iter()
            .enumerate()
    {
        println!("  {:<38} {:>9.3} {:>9.3}", name, p(i, 0.5), p(i, 0.99));
    }
    for (i, name) in [(1, "added (bearer)"), (2, "added (cookie session)")] {
        let added50 = p(i, 0.5) - p(0, 0.5);
        let added99 = p(i, 0.99) - p(0, 0.99);
        println!(
            "  {:<38} {:>9.3} {:>9.3}   target p50 < {TARGET_ADDED_P50_MS} ms: {}",
            name,
            added50,
            added99,
            verdict(added50 < TARGET_ADDED_P50_MS)
        );
    }
    Ok(())
}
