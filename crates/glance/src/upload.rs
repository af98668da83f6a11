//! Receiving image bytes: from a request body (`POST`/`PUT` with the data) or from a URL
//! (`x-glance-api-copy-from`), straight to the store.
//!
//! ```text
//!  body chunks ──> quota check ──> store writer thread (1 MiB buffer, fsync, rename)
//!                      └──(the same Bytes, shared)──> hasher thread (MD5 + xxh3-128)
//!  a ticker writes size/progress to the row every 2 s
//! ```
//! Both queues are bounded, so memory stays flat whatever the size. The saving runs in a
//! task of its own: if the client goes away the request's future is dropped, but the save
//! still sees the body fail, removes the partial file and marks the image `killed`.
//!
//! Invariants: only one upload per image (`queued|killed|save_fail -> saving` is a
//! compare-and-set); an image is `saved` only with its whole file synced in the store and
//! its checksums recorded; any failure leaves `killed` with the reason and no file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apis::Error;
use apis::image::*;
use bytes::Bytes;
use cloudcommon::resource::{Ctx, Row, row_str};
use futures::StreamExt;
use md5::Digest;
use serde_json::{Value, json};

use crate::Glance;
use crate::images::{set_status, start_pipeline};
use crate::models::images::{self, patch};
use crate::quota::{Reservation, mb};
use crate::store::ByteStream;

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Moves an image to `saving`: it must be `queued` (or a failed upload, to retry).
pub async fn mark_saving(ctx: &Ctx, row: &Row) -> Result<(), Error> {
    let p = patch([
        ("status", STATUS_SAVING.into()),
        ("size", 0.into()),
        ("progress", 0.into()),
        ("reason", "".into()),
        ("checksum", Value::Null),
        ("fast_hash", Value::Null),
    ]);
    if images::update_if_status(ctx.db(), row_str(row, "id"), &[STATUS_QUEUED, STATUS_KILLED, STATUS_SAVE_FAIL], &p)
        .await?
    {
        return Ok(());
    }
    let now = images::get(ctx.db(), row_str(row, "id")).await?;
    Err(Error::InvalidStatus(format!(
        "image {} is {}; data can only be uploaded to a queued image",
        row_str(&now, "name"),
        row_str(&now, "status")
    )))
}

/// Stores `body` as the data of `row` (already `saving`), then starts its pipeline. On
/// failure the image is `killed` with the reason, and nothing is left in the store.
pub async fn save(
    ctx: Ctx,
    g: Arc<Glance>,
    row: Row,
    body: ByteStream,
    total: Option<u64>,
    reservation: Reservation,
) -> Result<Row, Error> {
    let id = row_str(&row, "id").to_string();
    let name = row_str(&row, "name").to_string();
    let written = Arc::new(AtomicU64::new(0));
    let cause: Arc<Mutex<Option<Error>>> = Arc::default();
    let (htx, mut hrx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut md5 = md5::Md5::new();
        let mut xxh = xxhash_rust::xxh3::Xxh3::new();
        while let Some(b) = hrx.blocking_recv() {
            md5.update(&b);
            xxh.update(&b);
        }
        (hex::encode(md5.finalize()), format!("{:032x}", xxh.digest128()))
    });
    let allowance = reservation.allowance;
    let stream = {
        let (written, cause) = (written.clone(), cause.clone());
        let name = name.clone();
        body.then(move |chunk| {
            let (htx, written, cause, name) = (htx.clone(), written.clone(), cause.clone(), name.clone());
            async move {
                let fail = |e: Error| {
                    let msg = e.to_string();
                    cause.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    std::io::Error::other(msg)
                };
                let b = match chunk {
                    Ok(b) => b,
                    Err(e) => {
                        let n = written.load(Ordering::Relaxed);
                        return Err(fail(Error::BadRequest(format!(
                            "the upload of image {name} broke after {n} bytes: {e}"
                        ))));
                    }
                };
                let n = written.fetch_add(b.len() as u64, Ordering::Relaxed) + b.len() as u64;
                if n > allowance {
                    return Err(fail(Error::InsufficientResource(format!(
                        "image size quota exceeded: image {name} passed the {} its project has left",
                        mb(allowance)
                    ))));
                }
                htx.send(b.clone()).await.map_err(|_| std::io::Error::other("the hasher stopped"))?;
                Ok(b)
            }
        })
        .boxed()
    };
    let ticker = {
        let (db, id, written) = (ctx.db().clone(), id.clone(), written.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let n = written.load(Ordering::Relaxed);
                let pct = total.filter(|t| *t > 0).map(|t| (n.saturating_mul(100) / t).min(99)).unwrap_or(0);
                let p = patch([("size", (n as i64).into()), ("progress", (pct as i64).into())]);
                let _ = images::update_if_status(&db, &id, &[STATUS_SAVING], &p).await;
            }
        })
    };
    let stored = g.store.put(&id, stream).await;
    ticker.abort();
    let _ = ticker.await;
    let hashes = hasher.await;
    drop(reservation);
    let (size, (checksum, fast_hash)) = match (stored, hashes) {
        (Ok(n), Ok(h)) => (n, h),
        (stored, _) => {
            let cause = cause.lock().unwrap_or_else(|p| p.into_inner()).take();
            let err = cause.unwrap_or_else(|| match stored {
                Err(e) => Error::Unavailable(format!("cannot store image {name}: {e}")),
                Ok(_) => Error::Internal(format!("cannot hash image {name}")),
            });
            return Err(kill(&ctx, &g, &id, err).await);
        }
    };
    if size == 0 {
        let _ = g.store.delete(&id).await;
        return Err(kill(&ctx, &g, &id, Error::BadRequest(format!("image {name}: the upload was empty"))).await);
    }
    let p = patch([
        ("status", STATUS_SAVED.into()),
        ("size", (size as i64).into()),
        ("checksum", checksum.clone().into()),
        ("fast_hash", fast_hash.into()),
        ("location", g.store.location(&id).into()),
        ("progress", 100.into()),
    ]);
    if !images::update_if_status(ctx.db(), &id, &[STATUS_SAVING], &p).await? {
        return Err(Error::Conflict(format!("image {name} changed while it was being saved")));
    }
    let row = images::get(ctx.db(), &id).await?;
    ctx.svc
        .actionlog
        .record(&ctx, &images::spec(), &row, "save", true, json!({"size": size, "checksum": checksum}))
        .await;
    start_pipeline(&ctx, &row).await?;
    images::get(ctx.db(), &id).await
}

/// Marks an upload `killed` with `err` as the reason; returns `err`.
async fn kill(ctx: &Ctx, g: &Glance, id: &str, err: Error) -> Error {
    tracing::warn!(image = id, error = %err, "upload failed");
    let _ = g.store.delete(id).await;
    if let Err(e) = set_status(ctx, id, STATUS_KILLED, &err.to_string()).await {
        tracing::error!(image = id, error = %e, "cannot mark the image killed");
    }
    let p = patch([("size", 0.into()), ("progress", 0.into())]);
    let _ = images::update_if_status(ctx.db(), id, &[STATUS_KILLED], &p).await;
    err
}

/// Checks a copy-from URL: glance fetches plain `http://` URLs.
pub fn check_url(url: &str) -> Result<(), Error> {
    let ok = url.strip_prefix("http://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if ok { Ok(()) } else { Err(Error::invalid(COPY_FROM_HEADER, format!("{url:?} is not an http:// URL"))) }
}

/// Downloads `url` into image `row` (already `saving`): the work of `ImageCopyFromUrlTask`.
pub async fn copy_from(ctx: Ctx, g: Arc<Glance>, row: Row, url: &str) -> Result<Row, Error> {
    let id = row_str(&row, "id").to_string();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| Error::Internal(format!("http client: {e}")))?;
    let resp = match client.get(url).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let e = Error::BadRequest(format!("cannot copy image from {url}: it answered {}", r.status()));
            return Err(kill(&ctx, &g, &id, e).await);
        }
        Err(e) => {
            let e = Error::BadRequest(format!("cannot copy image from {url}: {e}"));
            return Err(kill(&ctx, &g, &id, e).await);
        }
    };
    let total = resp.content_length();
    let reservation = match g.quota.reserve(ctx.db(), &g.cfg, row_str(&row, "tenant_id"), &id, total).await {
        Ok(r) => r,
        Err(e) => return Err(kill(&ctx, &g, &id, e).await),
    };
    let body = resp.bytes_stream().map(|r| r.map_err(std::io::Error::other)).boxed();
    save(ctx, g, row, body, total, reservation).await
}
