//! Host registration, heartbeat, the offline reconciler, actions, NICs, storages, schedtags.

use anyhow::{Context, Result};

use crate::common::*;

fn registration(name: &str) -> Value {
    json!({"host": {"name": name, "host_type": "kvm", "access_ip": "10.168.0.5", "access_mac": "52:54:00:AA:BB:01",
        "manager_uri": "http://10.168.0.5:8885", "cpu_count": 16, "node_count": 1, "mem_size": 65536,
        "storages": [{"mount_point": "/opt/cloud/workspace/disks", "capacity": 1024000, "storage_type": "local",
                      "medium_type": "ssd"}]}})
}

#[tokio::test]
async fn registration_ping_offline_and_actions() -> Result<()> {
    let (tc, admin) = start(&["host_offline_seconds=1"]).await?;
    let h = ok(&tc, Method::POST, "/hosts", &admin, Some(registration("host1"))).await?;
    let host = &h["host"];
    let id = host["id"].as_str().context("id")?.to_string();
    assert_eq!(
        (host["host_type"].as_str(), host["host_status"].as_str(), host["zone"].as_str()),
        (Some("hypervisor"), Some("online"), Some("zone0"))
    );
    assert_eq!((host["cpu_cmtbound"].as_f64(), host["mem_cmtbound"].as_f64()), (Some(8.0), Some(1.2)));
    assert_eq!(host["access_mac"], "52:54:00:aa:bb:01");
    let st = ok(&tc, Method::GET, &format!("/hosts/{id}/storages"), &admin, None).await?;
    assert_eq!(st["total"], 1);
    let storage = &st["storages"][0];
    assert_eq!(
        (storage["storage_type"].as_str(), storage["capacity"].as_i64(), storage["cmtbound"].as_f64()),
        (Some("local"), Some(1024000), Some(1.0))
    );
    assert!(!storage["storagecache"].as_str().unwrap_or_default().is_empty());
    let sid = storage["id"].as_str().context("sid")?;
    assert_eq!(
        names(&ok(&tc, Method::GET, &format!("/storages/{sid}/hosts"), &admin, None).await?, "hosts"),
        ["host1"]
    );

    // Bad registrations.
    let mut b = registration("host2");
    b["host"].as_object_mut().context("obj")?.remove("access_ip");
    fails(&tc, Method::POST, "/hosts", &admin, b, 400, "access_ip").await?;
    let mut b = registration("host2");
    b["host"]["manager_uri"] = "ftp://x".into();
    fails(&tc, Method::POST, "/hosts", &admin, b, 400, "manager_uri").await?;
    let mut b = registration("host2");
    b["host"]["storages"][0]["storage_type"] = "floppy".into();
    fails(&tc, Method::POST, "/hosts", &admin, b, 400, "storages").await?;
    let m = tc.member(&admin, "alice", "proj-a").await?;
    fails(&tc, Method::POST, "/hosts", &m, registration("host3"), 403, "system").await?;
    assert_eq!(ok(&tc, Method::GET, "/hosts", &admin, None).await?["total"], 1);

    // No ping within host_offline_seconds: offline; a ping brings it back.
    let offline = || async {
        ok(&tc, Method::GET, &format!("/hosts/{id}"), &admin, None)
            .await
            .map(|h| h["host"]["host_status"] == "offline")
            .unwrap_or(false)
    };
    wait_for(CEILING, offline).await?;
    let p = ok(
        &tc,
        Method::POST,
        &format!("/hosts/{id}/ping"),
        &admin,
        Some(json!({"memory_used_mb": 1024,
        "storage_stats": [{"storage_id": sid, "actual_capacity_used_mb": 500}]})),
    )
    .await?;
    assert_eq!(p["host_status"], "online");
    let shown = ok(&tc, Method::GET, &format!("/hosts/{id}"), &admin, None).await?;
    assert_eq!(
        (shown["host"]["host_status"].as_str(), shown["host"]["memory_used_mb"].as_i64()),
        (Some("online"), Some(1024))
    );
    assert_eq!(
        ok(&tc, Method::GET, &format!("/storages/{sid}"), &admin, None).await?["storage"]["actual_capacity_used"],
        500
    );
    let events = ok(&tc, Method::GET, &format!("/events?obj_id={id}"), &admin, None).await?;
    let actions: Vec<&str> =
        events["events"].as_array().context("events")?.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"offline") && actions.contains(&"online"), "{actions:?}");
    assert!(!actions.contains(&"ping"), "{actions:?}");

    // Actions.
    let d = ok(&tc, Method::POST, &format!("/hosts/{id}/disable"), &admin, None).await?;
    assert_eq!(d["host"]["enabled"], false);
    let mnt = ok(&tc, Method::POST, &format!("/hosts/{id}/maintenance"), &admin, None).await?;
    assert_eq!(mnt["host"]["is_maintenance"], true);
    ok(&tc, Method::POST, &format!("/hosts/{id}/unmaintenance"), &admin, None).await?;
    ok(&tc, Method::POST, &format!("/hosts/{id}/enable"), &admin, None).await?;
    fails(&tc, Method::DELETE, &format!("/hosts/{id}"), &admin, json!({}), 409, "disable it first").await?;
    ok(
        &tc,
        Method::POST,
        &format!("/hosts/{id}/add-netif"),
        &admin,
        Some(json!({"mac": "52:54:00:aa:bb:01", "wire": "bcast0", "bridge": "br0", "interface": "eth0"})),
    )
    .await?;
    fails(
        &tc,
        Method::POST,
        &format!("/hosts/{id}/add-netif"),
        &admin,
        json!({"mac": "nomac", "wire": "bcast0"}),
        400,
        "mac",
    )
    .await?;
    let nics = ok(&tc, Method::GET, &format!("/hosts/{id}/netinterfaces"), &admin, None).await?;
    assert_eq!((nics["total"].as_i64(), nics["netinterfaces"][0]["wire"].as_str()), (Some(1), Some("bcast0")));
    assert_eq!(ok(&tc, Method::GET, "/wires/bcast0/netinterfaces", &admin, None).await?["total"], 1);
    ok(&tc, Method::POST, &format!("/hosts/{id}/remove-netif"), &admin, Some(json!({"mac": "52:54:00:aa:bb:01"})))
        .await?;
    assert_eq!(ok(&tc, Method::GET, &format!("/hosts/{id}/netinterfaces"), &admin, None).await?["total"], 0);

    // Schedtags.
    ok(
        &tc,
        Method::POST,
        "/schedtags",
        &admin,
        Some(json!({"schedtag": {"name": "ssd", "default_strategy": "prefer"}})),
    )
    .await?;
    fails(
        &tc,
        Method::POST,
        "/schedtags",
        &admin,
        json!({"schedtag": {"name": "x", "default_strategy": "maybe"}}),
        400,
        "default_strategy",
    )
    .await?;
    let t = ok(&tc, Method::POST, "/schedtags/ssd/set-hosts", &admin, Some(json!({"host": ["host1"]}))).await?;
    assert_eq!(t["schedtag"]["host_count"], 1);
    assert_eq!(names(&ok(&tc, Method::GET, "/schedtags/ssd/hosts", &admin, None).await?, "hosts"), ["host1"]);
    assert_eq!(ok(&tc, Method::GET, "/hosts/host1", &admin, None).await?["host"]["schedtags"][0]["name"], "ssd");
    tc.stop().await
}
