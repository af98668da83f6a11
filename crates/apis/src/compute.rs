//! The host agent contract: the HTTP calls the region makes to a host agent (a host's
//! `manager_uri`), their bodies, and the callbacks the agent posts back.
//!
//! | call (region -> host agent)              | body                  | callback body on success |
//! |------------------------------------------|-----------------------|--------------------------|
//! | `POST /servers/<id>/create`              | [`ServerDeployRequest`] (`action: create`) | [`ServerDeployCallback`] |
//! | `POST /servers/<id>/deploy`              | [`ServerDeployRequest`] (`action: deploy`) | [`ServerDeployCallback`] |
//! | `POST /servers/<id>/start`               | [`ServerStartRequest`]   | [`ServerStatusReport`] (`running`) |
//! | `POST /servers/<id>/stop`                | [`ServerStopRequest`]    | [`ServerStatusReport`] (`ready`) |
//! | `POST /servers/<id>/restart`             | [`ServerRestartRequest`] | [`ServerStatusReport`] (`running`) |
//! | `POST /servers/<id>/sync`                | [`ServerSyncRequest`]    | [`ServerStatusReport`] |
//! | `POST /servers/<id>/delete`              | [`ServerDeleteRequest`]  | [`ServerDeleteCallback`] |
//! | `GET  /servers/<id>/status`              | none                     | [`ServerStatusReport`] |
//! | `POST /disks/<storage_id>/create/<disk_id>` | [`DiskCreateRequest`] | [`DiskCreateCallback`] |
//! | `POST /disks/<storage_id>/delete/<disk_id>` | [`DiskDeleteRequest`] | [`DiskDeleteCallback`] |
//! | `POST /disks/image_cache`                | [`ImageCacheRequest`]    | [`ImageCacheCallback`] |
//!
//! The agent registers itself with the region (`POST /hosts`) and heartbeats with
//! `POST /hosts/<id>/ping`; those are the region's API, not this contract.
//!
//! Callback protocol:
//! ```text
//!  region task stage                        host agent
//!  ──────────────────                       ──────────
//!  call with X-Auth-Token, X-Task-Id: <t>,
//!  X-Task-Notify-Url: <region>/tasks/<t> ──>  checks the request
//!                                        <──  200 {"result":"ok"} (accepted) or an HTTP error
//!  task waits                                 does the work in the background
//!                                        <──  POST <notify url> (X-Auth-Token: agent's service
//!                                             token, X-Task-Id: <t>) with the callback body, or
//!                                             {"status":"error","reason":"..."} on failure
//!  next stage runs with the body
//! ```
//! Invariants: an agent calls back exactly once per accepted call; a synchronous HTTP error
//! means no callback will come. Status reports carry a per-guest `generation` that the agent
//! raises on every state change, so the region ignores a report older than one it applied.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer of an agent to a call it accepted: `{"result":"ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAck {
    pub result: String,
}

impl AgentAck {
    pub fn ok() -> AgentAck {
        AgentAck { result: "ok".into() }
    }
}

/// Every call of the contract, e.g. to inject a failure into one kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentCall {
    ServerCreate,
    ServerDeploy,
    ServerStart,
    ServerStop,
    ServerRestart,
    ServerSync,
    ServerDelete,
    ServerStatus,
    DiskCreate,
    DiskDelete,
    ImageCache,
}

impl AgentCall {
    /// The `<action>` of `POST /servers/<id>/<action>`, for server calls.
    pub fn server_action(self) -> Option<&'static str> {
        Some(match self {
            AgentCall::ServerCreate => "create",
            AgentCall::ServerDeploy => "deploy",
            AgentCall::ServerStart => "start",
            AgentCall::ServerStop => "stop",
            AgentCall::ServerRestart => "restart",
            AgentCall::ServerSync => "sync",
            AgentCall::ServerDelete => "delete",
            AgentCall::ServerStatus => "status",
            _ => return None,
        })
    }

    /// The server call `POST /servers/<id>/<action>` (or `GET .../status`) names.
    pub fn parse_server_action(action: &str) -> Option<AgentCall> {
        Some(match action {
            "create" => AgentCall::ServerCreate,
            "deploy" => AgentCall::ServerDeploy,
            "start" => AgentCall::ServerStart,
            "stop" => AgentCall::ServerStop,
            "restart" => AgentCall::ServerRestart,
            "sync" => AgentCall::ServerSync,
            "delete" => AgentCall::ServerDelete,
            "status" => AgentCall::ServerStatus,
            _ => return None,
        })
    }

    /// The path of this call on the agent (without its base URL).
    pub fn path(self, server_or_storage: &str, disk: &str) -> String {
        match self {
            AgentCall::DiskCreate => format!("/disks/{server_or_storage}/create/{disk}"),
            AgentCall::DiskDelete => format!("/disks/{server_or_storage}/delete/{disk}"),
            AgentCall::ImageCache => "/disks/image_cache".into(),
            s => format!("/servers/{server_or_storage}/{}", s.server_action().unwrap_or_default()),
        }
    }
}

/// A guest's run state as an agent sees it (Cloudpods' `VM_*` strings a host reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestStatus {
    Running,
    /// Defined on the host, not running.
    Ready,
    Starting,
    Stopping,
    Deploying,
    Blocked,
    Paused,
    Suspended,
    Crashed,
    /// The agent does not know the guest (deleted or never created).
    Unknown,
}

impl GuestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestStatus::Running => "running",
            GuestStatus::Ready => "ready",
            GuestStatus::Starting => "starting",
            GuestStatus::Stopping => "stopping",
            GuestStatus::Deploying => "deploying",
            GuestStatus::Blocked => "blocked",
            GuestStatus::Paused => "paused",
            GuestStatus::Suspended => "suspended",
            GuestStatus::Crashed => "crashed",
            GuestStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for GuestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One disk of a guest as handed to the host (`GuestdiskJsonDesc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestDiskDesc {
    pub index: u32,
    pub disk_id: String,
    /// Where the agent keeps the disk; the agent fills it in when it creates the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// MB.
    pub size: u64,
    /// `qcow2`, `raw`.
    pub format: String,
    /// `virtio`, `scsi`, `ide`.
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub storage_id: String,
}

/// One NIC of a guest as handed to the host (`GuestnetworkJsonDesc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestNicDesc {
    pub index: u32,
    pub mac: String,
    pub ip: String,
    pub masklen: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Comma separated, as Cloudpods stores it.
    #[serde(default)]
    pub dns: String,
    /// The host bridge the NIC plugs into.
    pub bridge: String,
    pub wire_id: String,
    pub network_id: String,
    pub vlan: u16,
    pub ifname: String,
}

impl GuestNicDesc {
    /// The dotted netmask of `masklen` (e.g. 24 -> `255.255.255.0`).
    pub fn netmask(&self) -> String {
        let bits: u32 = if self.masklen == 0 { 0 } else { u32::MAX << (32 - u32::from(self.masklen.min(32))) };
        std::net::Ipv4Addr::from(bits).to_string()
    }
}

/// The guest description the region hands the host: the contract's core.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestJsonDesc {
    pub id: String,
    pub name: String,
    /// Equals `id` for KVM guests.
    pub uuid: String,
    #[serde(default)]
    pub hostname: String,
    pub vcpu_count: u32,
    /// MB.
    pub vmem_size: u64,
    /// e.g. `cdn` (disk, cdrom, network).
    #[serde(default)]
    pub boot_order: String,
    #[serde(default)]
    pub disks: Vec<GuestDiskDesc>,
    #[serde(default)]
    pub nics: Vec<GuestNicDesc>,
    /// Secgroup rules as the region renders them (`in:allow tcp 22`, ...).
    #[serde(default)]
    pub security_rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    /// Base64, as KVM takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// The login password to set; never logged (the `Debug` impl redacts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl fmt::Debug for GuestJsonDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestJsonDesc")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("uuid", &self.uuid)
            .field("hostname", &self.hostname)
            .field("vcpu_count", &self.vcpu_count)
            .field("vmem_size", &self.vmem_size)
            .field("boot_order", &self.boot_order)
            .field("disks", &self.disks)
            .field("nics", &self.nics)
            .field("security_rules", &self.security_rules)
            .field("pubkey", &self.pubkey)
            .field("user_data", &self.user_data.as_ref().map(|_| "<set>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `create` (first deploy) or `deploy` (redeploy an existing guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployAction {
    Create,
    Deploy,
}

/// `POST /servers/<id>/create` and `POST /servers/<id>/deploy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDeployRequest {
    pub desc: GuestJsonDesc,
    pub action: DeployAction,
    #[serde(default)]
    pub reset_password: bool,
    /// `shutdown` (leave it ready) or `none` (start it).
    #[serde(default = "default_on_finish")]
    pub on_finish: String,
}

fn default_on_finish() -> String {
    "shutdown".into()
}

/// `POST /servers/<id>/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStartRequest {
    pub desc: GuestJsonDesc,
}

/// `POST /servers/<id>/stop`: ACPI shutdown, failing after `timeout` seconds unless forced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStopRequest {
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub is_force: bool,
}

/// `POST /servers/<id>/restart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRestartRequest {
    pub desc: GuestJsonDesc,
    #[serde(default)]
    pub is_force: bool,
}

/// `POST /servers/<id>/sync`: a new description to apply (hotplug disks and NICs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSyncRequest {
    pub desc: GuestJsonDesc,
}

/// `POST /servers/<id>/delete`: undeploy; the disks go with their own calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDeleteRequest {}

/// The disk an agent creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCreateInfo {
    /// MB.
    pub size: u64,
    pub format: String,
    /// Create from this cached image (`POST /disks/image_cache` first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// `POST /disks/<storage_id>/create/<disk_id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCreateRequest {
    pub disk: DiskCreateInfo,
}

/// `POST /disks/<storage_id>/delete/<disk_id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDeleteRequest {}

/// The image an agent caches (`CacheImageInput`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheImageInput {
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub storagecache_id: String,
    /// Where to download from (glance's image data URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_url: Option<String>,
}

/// `POST /disks/image_cache`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCacheRequest {
    pub disk: CacheImageInput,
}

/// Callback of `create`/`deploy`: what the agent learnt about the guest's OS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDeployCallback {
    pub generation: u64,
    pub status: Option<GuestStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_account: Option<String>,
}

/// A guest's state: the callback of start, stop, restart, sync and status, and what an agent
/// pushes on its own. Apply only if `generation` is newer than the last one applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatusReport {
    pub status: GuestStatus,
    pub generation: u64,
}

/// Callback of `POST /servers/<id>/delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDeleteCallback {
    pub server_id: String,
}

/// Callback of disk create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCreateCallback {
    pub disk_id: String,
    pub path: String,
    /// MB.
    pub size: u64,
    pub format: String,
}

/// Callback of disk delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDeleteCallback {
    pub disk_id: String,
}

/// Callback of image cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCacheCallback {
    pub image_id: String,
    pub path: String,
    /// Bytes.
    pub size: u64,
}

/// A size in MB: a number (MB) or a string with a unit (`512m`, `2g`, `1t`; bare = MB).
pub fn size_mb(field: &str, v: &Value) -> Result<i64, crate::Error> {
    let bad = || crate::Error::invalid(field, format!("{v} is not a size (MB, or e.g. 2g)"));
    let n = match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let (num, mul) = match s.trim_end_matches('b').chars().last() {
                Some('m') => (&s[..s.find('m').unwrap_or(0)], 1),
                Some('g') => (&s[..s.find('g').unwrap_or(0)], 1024),
                Some('t') => (&s[..s.find('t').unwrap_or(0)], 1024 * 1024),
                _ => (s.as_str(), 1),
            };
            num.parse::<i64>().map_err(|_| bad())?.checked_mul(mul).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if n < 0 { Err(bad()) } else { Ok(n) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(v: &T, golden: Value) {
        assert_eq!(serde_json::to_value(v).unwrap(), golden);
        let back: T = serde_json::from_value(golden).unwrap();
        assert_eq!(&back, v);
    }

    fn desc() -> GuestJsonDesc {
        GuestJsonDesc {
            id: "g1".into(),
            name: "vm1".into(),
            uuid: "g1".into(),
            hostname: "vm1".into(),
            vcpu_count: 2,
            vmem_size: 2048,
            boot_order: "cdn".into(),
            disks: vec![GuestDiskDesc {
                index: 0,
                disk_id: "d1".into(),
                path: None,
                size: 10240,
                format: "qcow2".into(),
                driver: "virtio".into(),
                image_id: Some("img1".into()),
                storage_id: "s1".into(),
            }],
            nics: vec![GuestNicDesc {
                index: 0,
                mac: "00:22:aa:00:00:01".into(),
                ip: "10.20.0.250".into(),
                masklen: 24,
                gateway: Some("10.20.0.1".into()),
                dns: "8.8.8.8".into(),
                bridge: "br0".into(),
                wire_id: "w1".into(),
                network_id: "n1".into(),
                vlan: 1,
                ifname: "vnet-g1-0".into(),
            }],
            security_rules: vec!["in:allow tcp 22".into()],
            pubkey: Some("ssh-ed25519 AAAA".into()),
            user_data: None,
            password: Some("s3cret".into()),
        }
    }

    #[test]
    fn server_create_golden() {
        let req = ServerDeployRequest {
            desc: desc(),
            action: DeployAction::Create,
            reset_password: true,
            on_finish: "shutdown".into(),
        };
        round_trip(
            &req,
            json!({"desc": {"id": "g1", "name": "vm1", "uuid": "g1", "hostname": "vm1", "vcpu_count": 2,
                "vmem_size": 2048, "boot_order": "cdn",
                "disks": [{"index": 0, "disk_id": "d1", "size": 10240, "format": "qcow2", "driver": "virtio",
                           "image_id": "img1", "storage_id": "s1"}],
                "nics": [{"index": 0, "mac": "00:22:aa:00:00:01", "ip": "10.20.0.250", "masklen": 24,
                          "gateway": "10.20.0.1", "dns": "8.8.8.8", "bridge": "br0", "wire_id": "w1",
                          "network_id": "n1", "vlan": 1, "ifname": "vnet-g1-0"}],
                "security_rules": ["in:allow tcp 22"], "pubkey": "ssh-ed25519 AAAA", "password": "s3cret"},
                "action": "create", "reset_password": true, "on_finish": "shutdown"}),
        );
        assert_eq!(req.desc.nics[0].netmask(), "255.255.255.0");
    }

    #[test]
    fn disk_create_and_callbacks_golden() {
        round_trip(
            &DiskCreateRequest { disk: DiskCreateInfo { size: 1024, format: "qcow2".into(), image_id: None } },
            json!({"disk": {"size": 1024, "format": "qcow2"}}),
        );
        round_trip(
            &DiskCreateCallback { disk_id: "d1".into(), path: "/opt/d1".into(), size: 1024, format: "qcow2".into() },
            json!({"disk_id": "d1", "path": "/opt/d1", "size": 1024, "format": "qcow2"}),
        );
        round_trip(
            &ServerStatusReport { status: GuestStatus::Running, generation: 3 },
            json!({"status": "running", "generation": 3}),
        );
        assert!(crate::task::callback_error(&json!({"status": "running", "generation": 3})).is_none());
        round_trip(&ServerStopRequest { timeout: 30, is_force: false }, json!({"timeout": 30, "is_force": false}));
    }

    #[test]
    fn password_never_in_debug_and_paths() {
        let s = format!("{:?}", desc());
        assert!(!s.contains("s3cret") && s.contains("<redacted>"), "{s}");
        assert_eq!(AgentCall::DiskCreate.path("s1", "d1"), "/disks/s1/create/d1");
        assert_eq!(AgentCall::ServerStart.path("g1", ""), "/servers/g1/start");
        assert_eq!(AgentCall::parse_server_action("stop"), Some(AgentCall::ServerStop));
        assert_eq!(serde_json::to_value(AgentAck::ok()).unwrap(), json!({"result": "ok"}));
    }
}
