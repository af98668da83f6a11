//! The real agent, real QEMU (TCG on our machines), the real test image, all guest
//! networking inside a network namespace this test creates and removes.
//!
//! Drives the host agent contract directly (no region): a tiny HTTP server plays glance (serves
//! the image with its MD5) and the region's task callbacks (`POST /tasks/<id>`).
//! Needs root. Installs QEMU with `scripts/deps.sh --qemu` when missing; never skips silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use apis::Error;
use async_trait::async_trait;
use axum::extract::{Path as AxPath, State};
use axum::routing::{get, post};
use cloudcommon::auth::{ServiceToken, TokenVerifier, UserCred};
use md5::{Digest, Md5};
use serde_json::{Value, json};

const TOKEN: &str = "test-caller-token";

struct Verifier;

#[async_trait]
impl TokenVerifier for Verifier {
    async fn verify(&self, token: &str) -> Result<Arc<UserCred>, Error> {
        if token != TOKEN {
            return Err(Error::Unauthorized("invalid or expired token".into()));
        }
        Ok(Arc::new(UserCred {
            user_id: "u".into(),
            user: "sysadmin".into(),
            system_scoped: true,
            expires_at: "2999-01-01T00:00:00.000000Z".into(),
            token_hash: cloudcommon::auth::token_hash(token),
            ..Default::default()
        }))
    }
}

struct AgentToken;

#[async_trait]
impl ServiceToken for AgentToken {
    async fn token(&self) -> Result<String, Error> {
        Ok("agent-token".into())
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Root, QEMU and genisoimage, or a clear failure (installing what is missing first).
fn prerequisites() -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "the host agent's real-VM test needs root (netns, bridges, taps)");
    let have = |c: &str| {
        Command::new("sh").arg("-c").arg(format!("command -v {c}")).output().is_ok_and(|o| o.status.success())
    };
    if !have("qemu-system-x86_64") || !have("genisoimage") {
        eprintln!("installing QEMU and genisoimage with scripts/deps.sh --qemu");
        sh(Command::new(repo_root().join("scripts/deps.sh")).arg("--qemu"))?;
    }
    ensure!(have("qemu-system-x86_64"), "qemu-system-x86_64 is missing and scripts/deps.sh --qemu did not install it");
    ensure!(have("genisoimage"), "genisoimage is missing and scripts/deps.sh --qemu did not install it");
    let out = sh(&mut Command::new(repo_root().join("scripts/build-test-image.sh")))?;
    let img = PathBuf::from(out.lines().last().context("build-test-image.sh printed no path")?.trim());
    ensure!(img.exists(), "test image {} missing", img.display());
    Ok(img)
}

/// Removes what the test made even when it fails: QEMU processes (by pidfile), the netns, files.
struct Cleanup {
    netns: String,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.join("servers")) {
            for e in rd.flatten() {
                if let Ok(p) = std::fs::read_to_string(e.path().join("qemu.pid"))
                    && let Ok(pid) = p.trim().parse::<i32>()
                    && host::guest::qemu_alive(pid, &e.file_name().to_string_lossy())
                {
                    // SAFETY: a QEMU this test started (checked through /proc/<pid>/cmdline).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Callbacks = Arc<Mutex<Vec<(String, Value)>>>;

/// Plays glance (GET /image) and the region's task callbacks (POST /tasks/<id>).
async fn fake_services(image: Vec<u8>) -> Result<(String, Callbacks)> {
    let md5 = hex::encode(Md5::digest(&image));
    let cbs: Callbacks = Arc::default();
    let image = Arc::new(image);
    let app = axum::Router::new()
        .route(
            "/image",
            get(move || {
                let (image, md5) = (image.clone(), md5.clone());
                async move { ([("x-image-meta-checksum", md5)], image.as_ref().clone()) }
            }),
        )
        .route(
            "/tasks/{id}",
            post(|State(cbs): State<Callbacks>, AxPath(id): AxPath<String>, axum::Json(v): axum::Json<Value>| async move {
                cbs.lock().unwrap().push((id, v));
                axum::Json(json!({}))
            }),
        )
        .with_state(cbs.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((url, cbs))
}

struct Client {
    http: reqwest::Client,
    agent: String,
    fake: String,
    cbs: Callbacks,
    n: std::sync::atomic::AtomicU32,
}

impl Client {
    /// Makes one contract call and waits for its callback.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, within: Duration) -> Result<Value> {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let task = format!("task-{n}");
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.agent))
            .header("X-Auth-Token", TOKEN)
            .header("X-Task-Id", &task)
            .header("X-Task-Notify-Url", format!("{}/tasks/{task}", self.fake));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status();
        let ack: Value = resp.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success() && ack == json!({"result": "ok"}), "{path}: {status} {ack}");
        let deadline = Instant::now() + within;
        loop {
            if let Some((_, v)) = self.cbs.lock().unwrap().iter().find(|(t, _)| *t == task) {
                if v.get("status").and_then(Value::as_str) == Some("error") {
                    bail!("{path} failed: {v}");
                }
                return Ok(v.clone());
            }
            ensure!(Instant::now() < deadline, "no callback for {path} within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits for the serial log's ready line; returns it and how long it took.
async fn wait_ready(log: &Path, since: Instant, within: Duration) -> Result<(String, Duration)> {
    loop {
        let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).to_string()).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("CLOUDPODS-READY")) {
            return Ok((l.trim().to_string(), since.elapsed()));
        }
        ensure!(since.elapsed() < within, "no ready line within {within:?}; serial log:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_netns(ns: &str, args: &[&str]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    sh(&mut c)
}

async fn start_agent(dir: &Path, netns: &str) -> Result<(host::Built, String)> {
    let mut cfg = host::HostConfig::default();
    cfg.common.data_dir = dir.to_path_buf();
    cfg.netns = netns.to_string();
    cfg.register = false;
    cfg.vnc_listen = "127.0.0.1".into();
    let built = host::build(cfg, Arc::new(Verifier), Arc::new(AgentToken)).await?;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    let app = built.app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    Ok((built, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vm_lifecycle_in_a_netns() -> Result<()> {
    let t_all = Instant::now();
    let image = prerequisites()?;
    let pid = std::process::id();
    let netns = format!("cphost-{pid}");
    let dir = std::env::temp_dir().join(format!("cloudpods-host-test-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _cleanup = Cleanup { netns: netns.clone(), dir: dir.clone() };
    sh(Command::new("ip").args(["netns", "add", &netns]))?;

    let (fake, cbs) = fake_services(std::fs::read(&image)?).await?;
    let (built, agent_url) = start_agent(&dir, &netns).await?;
    let c = Client { http: reqwest::Client::new(), agent: agent_url.clone(), fake: fake.clone(), cbs, n: 0.into() };
    let long = Duration::from_secs(90);

    // The auth layer guards the contract.
    let r = c.http.post(format!("{agent_url}/disks/image_cache")).json(&json!({})).send().await?;
    assert_eq!(r.status().as_u16(), 401);

    // Image cache: downloaded once, checksum verified.
    let cb = c
        .call(
            reqwest::Method::POST,
            "/disks/image_cache",
            Some(
                json!({"disk": {"image_id": "testimg", "storagecache_id": "sc1", "src_url": format!("{fake}/image")}}),
            ),
            long,
        )
        .await?;
    assert_eq!(cb["size"].as_u64(), Some(std::fs::metadata(&image)?.len()));

    // Disk: a qcow2 overlay on the cached image.
    let t = Instant::now();
    let cb = c
        .call(
            reqwest::Method::POST,
            "/disks/s1/create/disk-1",
            Some(json!({"disk": {"size": 128, "format": "qcow2", "image_id": "testimg"}})),
            long,
        )
        .await?;
    let overlay = PathBuf::from(cb["path"].as_str().context("disk path")?);
    let info = sh(Command::new("qemu-img").args(["info", "--output=json", "-U"]).arg(&overlay))?;
    let info: Value = serde_json::from_str(&info)?;
    assert!(info["backing-filename"].as_str().unwrap_or_default().ends_with("image_cache/testimg"), "{info}");
    assert_eq!(info["virtual-size"].as_u64(), Some(128 << 20));
    eprintln!("disk create (overlay) callback after {:?}", t.elapsed());

    // Server: create (config drive), then start.
    let gid = format!("g{pid}");
    let desc = json!({
        "id": gid, "name": "vm-e2e", "uuid": gid, "hostname": "vm-e2e", "vcpu_count": 1, "vmem_size": 256,
        "boot_order": "cdn",
        "disks": [{"index": 0, "disk_id": "disk-1", "size": 128, "format": "qcow2", "driver": "virtio",
                   "image_id": "testimg", "storage_id": "s1"}],
        "nics": [{"index": 0, "mac": "00:22:aa:10:00:0a", "ip": "10.99.0.10", "masklen": 24, "gateway": "10.99.0.1",
                  "dns": "10.99.0.1", "bridge": "brtest0", "wire_id": "w1", "network_id": "n1", "vlan": 1,
                  "ifname": format!("vn{pid}")}],
        "pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostAgentTestKey test@cloudpods",
        "password": "Test-pw-123",
    });
    let cb = c
        .call(
            reqwest::Method::POST,
            &format!("/servers/{gid}/create"),
            Some(json!({"desc": desc, "action": "create", "on_finish": "shutdown"})),
            long,
        )
        .await?;
    assert_eq!(cb["status"], "ready", "{cb}");
    let g0 = cb["generation"].as_u64().context("generation")?;
    let serial = dir.join("servers").join(&gid).join("serial.log");

    let t = Instant::now();
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/start"), Some(json!({"desc": desc})), long).await?;
    let start_cb = t.elapsed();
    assert_eq!(cb["status"], "running", "{cb}");
    let g1 = cb["generation"].as_u64().context("generation")?;
    assert!(g1 > g0, "generation grows: {g0} -> {g1}");
    let (line, boot) = wait_ready(&serial, t, long).await?;
    eprintln!("start callback after {start_cb:?}; ready line after {boot:?}: {line}");
    assert_eq!(line, "CLOUDPODS-READY hostname=vm-e2e ip=10.99.0.10");

    // The guest answers on its network, from inside the namespace only.
    let page = in_netns(&netns, &["curl", "-sS", "--max-time", "5", "http://10.99.0.10/"])?;
    assert!(page.contains("hostname=vm-e2e ip=10.99.0.10"), "{page}");
    // ... and it asked the metadata service who it is (async, after the ready line).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match in_netns(&netns, &["curl", "-sSf", "--max-time", "5", "http://10.99.0.10/instance-id"]) {
            Ok(iid) if iid.trim() == gid => break,
            r => {
                let log = in_netns(&netns, &["curl", "-sS", "--max-time", "5", "http://10.99.0.10/metadata.log"]);
                ensure!(
                    Instant::now() < deadline,
                    "guest never got its instance-id from 169.254.169.254: {r:?} {log:?}"
                )
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Stop by ACPI power button: QEMU exits, status ready.
    let qemu_pid: i32 = std::fs::read_to_string(dir.join("servers").join(&gid).join("qemu.pid"))?.trim().parse()?;
    let t = Instant::now();
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/stop"), Some(json!({"timeout": 30})), long).await?;
    eprintln!("stop (ACPI) callback after {:?}", t.elapsed());
    assert_eq!(cb["status"], "ready", "{cb}");
    assert!(!host::guest::qemu_alive(qemu_pid, &gid), "QEMU {qemu_pid} still running");

    // Start again: a fresh boot reaches its ready line again.
    let t = Instant::now();
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/start"), Some(json!({"desc": desc})), long).await?;
    assert_eq!(cb["status"], "running", "{cb}");
    let (line, boot) = wait_ready(&serial, t, long).await?;
    eprintln!("second boot: ready line after {boot:?}");
    assert_eq!(line, "CLOUDPODS-READY hostname=vm-e2e ip=10.99.0.10");

    // Restart the agent: the running VM is re-adopted (pidfile + QMP), generation still grows.
    let before = c.call(reqwest::Method::GET, &format!("/servers/{gid}/status"), None, long).await?;
    built.agent.shutdown().await;
    drop(built);
    let (built, agent_url2) = start_agent(&dir, &netns).await?;
    let c = Client { agent: agent_url2, ..c };
    let after = c.call(reqwest::Method::GET, &format!("/servers/{gid}/status"), None, long).await?;
    assert_eq!(after["status"], "running", "{after}");
    assert!(after["generation"].as_u64() > before["generation"].as_u64(), "{before} -> {after}");
    let page = in_netns(&netns, &["curl", "-sS", "--max-time", "5", "http://10.99.0.10/"])?;
    assert!(page.contains("hostname=vm-e2e"), "{page}");

    // Delete: QEMU, tap, lease and directory gone; then the disk.
    let qemu_pid: i32 = std::fs::read_to_string(dir.join("servers").join(&gid).join("qemu.pid"))?.trim().parse()?;
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/delete"), Some(json!({})), long).await?;
    assert_eq!(cb["server_id"], gid.as_str());
    assert!(!host::guest::qemu_alive(qemu_pid, &gid));
    let tap = format!("vn{pid}");
    assert!(
        Command::new("ip").args(["-n", &netns, "link", "show", &tap]).output()?.status.code() != Some(0),
        "tap left"
    );
    assert!(built.agent.leases.is_empty(), "lease left");
    assert!(!dir.join("servers").join(&gid).exists());
    c.call(reqwest::Method::POST, "/disks/s1/delete/disk-1", Some(json!({})), long).await?;
    assert!(!overlay.exists(), "overlay left");
    // Unknown servers: a clear synchronous error, no callback.
    let r = c
        .http
        .post(format!("{}/servers/nope/start", c.agent))
        .header("X-Auth-Token", TOKEN)
        .header("X-Task-Id", "t-x")
        .header("X-Task-Notify-Url", format!("{fake}/tasks/t-x"))
        .json(&json!({"desc": desc}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 404);
    built.agent.shutdown().await;
    eprintln!("real VM lifecycle test took {:?}", t_all.elapsed());
    Ok(())
}
