//! The scheduler's integration tests: a real in-process aio; hosts registered in the region
//! and read by the scheduler over HTTP through the catalog.

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use test_harness::{Resp, TestCloud};

async fn call(tc: &TestCloud, service: &str, path: &str, token: &str, body: Value) -> Result<Resp> {
    tc.call(Method::POST, &format!("{}{path}", tc.url(service)), Some(token), Some(body)).await
}

async fn ok(tc: &TestCloud, service: &str, path: &str, token: &str, body: Value) -> Result<Value> {
    let r = call(tc, service, path, token, body).await?;
    if !r.status.is_success() {
        bail!("POST {path}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

/// Registers a host with one local storage; its id.
async fn host(tc: &TestCloud, admin: &str, n: u8, cpu: i64, mem: i64) -> Result<String> {
    let body = json!({"host": {"name": format!("host{n}"), "host_type": "kvm", "access_ip": format!("10.168.0.{n}"),
        "manager_uri": format!("http://10.168.0.{n}:8885"), "cpu_count": cpu, "mem_size": mem,
        "storages": [{"mount_point": "/opt/cloud/workspace/disks", "capacity": 102400, "storage_type": "local"}]}});
    let h = ok(tc, "region", "/hosts", admin, body).await?;
    Ok(h["host"]["id"].as_str().context("host id")?.to_string())
}

fn hosts_of(v: &Value) -> Vec<String> {
    let mut h: Vec<String> =
        v["candidates"].as_array().into_iter().flatten().filter_map(|c| c["host"].as_str().map(String::from)).collect();
    h.sort();
    h
}

#[tokio::test]
async fn forecast_schedule_spread_and_reservations() -> Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.admin_token().await?;
    let h1 = host(&tc, &admin, 1, 8, 8192).await?;
    let h2 = host(&tc, &admin, 2, 8, 8192).await?;
    host(&tc, &admin, 3, 8, 2048).await?;
    ok(&tc, "region", "/wires", &admin, json!({"wire": {"name": "w1", "zone": "zone0"}})).await?;
    let net = json!({"network": {"name": "net1", "wire": "w1", "guest_ip_start": "10.20.0.2",
        "guest_ip_end": "10.20.0.250", "guest_ip_mask": 24, "guest_gateway": "10.20.0.1"}});
    ok(&tc, "region", "/networks", &admin, net).await?;
    for (i, h) in [&h1, &h2].into_iter().enumerate() {
        let nic = json!({"mac": format!("52:54:00:aa:bb:0{i}"), "wire": "w1", "bridge": "br0", "interface": "eth0"});
        ok(&tc, "region", &format!("/hosts/{h}/add-netif"), &admin, nic).await?;
    }
    // The scheduler reloads from the region on clean-cache.
    let c = ok(&tc, "scheduler", "/scheduler/clean-cache", &admin, json!({})).await?;
    assert_eq!(c["hosts"], 3, "{c}");

    // Bigger than any host: the forecast and the error both explain, per filter.
    let big = json!({"scheduler": {"vcpu_count": 2, "vmem_size": "64g", "disks": [{"size": "10g"}]}});
    let f = ok(&tc, "scheduler", "/scheduler/forecast", &admin, big.clone()).await?;
    assert_eq!((f["can_create"].as_bool(), f["allow_count"].as_u64()), (Some(false), Some(0)), "{f}");
    let reason = f["not_allow_reasons"][0].as_str().unwrap_or_default();
    assert!(reason.starts_with("memory: 3 hosts lack 65536 MB (host1: free 9830 MB under bound 1.2"), "{f}");
    let r = call(&tc, "scheduler", "/scheduler", &admin, big).await?;
    let details = r.body["details"].as_str().unwrap_or_default();
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(r.body["class"], "InsufficientResourceError", "{}", r.body);
    assert!(details.contains("memory: 3 hosts lack 65536 MB"), "{details}");
    let many_cpu = json!({"scheduler": {"vcpu_count": 100, "vmem_size": 512}});
    let f = ok(&tc, "scheduler", "/scheduler/forecast", &admin, many_cpu).await?;
    assert!(f["not_allow_reasons"][0].as_str().unwrap_or_default().starts_with("cpu: 3 hosts lack 100 vCPU"), "{f}");

    // count=2 on net1: only host1 and host2 reach its wire; one each.
    let two = json!({"scheduler": {"vcpu_count": 1, "vmem_size": "1g", "count": 2, "nets": [{"network": "net1"}],
        "disks": [{"size": 10240, "backend": "local"}]}});
    let f = ok(&tc, "scheduler", "/scheduler/forecast", &admin, two.clone()).await?;
    assert_eq!(f["can_create"], true, "{f}");
    assert_eq!(f["filtered_candidates"].as_array().map(Vec::len), Some(2), "{f}");
    let s = ok(&tc, "scheduler", "/scheduler", &admin, two).await?;
    assert_eq!(hosts_of(&s), ["host1", "host2"], "{s}");
    assert_eq!(s["candidates"][0]["storage_ids"].as_array().map(Vec::len), Some(1), "{s}");
    let sid = s["session_id"].as_str().context("session")?.to_string();
    let c = ok(&tc, "scheduler", &format!("/scheduler/clean-cache?session={sid}"), &admin, json!({})).await?;
    assert_eq!(c["released"], 2, "{c}");
    let missing = json!({"scheduler": {"vcpu_count": 1, "nets": [{"network": "nope"}]}});
    let f = ok(&tc, "scheduler", "/scheduler/forecast", &admin, missing).await?;
    assert!(f["not_allow_reasons"][0].as_str().unwrap_or_default().contains("nope"), "{f}");

    // 6000 MB fits once on host1 and once on host2: a reservation sends the next one elsewhere.
    let one = json!({"scheduler": {"vcpu_count": 1, "vmem_size": 6000, "session_id": "s1"}});
    let first = ok(&tc, "scheduler", "/scheduler", &admin, one.clone()).await?;
    let mut again = one.clone();
    again["scheduler"]["session_id"] = "s2".into();
    let second = ok(&tc, "scheduler", "/scheduler", &admin, again.clone()).await?;
    assert_ne!(hosts_of(&first), hosts_of(&second), "{first} {second}");
    again["scheduler"]["session_id"] = "s3".into();
    let r = call(&tc, "scheduler", "/scheduler", &admin, again.clone()).await?;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert!(r.body["details"].as_str().unwrap_or_default().contains("memory: 3 hosts lack 6000 MB"), "{}", r.body);
    // Releasing s1 on its host frees it again.
    let h = first["candidates"][0]["host_id"].as_str().context("host_id")?;
    ok(&tc, "scheduler", &format!("/scheduler/clean-cache/{h}?session=s1"), &admin, json!({})).await?;
    let third = ok(&tc, "scheduler", "/scheduler", &admin, again).await?;
    assert_eq!(hosts_of(&third), hosts_of(&first));

    // Scheduling reserves capacity: only administrators (the region's account) may; anyone
    // may forecast.
    let alice = tc.member(&admin, "alice", "proj-a").await?;
    let r = call(&tc, "scheduler", "/scheduler", &alice, one.clone()).await?;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    let f = ok(&tc, "scheduler", "/scheduler/forecast", &alice, one).await?;
    assert_eq!(f["can_create"], false, "every host is reserved: {f}");
    tc.stop().await
}
