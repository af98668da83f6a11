//! host: the host agent (`cloudpods host`, port 8885). Runs the guests the region places on
//! this host with QEMU, and answers the host agent contract of [`apis::compute`].
//!
//! | module | what it owns |
//! |---|---|
//! | [`accel`] | `kvm | tcg | auto`: probing real hardware virtualisation |
//! | [`qemu`] | the pure QEMU command line of a guest (q35, `-blockdev` nodes, root ports) |
//! | [`qmp`] | the QMP client over a unix socket |
//! | [`storage`] | image cache (verified downloads) and qcow2 overlay disks (`qemu-img`) |
//! | [`net`] | bridges and taps, optionally in a named network namespace |
//! | [`dhcp`] | the DHCP responder: each guest MAC gets the address the region assigned |
//! | [`metadata`] | 169.254.169.254: OpenStack and EC2 metadata paths |
//! | [`bootable`] | whether a disk can boot (MBR signature, El Torito), read through qcow2 chains |
//! | [`deploy`] | host-deployer: config drive (`config-2`), behind the `Deployer` trait |
//! | [`iso`] | the config drive's ISO 9660 + Joliet writer (in-process) |
//! | [`netconf`] | the network configuration direct deploy writes, per OS family |
//! | [`fsdeploy`] | host-deployer, direct: the guest's filesystem through a FUSE export + debugfs |
//! | [`guest`] | one owner task per guest; pidfile + QMP re-adoption; generations |
//! | [`agent`] | the guest table and shared parts; callbacks |
//! | [`api`] | the HTTP contract behind the framework's auth layer |
//! | [`region`] | registration, storages, heartbeat |
//! | [`vnc`] | a guest's VNC, forwarded out of the namespace for the webconsole |

pub mod accel;
pub mod agent;
pub mod api;
pub mod bootable;
pub mod deploy;
pub mod dhcp;
pub mod fsdeploy;
pub mod guest;
pub mod iso;
pub mod metadata;
pub mod net;
pub mod netconf;
pub mod qemu;
pub mod qmp;
pub mod region;
pub mod storage;
pub mod vnc;

use std::path::PathBuf;
use std::sync::Arc;

use apis::Error;
use axum::Router;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::{ServiceToken, TokenVerifier};
use cloudcommon::config::CommonOptions;
use cloudcommon::db::Db;
use cloudcommon::service::{ServiceBuilder, ServiceState};
use serde::{Deserialize, Serialize};

pub use agent::Agent;

pub const DEFAULT_PORT: u16 = 8885;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// Put bridges, taps, QEMU's NICs, DHCP and metadata in this network namespace
    /// (`ip netns add` it first); empty: the host's own.
    pub netns: String,
    /// `kvm`, `tcg` or `auto` (KVM only with vmx/svm or kvm_intel/kvm_amd).
    pub accelerator: accel::AccelSetting,
    pub qemu_binary: String,
    /// VNC listens here, display N on port 5900 + N.
    pub vnc_listen: String,
    /// Empty PCIe root ports per guest, for hotplug.
    pub spare_root_ports: u32,
    /// A stop without a timeout waits this long for the ACPI shutdown.
    pub stop_timeout_seconds: u64,
    /// The bridge of NICs whose description names none.
    pub default_bridge: String,
    /// The metadata service's port on 169.254.169.254.
    pub metadata_port: u16,
    /// The host's name in the region (default: the system hostname).
    pub hostname: String,
    /// The address the region reaches the agent on.
    pub access_ip: String,
    /// The agent's URL for the region (default `http://<access_ip>:<port>`).
    pub manager_uri: String,
    /// The region's URL (default: from the keystone catalog).
    pub region_url: String,
    /// Register with the region and heartbeat.
    pub register: bool,
    pub ping_interval_seconds: u64,
    /// Host NICs to bind to wires at registration: `wire=bridge` (e.g. `bcast0=br0`); a list,
    /// or one string with commas (`--set wires=bcast0=br0,w2=br1`).
    #[serde(deserialize_with = "list_or_csv")]
    pub wires: Vec<String>,
    /// `cloudpods aio` only: run a host agent inside aio (`--set host.enabled=true`).
    pub enabled: bool,
    /// How guests are customised before boot: `config-drive`, `direct` (write into the root
    /// disk's filesystem), or `both`.
    pub deployer: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            netns: String::new(),
            accelerator: accel::AccelSetting::Auto,
            qemu_binary: "qemu-system-x86_64".into(),
            vnc_listen: "0.0.0.0".into(),
            spare_root_ports: 4,
            stop_timeout_seconds: 60,
            default_bridge: "br0".into(),
            metadata_port: 80,
            hostname: String::new(),
            access_ip: "127.0.0.1".into(),
            manager_uri: String::new(),
            region_url: String::new(),
            register: true,
            ping_interval_seconds: 10,
            wires: vec![],
            enabled: false,
            deployer: "config-drive".into(),
        }
    }
}

impl HostConfig {
    pub fn servers_dir(&self) -> PathBuf {
        self.common.data_dir.join("servers")
    }
    pub fn disks_dir(&self) -> PathBuf {
        self.common.data_dir.join("disks")
    }
    pub fn image_cache_dir(&self) -> PathBuf {
        self.common.data_dir.join("image_cache")
    }
    pub fn host_name(&self) -> String {
        if !self.hostname.is_empty() {
            return self.hostname.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or("host".into())
    }
}

/// A list of strings, or one comma-separated string.
fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        One(String),
        Many(Vec<String>),
    }
    Ok(match L::deserialize(d)? {
        L::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        L::Many(v) => v,
    })
}

pub struct Built {
    pub state: Arc<ServiceState>,
    pub agent: Arc<Agent>,
    pub app: Router,
}

/// Builds the agent: probes the accelerator, prepares networking in the namespace, starts
/// the metadata service, re-adopts guests, and returns the HTTP app (callers' tokens checked
/// by `verifier`; callbacks carry `token`'s).
pub async fn build(
    cfg: HostConfig,
    verifier: Arc<dyn TokenVerifier>,
    token: Arc<dyn ServiceToken>,
) -> Result<Built, Error> {
    let accel = accel::detect(cfg.accelerator);
    tracing::info!(accelerator = %accel, netns = cfg.netns, "host agent starting");
    let direct = || Box::new(fsdeploy::DirectDeployer { disks_dir: cfg.disks_dir() }) as Box<dyn deploy::Deployer>;
    let deployer: Arc<dyn deploy::Deployer> = match cfg.deployer.as_str() {
        "config-drive" | "" => Arc::new(deploy::ConfigDrive),
        "direct" => Arc::from(direct()),
        "both" => Arc::new(fsdeploy::Both(vec![Box::new(deploy::ConfigDrive), direct()])),
        other => return Err(Error::invalid("deployer", format!("{other:?} is not one of config-drive, direct, both"))),
    };
    let agent = Agent::new(cfg, accel, token, deployer).map_err(Error::Internal)?;
    agent.start().await.map_err(Error::Unavailable)?;
    // The framework's state wants a database; the agent keeps its state in files.
    let db = Db::connect("sqlite::memory:").await?;
    let state = ServiceBuilder::new("host", db, verifier, ActionLog::local("host")).build();
    let ext: Arc<dyn std::any::Any + Send + Sync> = agent.clone();
    let _ = state.extension.set(ext);
    let app = cloudcommon::service::app(state.clone(), "", api::routes(), Router::new());
    Ok(Built { state, agent, app })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_sets() {
        let c: HostConfig = cloudcommon::config::load_from(
            None,
            &[],
            &["wires=bcast0=br0, w2=br1".into(), "accelerator=tcg".into(), "netns=t1".into()],
        )
        .unwrap();
        assert_eq!(c.wires, ["bcast0=br0", "w2=br1"]);
        assert_eq!(c.accelerator, accel::AccelSetting::Tcg);
        // The port stays 0 here, as for every service: `cloudpods host` puts in DEFAULT_PORT.
        assert_eq!((c.netns.as_str(), c.deployer.as_str()), ("t1", "config-drive"));
        let t: HostConfig = toml::from_str("wires = [\"a=b\"]\n").unwrap();
        assert_eq!(t.wires, ["a=b"]);
    }
}
