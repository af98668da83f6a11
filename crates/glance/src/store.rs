//! Where image bytes live: the [`ImageStore`] trait and the local filesystem store.
//!
//! Objects are named by key: `<image id>` for the uploaded bytes, `<image id>.<format>` for
//! a sub-format. A `put` is atomic: the bytes go to `<key>.part`, are synced, and only then
//! renamed to `<key>`; on any error (the stream failed, the disk is full, the caller gave up)
//! the partial file is removed, so a broken upload never leaves garbage behind.
//!
//! Memory stays flat whatever the object's size: chunks pass through a bounded channel to
//! one writer thread with a fixed-size buffer.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

/// A stream of chunks, as an HTTP body gives them.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Chunks queued between the network and the writer thread.
const WRITE_QUEUE: usize = 16;
/// The writer thread's buffer: chunks are coalesced into writes of this size.
const WRITE_BUFFER: usize = 1 << 20;
/// Size of the chunks a read stream yields.
const READ_CHUNK: usize = 256 << 10;

/// What a store keeps images in. The local filesystem is the default; an S3 store can follow.
#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    /// Stores the stream under `key`, replacing any object there; returns its size. On error
    /// nothing is left under `key` or beside it.
    async fn put(&self, key: &str, body: ByteStream) -> std::io::Result<u64>;

    /// Moves a finished local file (made by qemu-img beside the store, see
    /// [`ImageStore::scratch_path`]) in under `key`.
    async fn put_file(&self, key: &str, src: &Path) -> std::io::Result<u64>;

    /// Reads `key` from `offset`, `len` bytes (`None`: to the end).
    async fn get(&self, key: &str, offset: u64, len: Option<u64>) -> std::io::Result<ByteStream>;

    /// Removes `key`; a missing object is not an error.
    async fn delete(&self, key: &str) -> std::io::Result<()>;

    /// The size of `key`, or `None` when it does not exist.
    async fn size(&self, key: &str) -> std::io::Result<Option<u64>>;

    /// The object's location as recorded in the image (`file:///...`).
    fn location(&self, key: &str) -> String;

    /// A local path holding `key`, for tools that need a file (qemu-img); `None` for remote
    /// stores, which would download first.
    fn local_path(&self, key: &str) -> Option<PathBuf>;

    /// A local path where a tool may write a file that becomes `key` by [`ImageStore::put_file`].
    fn scratch_path(&self, key: &str) -> PathBuf;

    /// Removes what an interrupted process left (partial uploads, scratch files).
    async fn remove_partials(&self) -> std::io::Result<usize>;
}

/// Images as files in one directory.
pub struct LocalStore {
    dir: PathBuf,
}

fn check_key(key: &str) -> std::io::Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('.')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad key {key:?}"))) }
}

/// Messages to the writer thread. A closed channel without `Finish` means "abort".
enum WriterMsg {
    Chunk(Bytes),
    Finish,
}

impl LocalStore {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<LocalStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(LocalStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.dir.join(key))
    }

    fn sync_dir(&self) {
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }
}

/// The writer thread: writes chunks to `tmp` until `Finish`, then syncs and renames to
/// `dst`. Any error, or the channel closing first, removes `tmp`.
fn write_file(tmp: &Path, dst: &Path, mut rx: tokio::sync::mpsc::Receiver<WriterMsg>) -> std::io::Result<u64> {
    let result = (|| {
        let f = std::fs::File::create(tmp)?;
        let mut w = std::io::BufWriter::with_capacity(WRITE_BUFFER, f);
        let mut n = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(WriterMsg::Chunk(b)) => {
                    w.write_all(&b)?;
                    n += b.len() as u64;
                }
                Some(WriterMsg::Finish) => break,
                None => return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "upload aborted")),
            }
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_data()?;
        std::fs::rename(tmp, dst)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[async_trait]
impl ImageStore for LocalStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> std::io::Result<u64> {
        let dst = self.path(key)?;
        let tmp = self.dir.join(format!("{key}.part"));
        let (tx, rx) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_file(&tmp, &dst, rx));
        let fed = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                if chunk.is_empty() {
                    continue;
                }
                if tx.send(WriterMsg::Chunk(chunk)).await.is_err() {
                    // The writer stopped on an error: it is reported below.
                    return Ok(false);
                }
            }
            Ok::<_, std::io::Error>(tx.send(WriterMsg::Finish).await.is_ok())
        }
        .await;
        drop(tx);
        let written = writer.await.map_err(std::io::Error::other)?;
        match fed {
            // The stream failed: the writer saw the channel close and removed the file.
            Err(e) => Err(e),
            Ok(_) => {
                let n = written?;
                self.sync_dir();
                Ok(n)
            }
        }
    }

    async fn put_file(&self, key: &str, src: &Path) -> std::io::Result<u64> {
        let dst = self.path(key)?;
        let src = src.to_path_buf();
        let n = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&src)?.sync_data()?;
            std::fs::rename(&src, &dst)?;
            Ok::<_, std::io::Error>(std::fs::metadata(&dst)?.len())
        })
        .await
        .map_err(std::io::Error::other)??;
        self.sync_dir();
        Ok(n)
    }

    async fn get(&self, key: &str, offset: u64, len: Option<u64>) -> std::io::Result<ByteStream> {
        let path = self.path(key)?;
        let mut f = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(path)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(std::io::Error::other)??;
        let mut left = len.unwrap_or(u64::MAX);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        // One reader thread per download; it stops when the receiver goes away.
        tokio::task::spawn_blocking(move || {
            while left > 0 {
                let want = (READ_CHUNK as u64).min(left) as usize;
                let mut buf = vec![0u8; want];
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                };
                buf.truncate(n);
                left -= n as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    break;
                }
            }
        });
        Ok(tokio_stream(rx))
    }

    async fn delete(&self, key: &str) -> std::io::Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn size(&self, key: &str) -> std::io::Result<Option<u64>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn location(&self, key: &str) -> String {
        format!("file://{}", self.dir.join(key).display())
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }

    fn scratch_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.scratch"))
    }

    async fn remove_partials(&self) -> std::io::Result<usize> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default();
                if name.ends_with(".part") || name.ends_with(".scratch") {
                    std::fs::remove_file(&p)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// A receiver as a stream.
fn tokio_stream<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("glance-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    async fn read_all(s: &LocalStore, key: &str, off: u64, len: Option<u64>) -> Vec<u8> {
        let mut st = s.get(key, off, len).await.unwrap();
        let mut out = vec![];
        while let Some(c) = st.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn put_get_range_delete() {
        let dir = temp_dir("ok");
        let s = LocalStore::new(&dir).unwrap();
        let chunks: Vec<std::io::Result<Bytes>> = (0..100u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
        let n = s.put("img", futures::stream::iter(chunks).boxed()).await.unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(s.size("img").await.unwrap(), Some(100_000));
        let part = read_all(&s, "img", 1500, Some(1000)).await;
        assert_eq!((part.len(), part[0], part[499], part[500]), (1000, 1, 1, 2));
        assert_eq!(read_all(&s, "img", 0, None).await.len(), 100_000);
        s.delete("img").await.unwrap();
        s.delete("img").await.unwrap();
        assert_eq!(s.size("img").await.unwrap(), None);
        assert!(s.put("../x", futures::stream::empty().boxed()).await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_failed_stream_leaves_nothing() {
        let dir = temp_dir("broken");
        let s = LocalStore::new(&dir).unwrap();
        let chunks: Vec<std::io::Result<Bytes>> =
            vec![Ok(Bytes::from(vec![1u8; 4096])), Err(std::io::Error::other("connection reset"))];
        let r = s.put("img", futures::stream::iter(chunks).boxed()).await;
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file left");
        let _ = std::fs::remove_dir_all(dir);
    }
}
