//! `cloudpods aio`: every service in one process, on one data directory.
//!
//! ```text
//! data dir ── secrets.json (generated passwords, 0600)
//!          ├─ openrc        (OS_* for climc and openstack, 0600)
//!          ├─ images/       (glance's image store)
//!          └─ <service>.db  (SQLite, unless --database-url)
//! bind all listeners -> keystone (migrate, bootstrap: admin, catalog, service accounts)
//!   -> logger (validates tokens through keystone over HTTP) -> glance (images under
//!   data dir/images) -> region (compute; default region/zone/vpc/wire/network)
//!   -> apigateway (the dashboard and /api, calling the others with each caller's token)
//!   -> scheduler (host capacity, read from the region over HTTP)
//!   -> webconsole (console sessions checked with the region, websockify to the hosts' VNC)
//!   -> host agent, with `--set host.enabled=true` (registers with the region)
//!   -> openrc -> serve until signal
//! ```
//! Services still talk to each other only over HTTP through the catalog, as they would on
//! separate machines.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::RemoteVerifier;
use cloudcommon::client::{HttpActionSink, ServiceSession};
use cloudcommon::config::CommonOptions;
use keystone::bootstrap::{BootstrapInput, CatalogEntry};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Args, Clone, Debug)]
pub struct AioArgs {
    /// Where everything is kept: databases, secrets, openrc.
    #[arg(long, env = "CLOUDPODS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Put every service on this MariaDB/MySQL server instead of SQLite files, e.g.
    /// `mysql://user:pass@127.0.0.1:3306/cloudpods` (one database per service: cloudpods_keystone, ...).
    #[arg(long, env = "CLOUDPODS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address the services listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen_address: IpAddr,
    /// Host name or address put in the catalog and openrc.
    #[arg(long, default_value = "127.0.0.1")]
    pub public_host: String,
    /// Added to every default port (keystone 30500 -> 30500+N), to run beside another instance.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Region name of the catalog.
    #[arg(long, default_value = "region0")]
    pub region: String,
    /// Override a service's config key: `--set glance.quota_images=10` (repeatable; the
    /// keys are those of `cloudpods <service> --config`).
    #[arg(long = "set", value_name = "SERVICE.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Also start N simulated host agents (16 vCPU, 32 GiB, 500 GiB local storage, a NIC on
    /// wire `bcast0`), to try the control plane without QEMU.
    #[arg(long, default_value_t = 0)]
    pub simulated_hosts: u32,
}

/// A service aio runs: its name, catalog type, default port, path prefix and account.
struct Component {
    name: &'static str,
    service_type: &'static str,
    port: u16,
    prefix: &'static str,
    account: &'static str,
}

const COMPONENTS: [Component; 6] = [
    Component {
        name: "keystone",
        service_type: "identity",
        port: keystone::DEFAULT_PORT,
        prefix: "/v3",
        account: "keystone",
    },
    Component { name: "logger", service_type: "log", port: logger::DEFAULT_PORT, prefix: "", account: "loggeradmin" },
    Component {
        name: "glance",
        service_type: apis::image::SERVICE_TYPE,
        port: glance::DEFAULT_PORT,
        prefix: glance::PREFIX,
        account: "glance",
    },
    Component {
        name: "region",
        service_type: region::SERVICE_TYPE,
        port: region::DEFAULT_PORT,
        prefix: "",
        account: "regionadmin",
    },
    Component {
        name: "scheduler",
        service_type: scheduler::SERVICE_TYPE,
        port: scheduler::DEFAULT_PORT,
        prefix: "",
        account: "scheduleradmin",
    },
    Component {
        name: "webconsole",
        service_type: webconsole::SERVICE_TYPE,
        port: webconsole::DEFAULT_PORT,
        prefix: "",
        account: "webconsoleadmin",
    },
];

/// Applies the `--set <service>.key=value` overrides meant for `service` to its config.
fn with_sets<T: Serialize + serde::de::DeserializeOwned>(cfg: T, service: &str, sets: &[String]) -> Result<T> {
    let mine: Vec<String> =
        sets.iter().filter_map(|s| s.strip_prefix(service)?.strip_prefix('.')).map(str::to_string).collect();
    if mine.is_empty() {
        return Ok(cfg);
    }
    let mut table = toml::Table::try_from(&cfg).context("config is not a table")?;
    let extra: toml::Table = cloudcommon::config::load_from(None, &[], &mine)?;
    table.extend(extra);
    table.try_into().with_context(|| format!("--set {service}.*"))
}

/// Generated secrets, kept in the data dir so restarts find them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Secrets {
    pub admin_password: String,
    pub accounts: std::collections::BTreeMap<String, String>,
}

fn random_password() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("Cp-{}", hex::encode(b))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn load_secrets(dir: &Path) -> Result<Secrets> {
    let path = dir.join("secrets.json");
    let mut s: Secrets = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("{} is not valid", path.display()))?,
        Err(_) => Secrets::default(),
    };
    let mut changed = false;
    if s.admin_password.is_empty() {
        s.admin_password = random_password();
        changed = true;
    }
    for c in &COMPONENTS {
        if !s.accounts.contains_key(c.account) {
            s.accounts.insert(c.account.to_string(), random_password());
            changed = true;
        }
    }
    if changed {
        write_private(&path, &serde_json::to_string_pretty(&s)?)?;
    }
    Ok(s)
}

/// The per-service database URL: a SQLite file in the data dir, or one MySQL database per
/// service on the given server (`<db>_<service>`, or `<service>` when the URL names none).
pub fn service_database_url(base: Option<&str>, data_dir: &Path, service: &str) -> String {
    match base {
        None | Some("") => format!("sqlite://{}", data_dir.join(format!("{service}.db")).display()),
        Some(url) if url.starts_with("sqlite:") => {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let p = Path::new(path);
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("cloudpods");
            let dir = p.parent().unwrap_or(data_dir);
            format!("sqlite://{}", dir.join(format!("{stem}-{service}.db")).display())
        }
        Some(url) => {
            let (head, query) = url.split_once('?').map(|(h, q)| (h, Some(q))).unwrap_or((url, None));
            let after_scheme = head.find("://").map(|i| i + 3).unwrap_or(0);
            let (server, db) = match head[after_scheme..].find('/') {
                Some(i) => (&head[..after_scheme + i], &head[after_scheme + i + 1..]),
                None => (head, ""),
            };
            let name = if db.is_empty() { service.to_string() } else { format!("{db}_{service}") };
            match query {
                Some(q) => format!("{server}/{name}?{q}"),
                None => format!("{server}/{name}"),
            }
        }
    }
}

/// A running aio.
pub struct Running {
    pub auth_url: String,
    pub admin_password: String,
    pub urls: std::collections::BTreeMap<&'static str, String>,
    pub data_dir: PathBuf,
    /// The state of each service, for tests that reach inside (task hooks).
    pub states: std::collections::BTreeMap<&'static str, Arc<cloudcommon::service::ServiceState>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<Result<(), apis::Error>>,
    /// The simulated hosts `--simulated-hosts` started.
    pub sim_hosts: Vec<crate::simhost::SimHost>,
}

impl Running {
    /// Stops every service, draining in-flight requests.
    pub async fn stop(mut self) -> Result<()> {
        for h in std::mem::take(&mut self.sim_hosts) {
            h.stop().await;
        }
        let _ = self.shutdown.send(true);
        while let Some(r) = self.tasks.join_next().await {
            r.context("service task panicked")??;
        }
        Ok(())
    }

    /// Waits until a service stops on its own (an error) or `signal` resolves.
    pub async fn wait(mut self, signal: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::select! {
            _ = signal => {}
            Some(r) = self.tasks.join_next() => {
                r.context("service task panicked")??;
                anyhow::bail!("a service stopped unexpectedly");
            }
        }
        self.stop().await
    }
}

fn shutdown_future(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Starts every service: with `ephemeral_ports` each on port 0 (tests), otherwise on its
/// default port plus the offset.
pub async fn start(args: &AioArgs, ephemeral_ports: bool) -> Result<Running> {
    start_on(args, if ephemeral_ports { Ports::Ephemeral } else { Ports::Default }).await
}

/// Where the services listen.
#[derive(Debug, Clone)]
pub enum Ports {
    /// Default port + `port_offset`.
    Default,
    /// Port 0 each.
    Ephemeral,
    /// These ports by service name (a test restarting a cloud where agents know its URLs).
    Fixed(std::collections::BTreeMap<String, u16>),
}

/// [`start`] with the ports chosen by `ports`.
pub async fn start_on(args: &AioArgs, ports: Ports) -> Result<Running> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let secrets = load_secrets(&data_dir)?;
    let mut listeners = vec![];
    let mut urls = std::collections::BTreeMap::new();
    for c in &COMPONENTS {
        let port = match &ports {
            Ports::Ephemeral => 0,
            Ports::Fixed(m) => m.get(c.name).copied().unwrap_or(0),
            Ports::Default => c.port.checked_add(args.port_offset).context("port offset too large")?,
        };
        let addr = SocketAddr::new(args.listen_address, port);
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("{}: cannot listen on {addr} (is another cloudpods running?)", c.name))?;
        let port = l.local_addr()?.port();
        urls.insert(c.name, format!("http://{}:{port}", args.public_host));
        listeners.push(l);
    }
    // apigateway: not in the catalog and without a service account (it calls every service
    // with the caller's own token), so it is bound here rather than listed in COMPONENTS.
    let gw_listener = {
        let port = match &ports {
            Ports::Ephemeral => 0,
            Ports::Fixed(m) => m.get("apigateway").copied().unwrap_or(0),
            Ports::Default => {
                apigateway::DEFAULT_PORT.checked_add(args.port_offset).context("port offset too large")?
            }
        };
        let addr = SocketAddr::new(args.listen_address, port);
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("apigateway: cannot listen on {addr} (is another cloudpods running?)"))?;
        urls.insert("apigateway", format!("http://{}:{}", args.public_host, l.local_addr()?.port()));
        l
    };
    let auth_url = format!("{}/v3", urls["keystone"]);
    let common = |c: &Component| CommonOptions {
        listen_address: args.listen_address.to_string(),
        data_dir: data_dir.clone(),
        database_url: Some(service_database_url(args.database_url.as_deref(), &data_dir, c.name)),
        auth_url: auth_url.clone(),
        admin_user: c.account.to_string(),
        admin_password: secrets.accounts.get(c.account).cloned().unwrap_or_default(),
        region: args.region.clone(),
        ..CommonOptions::default()
    };
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut listeners = listeners.into_iter();

    // keystone first: everything else logs in to it.
    let ks_comp = &COMPONENTS[0];
    let ks_cfg = keystone::KeystoneConfig {
        common: common(ks_comp),
        public_url: urls["keystone"].clone(),
        ..Default::default()
    };
    let ks_session =
        ServiceSession::new(&auth_url, ks_comp.account, &secrets.accounts[ks_comp.account], "system", "Default");
    let ks_actionlog = ActionLog::with_sink("keystone", Arc::new(HttpActionSink(ks_session)));
    let ks_cfg = with_sets(ks_cfg, "keystone", &args.sets)?;
    let ks = keystone::build(ks_cfg, Some(ks_actionlog)).await.context("keystone")?;
    let input = BootstrapInput {
        admin_password: secrets.admin_password.clone(),
        region: args.region.clone(),
        catalog: COMPONENTS
            .iter()
            .map(|c| CatalogEntry {
                service_type: c.service_type.into(),
                name: c.name.into(),
                public_url: format!("{}{}", urls[c.name], c.prefix),
                internal_url: format!("{}{}", urls[c.name], c.prefix),
            })
            // Older Cloudpods clients look the region up as `compute`.
            .chain(std::iter::once(CatalogEntry {
                service_type: "compute".into(),
                name: "region2".into(),
                public_url: urls["region"].clone(),
                internal_url: urls["region"].clone(),
            }))
            .collect(),
        service_accounts: COMPONENTS
            .iter()
            .map(|c| (c.account.to_string(), secrets.accounts[c.account].clone()))
            .collect(),
    };
    let outcome = keystone::bootstrap::run(&ks.keystone, &input).await.context("keystone bootstrap")?;
    let l = listeners.next().context("listener")?;
    tasks.spawn(cloudcommon::service::serve_listener("keystone", l, ks.app, shutdown_future(&rx)));

    // logger: a separate service that validates tokens through keystone.
    let lg_comp = &COMPONENTS[1];
    let lg_cfg = with_sets(logger::LoggerConfig { common: common(lg_comp) }, "logger", &args.sets)?;
    let c = &lg_cfg.common;
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session);
    let poller = verifier.spawn_revocation_poller(Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let lg = logger::build(&lg_cfg, verifier).await.context("logger")?;
    let mut states = std::collections::BTreeMap::new();
    states.insert("logger", lg.state.clone());
    let l = listeners.next().context("listener")?;
    let lg_rx = rx.clone();
    tasks.spawn(async move {
        let r = cloudcommon::service::serve_listener("logger", l, lg.app, shutdown_future(&lg_rx)).await;
        poller.abort();
        r
    });

    // glance: images, stored under the data dir.
    let gl_comp = &COMPONENTS[2];
    let gl_cfg = glance::GlanceConfig {
        common: common(gl_comp),
        public_url: format!("{}{}", urls["glance"], gl_comp.prefix),
        ..Default::default()
    };
    let gl_cfg = with_sets(gl_cfg, "glance", &args.sets)?;
    let c = &gl_cfg.common;
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let gl_poller = verifier.spawn_revocation_poller(Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let gl_actionlog = ActionLog::with_sink("glance", Arc::new(HttpActionSink(session)));
    let gl = glance::build(gl_cfg, verifier, gl_actionlog).await.context("glance")?;
    states.insert("glance", gl.state.clone());
    let l = listeners.next().context("listener")?;
    let gl_rx = rx.clone();
    tasks.spawn(async move {
        let r = cloudcommon::service::serve_listener("glance", l, gl.app, shutdown_future(&gl_rx)).await;
        gl_poller.abort();
        r
    });

    // region: the compute control plane (default region, zone, vpc, wire and network).
    let rg_comp = &COMPONENTS[3];
    let rg_cfg =
        region::RegionConfig { common: common(rg_comp), public_url: urls["region"].clone(), ..Default::default() };
    let rg_cfg = with_sets(rg_cfg, "region", &args.sets)?;
    let c = &rg_cfg.common;
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let rg_poller = verifier.spawn_revocation_poller(Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let rg_actionlog = ActionLog::with_sink("region", Arc::new(HttpActionSink(session.clone())));
    let rg = region::build(rg_cfg, verifier, rg_actionlog, Some(session)).await.context("region")?;
    states.insert("region", rg.state.clone());
    let l = listeners.next().context("listener")?;
    let rg_rx = rx.clone();
    tasks.spawn(async move {
        let r = cloudcommon::service::serve_listener("region", l, rg.app, shutdown_future(&rg_rx)).await;
        rg_poller.abort();
        r
    });

    // apigateway: the dashboard and its API; `--set apigateway.web_dir=web/dist` (or
    // CLOUDPODS_WEB_DIR) names the built dashboard.
    let gw_cfg = apigateway::ApigatewayConfig {
        common: CommonOptions {
            listen_address: args.listen_address.to_string(),
            data_dir: data_dir.clone(),
            auth_url: auth_url.clone(),
            region: args.region.clone(),
            ..CommonOptions::default()
        },
        web_dir: std::env::var("CLOUDPODS_WEB_DIR").unwrap_or_default(),
        ..Default::default()
    };
    let gw_cfg = with_sets(gw_cfg, "apigateway", &args.sets)?;
    let gw = apigateway::build(gw_cfg).context("apigateway")?;
    let gw_rx = rx.clone();
    tasks.spawn(async move {
        cloudcommon::service::serve_listener("apigateway", gw_listener, gw.app, shutdown_future(&gw_rx)).await
    });

    // scheduler: host capacity in memory, read from the region through the catalog.
    let sc_comp = &COMPONENTS[4];
    let sc_cfg = with_sets(
        scheduler::SchedulerConfig { common: common(sc_comp), ..Default::default() },
        "scheduler",
        &args.sets,
    )?;
    let c = &sc_cfg.common;
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let sc_poller = verifier.spawn_revocation_poller(Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let sc_actionlog = ActionLog::with_sink("scheduler", Arc::new(HttpActionSink(session.clone())));
    let sc = scheduler::build(sc_cfg, verifier, sc_actionlog, Some(session)).await.context("scheduler")?;
    states.insert("scheduler", sc.state.clone());
    let l = listeners.next().context("listener")?;
    let sc_rx = rx.clone();
    tasks.spawn(async move {
        let r = cloudcommon::service::serve_listener("scheduler", l, sc.app, shutdown_future(&sc_rx)).await;
        sc_poller.abort();
        r
    });

    // webconsole: console sessions (checked with the region with each caller's token) and
    // the websockify streams to the hosts' VNC.
    let wc_comp = &COMPONENTS[5];
    let wc_cfg = with_sets(
        webconsole::WebconsoleConfig {
            common: common(wc_comp),
            public_url: urls["webconsole"].clone(),
            ..Default::default()
        },
        "webconsole",
        &args.sets,
    )?;
    let c = &wc_cfg.common;
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let wc_poller = verifier.spawn_revocation_poller(Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let wc_actionlog = ActionLog::with_sink("webconsole", Arc::new(HttpActionSink(session.clone())));
    let wc = webconsole::build(wc_cfg, verifier, wc_actionlog, Some(session)).await.context("webconsole")?;
    states.insert("webconsole", wc.state.clone());
    let l = listeners.next().context("listener")?;
    tasks.spawn(async move {
        let r = cloudcommon::service::serve_listener("webconsole", l, wc.app, shutdown_future(&rx)).await;
        wc_poller.abort();
        r
    });

    // host: a real host agent, when asked for (`--set host.enabled=true`, root, QEMU).
    let host_cfg = host::HostConfig {
        common: CommonOptions {
            port: match &ports {
                Ports::Default => host::DEFAULT_PORT.saturating_add(args.port_offset),
                Ports::Ephemeral => 0,
                Ports::Fixed(m) => m.get("host").copied().unwrap_or(0),
            },
            data_dir: data_dir.join("host"),
            admin_user: keystone::bootstrap::ADMIN_USER.into(),
            admin_password: secrets.admin_password.clone(),
            ..common(&COMPONENTS[3])
        },
        region_url: urls["region"].clone(),
        // A NIC on the default wire, so the scheduler can place servers of the default network.
        wires: vec![format!("{}=br0", region::geo::DEFAULT_WIRE)],
        ..Default::default()
    };
    let host_cfg = with_sets(host_cfg, "host", &args.sets)?;
    if host_cfg.enabled {
        let c = &host_cfg.common;
        let l = TcpListener::bind(c.listen_addr()?).await.context("host agent: cannot listen")?;
        let port = l.local_addr()?.port();
        let manager_uri = format!("http://{}:{port}", args.public_host);
        urls.insert("host", manager_uri.clone());
        let session =
            ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
        let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
        let ho_poller = verifier.spawn_revocation_poller(Duration::from_secs(c.revocation_poll_seconds.max(1)));
        let ho = host::build(host_cfg, verifier, session.clone()).await.context("host agent")?;
        states.insert("host", ho.state.clone());
        host::region::register(ho.agent.clone(), session, &manager_uri)
            .await
            .map_err(|e| anyhow::anyhow!("host agent: registering with the region: {e}"))?;
        let ho_rx = shutdown.subscribe();
        tasks.spawn(async move {
            let r = cloudcommon::service::serve_listener("host", l, ho.app, shutdown_future(&ho_rx)).await;
            ho.agent.shutdown().await;
            ho_poller.abort();
            r
        });
    }

    write_openrc(&data_dir, &auth_url, &secrets.admin_password, &args.region)?;
    if outcome.first_start {
        tracing::info!("first start: created sysadmin; credentials in {}", data_dir.join("openrc").display());
    }
    let mut sim_hosts = vec![];
    if args.simulated_hosts > 0 {
        let target = crate::simhost::SimTarget {
            auth_url: auth_url.clone(),
            admin_password: secrets.admin_password.clone(),
            region_url: urls["region"].clone(),
        };
        for i in 1..=args.simulated_hosts {
            let spec = crate::simhost::SimHostSpec::new(&format!("sim-host-{i}"), 16, 32768, 500).on_wires(&["bcast0"]);
            sim_hosts.push(crate::simhost::SimHost::start(&target, spec).await.context("simulated host")?);
        }
        tracing::info!("{} simulated hosts registered", sim_hosts.len());
    }
    Ok(Running { auth_url, admin_password: secrets.admin_password, urls, data_dir, states, shutdown, tasks, sim_hosts })
}

fn write_openrc(dir: &Path, auth_url: &str, password: &str, region: &str) -> Result<()> {
    let text = format!(
        "# cloudpods-rs aio credentials: source this file, then use climc or openstack.\n\
         export OS_AUTH_URL={auth_url}\n\
         export OS_USERNAME={user}\n\
         export OS_PASSWORD='{password}'\n\
         export OS_PROJECT_NAME=system\n\
         export OS_USER_DOMAIN_NAME=Default\n\
         export OS_PROJECT_DOMAIN_NAME=Default\n\
         export OS_DOMAIN_NAME=Default\n\
         export OS_PROJECT_DOMAIN=Default\n\
         export OS_REGION_NAME={region}\n\
         export OS_IDENTITY_API_VERSION=3\n\
         export OS_INTERFACE=public\n\
         export OS_ENDPOINT_TYPE=publicURL\n",
        user = keystone::bootstrap::ADMIN_USER,
    );
    write_private(&dir.join("openrc"), &text)
}

/// `cloudpods aio`: start, print how to use it, serve until SIGINT/SIGTERM.
pub async fn run(args: AioArgs) -> Result<()> {
    let running = start(&args, false).await?;
    let openrc = running.data_dir.join("openrc");
    println!("cloudpods aio is running.");
    for (name, url) in &running.urls {
        println!("  {name:<10} {url}");
    }
    println!("\nCredentials for sysadmin are in {}:", openrc.display());
    println!("  source {}", openrc.display());
    println!("  climc user-list");
    println!("  openstack token issue");
    if let Some(gw) = running.urls.get("apigateway") {
        println!("\nThe dashboard: {gw}/ (sign in as sysadmin; it needs `make web`, see the README)");
    }
    println!("\nStop with Ctrl-C.");
    running.wait(cloudcommon::service::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_reach_their_service_only() {
        let sets: Vec<String> = ["glance.quota_images=3", "glance.target_image_formats=qcow2,vmdk", "logger.port=1"]
            .map(String::from)
            .into();
        let g = with_sets(glance::GlanceConfig::default(), "glance", &sets).unwrap();
        assert_eq!(g.quota_images, 3);
        assert_eq!(g.target_image_formats, ["qcow2", "vmdk"]);
        assert_eq!(g.common.port, glance::DEFAULT_PORT);
        assert!(with_sets(glance::GlanceConfig::default(), "glance", &["glance.quota_images=many".into()]).is_err());
    }

    #[test]
    fn per_service_database_urls() {
        let d = Path::new("/data");
        assert_eq!(service_database_url(None, d, "keystone"), "sqlite:///data/keystone.db");
        assert_eq!(service_database_url(Some("mysql://u:p@h:3306/cp"), d, "logger"), "mysql://u:p@h:3306/cp_logger");
        assert_eq!(service_database_url(Some("mysql://u:p@h:3306"), d, "logger"), "mysql://u:p@h:3306/logger");
        assert_eq!(
            service_database_url(Some("mysql://u:p@h/x?ssl-mode=disabled"), d, "k"),
            "mysql://u:p@h/x_k?ssl-mode=disabled"
        );
    }
}
