//! What must never become active: truncated or corrupt images, images with a backing
//! file; and a connection dropped mid-upload, which leaves `killed` and no file.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test]
async fn corrupt_truncated_and_backed_images_fail() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let dir = Scratch::new("corrupt");
    let raw = make_raw(&dir, "disk.raw", 8)?;
    let qcow = dir.path("disk.qcow2");
    convert(&raw, &qcow, "qcow2")?;
    let full = std::fs::read(&qcow)?;

    // Truncated: the header is intact, qemu-img check finds the missing clusters.
    let id = upload_ok(&tc, &admin, "truncated", "qcow2", full[..full.len() * 2 / 3].to_vec()).await?;
    let img = wait_status(&tc, &admin, &id, &["save_fail", "active"]).await?;
    assert_eq!(img["status"], "save_fail", "{img}");
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("corrupt or truncated")), "{img}");
    let (_, r) = download(&tc, &admin, &id, "download=true").await?;
    assert_error(&r, 409, "InvalidStatusError");
    let events = ok(&tc, Method::GET, &format!("/events?obj_id={id}&action=save_fail"), &admin, None).await?;
    assert_eq!(events["total"], 1, "the reason is an event too: {events}");

    // Garbage behind a qcow2 magic: qemu-img info refuses it.
    let mut junk = b"QFI\xfb".to_vec();
    junk.extend(std::iter::repeat_n(7u8, 70_000));
    let id = upload_ok(&tc, &admin, "junk", "qcow2", junk).await?;
    let img = wait_status(&tc, &admin, &id, &["save_fail", "active"]).await?;
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("not a usable disk image")), "{img}");

    // A backing file would let an image read the server's files.
    let backed = dir.path("backed.qcow2");
    qemu_img(&["create", "-f", "qcow2", "-F", "raw", "-b", raw.to_str().context("p")?, backed.to_str().context("p")?])?;
    let id = upload_ok(&tc, &admin, "backed", "qcow2", std::fs::read(&backed)?).await?;
    let img = wait_status(&tc, &admin, &id, &["save_fail", "active"]).await?;
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("backing file")), "{img}");

    // A failed image can take its data again once fixed.
    let put = send(
        tc.http
            .put(format!("{}/images/{id}", tc.glance_url()))
            .header("X-Auth-Token", &admin)
            .header("Content-Type", "application/octet-stream")
            .body(full.clone()),
    )
    .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    wait_status(&tc, &admin, &id, &["active"]).await?;
    assert!(
        !store_files(&tc).iter().any(|f| f.ends_with(".part") || f.ends_with(".scratch")),
        "{:?}",
        store_files(&tc)
    );
    tc.stop().await
}

#[tokio::test]
async fn a_broken_connection_leaves_a_killed_image_and_no_file() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let before = store_files(&tc);
    let url = reqwest::Url::parse(&tc.glance_url())?;
    let addr = format!("{}:{}", url.host_str().context("host")?, url.port().context("port")?);
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {admin}\r\nContent-Type: application/octet-stream\r\n\
         X-Image-Meta-Name: broken\r\nX-Image-Meta-Disk_format: raw\r\nContent-Length: {}\r\n\r\n",
        8 << 20
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&vec![42u8; 3 << 20]).await?;
    s.flush().await?;
    // The image is saving: the bytes are arriving.
    let started = std::time::Instant::now();
    let id = loop {
        let l = ok(&tc, Method::GET, "/images?name=broken", &admin, None).await?;
        if let (Some(i), "saving") = (l["images"][0]["id"].as_str(), l["images"][0]["status"].as_str().unwrap_or("")) {
            break i.to_string();
        }
        anyhow::ensure!(started.elapsed() < CEILING, "the upload never started: {l}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(s);
    let img = wait_status(&tc, &admin, &id, &["killed"]).await?;
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("broke")), "{img}");
    assert_eq!(img["size"], 0);
    wait_for(CEILING, || async { store_files(&tc) == before }).await.context("a partial file was left behind")?;

    // The same through a half-sent PUT, and a too-short body is refused by HTTP itself.
    let created = ok(&tc, Method::POST, "/images", &admin, Some(json!({"image": {"name": "put-broken"}}))).await?;
    let id = created["image"]["id"].as_str().context("id")?.to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "PUT /v1/images/{id} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {admin}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&[1u8; 1000]).await?;
    s.shutdown().await?;
    let mut answer = vec![];
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await;
    let img = wait_status(&tc, &admin, &id, &["killed"]).await?;
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("broke")), "{img}");
    assert_eq!(store_files(&tc), before);
    tc.stop().await
}

#[tokio::test]
async fn a_restart_kills_uploads_in_flight_and_removes_partial_files() -> Result<()> {
    let (mut tc, admin) = start(&[]).await?;
    let created = ok(&tc, Method::POST, "/images", &admin, Some(json!({"image": {"name": "interrupted"}}))).await?;
    let id = created["image"]["id"].as_str().context("id")?.to_string();
    // As a crash would leave it: the row saving, a partial file in the store.
    let state = tc.state("glance").context("glance state")?;
    state
        .db
        .raw_exec("UPDATE images SET status = ? WHERE id = ?", vec!["saving".into(), id.clone().into()])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(tc.dir.join("images").join(format!("{id}.part")), [0u8; 1000])?;
    drop(state);
    tc.restart().await?;
    let admin = tc.admin_token().await.unwrap_or(admin);
    let img = image(&tc, &admin, &id).await?;
    assert_eq!(img["status"], "killed", "{img}");
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("restarted")), "{img}");
    assert!(store_files(&tc).is_empty(), "{:?}", store_files(&tc));
    tc.stop().await
}
