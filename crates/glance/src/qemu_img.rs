//! The `qemu-img` seam: what glance asks of it, behind a trait, and the real command.
//!
//! - `info --output=json` tells the real format, the virtual size and any backing file;
//! - `check --output=json` finds corruption, e.g. a truncated qcow2 whose header is intact
//!   (exit 2: corruptions; 3: only leaked clusters, harmless; 63: the format has no check);
//! - `convert -p` makes a sub-format, reporting `(NN.NN/100%)` progress on stdout.
//!
//! ISO images are raw to qemu-img; [`is_iso`] recognises them by the ISO 9660 primary
//! volume descriptor (`CD001` at byte 32769).

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// qemu's format name: `raw`, `qcow2`, `vmdk`, `vpc`, `vhdx`, `vdi`, ...
    pub format: String,
    pub virtual_size: u64,
    pub actual_size: u64,
    pub backing_file: Option<String>,
}

/// Why qemu-img did not do what was asked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QemuImgError {
    /// The file is not an image qemu-img can read, or is damaged; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// qemu-img could not run or failed for another reason.
    #[error("{0}")]
    Failed(String),
}

/// Reports conversion progress, 0.0 to 100.0.
pub type Progress = Box<dyn Fn(f64) + Send + Sync>;

#[async_trait]
pub trait QemuImg: Send + Sync + 'static {
    async fn info(&self, path: &Path) -> Result<ImageInfo, QemuImgError>;
    /// Checks an image of `format` for consistency; Ok when sound or when the format has no check.
    async fn check(&self, path: &Path, format: &str) -> Result<(), QemuImgError>;
    async fn convert(
        &self,
        src: &Path,
        src_format: &str,
        dst: &Path,
        dst_format: &str,
        progress: Progress,
    ) -> Result<(), QemuImgError>;
}

/// Formats `qemu-img check` can examine.
pub fn checkable(format: &str) -> bool {
    matches!(format, "qcow2" | "qed" | "vdi" | "vhdx" | "vmdk" | "parallels")
}

/// The real `qemu-img` binary.
pub struct QemuImgCli {
    pub bin: String,
}

impl QemuImgCli {
    pub fn new(bin: impl Into<String>) -> QemuImgCli {
        QemuImgCli { bin: bin.into() }
    }

    async fn run(&self, args: &[&std::ffi::OsStr]) -> Result<std::process::Output, QemuImgError> {
        tokio::process::Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| QemuImgError::Failed(format!("cannot run {}: {e}", self.bin)))
    }
}

/// The first line qemu-img wrote to stderr, without its `qemu-img: ` prefix.
fn first_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    line.trim().trim_start_matches("qemu-img: ").to_string()
}

/// Parses `qemu-img info --output=json`.
pub fn parse_info(json: &[u8]) -> Result<ImageInfo, QemuImgError> {
    let v: Value = serde_json::from_slice(json)
        .map_err(|e| QemuImgError::Failed(format!("qemu-img info printed something that is not JSON: {e}")))?;
    let format = v["format"].as_str().unwrap_or_default().to_string();
    if format.is_empty() {
        return Err(QemuImgError::Failed("qemu-img info reported no format".into()));
    }
    Ok(ImageInfo {
        format,
        virtual_size: v["virtual-size"].as_u64().unwrap_or(0),
        actual_size: v["actual-size"].as_u64().unwrap_or(0),
        backing_file: v["backing-filename"].as_str().or(v["full-backing-filename"].as_str()).map(str::to_string),
    })
}

/// The last `(NN.NN/100%)` in `text`.
pub fn parse_progress(text: &str) -> Option<f64> {
    let end = text.rfind("/100%")?;
    let start = text[..end].rfind('(')? + 1;
    text[start..end].trim().parse().ok()
}

#[async_trait]
impl QemuImg for QemuImgCli {
    async fn info(&self, path: &Path) -> Result<ImageInfo, QemuImgError> {
        let out = self.run(&["info".as_ref(), "--output=json".as_ref(), path.as_os_str()]).await?;
        if !out.status.success() {
            return Err(QemuImgError::Invalid(first_error(&out.stderr)));
        }
        parse_info(&out.stdout)
    }

    async fn check(&self, path: &Path, format: &str) -> Result<(), QemuImgError> {
        if !checkable(format) {
            return Ok(());
        }
        let out = self
            .run(&["check".as_ref(), "--output=json".as_ref(), "-f".as_ref(), format.as_ref(), path.as_os_str()])
            .await?;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        match out.status.code() {
            Some(0) | Some(3) | Some(63) => Ok(()),
            Some(2) => Err(QemuImgError::Invalid(format!(
                "{format} image is corrupt or truncated: qemu-img check found {} corruptions",
                v["corruptions"].as_u64().unwrap_or(0)
            ))),
            _ => Err(QemuImgError::Invalid(format!("{format} image cannot be checked: {}", first_error(&out.stderr)))),
        }
    }

    async fn convert(
        &self,
        src: &Path,
        src_format: &str,
        dst: &Path,
        dst_format: &str,
        progress: Progress,
    ) -> Result<(), QemuImgError> {
        let mut child = tokio::process::Command::new(&self.bin)
            .args(["convert", "-p", "-f", src_format, "-O", dst_format])
            .arg(src)
            .arg(dst)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| QemuImgError::Failed(format!("cannot run {}: {e}", self.bin)))?;
        let mut stdout = child.stdout.take().ok_or_else(|| QemuImgError::Failed("no stdout".into()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| QemuImgError::Failed("no stderr".into()))?;
        let errors = tokio::spawn(async move {
            let mut buf = vec![];
            let _ = stderr.read_to_end(&mut buf).await;
            buf
        });
        let mut buf = [0u8; 512];
        let mut tail = String::new();
        loop {
            let n = stdout.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            tail.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(p) = parse_progress(&tail) {
                progress(p);
            }
            if tail.len() > 256 {
                tail = tail[tail.len() - 64..].to_string();
            }
        }
        let status = child.wait().await.map_err(|e| QemuImgError::Failed(format!("qemu-img convert: {e}")))?;
        let stderr = errors.await.unwrap_or_default();
        if !status.success() {
            let _ = tokio::fs::remove_file(dst).await;
            return Err(QemuImgError::Failed(format!(
                "qemu-img convert to {dst_format} failed: {}",
                first_error(&stderr)
            )));
        }
        Ok(())
    }
}

/// Whether the file at `path` is an ISO 9660 image.
pub async fn is_iso(path: &Path) -> std::io::Result<bool> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(path).await?;
    let mut magic = [0u8; 5];
    if f.metadata().await?.len() < 32769 + 5 {
        return Ok(false);
    }
    f.seek(std::io::SeekFrom::Start(32769)).await?;
    f.read_exact(&mut magic).await?;
    Ok(&magic == b"CD001")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let info = parse_info(br#"{"virtual-size": 67108864, "format": "qcow2", "actual-size": 4526080}"#).unwrap();
        assert_eq!((info.format.as_str(), info.virtual_size, info.backing_file), ("qcow2", 67108864, None));
        let info = parse_info(br#"{"virtual-size": 1, "format": "qcow2", "backing-filename": "/etc/passwd"}"#).unwrap();
        assert_eq!(info.backing_file.as_deref(), Some("/etc/passwd"));
        assert!(parse_info(b"nope").is_err());
        assert_eq!(parse_progress("    (0.00/100%)\r    (50.10/100%)\r"), Some(50.1));
        assert_eq!(parse_progress("(100.00/100%)\r\n"), Some(100.0));
        assert_eq!(parse_progress("nothing"), None);
    }

    /// The real binary: create, info, convert with progress, check a sound and a truncated qcow2.
    #[tokio::test]
    async fn real_qemu_img() {
        let dir = std::env::temp_dir().join(format!("glance-qemu-img-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("a.raw");
        // Data everywhere, so that cutting the qcow2 in half cuts data clusters.
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
        std::fs::write(&raw, &data).unwrap();
        let q = QemuImgCli::new("qemu-img");
        let info = q.info(&raw).await.unwrap();
        assert_eq!((info.format.as_str(), info.virtual_size), ("raw", 4 << 20));
        let qcow = dir.join("a.qcow2");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let s2 = seen.clone();
        q.convert(&raw, "raw", &qcow, "qcow2", Box::new(move |p| s2.lock().unwrap().push(p))).await.unwrap();
        assert_eq!(seen.lock().unwrap().last().copied(), Some(100.0));
        assert_eq!(q.info(&qcow).await.unwrap().format, "qcow2");
        q.check(&qcow, "qcow2").await.unwrap();
        let full = std::fs::read(&qcow).unwrap();
        let cut = dir.join("cut.qcow2");
        std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
        let err = q.check(&cut, "qcow2").await.unwrap_err();
        assert!(matches!(err, QemuImgError::Invalid(ref m) if m.contains("corrupt")), "{err}");
        let tiny = dir.join("tiny.qcow2");
        std::fs::write(&tiny, &full[..100]).unwrap();
        assert!(matches!(q.info(&tiny).await, Err(QemuImgError::Invalid(_))));
        assert!(!is_iso(&raw).await.unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
