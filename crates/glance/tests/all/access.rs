//! Who sees and changes what: project ownership, sharing, protection, quotas, and the
//! recycle bin (pending delete, cancel-delete, purge, override).

use std::time::Duration;

use anyhow::{Context, Result};

use crate::common::*;

#[tokio::test]
async fn ownership_sharing_protection_and_quotas() -> Result<()> {
    let (tc, admin) = start(&["quota_images=3", "quota_image_size_mb=12"]).await?;
    let alice = tc.member(&admin, "alice", "demo").await?;
    let bob = tc.member(&admin, "bob", "demo2").await?;

    // A private image of demo is invisible to demo2.
    let created = ok(&tc, Method::POST, "/images", &alice, Some(json!({"image": {"name": "private"}}))).await?;
    let private = created["image"]["id"].as_str().context("id")?.to_string();
    let r = call(&tc, Method::GET, &format!("/images/{private}"), &bob, None).await?;
    assert_error(&r, 404, "ResourceNotFoundError");
    let r = send(tc.http.head(format!("{}/images/{private}", tc.glance_url())).header("X-Auth-Token", &bob)).await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let l = ok(&tc, Method::GET, "/images", &bob, None).await?;
    assert_eq!(l["total"], 0, "{l}");
    let r = call(&tc, Method::DELETE, &format!("/images/{private}"), &bob, None).await?;
    assert_error(&r, 404, "ResourceNotFoundError");

    // Members may not share with everyone; administrators may, and then all see it.
    let r =
        call(&tc, Method::POST, "/images", &alice, Some(json!({"image": {"name": "pub", "is_public": true}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r =
        call(&tc, Method::POST, &format!("/images/{private}/public"), &alice, Some(json!({"scope": "system"}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    let dir = Scratch::new("access");
    let raw = std::fs::read(make_raw(&dir, "small.raw", 1)?)?;
    let public = upload_ok(&tc, &admin, "shared-base", "raw", raw.clone()).await?;
    wait_status(&tc, &admin, &public, &["active"]).await?;
    let r =
        ok(&tc, Method::POST, &format!("/images/{public}/public"), &admin, Some(json!({"scope": "system"}))).await?;
    assert_eq!((r["image"]["is_public"].as_bool(), r["image"]["public_scope"].as_str()), (Some(true), Some("system")));
    let l = ok(&tc, Method::GET, "/images", &bob, None).await?;
    assert_eq!(l["total"], 1, "{l}");
    let (bytes, resp) = download(&tc, &bob, &public, "format=qcow2").await?;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(!bytes.is_empty());
    // Shared is read-only: bob sees the image, so writing it is forbidden (not "not found").
    let r =
        call(&tc, Method::PUT, &format!("/images/{public}"), &bob, Some(json!({"image": {"name": "mine"}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    ok(&tc, Method::POST, &format!("/images/{public}/private"), &admin, None).await?;
    let l = ok(&tc, Method::GET, "/images", &bob, None).await?;
    assert_eq!(l["total"], 0, "{l}");

    // Quotas: 3 images per project, 12 MB of data.
    let first = upload_ok(&tc, &alice, "eight", "raw", vec![3u8; 8 << 20]).await?;
    let r = upload(&tc, &alice, vec![4u8; 6 << 20], &[("X-Image-Meta-Name", "six")]).await?;
    assert_error(&r, 400, "InsufficientResourceError");
    assert!(r.body["details"].as_str().is_some_and(|d| d.contains("quota_image_size_mb")), "{}", r.body);
    let l = ok(&tc, Method::GET, "/images?name=six", &alice, None).await?;
    assert_eq!(l["total"], 0, "a refused upload leaves no image: {l}");
    ok(&tc, Method::POST, "/images", &alice, Some(json!({"image": {"name": "third"}}))).await?;
    let r = call(&tc, Method::POST, "/images", &alice, Some(json!({"image": {"name": "fourth"}}))).await?;
    assert_error(&r, 400, "InsufficientResourceError");
    assert!(r.body["details"].as_str().is_some_and(|d| d.contains("quota_images")), "{}", r.body);

    // Protected (the default) images refuse deletion until unprotected.
    let img = wait_status(&tc, &alice, &first, &["active", "save_fail"]).await?;
    assert_eq!(img["protected"], true);
    let r = call(&tc, Method::DELETE, &format!("/images/{first}"), &alice, None).await?;
    assert_error(&r, 403, "ForbiddenError");
    assert!(r.body["details"].as_str().is_some_and(|d| d.contains("protected")), "{}", r.body);
    tc.stop().await
}

#[tokio::test]
async fn pending_delete_cancel_purge_and_override() -> Result<()> {
    let (tc, admin) = start(&["pending_delete_expire_seconds=2", "pending_delete_check_seconds=1"]).await?;
    let alice = tc.member(&admin, "alice", "demo").await?;
    let dir = Scratch::new("pending");
    let raw = std::fs::read(make_raw(&dir, "small.raw", 1)?)?;
    let id = upload_ok(&tc, &alice, "bin", "raw", raw.clone()).await?;
    wait_status(&tc, &alice, &id, &["active"]).await?;
    ok(&tc, Method::PUT, &format!("/images/{id}"), &alice, Some(json!({"image": {"protected": false}}))).await?;

    let r = ok(&tc, Method::DELETE, &format!("/images/{id}"), &alice, None).await?;
    assert_eq!(
        (r["image"]["status"].as_str(), r["image"]["pending_deleted"].as_bool()),
        (Some("pending_delete"), Some(true))
    );
    assert!(r["image"]["auto_delete_at"].is_string(), "{r}");
    let l = ok(&tc, Method::GET, "/images", &alice, None).await?;
    assert_eq!(l["total"], 0, "the recycle bin is hidden: {l}");
    let l = ok(&tc, Method::GET, "/images?pending_delete=true", &alice, None).await?;
    assert_eq!(l["total"], 1, "{l}");
    let r = call(&tc, Method::DELETE, &format!("/images/{id}?override_pending_delete=true"), &alice, None).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = ok(&tc, Method::POST, &format!("/images/{id}/cancel-delete"), &alice, None).await?;
    assert_eq!((r["image"]["status"].as_str(), r["image"]["pending_deleted"].as_bool()), (Some("active"), Some(false)));
    let files_with = store_files(&tc);
    assert!(files_with.iter().any(|f| f == &id), "{files_with:?}");

    // Deleted again, it is purged after the delay: row and files gone.
    ok(&tc, Method::DELETE, &format!("/images/{id}"), &alice, None).await?;
    wait_for(CEILING, || async {
        call(&tc, Method::GET, &format!("/images/{id}"), &alice, None)
            .await
            .is_ok_and(|r| r.status == StatusCode::NOT_FOUND)
    })
    .await
    .context("not purged")?;
    assert!(!store_files(&tc).iter().any(|f| f.starts_with(&id)), "{:?}", store_files(&tc));
    // Its name is free again.
    let again = upload_ok(&tc, &alice, "bin", "raw", raw.clone()).await?;
    wait_status(&tc, &alice, &again, &["active"]).await?;

    // An administrator skips the bin; queued images have nothing to keep.
    ok(&tc, Method::PUT, &format!("/images/{again}"), &admin, Some(json!({"image": {"protected": false}}))).await?;
    ok(&tc, Method::DELETE, &format!("/images/{again}?override_pending_delete=true"), &admin, None).await?;
    let q =
        ok(&tc, Method::POST, "/images", &alice, Some(json!({"image": {"name": "empty", "protected": false}}))).await?;
    let qid = q["image"]["id"].as_str().context("id")?.to_string();
    ok(&tc, Method::DELETE, &format!("/images/{qid}"), &alice, None).await?;
    for gone in [&again, &qid] {
        wait_for(Duration::from_secs(20), || async {
            call(&tc, Method::GET, &format!("/images/{gone}"), &admin, None)
                .await
                .is_ok_and(|r| r.status == StatusCode::NOT_FOUND)
        })
        .await
        .context("not deleted at once")?;
    }
    assert!(store_files(&tc).is_empty(), "{:?}", store_files(&tc));
    tc.stop().await
}
