//! /api/v2 forwarding: list re-wrap, unwrapped objects, errors, batch actions, isolation, upload.

use anyhow::{Context, Result};

use crate::common::*;

fn net(name: &str, third: u8) -> Value {
    json!({"network": {"name": name, "wire": "bcast0", "guest_ip_start": format!("10.{third}.0.2"),
        "guest_ip_end": format!("10.{third}.0.9"), "guest_ip_mask": 24, "guest_gateway": format!("10.{third}.0.1")}})
}

#[tokio::test]
async fn lists_objects_errors_and_batch_actions() -> Result<()> {
    let (tc, _admin) = start().await?;
    let mut b = Browser::new(&tc);
    b.must_login("sysadmin", &tc.admin_password).await?;

    let created = b.ok(Method::POST, "/api/v2/networks", Some(net("net-a", 31))).await?;
    assert_eq!(created["name"], "net-a", "single objects are unwrapped: {created}");
    b.ok(Method::POST, "/api/v2/networks", Some(net("net-b", 32))).await?;
    let list = b.ok(Method::GET, "/api/v2/networks?limit=2&offset=1&order_by=name&order=asc", None).await?;
    assert_eq!(list["total"], 3, "{list}");
    assert_eq!((list["limit"].as_u64(), list["offset"].as_u64()), (Some(2), Some(1)));
    assert_eq!(names(&list), ["net-a", "net-b"]);
    assert!(list.get("networks").is_none());
    let filtered = b.ok(Method::GET, "/api/v2/networks?filter=name.startswith('net-')&search=b", None).await?;
    assert_eq!(names(&filtered), ["net-b"]);
    let id = created["id"].as_str().context("id")?;
    let one = b.ok(Method::GET, &format!("/api/v2/networks/{id}"), None).await?;
    assert_eq!((one["id"].as_str(), one["wire"].as_str()), (Some(id), Some("bcast0")));
    let in_wire = b.ok(Method::GET, "/api/v2/wires/bcast0/networks", None).await?;
    assert_eq!(names(&in_wire), ["default", "net-a", "net-b"]);

    // Errors pass through with their status and Cloudpods body.
    assert_error(&b.send(Method::GET, "/api/v2/networks/nope", None).await?, 404, "ResourceNotFoundError");
    let mut bad = net("net-bad", 33);
    bad["network"]["guest_ip_mask"] = json!(40);
    let r = b.send(Method::POST, "/api/v2/networks", Some(bad)).await?;
    assert_error(&r, 400, "InputParameterError");
    assert!(r.body["details"].as_str().unwrap_or_default().contains("guest_ip_mask"), "{}", r.body);
    assert_error(&b.send(Method::GET, "/api/v1/nothing", None).await?, 404, "ResourceNotFoundError");

    // Other services: identity, logger.
    assert!(names(&b.ok(Method::GET, "/api/v2/users", None).await?).contains(&"sysadmin".to_string()));
    assert!(names(&b.ok(Method::GET, "/api/v2/projects", None).await?).contains(&"system".to_string()));
    assert!(b.ok(Method::GET, "/api/v2/actions?limit=5", None).await?["data"].is_array());
    let raw = b.ok(Method::GET, "/api/s/compute_v2/networks?limit=1", None).await?;
    assert!(raw["networks"].is_array(), "the raw proxy leaves answers as they are: {raw}");

    // Batch actions: one call per id, each with its own status.
    let mut ids = vec![];
    for u in ["u-one", "u-two"] {
        let user =
            b.ok(Method::POST, "/api/v2/users", Some(json!({"user": {"name": u, "password": "Pw-12345678"}}))).await?;
        ids.push(user["id"].as_str().context("id")?.to_string());
    }
    let q = format!("id={}&id={}&id=missing", ids[0], ids[1]);
    let r = b.ok(Method::POST, &format!("/api/v2/users/disable?{q}"), Some(json!({}))).await?;
    let items = r.as_array().context("batch answer is an array")?;
    assert_eq!(items.len(), 3, "{r}");
    assert_eq!((items[0]["status"].as_u64(), items[1]["status"].as_u64()), (Some(200), Some(200)), "{r}");
    assert_eq!(items[2]["status"], 404);
    assert_eq!(items[2]["data"]["class"], "ResourceNotFoundError");
    for id in &ids {
        assert_eq!(b.ok(Method::GET, &format!("/api/v2/users/{id}"), None).await?["enabled"], false);
    }
    let r = b.ok(Method::DELETE, &format!("/api/v2/users?id={}&id={}", ids[0], ids[1]), None).await?;
    assert!(r.as_array().context("array")?.iter().all(|i| i["status"] == 200), "{r}");
    assert_error(&b.send(Method::GET, &format!("/api/v2/users/{}", ids[0]), None).await?, 404, "ResourceNotFoundError");
    tc.stop().await
}

#[tokio::test]
async fn another_project_sees_nothing_of_the_first() -> Result<()> {
    let (tc, admin) = start().await?;
    tc.member(&admin, "alice", "proj-a").await?;
    tc.member(&admin, "bob", "proj-b").await?;
    let mut a = Browser::new(&tc);
    a.must_login("alice", "alice-Pw-1234").await?;
    let mut b = Browser::new(&tc);
    b.must_login("bob", "bob-Pw-1234").await?;

    a.ok(Method::POST, "/api/v2/networks", Some(net("neta", 41))).await?;
    a.ok(Method::POST, "/api/v2/secgroups", Some(json!({"secgroup": {"name": "web"}}))).await?;
    a.ok(Method::POST, "/api/v2/keypairs", Some(json!({"keypair": {"name": "ka"}}))).await?;
    assert_eq!(names(&a.ok(Method::GET, "/api/v2/networks", None).await?), ["default", "neta"]);

    assert_eq!(names(&b.ok(Method::GET, "/api/v2/networks", None).await?), ["default"]);
    assert!(!names(&b.ok(Method::GET, "/api/v2/secgroups", None).await?).contains(&"web".to_string()));
    assert!(names(&b.ok(Method::GET, "/api/v2/keypairs", None).await?).is_empty());
    assert_error(&b.send(Method::GET, "/api/v2/networks/neta", None).await?, 404, "ResourceNotFoundError");
    assert_error(&b.send(Method::DELETE, "/api/v2/networks/neta", None).await?, 404, "ResourceNotFoundError");
    let r = b.send(Method::POST, "/api/v2/users", Some(json!({"user": {"name": "evil"}}))).await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_error_body(&r);
    assert_eq!(a.ok(Method::GET, "/api/v2/networks/neta", None).await?["name"], "neta");
    tc.stop().await
}

#[tokio::test]
async fn image_upload_streams_through() -> Result<()> {
    let (tc, _admin) = start().await?;
    let mut b = Browser::new(&tc);
    b.must_login("sysadmin", &tc.admin_password).await?;
    let bytes = vec![0u8; 4 << 20];
    let stream =
        futures::stream::iter(bytes.chunks(64 << 10).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let req = b
        .builder(Method::POST, "/api/v2/images")
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", bytes.len().to_string())
        .header("X-Image-Meta-Name", "gw-img")
        .header("X-Image-Meta-Disk_format", "raw")
        .body(reqwest::Body::wrap_stream(stream));
    let csrf = b.csrf();
    let r = b.finish(req, csrf.as_deref()).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "gw-img");
    assert_eq!(r.body["size"].as_u64(), Some(bytes.len() as u64));
    let id = r.body["id"].as_str().context("id")?.to_string();
    let list = b.ok(Method::GET, "/api/v2/images?name=gw-img", None).await?;
    assert_eq!(list["total"], 1, "{list}");
    let head = b.finish(b.builder(Method::HEAD, &format!("/api/v2/images/{id}")), None).await?;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("x-image-meta-name").as_deref(), Some("gw-img"));
    let path = format!("/api/v2/images/{id}");
    let mut status = String::new();
    for _ in 0..1500 {
        status = b.ok(Method::GET, &path, None).await?["status"].as_str().unwrap_or_default().to_string();
        if status == "active" || status == "killed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "active");
    let r = b.send(Method::DELETE, &format!("/api/v2/images/{id}"), None).await?;
    assert_error(&r, 403, "ForbiddenError");
    b.ok(Method::PUT, &format!("/api/v2/images/{id}"), Some(json!({"image": {"protected": false}}))).await?;
    b.ok(Method::DELETE, &format!("/api/v2/images/{id}"), None).await?;
    tc.stop().await
}

#[tokio::test]
async fn hosts_and_storages_with_capacity() -> Result<()> {
    use test_harness::simhost::{SimHost, SimHostSpec};
    let (tc, _admin) = start().await?;
    let h = SimHost::start(&tc.sim_target(), SimHostSpec::new("gw-sim1", 8, 16384, 100)).await?;
    let mut b = Browser::new(&tc);
    b.must_login("sysadmin", &tc.admin_password).await?;
    let hosts = b.ok(Method::GET, "/api/v2/hosts?order_by=name&order=asc", None).await?;
    let row = hosts["data"]
        .as_array()
        .context("data")?
        .iter()
        .find(|r| r["id"] == h.host_id.as_str())
        .context("host listed")?;
    assert_eq!(
        (row["host_status"].as_str(), row["cpu_count"].as_i64(), row["mem_size"].as_i64()),
        (Some("online"), Some(8), Some(16384)),
        "{row}"
    );
    let st = b.ok(Method::GET, &format!("/api/v2/hosts/{}/storages", h.host_id), None).await?;
    assert_eq!(st["total"], 1, "{st}");
    assert_eq!(st["data"][0]["capacity"].as_i64(), Some(100 * 1024));
    let all = b.ok(Method::GET, "/api/v2/storages", None).await?;
    assert!(all["data"].as_array().context("data")?.iter().any(|s| s["id"] == h.storage_id.as_str()), "{all}");
    h.stop().await;
    tc.stop().await
}
