//! The image service (glance): the `images` manager, and streaming transfers.
//!
//! Uploads read the file in 1 MiB chunks as the connection takes them (never the whole
//! file in memory) and report progress; downloads write to `<dest>.part`, check the MD5
//! glance sends in `X-Image-Meta-Checksum`, and only then rename to `<dest>`.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use md5::Digest;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::manager::{Method, ResourceManager, encode_segment, unwrap_keyword};
use crate::session::Session;

/// `images` of glance (`/v1/images`).
pub const IMAGES: ResourceManager = ResourceManager::new("image", "image", "images").with_version("v1");

/// How long one transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const CHUNK: usize = 1 << 20;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// Reports progress: bytes done so far, and the total when known.
pub type Progress = Box<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Uploads `file` as a new image (`POST /images`, raw body). `meta` are image fields
/// (`name`, `disk_format`, ...) sent as `X-Image-Meta-<field>`; `properties` as
/// `X-Image-Meta-Property-<key>`. Returns the image.
pub async fn upload(
    session: &Session,
    file: &Path,
    meta: &[(String, String)],
    properties: &[(String, String)],
    progress: Progress,
) -> Result<Value> {
    let f = tokio::fs::File::open(file).await.map_err(io_err(file))?;
    let size = f.metadata().await.map_err(io_err(file))?.len();
    let mut headers = vec![
        ("Content-Type".to_string(), "application/octet-stream".to_string()),
        ("Content-Length".to_string(), size.to_string()),
    ];
    headers.extend(meta.iter().map(|(k, v)| (format!("X-Image-Meta-{k}"), v.clone())));
    headers.extend(properties.iter().map(|(k, v)| (format!("X-Image-Meta-Property-{k}"), v.clone())));
    let progress = std::sync::Arc::new(progress);
    let chunks = futures::stream::unfold((f, 0u64), move |(mut f, sent)| {
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    progress(sent, Some(size));
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), (f, sent)))
                }
                Err(e) => Some((Err(e), (f, sent))),
            }
        }
    });
    let body = reqwest::Body::wrap_stream(chunks);
    let resp = session
        .request_raw(
            IMAGES.service_type,
            IMAGES.version,
            Method::Post,
            "images",
            &[],
            &headers,
            Some(body),
            TRANSFER_TIMEOUT,
        )
        .await?;
    let v: Value = resp.json().await?;
    Ok(unwrap_keyword("image", v))
}

/// `HEAD /images/<id>[?format=]`: the image's `X-Image-Meta-*` headers as fields (and
/// `properties`).
pub async fn head(session: &Session, id: &str, format: Option<&str>) -> Result<Map<String, Value>> {
    let query: Vec<(String, String)> = format.map(|f| vec![("format".to_string(), f.to_string())]).unwrap_or_default();
    let path = format!("images/{}", encode_segment(id));
    let resp = session
        .request_raw(IMAGES.service_type, IMAGES.version, Method::Head, &path, &query, &[], None, TRANSFER_TIMEOUT)
        .await?;
    Ok(meta_of(resp.headers()))
}

fn meta_of(h: &reqwest::header::HeaderMap) -> Map<String, Value> {
    apis::image::meta_from_headers(h.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))))
}

/// What a download fetched.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub size: u64,
    /// The MD5 glance announced, checked against the bytes.
    pub checksum: String,
    pub meta: Map<String, Value>,
}

/// Downloads image `id` (in `format`, or as uploaded) to `dest`, checking its MD5.
pub async fn download(
    session: &Session,
    id: &str,
    format: Option<&str>,
    dest: &Path,
    progress: Progress,
) -> Result<Downloaded> {
    let mut query = vec![("download".to_string(), "true".to_string())];
    if let Some(f) = format {
        query.push(("format".to_string(), f.to_string()));
    }
    let path = format!("images/{}", encode_segment(id));
    let resp = session
        .request_raw(IMAGES.service_type, IMAGES.version, Method::Get, &path, &query, &[], None, TRANSFER_TIMEOUT)
        .await?;
    let meta = meta_of(resp.headers());
    let total = resp.content_length();
    let expected = meta.get("checksum").and_then(Value::as_str).unwrap_or_default().to_string();
    let part = dest.with_extension(format!(
        "{}part",
        dest.extension().map(|e| format!("{}.", e.to_string_lossy())).unwrap_or_default()
    ));
    let result = async {
        let f = tokio::fs::File::create(&part).await.map_err(io_err(&part))?;
        let mut w = tokio::io::BufWriter::with_capacity(CHUNK, f);
        let mut md5 = md5::Md5::new();
        let mut done = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            md5.update(&chunk);
            w.write_all(&chunk).await.map_err(io_err(&part))?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        w.flush().await.map_err(io_err(&part))?;
        w.into_inner().sync_all().await.map_err(io_err(&part))?;
        let got = hex(&md5.finalize());
        if !expected.is_empty() && got != expected {
            return Err(Error::InvalidResponse(format!(
                "image {id}: the downloaded bytes have MD5 {got}, glance announced {expected}"
            )));
        }
        tokio::fs::rename(&part, dest).await.map_err(io_err(dest))?;
        Ok(Downloaded { size: done, checksum: got, meta: meta.clone() })
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
