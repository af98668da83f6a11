//! `cargo xtask bench keystone`: figures for the foundation targets, measured on a real
//! `cloudpods aio` started as a child process.
//!
//! ```text
//! cargo build --release -p cloudpods            (unless --no-build; the binary is found in
//!                                               `cargo metadata`'s target_directory)
//! cloudpods aio --data-dir <tmp>/data --port-offset 15000 --listen-address 127.0.0.1
//!   wait for <tmp>/data/openrc and GET /v3 -> 200; idle 3 s; RSS idle = VmRSS
//!   setup: sysadmin token (password from openrc), project + user `bench` + role member
//!   1. token validate: GET /v3/auth/tokens, X-Auth-Token = admin, X-Subject-Token = bench
//!      N clients (16), each one keep-alive connection, back to back; 1 s warm-up, then
//!      --duration seconds: req/s = answers / elapsed, p50/p99 of each request's latency
//!   2. token issue: POST /v3/auth/tokens (password, project scope)
//!      x1:  one client, --issue-count rounds of (bcrypt verify at cost 10 in this process,
//!           then one issue): issue p50 against bcrypt p50, the floor of a password login;
//!           pairing them makes the comparison fair on a machine with other load
//!      xN:  N clients, 4 issues each: throughput (latency there is queueing behind bcrypt)
//!   RSS after load = VmRSS; kill the child (SIGKILL, also on error and Ctrl-C) and remove
//!   <tmp> (kept with --keep: aio.log has the server's output)
//! ```
//! Targets (foundation issue): validate >= 20,000 req/s with p99 < 5 ms; issue p50 <= bcrypt
//! p50 + 2 ms; aio idle RSS < 60 MB. A missed target prints `MISSED`; the exit status stays
//! 0 (it is a report, not a test) unless the bench itself cannot run.
//!
//! The load generator is a bare hyper HTTP/1.1 client on a current-thread runtime, so it
//! uses at most one core and leaves the rest to the server; on a 2-core machine client and
//! server share the CPUs, so the figures are a lower bound of what the server can do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Added to every default port: keystone 30500 -> 45500.
pub(crate) const PORT_OFFSET: u16 = 15000;
const KEYSTONE_PORT: u16 = 30500 + PORT_OFFSET;
const BCRYPT_COST: u32 = 10;
const BENCH_PASSWORD: &str = "Bench-pa55word";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: all (default), keystone, glance, compute or gateway.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    #[command(flatten)]
    glance: crate::bench_glance::GlanceArgs,
    #[command(flatten)]
    compute: crate::bench_compute::ComputeArgs,
    /// How long to measure token validation, in seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Sequential token issues measured for latency (the concurrent run does 4 per client).
    #[arg(long, default_value_t = 20)]
    issue_count: usize,
    /// Use the existing target/release/cloudpods instead of running `cargo build` first.
    #[arg(long)]
    no_build: bool,
    /// Bench this cloudpods binary instead of the workspace's (implies --no-build).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Requests per series in `bench gateway` (direct, bearer through the gateway, cookie).
    #[arg(long, default_value_t = 2000)]
    gateway_count: usize,
    /// Keep the server's data dir and log (aio.log) instead of removing them at the end.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Which {
    All,
    Keystone,
    Glance,
    Compute,
    Gateway,
}

pub fn run(args: BenchArgs) -> Result<()> {
    ensure!(args.clients > 0 && args.duration > 0 && args.issue_count > 0, "counts must be positive");
    if let Which::Compute = args.which {
        // In-process: the region's store seeds the rows.
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return rt.block_on(crate::bench_compute::run(&args.compute));
    }
    let bin = match &args.server {
        Some(path) => path.clone(),
        None => server_binary(!args.no_build)?,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.which {
        Which::Compute => Ok(()),
        Which::Keystone => rt.block_on(keystone(&bin, &args)),
        Which::Glance => rt.block_on(crate::bench_glance::run(&bin, args.glance.size_mib, args.keep)),
        Which::Gateway => rt.block_on(crate::bench_gateway::run(&bin, args.gateway_count, args.keep)),
        Which::All => {
            rt.block_on(keystone(&bin, &args))?;
            rt.block_on(crate::bench_glance::run(&bin, args.glance.size_mib, args.keep))?;
            rt.block_on(crate::bench_gateway::run(&bin, args.gateway_count, args.keep))?;
            drop(rt);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(crate::bench_compute::run(&args.compute))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test.

/// Builds (unless told not to) and locates `<target dir>/release/cloudpods`.
fn server_binary(build: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if build {
        eprintln!("building cloudpods (release)...");
        let st = std::process::Command::new(&cargo)
            .args(["build", "--release", "-p", "cloudpods"])
            .status()
            .context("cannot run cargo")?;
        ensure!(st.success(), "cargo build --release -p cloudpods failed");
    }
    let out = std::process::Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed");
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let dir = meta["target_directory"].as_str().context("cargo metadata has no target_directory")?;
    let bin = Path::new(dir).join("release").join("cloudpods");
    ensure!(bin.exists(), "{} does not exist (run without --no-build)", bin.display());
    Ok(bin)
}

/// A `cloudpods aio` child on a private data dir. Dropping it kills the child and removes
/// the directory.
pub(crate) struct Server {
    child: tokio::process::Child,
    pid: u32,
    dir: PathBuf,
    keep: bool,
}

impl Server {
    pub(crate) fn spawn(bin: &Path, keep: bool) -> Result<Server> {
        let dir = std::env::temp_dir().join(format!("cloudpods-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("aio.log"))?;
        let child = tokio::process::Command::new(bin)
            .args(["--log", "info", "aio", "--listen-address", "127.0.0.1"])
            .args(["--port-offset", &PORT_OFFSET.to_string()])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Server { child, pid, dir, keep })
    }

    /// The last lines the server printed, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("aio.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits (up to 60 s) for the openrc and `GET /v3`, failing early if the child exits.
    pub(crate) async fn wait_ready(&mut self, api: &Api) -> Result<()> {
        let openrc = self.dir.join("data").join("openrc");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("cloudpods aio exited ({st}) during start-up");
            }
            if openrc.exists()
                && let Ok(r) = api.call(Method::GET, "/v3", None, None).await
                && r.status == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("cloudpods aio not ready after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resident memory of the server process (VmRSS), in MB.
    fn rss_mb(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")?;
        Ok(kb / 1024.0)
    }

    /// `(user, password)` of sysadmin, from the openrc.
    pub(crate) fn admin_credentials(&self) -> Result<(String, String)> {
        let text = std::fs::read_to_string(self.dir.join("data").join("openrc"))?;
        let var = |name: &str| {
            text.lines()
                .filter_map(|l| l.trim().trim_start_matches("export ").strip_prefix(name))
                .find_map(|rest| rest.strip_prefix('='))
                .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
                .with_context(|| format!("no {name} in the openrc"))
        };
        Ok((var("OS_USERNAME")?, var("OS_PASSWORD")?))
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A bare HTTP/1.1 client.

pub(crate) type Conn = SendRequest<Full<Bytes>>;

pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn expect(self, what: &str, status: StatusCode) -> Result<Resp> {
        ensure!(self.status == status, "{what}: {} {}", self.status, String::from_utf8_lossy(&self.body));
        Ok(self)
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(conn)
}

pub(crate) async fn send(conn: &mut Conn, req: Request<Full<Bytes>>) -> Result<Resp> {
    conn.ready().await?;
    let (parts, body) = conn.send_request(req).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Resp { status: parts.status, headers: parts.headers, body })
}

/// keystone's address and the requests the bench makes.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
    host: HeaderValue,
}

impl Api {
    pub(crate) fn new(port: u16) -> Api {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Api { addr, host: HeaderValue::from_str(&addr.to_string()).expect("an address is a header value") }
    }

    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(path).header(http::header::HOST, self.host.clone());
        if let Some(t) = token {
            b = b.header("x-auth-token", t);
        }
        let body = match body {
            Some(v) => {
                b = b.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        b.body(Full::new(body)).expect("a valid request")
    }

    /// One request on a fresh connection (set-up only).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Resp> {
        let mut conn = connect(self.addr).await?;
        send(&mut conn, self.request(method, path, token, body.as_ref())).await
    }

    /// The body of `POST /v3/auth/tokens` for a password login scoped to a project.
    fn password_auth(user: &str, password: &str, project: &str) -> Value {
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }})
    }

    pub(crate) async fn token(&self, user: &str, password: &str, project: &str) -> Result<String> {
        let r = self
            .call(Method::POST, "/v3/auth/tokens", None, Some(Api::password_auth(user, password, project)))
            .await?
            .expect(&format!("login as {user}"), StatusCode::CREATED)?;
        Ok(r.headers.get("x-subject-token").context("no X-Subject-Token")?.to_str()?.to_string())
    }

    async fn create(&self, token: &str, plural: &str, keyword: &str, body: Value) -> Result<String> {
        let r = self
            .call(Method::POST, &format!("/v3/{plural}"), Some(token), Some(json!({ keyword: body })))
            .await?
            .expect(&format!("create {keyword}"), StatusCode::OK)?;
        Ok(r.json()[keyword]["id"].as_str().with_context(|| format!("created {keyword} has no id"))?.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Load.

/// When a load run ends: at an instant, or after a number of requests.
#[derive(Clone, Copy)]
enum Until {
    Time(Instant),
    Count(usize),
}

/// What a load run saw.
struct Run {
    /// Latency of every successful request, sorted.
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
    first_error: Option<String>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile, in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies, q)
    }
}

pub(crate) fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// `clients` workers, each on its own keep-alive connection, send `make()` back to back
/// until `until`; a response other than `ok` counts as an error.
async fn load<F>(api: &Api, clients: usize, until: Until, ok: StatusCode, make: F) -> Result<Run>
where
    F: Fn(&Api) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let tickets = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..clients {
        let (api, make, tickets) = (api.clone(), make.clone(), tickets.clone());
        workers.spawn(async move {
            let mut conn = connect(api.addr).await?;
            let (mut lat, mut errors, mut first_error) = (Vec::new(), 0, None);
            loop {
                let go = match until {
                    Until::Time(t) => Instant::now() < t,
                    Until::Count(n) => tickets.fetch_add(1, Ordering::Relaxed) < n,
                };
                if !go {
                    break;
                }
                let t0 = Instant::now();
                let r = send(&mut conn, make(&api)).await?;
                if r.status == ok {
                    lat.push(t0.elapsed());
                } else {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
                }
            }
            anyhow::Ok((lat, errors, first_error))
        });
    }
    let mut run = Run { latencies: vec![], elapsed: Duration::ZERO, errors: 0, first_error: None };
    while let Some(w) = workers.join_next().await {
        let (lat, errors, first_error) = w??;
        run.latencies.extend(lat);
        run.errors += errors;
        run.first_error = run.first_error.or(first_error);
    }
    run.elapsed = started.elapsed();
    run.latencies.sort_unstable();
    Ok(run)
}

/// Token issue on one connection, alternating with a bcrypt verify at the server's cost in
/// this process, so both see the same machine (other load, CPU frequency): returns the issue
/// run (its rate is 1 / mean latency) and the bcrypt verify p50 in ms. The first two rounds
/// are a warm-up.
async fn issue_vs_bcrypt<F>(api: &Api, n: usize, make: F) -> Result<(Run, f64)>
where
    F: Fn(&Api) -> Request<Full<Bytes>>,
{
    let hash = tokio::task::spawn_blocking(|| bcrypt::hash(BENCH_PASSWORD, BCRYPT_COST)).await??;
    let mut conn = connect(api.addr).await?;
    let mut run = Run { latencies: vec![], elapsed: Duration::ZERO, errors: 0, first_error: None };
    let mut bcrypt = vec![];
    for i in 0..n + 2 {
        let h = hash.clone();
        let t0 = Instant::now();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(BENCH_PASSWORD, &h)).await??;
        let t1 = Instant::now();
        ensure!(ok, "bcrypt does not verify its own hash");
        let r = send(&mut conn, make(api)).await?;
        let t2 = Instant::now();
        if r.status != StatusCode::CREATED {
            run.errors += 1;
            run.first_error.get_or_insert_with(|| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
        } else if i >= 2 {
            run.latencies.push(t2 - t1);
            run.elapsed += t2 - t1;
        }
        if i >= 2 {
            bcrypt.push(t1 - t0);
        }
    }
    run.latencies.sort_unstable();
    bcrypt.sort_unstable();
    Ok((run, percentile_ms(&bcrypt, 0.5)))
}

// ---------------------------------------------------------------------------------------------
// The keystone bench.

struct Report {
    clients: usize,
    /// 1-minute load average before the server started: other work skews the figures.
    loadavg: String,
    validate: Run,
    issue_seq: Run,
    issue_par: Run,
    bcrypt_ms: f64,
    rss_idle: f64,
    rss_loaded: f64,
}

async fn keystone(bin: &Path, args: &BenchArgs) -> Result<()> {
    let mut server = Server::spawn(bin, args.keep)?;
    eprintln!("started cloudpods aio (pid {}) on {}", server.pid, server.dir.display());
    let result = tokio::select! {
        r = measure(&mut server, args) => r,
        _ = tokio::signal::ctrl_c() => {
            server.stop().await;
            eprintln!("interrupted; cloudpods aio stopped");
            std::process::exit(130);
        }
    };
    let (tail, dir) = (server.log_tail(), server.dir.clone());
    server.stop().await;
    if args.keep {
        eprintln!("kept {} (aio.log, data/)", dir.display());
    }
    let report = result.map_err(|e| anyhow!("{e:#}\n--- last lines of the server log ---\n{tail}"))?;
    print_report(&report);
    Ok(())
}

async fn measure(server: &mut Server, args: &BenchArgs) -> Result<Report> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg = loadavg.split_whitespace().next().unwrap_or("?").to_string();
    let api = Api::new(KEYSTONE_PORT);
    server.wait_ready(&api).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = server.rss_mb()?;

    // Set-up: a project, a user `bench` with role member on it, and a token for each side.
    let (admin_user, admin_password) = server.admin_credentials()?;
    let admin = api.token(&admin_user, &admin_password, "system").await?;
    let member = api
        .call(Method::GET, "/v3/roles/member", Some(&admin), None)
        .await?
        .expect("get role member", StatusCode::OK)?
        .json()["role"]["id"]
        .as_str()
        .context("role member has no id")?
        .to_string();
    let project = api.create(&admin, "projects", "project", json!({"name": "bench", "domain_id": "default"})).await?;
    let user = api
        .create(&admin, "users", "user", json!({"name": "bench", "password": BENCH_PASSWORD, "domain_id": "default"}))
        .await?;
    let grant = format!("/v3/projects/{project}/users/{user}/roles/{member}");
    let r = api.call(Method::PUT, &grant, Some(&admin), None).await?;
    ensure!(r.status.is_success(), "cannot grant member on project bench to user bench: {}", r.status);
    let subject = api.token("bench", BENCH_PASSWORD, "bench").await?;

    // 1. Validation, 1 s warm-up then the measured run.
    eprintln!("token validate: {} clients, 1 s warm-up + {} s...", args.clients, args.duration);
    let (admin, subject) = (HeaderValue::from_str(&admin)?, HeaderValue::from_str(&subject)?);
    let validate = move |api: &Api| {
        let mut req = api.request(Method::GET, "/v3/auth/tokens", None, None);
        req.headers_mut().insert("x-auth-token", admin.clone());
        req.headers_mut().insert("x-subject-token", subject.clone());
        req
    };
    let until = |secs| Until::Time(Instant::now() + Duration::from_secs(secs));
    load(&api, args.clients, until(1), StatusCode::OK, validate.clone()).await?;
    let validate = load(&api, args.clients, until(args.duration), StatusCode::OK, validate).await?;

    // 2. Issue: one client, alternating with bcrypt (latency), then N clients (throughput).
    let (n, c) = (args.issue_count, args.clients);
    eprintln!("token issue: {n} x (bcrypt verify, issue), then {} on {c} clients...", 4 * c);
    let body = Bytes::from(Api::password_auth("bench", BENCH_PASSWORD, "bench").to_string());
    let issue = move |api: &Api| {
        let mut req = api.request(Method::POST, "/v3/auth/tokens", None, None);
        req.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        *req.body_mut() = Full::new(body.clone());
        req
    };
    let (issue_seq, bcrypt_ms) = issue_vs_bcrypt(&api, args.issue_count, issue.clone()).await?;
    let issue_par = load(&api, args.clients, Until::Count(4 * args.clients), StatusCode::CREATED, issue).await?;

    let rss_loaded = server.rss_mb()?;
    Ok(Report { clients: args.clients, loadavg, validate, issue_seq, issue_par, bcrypt_ms, rss_idle, rss_loaded })
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "OK" } else { "MISSED" }
}

/// `23456.7` -> `23,457`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in ms with about three significant figures.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn errors_note(r: &Run) -> String {
    match &r.first_error {
        Some(e) => format!("\n      {} errors, first: {}", r.errors, e.chars().take(200).collect::<String>()),
        None => String::new(),
    }
}

fn print_report(r: &Report) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("keystone bench ({cpus} cpus, {} clients, load average {} at start)", r.clients, r.loadavg);

    let v = &r.validate;
    let ok = v.errors == 0 && v.rate() >= 20_000.0 && v.ms(0.99) < 5.0;
    println!(
        "  token validate  {:>8} req/s   p50 {:>8}   p99 {:>8}   (target >= 20000 req/s, p99 < 5 ms)  {}{}",
        thousands(v.rate()),
        ms(v.ms(0.5)),
        ms(v.ms(0.99)),
        verdict(ok),
        errors_note(v)
    );

    let i = &r.issue_seq;
    let ok = i.errors == 0 && i.ms(0.5) <= r.bcrypt_ms + 2.0;
    println!(
        "  token issue x1  {:>8} req/s   p50 {:>8}   p99 {:>8}   bcrypt verify p50 {}  (target p50 <= bcrypt + 2 ms)  {}{}",
        thousands(i.rate()),
        ms(i.ms(0.5)),
        ms(i.ms(0.99)),
        ms(r.bcrypt_ms),
        verdict(ok),
        errors_note(i)
    );
    let p = &r.issue_par;
    println!(
        "  token issue x{:<2} {:>7} req/s   p50 {:>8}   p99 {:>8}   (throughput; latency here is queueing behind bcrypt){}",
        r.clients,
        thousands(p.rate()),
        ms(p.ms(0.5)),
        ms(p.ms(0.99)),
        errors_note(p)
    );

    println!(
        "  aio RSS idle {:.1} MB, after load {:.1} MB  (target idle < 60 MB)  {}",
        r.rss_idle,
        r.rss_loaded,
        verdict(r.rss_idle < 60.0)
    );
}
