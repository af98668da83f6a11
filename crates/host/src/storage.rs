//! Local storage: the image cache and the disks made from it.
//!
//! ```text
//!  image_cache(id, src_url) ──> <cache>/<id> exists? ──yes──> done
//!            │ no (one download per image at a time)
//!            └─> GET src_url (service token) ──> <cache>/.<id>.part-<n> (MD5 while writing)
//!                ──> length and X-Image-Meta-Checksum checked ──> fsync ──> rename to <cache>/<id> (0444)
//!  disk create ──> qemu-img create -f qcow2 [-b <cache>/<id> -F qcow2] <disks>/<disk_id> <size>M
//! ```
//! Invariant: a file named `<cache>/<id>` is always a complete, verified image (partial
//! downloads live under a hidden `.part` name and are removed on failure). Cached images are
//! read-only bases shared by every overlay made from them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Invalid(String),
    #[error("image {0} is not cached on this host")]
    NotCached(String),
    #[error("downloading image {id}: {reason}")]
    Download { id: String, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("qemu-img {args}: {stderr}")]
    QemuImg { args: String, stderr: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
    let what = what.into();
    move |source| StorageError::Io { what, source }
}

/// Ids become file names: refuse anything that could leave the directory.
pub fn check_id(kind: &str, id: &str) -> Result<(), StorageError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(StorageError::Invalid(format!("{kind} id {id:?} is not a valid id"))) }
}

/// Runs `qemu-img`.
pub async fn qemu_img(args: &[&str]) -> Result<String, StorageError> {
    let out = tokio::process::Command::new("qemu-img")
        .args(args)
        .output()
        .await
        .map_err(io(format!("running qemu-img {}", args.join(" "))))?;
    if !out.status.success() {
        return Err(StorageError::QemuImg {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

pub struct LocalStorage {
    pub disks_dir: PathBuf,
    pub cache_dir: PathBuf,
    downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each cached image's real format, once probed.
    formats: Mutex<HashMap<String, String>>,
    http: reqwest::Client,
}

impl LocalStorage {
    pub fn new(disks_dir: PathBuf, cache_dir: PathBuf) -> Result<LocalStorage, StorageError> {
        for d in [&disks_dir, &cache_dir] {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        // Leftovers of downloads and disk creations cut short by a crash are never used.
        for (dir, mark) in [(&cache_dir, ".part-"), (&disks_dir, ".creating")] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    if n.starts_with('.') && n.contains(mark) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        let http =
            reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build().unwrap_or_default();
        Ok(LocalStorage {
            disks_dir,
            cache_dir,
            downloads: Mutex::new(HashMap::new()),
            formats: Mutex::new(HashMap::new()),
            http,
        })
    }

    pub fn cached_path(&self, image_id: &str) -> PathBuf {
        self.cache_dir.join(image_id)
    }

    pub fn disk_path(&self, disk_id: &str) -> PathBuf {
        self.disks_dir.join(disk_id)
    }

    /// Makes sure `image_id` is in the cache, downloading it from `src_url` with `token` once.
    /// Returns its path and size in bytes.
    pub async fn cache_image(
        &self,
        image_id: &str,
        src_url: Option<&str>,
        token: Option<&str>,
    ) -> Result<(PathBuf, u64), StorageError> {
        check_id("image", image_id)?;
        let lock = {
            let mut m = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(image_id.to_string()).or_default().clone()
        };
        let _g = lock.lock().await;
        let path = self.cached_path(image_id);
        if let Ok(md) = tokio::fs::metadata(&path).await {
            return Ok((path, md.len()));
        }
        let url = src_url.filter(|u| !u.is_empty()).ok_or_else(|| StorageError::NotCached(image_id.to_string()))?;
        let size = self.download(image_id, url, token, &path).await?;
        Ok((path, size))
    }

    async fn download(&self, id: &str, url: &str, token: Option<&str>, path: &Path) -> Result<u64, StorageError> {
        let fail = |reason: String| StorageError::Download { id: id.to_string(), reason };
        let mut req = self.http.get(url);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("{url} answered {}", resp.status())));
        }
        let want_len = resp.content_length();
        let want_md5 = resp
            .headers()
            .get("x-image-meta-checksum")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty());
        let part = self.cache_dir.join(format!(".{id}.part-{}", std::process::id() ^ rand_u32()));
        let result = async {
            let mut f = tokio::fs::File::create(&part).await.map_err(io(format!("creating {}", part.display())))?;
            let mut md5 = Md5::new();
            let mut n = 0u64;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| fail(format!("connection lost after {n} bytes: {e}")))?;
                md5.update(&chunk);
                n += chunk.len() as u64;
                f.write_all(&chunk).await.map_err(io(format!("writing {}", part.display())))?;
            }
            if let Some(l) = want_len
                && l != n
            {
                return Err(fail(format!("got {n} of {l} bytes")));
            }
            let got = hex::encode(md5.finalize());
            if let Some(w) = &want_md5
                && *w != got
            {
                return Err(fail(format!("checksum mismatch: got md5 {got}, glance says {w}")));
            }
            f.sync_all().await.map_err(io(format!("syncing {}", part.display())))?;
            drop(f);
            let mut perm = tokio::fs::metadata(&part).await.map_err(io("stat"))?.permissions();
            perm.set_readonly(true);
            tokio::fs::set_permissions(&part, perm).await.map_err(io("chmod"))?;
            tokio::fs::rename(&part, path).await.map_err(io(format!("renaming into {}", path.display())))?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    /// Creates a disk: an overlay on a cached image, or an empty qcow2/raw. Size in MB
    /// (0: the image's own size). Returns the path.
    pub async fn create_disk(
        &self,
        disk_id: &str,
        size_mb: u64,
        format: &str,
        image_id: Option<&str>,
    ) -> Result<PathBuf, StorageError> {
        check_id("disk", disk_id)?;
        let path = self.disk_path(disk_id);
        if tokio::fs::metadata(&path).await.is_ok() {
            return Ok(path); // created by an earlier attempt of the same call
        }
        let tmp = self.disks_dir.join(format!(".{disk_id}.creating"));
        let tmp_s = tmp.display().to_string();
        let size = format!("{size_mb}M");
        match image_id {
            Some(img) => {
                check_id("image", img)?;
                let base = self.cached_path(img);
                if tokio::fs::metadata(&base).await.is_err() {
                    return Err(StorageError::NotCached(img.to_string()));
                }
                let base_s = base.display().to_string();
                // The base's real format (glance may hand out raw images as they were uploaded),
                // probed once per image.
                let known = self.formats.lock().unwrap_or_else(|e| e.into_inner()).get(img).cloned();
                let base_fmt = match known {
                    Some(f) => f,
                    None => {
                        let info = qemu_img(&["info", "--output=json", "-U", &base_s]).await?;
                        let f = serde_json::from_str::<serde_json::Value>(&info)
                            .ok()
                            .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_string))
                            .unwrap_or_else(|| "qcow2".into());
                        self.formats.lock().unwrap_or_else(|e| e.into_inner()).insert(img.to_string(), f.clone());
                        f
                    }
                };
                let mut args = vec!["create", "-q", "-f", "qcow2", "-b", &base_s, "-F", &base_fmt, &tmp_s];
                if size_mb > 0 {
                    args.push(&size);
                }
                let r = qemu_img(&args).await;
                // An overlay can't be smaller than its image: qemu-img refuses, so retry at the image's size.
                if let Err(StorageError::QemuImg { stderr, .. }) = &r
                    && stderr.contains("smaller")
                {
                    qemu_img(&args[..args.len() - 1]).await?;
                } else {
                    r?;
                }
            }
            None => {
                if size_mb == 0 {
                    return Err(StorageError::Invalid("a disk without an image needs a size".into()));
                }
                let fmt = if format == "raw" { "raw" } else { "qcow2" };
                qemu_img(&["create", "-q", "-f", fmt, &tmp_s, &size]).await?;
            }
        }
        tokio::fs::rename(&tmp, &path).await.map_err(io(format!("renaming into {}", path.display())))?;
        Ok(path)
    }

    /// Grows a disk to `size_mb`.
    pub async fn resize_disk(&self, disk_id: &str, size_mb: u64) -> Result<(), StorageError> {
        check_id("disk", disk_id)?;
        let p = self.disk_path(disk_id).display().to_string();
        qemu_img(&["resize", "-q", &p, &format!("{size_mb}M")]).await.map(drop)
    }

    /// Removes a disk; a disk already gone is fine.
    pub async fn delete_disk(&self, disk_id: &str) -> Result<(), StorageError> {
        check_id("disk", disk_id)?;
        match tokio::fs::remove_file(self.disk_path(disk_id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting disk")(e)),
        }
    }

    /// (capacity, used) of the disks' filesystem in MB.
    pub fn usage_mb(&self) -> (u64, u64) {
        fs_usage_mb(&self.disks_dir)
    }
}

fn rand_u32() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

/// (capacity, used) in MB of the filesystem holding `p`.
pub fn fs_usage_mb(p: &Path) -> (u64, u64) {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return (0, 0) };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return (0, 0);
    }
    let total = s.f_blocks as u64 * s.f_frsize as u64;
    let free = s.f_bfree as u64 * s.f_frsize as u64;
    (total >> 20, (total - free) >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("host-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn overlays_on_raw_and_qcow2_bases() {
        if std::process::Command::new("qemu-img").arg("--version").output().is_err() {
            panic!("qemu-img is missing: run scripts/deps.sh");
        }
        let d = tmp("overlay");
        let st = LocalStorage::new(d.join("disks"), d.join("cache")).unwrap();
        let raw = st.cached_path("rawimg").display().to_string();
        qemu_img(&["create", "-q", "-f", "raw", &raw, "8M"]).await.unwrap();
        let qc = st.cached_path("qcimg").display().to_string();
        qemu_img(&["create", "-q", "-f", "qcow2", &qc, "8M"]).await.unwrap();
        for (img, disk) in [("rawimg", "d1"), ("qcimg", "d2")] {
            let p = st.create_disk(disk, 16, "qcow2", Some(img)).await.unwrap();
            let info = qemu_img(&["info", "--output=json", &p.display().to_string()]).await.unwrap();
            let v: serde_json::Value = serde_json::from_str(&info).unwrap();
            assert_eq!(v["virtual-size"], 16 << 20, "{v}");
            assert!(v["backing-filename"].as_str().unwrap().ends_with(img), "{v}");
        }
        st.resize_disk("d2", 32).await.unwrap();
        let info = qemu_img(&["info", "--output=json", &st.disk_path("d2").display().to_string()]).await.unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&info).unwrap()["virtual-size"], 32 << 20);
        // Idempotent: a retried create finds the disk; delete twice is fine.
        st.create_disk("d1", 16, "qcow2", Some("rawimg")).await.unwrap();
        st.delete_disk("d1").await.unwrap();
        st.delete_disk("d1").await.unwrap();
        assert!(matches!(st.create_disk("d3", 16, "qcow2", Some("nope")).await, Err(StorageError::NotCached(_))));
        assert!(st.create_disk("d4", 0, "qcow2", None).await.is_err(), "a blank disk needs a size");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn ids_cannot_escape() {
        assert!(check_id("disk", "d-1_a.b").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_id("disk", bad).is_err(), "{bad}");
        }
    }

    /// Serves `body` once per connection with the given checksum header.
    async fn serve(body: Vec<u8>, md5: String) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else { return };
                let (body, md5) = (body.clone(), md5.clone());
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-image-meta-checksum: {md5}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        format!("http://{addr}/images/x")
    }

    #[tokio::test]
    async fn download_is_verified_and_never_partial() {
        let d = tmp("dl");
        let st = LocalStorage::new(d.join("disks"), d.join("cache")).unwrap();
        let body = b"not really an image".to_vec();
        let good = hex::encode(Md5::digest(&body));
        let url = serve(body.clone(), good).await;
        let (p, n) = st.cache_image("img1", Some(&url), Some("tok")).await.unwrap();
        assert_eq!((std::fs::read(&p).unwrap(), n), (body.clone(), body.len() as u64));
        // Cached: no URL needed any more.
        assert_eq!(st.cache_image("img1", None, None).await.unwrap().0, p);
        let bad = serve(body, "0".repeat(32)).await;
        let e = st.cache_image("img2", Some(&bad), None).await.unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        let names: Vec<String> = std::fs::read_dir(d.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["img1"], "no partial file left");
        assert!(matches!(st.cache_image("img3", None, None).await, Err(StorageError::NotCached(_))));
        let _ = std::fs::remove_dir_all(&d);
    }
}
