//! Starts a real cloudpods-rs (every service of `aio`) in-process for integration tests.
//!
//! Each [`TestCloud`] has its own data directory and ports (port 0), and its own databases:
//! SQLite files by default, or fresh MariaDB databases on the server named by
//! `TEST_DATABASE_URL` (e.g. `mysql://cloudpods:cloudpods@127.0.0.1:33306`), dropped at the end.

pub mod hostenv;
pub mod simhost;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cloudpods::aio::{AioArgs, Running};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct TestCloud {
    running: Option<Running>,
    pub args: AioArgs,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    pub auth_url: String,
    pub admin_password: String,
    pub urls: std::collections::BTreeMap<&'static str, String>,
    mysql_db: Option<(String, String)>,
}

/// One HTTP answer: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

fn unique() -> String {
    format!(
        "{:x}{:04x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() & 0xffff_ffff,
        rand_u16()
    )
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom(&mut b);
    u16::from_le_bytes(b)
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

impl TestCloud {
    /// Starts a fresh cloud.
    pub async fn start() -> Result<TestCloud> {
        TestCloud::start_with(&[]).await
    }

    /// Starts a fresh cloud with service config overrides, e.g. `glance.quota_images=2`
    /// (`cloudpods aio --set`).
    /// A fresh cloud with `service`'s settings overridden (`["quota_images=3"]` for glance
    /// becomes `--set glance.quota_images=3`), and the sysadmin's token.
    pub async fn start_service_with(service: &str, sets: &[&str]) -> Result<(TestCloud, String)> {
        let sets: Vec<String> = sets.iter().map(|s| format!("{service}.{s}")).collect();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        let tc = TestCloud::start_with(&refs).await?;
        let admin = tc.admin_token().await?;
        Ok((tc, admin))
    }

    pub async fn start_with(sets: &[&str]) -> Result<TestCloud> {
        let id = unique();
        let dir = std::env::temp_dir().join(format!("cloudpods-test-{id}"));
        std::fs::create_dir_all(&dir)?;
        let (database_url, mysql_db) = match std::env::var("TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()) {
            Some(server) => {
                let server = server.trim_end_matches('/').to_string();
                let db = format!("t{id}");
                (Some(format!("{server}/{db}")), Some((server, db)))
            }
            None => (None, None),
        };
        let args = AioArgs {
            data_dir: dir.clone(),
            database_url,
            listen_address: "127.0.0.1".parse()?,
            public_host: "127.0.0.1".into(),
            port_offset: 0,
            region: "region0".into(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            simulated_hosts: 0,
        };
        let running = cloudpods::aio::start(&args, true).await?;
        Ok(TestCloud {
            auth_url: running.auth_url.clone(),
            admin_password: running.admin_password.clone(),
            urls: running.urls.clone(),
            running: Some(running),
            args,
            dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
            mysql_db,
        })
    }

    /// Stops every service and starts them again on the same data and databases (new ports).
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(r) = self.running.take() {
            r.stop().await?;
        }
        let running = cloudpods::aio::start(&self.args, true).await?;
        self.auth_url = running.auth_url.clone();
        self.urls = running.urls.clone();
        self.running = Some(running);
        Ok(())
    }

    /// [`TestCloud::restart`] on the same ports, so that host agents holding the region's
    /// URLs (callbacks, pings) reach it again.
    pub async fn restart_same_ports(&mut self) -> Result<()> {
        let ports: std::collections::BTreeMap<String, u16> = self
            .urls
            .iter()
            .filter_map(|(k, u)| u.rsplit(':').next().and_then(|p| p.parse().ok()).map(|p| (k.to_string(), p)))
            .collect();
        if let Some(r) = self.running.take() {
            r.stop().await?;
        }
        let running = cloudpods::aio::start_on(&self.args, cloudpods::aio::Ports::Fixed(ports)).await?;
        self.auth_url = running.auth_url.clone();
        self.urls = running.urls.clone();
        self.running = Some(running);
        Ok(())
    }

    pub fn url(&self, service: &str) -> String {
        self.urls.get(service).cloned().unwrap_or_default()
    }

    /// glance's API base, with its `/v1` prefix.
    pub fn glance_url(&self) -> String {
        format!("{}/v1", self.url("glance"))
    }

    /// The region's API base (no prefix).
    pub fn region_url(&self) -> String {
        self.url("region")
    }

    /// The in-process state of a service (`keystone` excluded), to reach its task engine.
    pub fn state(&self, service: &str) -> Option<std::sync::Arc<cloudcommon::service::ServiceState>> {
        self.running.as_ref().and_then(|r| r.states.get(service).cloned())
    }

    /// A password login; returns the token. `project` None means unscoped.
    pub async fn login(&self, user: &str, password: &str, project: Option<&str>) -> Result<String> {
        let mut auth = serde_json::json!({"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}}});
        if let Some(p) = project {
            auth["scope"] = serde_json::json!({"project": {"name": p, "domain": {"name": "Default"}}});
        }
        let r = self
            .call(
                Method::POST,
                &format!("{}/auth/tokens", self.auth_url),
                None,
                Some(serde_json::json!({"auth": auth})),
            )
            .await?;
        if r.status != StatusCode::CREATED {
            bail!("login {user} failed: {} {}", r.status, r.body);
        }
        r.header("x-subject-token").context("no X-Subject-Token")
    }

    /// Creates project `project` (if needed) and a user `user` with role member in it; returns
    /// the user's token.
    pub async fn member(&self, admin: &str, user: &str, project: &str) -> Result<String> {
        let body = serde_json::json!({"project": {"name": project}});
        let r = self.ks(Method::POST, "/projects", admin, Some(body)).await?;
        if !r.status.is_success() && r.status != StatusCode::CONFLICT {
            bail!("create project {project}: {} {}", r.status, r.body);
        }
        let pw = format!("{user}-Pw-1234");
        let body = serde_json::json!({"user": {"name": user, "password": pw, "project": project, "role": "member"}});
        let r = self.ks(Method::POST, "/users", admin, Some(body)).await?;
        if !r.status.is_success() {
            bail!("create user {user}: {} {}", r.status, r.body);
        }
        self.login(user, &pw, Some(project)).await
    }

    /// The sysadmin's token, scoped to project system.
    pub async fn admin_token(&self) -> Result<String> {
        self.login("sysadmin", &self.admin_password, Some("system")).await
    }

    /// Uploads `bytes` to glance as image `name` (`disk_format` raw, qcow2, ...) and waits up
    /// to 60 s until it is active; its id.
    pub async fn upload_image(&self, token: &str, name: &str, disk_format: &str, bytes: Vec<u8>) -> Result<String> {
        let r = self
            .http
            .post(format!("{}/images", self.glance_url()))
            .header("X-Auth-Token", token)
            .header("Content-Type", "application/octet-stream")
            .header("X-Image-Meta-Name", name)
            .header("X-Image-Meta-Disk_format", disk_format)
            .body(bytes)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        let Some(id) = body["image"]["id"].as_str().filter(|_| status.is_success()).map(str::to_string) else {
            bail!("upload of image {name}: {status} {body}");
        };
        let url = format!("{}/images/{id}", self.glance_url());
        wait_for(Duration::from_secs(60), || async {
            let r = self.call(Method::GET, &url, Some(token), None).await;
            r.is_ok_and(|r| r.body["image"]["status"] == "active")
        })
        .await
        .with_context(|| format!("image {name} never became active"))?;
        Ok(id)
    }

    /// Sends a request with an optional token and JSON body.
    pub async fn call(&self, method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> Result<Resp> {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp { status, headers, body })
    }

    /// `GET|POST|... <keystone>/v3<path>`.
    pub async fn ks(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Resp> {
        self.call(method, &format!("{}{path}", self.auth_url), Some(token), body).await
    }

    /// The environment `climc` and `openstack` need to act as `user`.
    pub fn os_env(&self, user: &str, password: &str, project: &str) -> Vec<(String, String)> {
        [
            ("OS_AUTH_URL", self.auth_url.as_str()),
            ("OS_USERNAME", user),
            ("OS_PASSWORD", password),
            ("OS_PROJECT_NAME", project),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"),
            ("OS_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN", "Default"),
            ("OS_REGION_NAME", "region0"),
            ("OS_ENDPOINT_TYPE", "publicURL"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Stops the cloud and removes its data and databases.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(r) = self.running.take() {
            r.stop().await?;
        }
        if let Some((server, db)) = self.mysql_db.take() {
            drop_mysql(&server, &db).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

async fn drop_mysql(server: &str, prefix: &str) {
    let Ok(db) = cloudcommon::db::Db::connect(&format!("{server}/{prefix}_cleanup")).await else { return };
    let Ok(rows) = db.raw_query("SHOW DATABASES", vec![]).await else { return };
    for r in rows {
        if let Ok(name) = r.try_get_by_index::<String>(0)
            && name.starts_with(prefix)
        {
            let _ = db.conn_exec(&format!("DROP DATABASE `{name}`")).await;
        }
    }
}

/// Checks an error answer: this status and class, and a Cloudpods body (`code` matching the
/// status, non-empty `class` and `details`).
#[track_caller]
pub fn assert_error(r: &Resp, status: u16, class: &str) {
    assert_eq!(r.status.as_u16(), status, "expected {status} {class}, got {} {}", r.status, r.body);
    assert_error_body(r);
    assert_eq!(r.body["class"], class, "{}", r.body);
}

/// Checks that an error answer carries `{code, class, details}` matching its status.
#[track_caller]
pub fn assert_error_body(r: &Resp) {
    assert!(r.status.is_client_error() || r.status.is_server_error(), "not an error: {} {}", r.status, r.body);
    assert_eq!(r.body["code"].as_u64(), Some(u64::from(r.status.as_u16())), "{}", r.body);
    assert!(r.body["class"].as_str().is_some_and(|c| !c.is_empty()), "no class: {}", r.body);
    assert!(r.body["details"].as_str().is_some_and(|d| !d.is_empty()), "no details: {}", r.body);
}

/// Polls `cond` every 20 ms until it holds or `ceiling` passes.
pub async fn wait_for<F, Fut>(ceiling: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < ceiling {
        if cond().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("condition not met within {ceiling:?}")
}
