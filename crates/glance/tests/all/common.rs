//! Helpers of glance's integration tests: a cloud, images made with the real qemu-img,
//! uploads and polls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use md5::Digest;
pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};
pub use test_harness::{Resp, TestCloud, assert_error, wait_for};

/// Longest time a test waits for something asynchronous (a pipeline, a purge).
pub const CEILING: Duration = Duration::from_secs(60);

/// A fresh cloud with these glance settings (`quota_images=3`, ...) and the admin token.
pub async fn start(glance_sets: &[&str]) -> Result<(TestCloud, String)> {
    TestCloud::start_service_with("glance", glance_sets).await
}

/// A scratch directory for image files, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("glance-test-{name}-{}-{}", std::process::id(), rand_u32()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u32() -> u32 {
    use std::io::Read;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    u32::from_le_bytes(b)
}

/// Runs the real qemu-img.
pub fn qemu_img(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("qemu-img").args(args).output().context("run qemu-img")?;
    if !out.status.success() {
        bail!("qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A raw disk of `mib` MiB with some recognisable data (not all zeros).
pub fn make_raw(dir: &Scratch, name: &str, mib: u64) -> Result<PathBuf> {
    let p = dir.path(name);
    qemu_img(&["create", "-f", "raw", p.to_str().context("path")?, &format!("{mib}M")])?;
    let mut data = std::fs::read(&p)?;
    // Data in the first half, so that a qcow2 of it is mostly data clusters.
    let half = data.len() / 2;
    for (i, b) in data.iter_mut().enumerate().take(half) {
        *b = (i % 251) as u8;
    }
    data[..11].copy_from_slice(b"cloudpods!!");
    std::fs::write(&p, data)?;
    Ok(p)
}

/// `qemu-img convert` of `src` into `format`.
pub fn convert(src: &Path, dst: &Path, format: &str) -> Result<()> {
    qemu_img(&["convert", "-O", format, src.to_str().context("path")?, dst.to_str().context("path")?])?;
    Ok(())
}

/// A minimal ISO 9660 image: a primary volume descriptor (`CD001`) at sector 16 and a
/// terminator at 17. (No xorriso/genisoimage needed; qemu-img calls it raw.)
pub fn make_iso(dir: &Scratch, name: &str) -> Result<PathBuf> {
    let mut data = vec![0u8; 64 * 2048];
    let pvd = 16 * 2048;
    data[pvd] = 1;
    data[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    data[pvd + 6] = 1;
    data[pvd + 40..pvd + 48].copy_from_slice(b"TESTISO ");
    let term = 17 * 2048;
    data[term] = 255;
    data[term + 1..term + 6].copy_from_slice(b"CD001");
    data[term + 6] = 1;
    let p = dir.path(name);
    std::fs::write(&p, data)?;
    Ok(p)
}

pub fn md5_hex(data: &[u8]) -> String {
    hex(&md5::Md5::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn send(req: reqwest::RequestBuilder) -> Result<Resp> {
    let resp = req.send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    Ok(Resp { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
}

/// `method <glance>/v1<path>` with a JSON body.
pub async fn call(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Resp> {
    tc.call(method, &format!("{}{path}", tc.glance_url()), Some(token), body).await
}

/// `method <glance>/v1<path>` that must answer 2xx; the body.
pub async fn ok(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Value> {
    let r = call(tc, method.clone(), path, token, body).await?;
    if !r.status.is_success() {
        bail!("{method} {path}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

/// `POST /v1/images` with the file as a raw body and `X-Image-Meta-*` headers.
pub async fn upload(tc: &TestCloud, token: &str, data: Vec<u8>, headers: &[(&str, &str)]) -> Result<Resp> {
    let mut req = tc
        .http
        .post(format!("{}/images", tc.glance_url()))
        .header("X-Auth-Token", token)
        .header("Content-Type", "application/octet-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(data)).await
}

/// Uploads and returns the new image's id, failing unless the answer is 200.
pub async fn upload_ok(tc: &TestCloud, token: &str, name: &str, format: &str, data: Vec<u8>) -> Result<String> {
    let r = upload(tc, token, data, &[("X-Image-Meta-Name", name), ("X-Image-Meta-Disk_format", format)]).await?;
    if r.status != StatusCode::OK {
        bail!("upload {name}: {} {}", r.status, r.body);
    }
    Ok(r.body["image"]["id"].as_str().context("image id")?.to_string())
}

pub async fn image(tc: &TestCloud, token: &str, id: &str) -> Result<Value> {
    Ok(ok(tc, Method::GET, &format!("/images/{id}"), token, None).await?["image"].clone())
}

/// Waits until the image's status is one of `want`; returns the image. Fails at once if it
/// reaches a status in `never`.
pub async fn wait_status(tc: &TestCloud, token: &str, id: &str, want: &[&str]) -> Result<Value> {
    let start = std::time::Instant::now();
    loop {
        let img = image(tc, token, id).await?;
        let status = img["status"].as_str().unwrap_or_default().to_string();
        if want.contains(&status.as_str()) {
            return Ok(img);
        }
        if start.elapsed() > CEILING {
            bail!("image {id} is {status}, not {want:?}, after {CEILING:?}: {img}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bytes of `GET /v1/images/<id>?<query>`, and the answer's headers.
pub async fn download(tc: &TestCloud, token: &str, id: &str, query: &str) -> Result<(Vec<u8>, Resp)> {
    let resp =
        tc.http.get(format!("{}/images/{id}?{query}", tc.glance_url())).header("X-Auth-Token", token).send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?.to_vec();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((bytes, Resp { status, headers, body }))
}

/// Files in the image store (the aio's data dir), sorted.
pub fn store_files(tc: &TestCloud) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tc.dir.join("images"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
