//! The database allocator: no address twice under concurrency, clean exhaustion, hold-back.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use apis::Error;
use cloudcommon::resource::store;
use region::ipam::Request;

use crate::common::*;

#[tokio::test]
async fn concurrent_allocations_never_share_an_address() -> Result<()> {
    let (tc, admin) = start(&["ip_hold_back_seconds=2"]).await?;
    wire(&tc, &admin, "w0").await?;
    let r = network(&tc, &admin, "w0", "net0", ("10.9.0.2", "10.9.0.254", 24, "10.9.0.1")).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let net_id = r.body["network"]["id"].as_str().context("id")?.to_string();
    ok(
        &tc,
        Method::POST,
        "/networks/net0/reserve-ip",
        &admin,
        Some(json!({"ips": ["10.9.0.254", "10.9.0.10", "10.9.0.11"]})),
    )
    .await?;
    let svc = tc.state("region").context("region state")?;
    let reg = region::region(&svc)?;
    let net = store::get_by_id(&svc.db, &region::networks::network_spec(), &net_id).await?.context("net")?;

    // 300 concurrent asks for the 250 free addresses.
    let mut tasks = vec![];
    for i in 0..300 {
        let (svc, reg, net) = (svc.clone(), reg.clone(), net.clone());
        tasks.push(tokio::spawn(async move {
            reg.alloc.allocate(&svc.db, &reg, &net, ("guestnetwork", &format!("g{i}")), &Request::default(), true).await
        }));
    }
    let (mut ips, mut macs, mut exhausted) = (HashSet::new(), HashSet::new(), 0);
    for t in tasks {
        match t.await? {
            Ok(a) => {
                assert!(ips.insert(a.ip_addr.clone()), "{} handed out twice", a.ip_addr);
                let mac = a.mac_addr.context("mac")?;
                assert!(mac.starts_with("00:22:"), "{mac}");
                assert!(macs.insert(mac));
            }
            Err(Error::InsufficientResource(m)) => {
                assert!(m.contains("net0 is out of IP addresses"), "{m}");
                exhausted += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ips.len(), exhausted), (250, 50));
    for reserved in ["10.9.0.254", "10.9.0.10", "10.9.0.11"] {
        assert!(!ips.contains(reserved));
    }
    let shown = ok(&tc, Method::GET, "/networks/net0", &admin, None).await?;
    assert_eq!(shown["network"]["ports_used"], 253);
    fails(&tc, Method::DELETE, "/networks/net0", &admin, json!({}), 409, "250 addresses in use").await?;

    // A freed address is held back, then handed out again; a reserved one on request.
    assert!(!reg.alloc.release(&svc.db, &net_id, "10.9.0.100", "g-none", true).await?);
    let owner = {
        let rows =
            svc.db.raw_query("SELECT owner_id FROM ipallocations WHERE ip_addr = ?", vec!["10.9.0.100".into()]).await?;
        rows[0].try_get_by_index::<String>(0)?
    };
    assert!(reg.alloc.release(&svc.db, &net_id, "10.9.0.100", &owner, true).await?);
    let e =
        reg.alloc.allocate(&svc.db, &reg, &net, ("guestnetwork", "late"), &Request::default(), true).await.unwrap_err();
    assert!(e.to_string().contains("1 recently freed"), "{e}");
    wait_for(CEILING, || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        reg.alloc.allocate(&svc.db, &reg, &net, ("guestnetwork", "late"), &Request::default(), true).await.is_ok()
    })
    .await?;
    let want = Request { reserved: true, preferred: Some(region::ipam::parse_ip("ip", "10.9.0.10")?), policy: None };
    let a = reg.alloc.allocate(&svc.db, &reg, &net, ("guestnetwork", "special"), &want, true).await?;
    assert_eq!(a.ip_addr, "10.9.0.10");
    assert_eq!(ok(&tc, Method::GET, "/reservedips", &admin, None).await?["total"], 2);
    let taken = Request { preferred: Some(region::ipam::parse_ip("ip", "10.9.0.50")?), ..Default::default() };
    let e = reg.alloc.allocate(&svc.db, &reg, &net, ("guestnetwork", "x"), &taken, true).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    tc.stop().await
}
