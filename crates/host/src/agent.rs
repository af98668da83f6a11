//! The agent's shared parts: configuration-derived paths, the guest table (one owner task
//! per guest), bridges/taps/leases/DHCP responders, the metadata service, and callbacks.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use apis::compute::{GuestJsonDesc, GuestStatus};
use cloudcommon::auth::ServiceToken;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::HostConfig;
use crate::accel::Accelerator;
use crate::deploy::{self, Deployer};
use crate::dhcp::{self, Lease, Leases};
use crate::guest::{Guest, GuestHandle, Op, Persisted};
use crate::metadata::GuestLookup;
use crate::net::{self, Net};
use crate::qemu;
use crate::storage::LocalStorage;

pub struct Agent {
    pub cfg: HostConfig,
    pub accel: Accelerator,
    pub net: Net,
    pub storage: LocalStorage,
    pub leases: Arc<Leases>,
    pub deployer: Arc<dyn Deployer>,
    pub token: Arc<dyn ServiceToken>,
    http: reqwest::Client,
    me: Weak<Agent>,
    guests: Mutex<HashMap<String, GuestHandle>>,
    descs: RwLock<HashMap<String, GuestJsonDesc>>,
    statuses: RwLock<HashMap<String, (GuestStatus, u64)>>,
    vnc: Mutex<BTreeMap<String, u16>>,
    dhcp: tokio::sync::Mutex<HashMap<String, JoinHandle<()>>>,
    bg: Mutex<Vec<JoinHandle<()>>>,
    bridges: Mutex<std::collections::HashSet<String>>,
    /// The region's URL once registered: where unsolicited status reports go.
    pub region_url: std::sync::OnceLock<String>,
}

impl Agent {
    pub fn new(
        cfg: HostConfig,
        accel: Accelerator,
        token: Arc<dyn ServiceToken>,
        deployer: Arc<dyn Deployer>,
    ) -> Result<Arc<Agent>, String> {
        let storage = LocalStorage::new(cfg.disks_dir(), cfg.image_cache_dir()).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(cfg.servers_dir())
            .map_err(|e| format!("creating {}: {e}", cfg.servers_dir().display()))?;
        let net = Net::new(Some(cfg.netns.clone()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
        Ok(Arc::new_cyclic(|me| Agent {
            cfg,
            accel,
            net,
            storage,
            leases: Arc::new(Leases::default()),
            deployer,
            token,
            http,
            me: me.clone(),
            guests: Mutex::new(HashMap::new()),
            descs: RwLock::new(HashMap::new()),
            statuses: RwLock::new(HashMap::new()),
            vnc: Mutex::new(BTreeMap::new()),
            dhcp: tokio::sync::Mutex::new(HashMap::new()),
            bg: Mutex::new(vec![]),
            bridges: Mutex::new(Default::default()),
            region_url: std::sync::OnceLock::new(),
        }))
    }

    fn arc(&self) -> Arc<Agent> {
        self.me.upgrade().expect("agent alive while its methods run")
    }

    /// Prepares the namespace, starts the metadata service and re-adopts the guests on disk.
    pub async fn start(self: &Arc<Self>) -> Result<(), String> {
        self.net.prepare().await.map_err(|e| format!("preparing guest networking: {e}"))?;
        self.start_metadata().await?;
        let servers = self.cfg.servers_dir();
        let _ = tokio::task::spawn_blocking(move || crate::fsdeploy::reap_leftovers(&servers)).await;
        let mut found = vec![];
        if let Ok(rd) = std::fs::read_dir(self.cfg.servers_dir()) {
            for e in rd.flatten() {
                let p = e.path().join("state.json");
                let Ok(bytes) = std::fs::read(&p) else { continue };
                match serde_json::from_slice::<Persisted>(&bytes) {
                    Ok(st) => found.push(st),
                    Err(e) => tracing::warn!(path = %p.display(), "unreadable guest state: {e}"),
                }
            }
        }
        for st in found {
            self.vnc.lock().unwrap_or_else(|e| e.into_inner()).insert(st.desc.id.clone(), st.vnc_display);
            self.spawn_guest(st, true);
        }
        Ok(())
    }

    async fn start_metadata(self: &Arc<Self>) -> Result<(), String> {
        let port = self.cfg.metadata_port;
        // A previous agent in this process may still be releasing the port: retry briefly.
        let mut tries = 0;
        let l = loop {
            let r = net::in_netns(self.net.netns.clone(), move || {
                let l = std::net::TcpListener::bind((net::METADATA_IP, port))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .await;
            match r {
                Ok(l) => break l,
                Err(e) if tries >= 20 => {
                    return Err(format!("metadata service on {}:{port}: {e}", net::METADATA_IP));
                }
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
        let app = crate::metadata::router(Arc::new(WeakLookup(Arc::downgrade(self))));
        let h = tokio::spawn(async move {
            let _ = axum::serve(l, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
        });
        self.bg.lock().unwrap_or_else(|e| e.into_inner()).push(h);
        Ok(())
    }

    /// Stops the agent's own tasks; guests (QEMU processes) keep running.
    pub async fn shutdown(&self) {
        self.guests.lock().unwrap_or_else(|e| e.into_inner()).clear();
        for (_, h) in self.dhcp.lock().await.drain() {
            h.abort();
        }
        for h in self.bg.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            h.abort();
        }
    }

    fn spawn_guest(&self, st: Persisted, adopt: bool) -> GuestHandle {
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        self.spawn_guest_locked(&mut guests, st, adopt)
    }

    /// Starts a guest's owner task; the caller holds the guest table, so one id never gets two owners.
    fn spawn_guest_locked(&self, guests: &mut HashMap<String, GuestHandle>, st: Persisted, adopt: bool) -> GuestHandle {
        let (tx, rx) = mpsc::channel(16);
        let h = GuestHandle { tx };
        let id = st.desc.id.clone();
        self.descs.write().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), st.desc.clone());
        guests.insert(id, h.clone());
        let g = Guest::new(self.arc(), st);
        tokio::spawn(g.run(rx, adopt));
        h
    }

    /// Whether the agent knows guest `id`.
    pub fn has_guest(&self, id: &str) -> bool {
        self.guests.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// Runs `op` on guest `id`'s owner; `create` makes a new guest from `desc` if unknown.
    pub async fn call(&self, id: &str, op: Op, create: Option<&GuestJsonDesc>) -> Result<Value, String> {
        let h = {
            let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
            match (guests.get(id).cloned(), create) {
                (Some(h), _) => h,
                (None, Some(desc)) => {
                    let mut d = desc.clone();
                    d.id = id.to_string();
                    self.spawn_guest_locked(&mut guests, Persisted { desc: d, ..Default::default() }, false)
                }
                (None, None) => return Err(format!("server {id} not found on host")),
            }
        };
        let (tx, rx) = oneshot::channel();
        h.tx.send((op, tx)).await.map_err(|_| format!("server {id} is being removed"))?;
        rx.await.map_err(|_| format!("server {id}'s owner task ended"))?
    }

    /// The guest whose description has disk `disk_id` and whose QEMU runs, if any.
    pub fn disk_user(&self, disk_id: &str) -> Option<String> {
        let st = self.statuses.read().unwrap_or_else(|e| e.into_inner());
        self.descs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|d| st.get(&d.id).is_some_and(|(s, _)| matches!(s, GuestStatus::Running | GuestStatus::Paused)))
            .find(|d| d.disks.iter().any(|x| x.disk_id == disk_id))
            .map(|d| d.id.clone())
    }

    /// The status and generation last published by a guest's owner.
    pub fn status_of(&self, id: &str) -> (GuestStatus, u64) {
        self.statuses.read().unwrap_or_else(|e| e.into_inner()).get(id).copied().unwrap_or((GuestStatus::Unknown, 0))
    }

    pub(crate) fn publish(&self, id: &str, s: GuestStatus, generation: u64) {
        tracing::debug!(guest = id, status = %s, generation, "guest status");
        self.statuses.write().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), (s, generation));
    }

    pub(crate) fn set_desc(&self, d: &GuestJsonDesc) {
        self.descs.write().unwrap_or_else(|e| e.into_inner()).insert(d.id.clone(), d.clone());
    }

    pub(crate) fn forget(&self, id: &str) {
        self.guests.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.descs.write().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.vnc.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.statuses.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// The lowest free VNC display (1, 2, ...).
    pub(crate) fn alloc_vnc(&self, id: &str) -> u16 {
        let mut m = self.vnc.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = m.get(id) {
            return *d;
        }
        let d = (1..u16::MAX).find(|d| !m.values().any(|u| u == d)).unwrap_or(1);
        m.insert(id.to_string(), d);
        d
    }

    /// The guests' memory in MB, for the heartbeat.
    pub fn memory_used_mb(&self) -> u64 {
        let st = self.statuses.read().unwrap_or_else(|e| e.into_inner());
        self.descs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|d| st.get(&d.id).is_some_and(|(s, _)| *s == GuestStatus::Running))
            .map(|d| d.vmem_size)
            .sum()
    }

    /// Bridges, DHCP responders and taps for every NIC of `desc`.
    pub(crate) async fn plug_nics(&self, desc: &GuestJsonDesc) -> Result<(), String> {
        for nic in &desc.nics {
            let bridge = if nic.bridge.is_empty() { self.cfg.default_bridge.clone() } else { nic.bridge.clone() };
            if bridge.len() > 15 {
                return Err(format!("bridge name {bridge:?} is longer than 15 characters"));
            }
            let gw: Option<Ipv4Addr> = nic.gateway.as_deref().and_then(|g| g.parse().ok());
            // Inside a namespace the agent plays the wire's router: the gateway lives on the bridge.
            let addr = match (&self.net.netns, gw) {
                (Some(_), Some(g)) => Some(format!("{g}/{}", nic.masklen)),
                _ => None,
            };
            // Each bridge (with its address) is set up once per agent run.
            let key = format!("{bridge} {}", addr.as_deref().unwrap_or_default());
            if !self.bridges.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
                self.net.ensure_bridge(&bridge, addr.as_deref()).await.map_err(|e| e.to_string())?;
                self.bridges.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            }
            self.ensure_dhcp(&bridge, gw.unwrap_or(Ipv4Addr::new(169, 254, 169, 254))).await?;
            let tap = qemu::tap_name(&desc.id, nic);
            self.net.ensure_tap(&tap, &bridge).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn ensure_dhcp(&self, bridge: &str, server_id: Ipv4Addr) -> Result<(), String> {
        let mut m = self.dhcp.lock().await;
        if m.get(bridge).is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let b = bridge.to_string();
        let sock = net::in_netns(self.net.netns.clone(), move || dhcp::open_socket(&b))
            .await
            .map_err(|e| format!("DHCP responder on {bridge}: {e}"))?;
        let h = tokio::spawn(dhcp::serve(sock, self.leases.clone(), server_id, bridge.to_string()));
        m.insert(bridge.to_string(), h);
        Ok(())
    }

    /// A lease per NIC of `desc`.
    pub(crate) fn register_leases(&self, desc: &GuestJsonDesc) {
        self.leases.remove_guest(&desc.id);
        for nic in &desc.nics {
            let Ok(ip) = nic.ip.parse() else { continue };
            let dns = nic.dns.split(',').filter_map(|d| d.trim().parse().ok()).collect();
            self.leases.set(
                &nic.mac,
                Lease {
                    ip,
                    masklen: nic.masklen,
                    gateway: nic.gateway.as_deref().and_then(|g| g.parse().ok()),
                    dns,
                    hostname: deploy::guest_hostname(desc),
                    guest_id: desc.id.clone(),
                },
            );
        }
    }

    /// Tells the region about a change nobody asked for (a guest that powered itself off or
    /// crashed, a guest re-adopted at start): `POST <region>/servers/<id>/status`. The region
    /// applies it only if `generation` is newer than what it has; failures are only logged.
    pub(crate) fn push_status(&self, id: &str, status: GuestStatus, generation: u64) {
        let Some(region) = self.region_url.get().cloned() else { return };
        let (http, token, id) = (self.http.clone(), self.token.clone(), id.to_string());
        tokio::spawn(async move {
            let Ok(t) = token.token().await else { return };
            let body = serde_json::json!({"server": {"status": status, "generation": generation}});
            let r =
                http.post(format!("{region}/servers/{id}/status")).header("X-Auth-Token", t).json(&body).send().await;
            match r {
                Ok(resp) if resp.status().is_success() => {
                    tracing::info!(guest = id, status = %status, generation, "status pushed to the region")
                }
                Ok(resp) => tracing::warn!(guest = id, "status push answered {}", resp.status()),
                Err(e) => tracing::warn!(guest = id, "status push failed: {e}"),
            }
        });
    }

    /// Pushes every guest's current status (after registration: re-adopted guests).
    pub fn push_all(&self) {
        let all: Vec<(String, (GuestStatus, u64))> =
            self.statuses.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (id, (s, g)) in all {
            self.push_status(&id, s, g);
        }
    }

    /// Posts a callback (`body`, or an error) to the task's notify URL (retried).
    pub async fn notify(&self, task_id: &str, url: &str, result: Result<Value, String>) {
        cloudcommon::client::post_task_callback(&self.http, self.token.as_ref(), task_id, url, result).await;
    }
}

impl GuestLookup for Agent {
    fn by_ip(&self, ip: IpAddr) -> Option<GuestJsonDesc> {
        let IpAddr::V4(v4) = ip else { return None };
        let id = self.leases.guest_of_ip(v4)?;
        self.descs.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }
}

/// The metadata service's view of the agent, without keeping it alive.
struct WeakLookup(Weak<Agent>);

impl GuestLookup for WeakLookup {
    fn by_ip(&self, ip: IpAddr) -> Option<GuestJsonDesc> {
        self.0.upgrade()?.by_ip(ip)
    }
}
