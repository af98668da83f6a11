//! A QMP client over QEMU's unix socket.
//!
//! ```text
//!  connect -> greeting {"QMP": ...} -> qmp_capabilities -> command mode
//!  execute(cmd) -> {"execute": cmd, "arguments": .., "id": n} -> lines until {"return"|"error", "id": n}
//! ```
//! Events (`{"event": ...}`) arriving between commands are kept in [`Qmp::events`]. One owner
//! (the guest's task) drives a client at a time, so commands never interleave.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("QMP i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP closed the connection")]
    Closed,
    #[error("QMP answered no {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("QMP {cmd}: {class}: {desc}")]
    Command { cmd: String, class: String, desc: String },
    #[error("QMP sent invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    timeout: Duration,
    pub events: Vec<Value>,
}

impl Qmp {
    /// Connects, reads the greeting and enters command mode.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let s = UnixStream::connect(path).await.map_err(|e| QmpError::Connect(path.display().to_string(), e))?;
        let (r, w) = s.into_split();
        let mut q = Qmp { reader: BufReader::new(r), writer: w, next_id: 0, timeout, events: vec![] };
        let greeting = q.read_msg("greeting").await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Command {
                cmd: "greeting".into(),
                class: "Protocol".into(),
                desc: greeting.to_string(),
            });
        }
        q.execute("qmp_capabilities", None).await?;
        Ok(q)
    }

    /// Connects, retrying until `within` has passed (QEMU creates the socket shortly after spawn).
    pub async fn connect_retry(path: &Path, within: Duration) -> Result<Qmp, QmpError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match Qmp::connect(path, Duration::from_secs(10)).await {
                Ok(q) => return Ok(q),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    async fn read_msg(&mut self, what: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout(what.to_string(), self.timeout))??;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        Ok(serde_json::from_str(line.trim())?)
    }

    /// Runs one command and returns its `return` value.
    pub async fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value, QmpError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"execute": cmd, "id": id});
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await?;
        loop {
            let v = self.read_msg(cmd).await?;
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if v.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Command {
                    cmd: cmd.to_string(),
                    class: e.get("class").and_then(Value::as_str).unwrap_or_default().to_string(),
                    desc: e.get("desc").and_then(Value::as_str).unwrap_or_default().to_string(),
                });
            }
            return Ok(v.get("return").cloned().unwrap_or(Value::Null));
        }
    }

    /// Reads what QEMU already sent (events) until the connection closes or nothing more
    /// arrives within `quiet`; returns every event seen on this connection.
    pub async fn drain_events(&mut self, quiet: Duration) -> Vec<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            match tokio::time::timeout(quiet, self.reader.read_line(&mut line)).await {
                Ok(Ok(n)) if n > 0 => {
                    if let Ok(v) = serde_json::from_str::<Value>(line.trim())
                        && v.get("event").is_some()
                    {
                        self.events.push(v);
                    }
                }
                _ => break,
            }
        }
        std::mem::take(&mut self.events)
    }

    pub async fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont", None).await.map(drop)
    }

    pub async fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop", None).await.map(drop)
    }

    pub async fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).await.map(drop)
    }

    pub async fn system_reset(&mut self) -> Result<(), QmpError> {
        self.execute("system_reset", None).await.map(drop)
    }

    /// `query-status`: (`status`, `running`), e.g. ("running", true), ("paused", false).
    pub async fn query_status(&mut self) -> Result<(String, bool), QmpError> {
        let v = self.execute("query-status", None).await?;
        let status = v.get("status").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok((status, v.get("running").and_then(Value::as_bool).unwrap_or(false)))
    }

    /// `quit`: QEMU exits at once (the connection drops, which counts as success).
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None).await {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(QmpError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn device_add(&mut self, args: Value) -> Result<(), QmpError> {
        self.execute("device_add", Some(args)).await.map(drop)
    }

    pub async fn device_del(&mut self, id: &str) -> Result<(), QmpError> {
        self.execute("device_del", Some(json!({"id": id}))).await.map(drop)
    }

    pub async fn blockdev_add(&mut self, args: Value) -> Result<(), QmpError> {
        self.execute("blockdev-add", Some(args)).await.map(drop)
    }

    pub async fn blockdev_del(&mut self, node: &str) -> Result<(), QmpError> {
        self.execute("blockdev-del", Some(json!({"node-name": node}))).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A fake QEMU: greets, answers capabilities, sends an event before answering.
    #[tokio::test]
    async fn speaks_qmp_and_keeps_events() {
        let dir = std::env::temp_dir().join(format!("qmp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("q.sock");
        let _ = std::fs::remove_file(&sock);
        let l = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n").await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = String::new();
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return seen;
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                for line in text.lines() {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let id = v["id"].clone();
                    let cmd = v["execute"].as_str().unwrap().to_string();
                    seen.push_str(&cmd);
                    seen.push(' ');
                    let reply = match cmd.as_str() {
                        "query-status" => {
                            s.write_all(b"{\"event\": \"RESUME\", \"timestamp\": {}}\n").await.unwrap();
                            json!({"return": {"status": "running", "running": true}, "id": id})
                        }
                        "device_del" => json!({"error": {"class": "DeviceNotFound", "desc": "no nic-9"}, "id": id}),
                        _ => json!({"return": {}, "id": id}),
                    };
                    s.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
                }
            }
        });
        let mut q = Qmp::connect(&sock, Duration::from_secs(5)).await.unwrap();
        q.cont().await.unwrap();
        assert_eq!(q.query_status().await.unwrap(), ("running".to_string(), true));
        assert_eq!(q.events.len(), 1);
        let e = q.device_del("nic-9").await.unwrap_err().to_string();
        assert!(e.contains("DeviceNotFound") && e.contains("no nic-9"), "{e}");
        drop(q);
        assert_eq!(server.await.unwrap(), "qmp_capabilities cont query-status device_del ");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
