//! The happy paths: raw upload with headers, JSON create + PUT, ISO, probe results,
//! sub-formats, HEAD/GET with `?format=`, ranges, copy-from.

use anyhow::{Context, Result};

use crate::common::*;

#[tokio::test]
async fn upload_probe_convert_and_download() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let dir = Scratch::new("upload");
    let raw = make_raw(&dir, "disk.raw", 8)?;
    let qcow = dir.path("disk.qcow2");
    convert(&raw, &qcow, "qcow2")?;
    let qcow_bytes = std::fs::read(&qcow)?;

    // 1. One request: raw body + X-Image-Meta-* headers, properties included.
    let r = upload(
        &tc,
        &admin,
        qcow_bytes.clone(),
        &[
            ("X-Image-Meta-Name", "cirros-like"),
            ("X-Image-Meta-Disk_format", "qcow2"),
            ("X-Image-Meta-Min_ram", "256"),
            ("X-Image-Meta-Property-Os_type", "Linux"),
            ("X-Image-Meta-Property-Os_distribution", "Debian"),
        ],
    )
    .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let img = &r.body["image"];
    let id = img["id"].as_str().context("id")?.to_string();
    assert!(["saved", "probing", "converting", "active"].contains(&img["status"].as_str().unwrap_or("")), "{img}");
    assert_eq!(img["size"].as_u64(), Some(qcow_bytes.len() as u64));
    assert_eq!(img["checksum"].as_str(), Some(md5_hex(&qcow_bytes).as_str()));
    let img = wait_status(&tc, &admin, &id, &["active"]).await?;
    assert_eq!(
        (img["disk_format"].as_str(), img["min_disk"].as_u64(), img["min_ram"].as_u64()),
        (Some("qcow2"), Some(8), Some(256))
    );
    assert_eq!(img["fast_hash"].as_str().map(str::len), Some(32), "{img}");
    assert_eq!(img["properties"]["os_type"], "Linux");
    assert_eq!(img["properties"]["os_distribution"], "Debian");
    assert!(img["location"].as_str().is_some_and(|l| l.starts_with("file://")), "{img}");
    let subs = img["subformats"].as_array().context("subformats")?;
    assert_eq!(subs.len(), 1, "{img}");
    assert_eq!((subs[0]["format"].as_str(), subs[0]["status"].as_str()), (Some("qcow2"), Some("active")));

    // HEAD and GET by format, with the checksum in the headers; ranges.
    let h = send(tc.http.head(format!("{}/images/{id}?format=qcow2", tc.glance_url())).header("X-Auth-Token", &admin))
        .await?;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("x-image-meta-checksum"), Some(md5_hex(&qcow_bytes)));
    assert_eq!(h.header("x-image-meta-status").as_deref(), Some("active"));
    assert_eq!(h.header("x-image-meta-disk_format").as_deref(), Some("qcow2"));
    assert_eq!(h.header("x-image-meta-property-os_type").as_deref(), Some("Linux"));
    let (bytes, resp) = download(&tc, &admin, &id, "format=qcow2").await?;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(md5_hex(&bytes), md5_hex(&qcow_bytes));
    assert_eq!(resp.header("x-image-meta-size"), Some(qcow_bytes.len().to_string()));
    let part = send(
        tc.http
            .get(format!("{}/images/{id}?download=true", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("Range", "bytes=0-3"),
    )
    .await?;
    assert_eq!(
        (part.status, part.header("content-range")),
        (StatusCode::PARTIAL_CONTENT, Some(format!("bytes 0-3/{}", qcow_bytes.len())))
    );
    let (_, missing) = download(&tc, &admin, &id, "format=vmdk").await?;
    assert_error(&missing, 404, "ResourceNotFoundError");

    // 2. JSON create (queued), then PUT the bytes of a raw disk: converted to qcow2.
    let created = ok(
        &tc,
        Method::POST,
        "/images",
        &admin,
        Some(json!({"image": {"name": "rawdisk", "properties": {"os_arch": "x86_64"}}})),
    )
    .await?;
    let raw_id = created["image"]["id"].as_str().context("id")?.to_string();
    assert_eq!(created["image"]["status"], "queued");
    assert_eq!(created["image"]["os_arch"], "x86_64");
    let raw_bytes = std::fs::read(&raw)?;
    let put = send(
        tc.http
            .put(format!("{}/images/{raw_id}", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("Content-Type", "application/octet-stream")
            .body(raw_bytes.clone()),
    )
    .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let img = wait_status(&tc, &admin, &raw_id, &["active"]).await?;
    assert_eq!((img["disk_format"].as_str(), img["min_disk"].as_u64()), (Some("raw"), Some(8)));
    let formats: Vec<&str> =
        img["subformats"].as_array().into_iter().flatten().filter_map(|s| s["format"].as_str()).collect();
    assert_eq!(formats, ["qcow2", "raw"], "{img}");
    let (converted, resp) = download(&tc, &admin, &raw_id, "format=qcow2").await?;
    let conv_path = dir.path("converted.qcow2");
    std::fs::write(&conv_path, &converted)?;
    assert_eq!(resp.header("x-image-meta-checksum"), Some(md5_hex(&converted)));
    let info: Value = serde_json::from_str(&qemu_img(&["info", "--output=json", conv_path.to_str().context("p")?])?)?;
    assert_eq!(info["format"], "qcow2");
    qemu_img(&["compare", "-f", "raw", "-F", "qcow2", raw.to_str().context("p")?, conv_path.to_str().context("p")?])?;
    // Data can only go to a queued image.
    let again = send(
        tc.http
            .put(format!("{}/images/{raw_id}", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("Content-Type", "application/octet-stream")
            .body(vec![1u8; 10]),
    )
    .await?;
    assert_error(&again, 409, "InvalidStatusError");

    // 3. An ISO: detected by its volume descriptor, kept as is.
    let iso = std::fs::read(make_iso(&dir, "boot.iso")?)?;
    let iso_id = upload_ok(&tc, &admin, "installer", "iso", iso.clone()).await?;
    let img = wait_status(&tc, &admin, &iso_id, &["active"]).await?;
    assert_eq!(img["disk_format"], "iso");
    let formats: Vec<&str> =
        img["subformats"].as_array().into_iter().flatten().filter_map(|s| s["format"].as_str()).collect();
    assert_eq!(formats, ["iso"]);
    let (bytes, _) = download(&tc, &admin, &iso_id, "format=iso").await?;
    assert_eq!(bytes, iso);

    // Lists, filters, metadata updates.
    let list = ok(&tc, Method::GET, "/images?disk_format=iso", &admin, None).await?;
    assert_eq!(list["total"], 1, "{list}");
    let list = ok(&tc, Method::GET, "/images", &admin, None).await?;
    assert_eq!(list["total"], 3);
    let upd = ok(
        &tc,
        Method::PUT,
        &format!("/images/{id}"),
        &admin,
        Some(json!({"image": {"min_disk": 20, "properties": {"os_version": "12", "os_distribution": ""}}})),
    )
    .await?;
    assert_eq!(upd["image"]["min_disk"], 20);
    assert_eq!(upd["image"]["properties"], json!({"os_type": "Linux", "os_version": "12"}));
    let bad =
        call(&tc, Method::POST, "/images", &admin, Some(json!({"image": {"name": "x", "disk_format": "floppy"}})))
            .await?;
    assert_error(&bad, 400, "InputParameterError");
    let events = ok(&tc, Method::GET, &format!("/events?obj_id={id}"), &admin, None).await?;
    let actions: Vec<&str> =
        events["events"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"save") && actions.contains(&"ImagePipelineTask"), "{actions:?}");
    tc.stop().await
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving `body` at any path but `/missing` (404).
async fn serve_once(body: Vec<u8>) -> Result<(String, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let h = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = vec![0u8; 4096];
                let n = s.read(&mut req).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&req[..n]).to_string();
                if head.starts_with("GET /missing") {
                    let _ =
                        s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    return;
                }
                let hdr = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(hdr.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    Ok((format!("http://{addr}"), h))
}

#[tokio::test]
async fn copy_from_url() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let dir = Scratch::new("copy");
    let raw = make_raw(&dir, "disk.raw", 4)?;
    let qcow = dir.path("disk.qcow2");
    convert(&raw, &qcow, "qcow2")?;
    let bytes = std::fs::read(&qcow)?;
    let (base, server) = serve_once(bytes.clone()).await?;

    let url = format!("{base}/images/disk.qcow2");
    let r = send(
        tc.http
            .post(format!("{}/images", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("X-Image-Meta-Name", "copied")
            .header("x-glance-api-copy-from", url),
    )
    .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.body["image"]["id"].as_str().context("id")?.to_string();
    let img = wait_status(&tc, &admin, &id, &["active"]).await?;
    assert_eq!(img["checksum"].as_str(), Some(md5_hex(&bytes).as_str()));
    assert_eq!((img["disk_format"].as_str(), img["min_disk"].as_u64()), (Some("qcow2"), Some(4)));

    // An answer that is not 2xx: the image is killed with the reason.
    let r = send(
        tc.http
            .post(format!("{}/images", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("X-Image-Meta-Name", "nothing-there")
            .header("x-glance-api-copy-from", format!("{base}/missing")),
    )
    .await?;
    let id = r.body["image"]["id"].as_str().context("id")?.to_string();
    let img = wait_status(&tc, &admin, &id, &["killed"]).await?;
    assert!(img["reason"].as_str().is_some_and(|m| m.contains("404")), "{img}");
    let r = send(
        tc.http
            .post(format!("{}/images", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("X-Image-Meta-Name", "bad-url")
            .header("x-glance-api-copy-from", "file:///etc/passwd"),
    )
    .await?;
    assert_error(&r, 400, "InputParameterError");
    server.abort();
    tc.stop().await
}
