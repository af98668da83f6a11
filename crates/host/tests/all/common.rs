//! What the host agent's integration tests share: root and QEMU checks, the test image, a
//! namespace and process cleanup guard (those from `test_harness::hostenv`), a fake glance +
//! task-callback server, a contract client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use apis::Error;
use async_trait::async_trait;
use axum::extract::{Path as AxPath, State};
use axum::routing::{get, post};
use cloudcommon::auth::{ServiceToken, TokenVerifier, UserCred};
use md5::{Digest, Md5};
use serde_json::{Value, json};
// The lifecycle bench includes this file too and uses only some of these.
#[allow(unused_imports)]
pub use test_harness::hostenv::{Cleanup, prerequisites, require_root, sh};

pub const TOKEN: &str = "test-caller-token";

pub struct Verifier;

#[async_trait]
impl TokenVerifier for Verifier {
    async fn verify(&self, token: &str) -> Result<Arc<UserCred>, Error> {
        if token != TOKEN {
            return Err(Error::Unauthorized("invalid or expired token".into()));
        }
        Ok(Arc::new(UserCred {
            user_id: "u".into(),
            user: "sysadmin".into(),
            project: "system".into(),
            roles: vec!["admin".into()],
            system_scoped: true,
            expires_at: "2999-01-01T00:00:00.000000Z".into(),
            token_hash: cloudcommon::auth::token_hash(token),
            ..Default::default()
        }))
    }
}

pub struct AgentToken;

#[async_trait]
impl ServiceToken for AgentToken {
    async fn token(&self) -> Result<String, Error> {
        Ok("agent-token".into())
    }
}

pub type Callbacks = Arc<Mutex<Vec<(String, Value)>>>;

/// Plays glance (GET /image) and the region's task callbacks (POST /tasks/<id>).
pub async fn fake_services(image: Vec<u8>) -> Result<(String, Callbacks)> {
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

pub struct Client {
    pub http: reqwest::Client,
    pub agent: String,
    pub fake: String,
    pub cbs: Callbacks,
    pub n: std::sync::atomic::AtomicU32,
    pub token: String,
}

impl Client {
    /// Makes one contract call and waits for its callback.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        within: Duration,
    ) -> Result<Value> {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let task = format!("task-{n}");
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.agent))
            .header("X-Auth-Token", &self.token)
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
            // Short: the lifecycle benchmark times stages by these callbacks.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Waits for the serial log's ready line; returns it and how long it took.
pub async fn wait_ready(log: &Path, since: Instant, within: Duration) -> Result<(String, Duration)> {
    loop {
        let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).to_string()).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("CLOUDPODS-READY")) {
            return Ok((l.trim().to_string(), since.elapsed()));
        }
        ensure!(since.elapsed() < within, "no ready line within {within:?}; serial log:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn in_netns(ns: &str, args: &[&str]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    sh(&mut c)
}

pub async fn start_agent(dir: &Path, netns: &str) -> Result<(host::Built, String)> {
    start_agent_with(test_config(dir, netns), Arc::new(Verifier), Arc::new(AgentToken)).await
}

pub fn test_config(dir: &Path, netns: &str) -> host::HostConfig {
    let mut cfg = host::HostConfig::default();
    cfg.common.data_dir = dir.to_path_buf();
    cfg.netns = netns.to_string();
    cfg.register = false;
    cfg.vnc_listen = "127.0.0.1".into();
    cfg
}

/// Builds the agent and serves it on 127.0.0.1 (port 0); returns it and its URL.
pub async fn start_agent_with(
    cfg: host::HostConfig,
    verifier: Arc<dyn TokenVerifier>,
    token: Arc<dyn ServiceToken>,
) -> Result<(host::Built, String)> {
    let built = host::build(cfg, verifier, token).await?;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    let app = built.app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    Ok((built, url))
}

/// ssh into the guest from inside the namespace.
pub struct Ssh {
    pub netns: String,
    pub key: PathBuf,
    pub dir: PathBuf,
    /// The guest's address.
    pub ip: String,
}

impl Ssh {
    fn base(&self) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, "ssh", "-o", "StrictHostKeyChecking=no", "-o"]).args([
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ]);
        c
    }

    pub fn run_key(&self, cmd: &str) -> Result<String> {
        let mut c = self.base();
        c.args(["-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-i"])
            .arg(&self.key)
            .arg(format!("root@{}", self.ip))
            .arg(cmd);
        sh(&mut c)
    }

    /// Password login, the password given through SSH_ASKPASS (no sshpass needed).
    pub fn run_password(&self, password: &str, cmd: &str) -> Result<String> {
        let askpass = self.dir.join("askpass.sh");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n"))?;
        sh(Command::new("chmod").arg("700").arg(&askpass))?;
        let mut c = self.base();
        c.env("SSH_ASKPASS", &askpass).env("SSH_ASKPASS_REQUIRE", "force").env("DISPLAY", ":0");
        c.args(["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .arg(format!("root@{}", self.ip))
            .arg(cmd)
            .stdin(std::process::Stdio::null());
        sh(&mut c)
    }
}
