//! `cloudpods`: the multi-call server binary. `cloudpods <service>` runs one service;
//! `cloudpods aio` runs every service in one process on one data directory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::RemoteVerifier;
use cloudcommon::client::{HttpActionSink, ServiceSession};

#[derive(Parser)]
#[command(name = "cloudpods", version, about = "cloudpods-rs: a cloud platform in one binary")]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `debug`, `keystone=debug`.
    #[arg(long, global = true, env = "CLOUDPODS_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every service in one process, on one data directory (the default way to start).
    Aio(cloudpods::aio::AioArgs),
    /// The identity service (OpenStack Identity v3 compatible).
    Keystone(ServiceArgs),
    /// The action log service.
    Logger(ServiceArgs),
    /// The image service: upload, probe, convert, store and serve disk images.
    Glance(ServiceArgs),
    /// The compute control plane: zones, wires, networks, hosts, storages, servers.
    Region(ServiceArgs),
    /// The scheduler: picks hosts and storages for new servers.
    Scheduler(ServiceArgs),
    /// The browser-facing gateway: login sessions, /api forwarding, the dashboard.
    Apigateway(ServiceArgs),
    /// Browser consoles: console sessions and the websockify proxy to servers' VNC.
    Webconsole(ServiceArgs),
    /// The host agent (root): runs this host's guests with QEMU.
    Host(HostArgs),
}

#[derive(Args, Clone)]
struct HostArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Keep all guest networking (bridges, taps, QEMU's NICs, DHCP, metadata) in this
    /// network namespace (create it first with `ip netns add NAME`).
    #[arg(long)]
    netns: Option<String>,
}

#[derive(Args, Clone)]
struct ServiceArgs {
    /// TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key: `--set key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// keystone only: the sysadmin password to create on first start.
    #[arg(long, env = "CLOUDPODS_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    bootstrap_admin_password: Option<String>,
}

fn init_tracing(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Aio(a) => cloudpods::aio::run(a).await,
            Cmd::Keystone(a) => run_keystone(a).await,
            Cmd::Logger(a) => run_logger(a).await,
            Cmd::Glance(a) => run_glance(a).await,
            Cmd::Region(a) => run_region(a).await,
            Cmd::Scheduler(a) => run_scheduler(a).await,
            Cmd::Apigateway(a) => run_apigateway(a).await,
            Cmd::Webconsole(a) => run_webconsole(a).await,
            Cmd::Host(a) => run_host(a).await,
        }
    })
}

async fn run_keystone(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: keystone::KeystoneConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = keystone::DEFAULT_PORT;
    }
    let addr = cfg.common.listen_addr()?;
    // With a service account configured, keystone's writes are also sent to the logger found
    // in the catalog; the account is created (admin in project system) by the bootstrap.
    let c = &cfg.common;
    let account = (!c.admin_user.is_empty()).then(|| (c.admin_user.clone(), c.admin_password.clone()));
    let actionlog = account.as_ref().map(|(user, password)| {
        let session = ServiceSession::new(&c.auth_url, user, password, &c.admin_project, &c.admin_domain);
        ActionLog::with_sink("keystone", Arc::new(HttpActionSink(session)))
    });
    let built = keystone::build(cfg.clone(), actionlog).await?;
    let url = cfg.common.own_url(&cfg.public_url);
    let input = keystone::bootstrap::BootstrapInput {
        admin_password: a.bootstrap_admin_password.unwrap_or_default(),
        region: cfg.common.region.clone(),
        catalog: vec![keystone::bootstrap::CatalogEntry {
            service_type: "identity".into(),
            name: "keystone".into(),
            public_url: format!("{url}/v3"),
            internal_url: format!("{url}/v3"),
        }],
        service_accounts: account.into_iter().collect(),
    };
    keystone::bootstrap::run(&built.keystone, &input)
        .await
        .context("bootstrap failed (on first start pass --bootstrap-admin-password)")?;
    cloudcommon::service::serve("keystone", addr, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_logger(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: logger::LoggerConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = logger::DEFAULT_PORT;
    }
    let c = &cfg.common;
    anyhow::ensure!(
        !c.admin_user.is_empty(),
        "admin_user and admin_password must be configured (the logger's service account)"
    );
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session);
    let _poller = verifier.spawn_revocation_poller(std::time::Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let built = logger::build(&cfg, verifier as Arc<_>).await?;
    cloudcommon::service::serve("logger", c.listen_addr()?, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_glance(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: glance::GlanceConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = glance::DEFAULT_PORT;
    }
    let c = &cfg.common;
    anyhow::ensure!(
        !c.admin_user.is_empty(),
        "admin_user and admin_password must be configured (glance's service account)"
    );
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let _poller = verifier.spawn_revocation_poller(std::time::Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let actionlog = ActionLog::with_sink("glance", Arc::new(HttpActionSink(session)));
    let addr = c.listen_addr()?;
    let built = glance::build(cfg, verifier as Arc<_>, actionlog).await?;
    cloudcommon::service::serve("glance", addr, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_region(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: region::RegionConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = region::DEFAULT_PORT;
    }
    let c = &cfg.common;
    anyhow::ensure!(
        !c.admin_user.is_empty(),
        "admin_user and admin_password must be configured (the region's service account)"
    );
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let _poller = verifier.spawn_revocation_poller(std::time::Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let actionlog = ActionLog::with_sink("region", Arc::new(HttpActionSink(session.clone())));
    let addr = c.listen_addr()?;
    let built = region::build(cfg, verifier as Arc<_>, actionlog, Some(session)).await?;
    cloudcommon::service::serve("region", addr, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_scheduler(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: scheduler::SchedulerConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = scheduler::DEFAULT_PORT;
    }
    let c = &cfg.common;
    anyhow::ensure!(
        !c.admin_user.is_empty(),
        "admin_user and admin_password must be configured (the scheduler's service account)"
    );
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let _poller = verifier.spawn_revocation_poller(std::time::Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let actionlog = ActionLog::with_sink("scheduler", Arc::new(HttpActionSink(session.clone())));
    let addr = c.listen_addr()?;
    let built = scheduler::build(cfg, verifier as Arc<_>, actionlog, Some(session)).await?;
    cloudcommon::service::serve("scheduler", addr, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_webconsole(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: webconsole::WebconsoleConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = webconsole::DEFAULT_PORT;
    }
    let c = &cfg.common;
    anyhow::ensure!(
        !c.admin_user.is_empty(),
        "admin_user and admin_password must be configured (the webconsole's service account)"
    );
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let _poller = verifier.spawn_revocation_poller(std::time::Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let actionlog = ActionLog::with_sink("webconsole", Arc::new(HttpActionSink(session.clone())));
    let addr = c.listen_addr()?;
    let built = webconsole::build(cfg, verifier as Arc<_>, actionlog, Some(session)).await?;
    cloudcommon::service::serve("webconsole", addr, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_apigateway(a: ServiceArgs) -> anyhow::Result<()> {
    let mut cfg: apigateway::ApigatewayConfig = cloudcommon::config::load(a.config.as_deref(), &a.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = apigateway::DEFAULT_PORT;
    }
    let addr = cfg.common.listen_addr()?;
    let built = apigateway::build(cfg)?;
    cloudcommon::service::serve("apigateway", addr, built.app, cloudcommon::service::shutdown_signal()).await?;
    Ok(())
}

async fn run_host(a: HostArgs) -> anyhow::Result<()> {
    let mut cfg: host::HostConfig = cloudcommon::config::load(a.service.config.as_deref(), &a.service.sets)?;
    if cfg.common.port == 0 {
        cfg.common.port = host::DEFAULT_PORT;
    }
    if let Some(ns) = a.netns {
        cfg.netns = ns;
    }
    let c = &cfg.common;
    anyhow::ensure!(
        !c.admin_user.is_empty(),
        "admin_user and admin_password must be configured (the host agent's service account)"
    );
    let session = ServiceSession::new(&c.auth_url, &c.admin_user, &c.admin_password, &c.admin_project, &c.admin_domain);
    let verifier = RemoteVerifier::new(&c.auth_url, session.clone());
    let _poller = verifier.spawn_revocation_poller(std::time::Duration::from_secs(c.revocation_poll_seconds.max(1)));
    let addr = c.listen_addr()?;
    let manager_uri = if cfg.manager_uri.is_empty() {
        format!("http://{}:{}", cfg.access_ip, cfg.common.port)
    } else {
        cfg.manager_uri.clone()
    };
    let register = cfg.register;
    let listener = cloudcommon::service::bind(addr).await?;
    let built = host::build(cfg, verifier as Arc<_>, session.clone()).await?;
    if register {
        let r = host::region::register(built.agent.clone(), session, &manager_uri)
            .await
            .map_err(|e| anyhow::anyhow!("registering with the region: {e}"))?;
        tracing::info!(host_id = r.host_id, storage_id = r.storage_id, "host registered");
    }
    cloudcommon::service::serve_listener("host", listener, built.app, cloudcommon::service::shutdown_signal()).await?;
    built.agent.shutdown().await;
    Ok(())
}
