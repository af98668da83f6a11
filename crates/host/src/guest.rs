//! One owner task per guest: the only code that touches a guest's QEMU process.
//!
//! ```text
//!            deploy                     start (spawn QEMU -S, QMP cont)
//!  (none) ──────────> ready ───────────────────────────────> running
//!                      ▲  ◄──── stop (ACPI powerdown, or quit if forced) ──┘ │
//!                      └──────── guest powered itself off (watch tick) ◄─────┘
//!  delete (any state): QEMU killed, taps and leases removed, directory removed, task ends
//! ```
//! Commands arrive on the guest's channel and run one at a time, so QMP calls never
//! interleave. Every status change raises `generation` (to at least the wall clock in ms, see
//! [`next_generation`]), persisted in `state.json` with the
//! description (without the password) so a restarted agent re-adopts the guest: pidfile
//! + `/proc/<pid>/cmdline` + QMP `query-status` give its real state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apis::compute::{GuestJsonDesc, GuestStatus, ServerDeployCallback, ServerDeployRequest, ServerStatusReport};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::agent::Agent;
use crate::qemu::{self, GuestPaths, LaunchSpec};
use crate::qmp::Qmp;

/// What a guest's owner is asked to do; each answers with the callback body or a reason.
pub enum Op {
    Deploy(Box<ServerDeployRequest>),
    Start(Box<GuestJsonDesc>),
    Stop {
        timeout: u64,
        force: bool,
    },
    Restart {
        desc: Box<GuestJsonDesc>,
        force: bool,
    },
    Sync(Box<GuestJsonDesc>),
    Status,
    /// Where the VNC server is (answered at once, no state change).
    Vnc,
    Delete,
}

pub type Reply = oneshot::Sender<Result<Value, String>>;

/// The handle the agent keeps per guest.
#[derive(Clone)]
pub struct GuestHandle {
    pub tx: mpsc::Sender<(Op, Reply)>,
}

/// What survives an agent restart (`<servers_dir>/<id>/state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub desc: GuestJsonDesc,
    pub generation: u64,
    pub vnc_display: u16,
    #[serde(default)]
    pub config_drive: Option<PathBuf>,
    /// Root ports the running QEMU was started with (the spare ones follow).
    #[serde(default)]
    pub boot_ports: u32,
    /// Hot-plugged devices of the running QEMU: disk id (or `nic:<mac>`) -> root port.
    #[serde(default)]
    pub hotplug: std::collections::BTreeMap<String, u32>,
}

pub struct Guest {
    agent: Arc<Agent>,
    paths: GuestPaths,
    st: Persisted,
    status: GuestStatus,
    qmp: Option<Qmp>,
    vnc: Option<crate::vnc::VncProxy>,
}

/// Whether `pid` is a live (not zombie) QEMU of guest `id`.
pub fn qemu_alive(pid: i32, id: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let c = String::from_utf8_lossy(&cmdline);
    c.contains("qemu") && c.contains(&format!("cloudpods-{id}"))
}

impl Guest {
    pub fn new(agent: Arc<Agent>, st: Persisted) -> Guest {
        let paths = GuestPaths::new(&agent.cfg.servers_dir(), &st.desc.id);
        Guest { agent, paths, st, status: GuestStatus::Ready, qmp: None, vnc: None }
    }

    fn id(&self) -> &str {
        &self.st.desc.id
    }

    fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.paths.pidfile()).ok()?.trim().parse().ok()?;
        qemu_alive(pid, self.id()).then_some(pid)
    }

    fn set_status(&mut self, s: GuestStatus) {
        self.status = s;
        self.st.generation = next_generation(self.st.generation);
        self.persist();
        self.agent.publish(self.id(), s, self.st.generation);
    }

    fn persist(&self) {
        let mut st = self.st.clone();
        st.desc.password = None;
        let tmp = self.paths.dir.join(".state.json.tmp");
        let r = std::fs::create_dir_all(&self.paths.dir)
            .and_then(|_| std::fs::write(&tmp, serde_json::to_vec_pretty(&st).unwrap_or_default()))
            .and_then(|_| std::fs::rename(&tmp, self.paths.state()));
        if let Err(e) = r {
            tracing::error!(guest = self.id(), "cannot persist guest state: {e}");
        }
    }

    fn report(&self) -> Result<Value, String> {
        to_json(&ServerStatusReport { status: self.status, generation: self.st.generation })
    }

    /// Runs the owner loop until the guest is deleted or the agent drops the handle.
    pub async fn run(mut self, mut rx: mpsc::Receiver<(Op, Reply)>, adopt: bool) {
        if adopt {
            self.adopt().await;
        }
        self.agent.set_desc(&self.st.desc);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some((op, reply)) = m else { return };
                    let delete = matches!(op, Op::Delete);
                    let r = self.handle(op).await;
                    let ok = r.is_ok();
                    let _ = reply.send(r);
                    if delete && ok {
                        return;
                    }
                }
                _ = tick.tick() => self.watch().await,
            }
        }
    }

    /// Notices a QEMU that went away on its own: a guest that powered itself off (QEMU sent
    /// a `SHUTDOWN` event first) is `ready`; one that vanished without it `crashed`.
    /// A QEMU found running for a guest that is off is one this agent did not start: a start
    /// that a killed agent had under way when this one looked for it at start. It is adopted.
    async fn watch(&mut self) {
        if matches!(self.status, GuestStatus::Ready | GuestStatus::Crashed) && self.pid().is_some() {
            tracing::warn!(
                guest = self.id(),
                "a QEMU appeared for a guest that was off (a start interrupted by an agent restart)"
            );
            self.adopt().await;
            return;
        }
        if matches!(self.status, GuestStatus::Running | GuestStatus::Paused) && self.pid().is_none() {
            let events = match self.qmp.as_mut() {
                Some(q) => q.drain_events(Duration::from_millis(50)).await,
                None => vec![],
            };
            let clean = events.iter().any(|e| e.get("event").and_then(Value::as_str) == Some("SHUTDOWN"));
            let status = if clean { GuestStatus::Ready } else { GuestStatus::Crashed };
            tracing::warn!(guest = self.id(), status = %status, "QEMU exited on its own");
            self.qmp = None;
            self.vnc = None;
            let _ = std::fs::remove_file(self.paths.pidfile());
            self.set_status(status);
            self.agent.push_status(self.id(), status, self.st.generation);
        }
    }

    /// Re-adopts a guest found on disk at agent start.
    async fn adopt(&mut self) {
        let status = match self.pid() {
            Some(pid) => {
                let _ = self.agent.plug_nics(&self.st.desc).await;
                match self.qmp().await {
                    Ok(q) => match q.query_status().await {
                        Ok((_, true)) => GuestStatus::Running,
                        // QEMU starts with -S and only the agent's `cont` runs it: a previous
                        // agent died between the two (killed mid-start). Finish that start.
                        Ok((s, false)) if s == "prelaunch" => match q.cont().await {
                            Ok(()) => {
                                tracing::info!(guest = self.id(), pid, "finished a start interrupted before `cont`");
                                GuestStatus::Running
                            }
                            Err(e) => {
                                tracing::warn!(guest = self.id(), pid, "QMP cont of an interrupted start: {e}");
                                GuestStatus::Paused
                            }
                        },
                        Ok((s, false)) if s == "paused" => GuestStatus::Paused,
                        Ok(_) => GuestStatus::Running,
                        Err(e) => {
                            tracing::warn!(guest = self.id(), pid, "QMP query-status: {e}");
                            GuestStatus::Running
                        }
                    },
                    Err(e) => {
                        tracing::warn!(guest = self.id(), pid, "QMP: {e}");
                        GuestStatus::Running
                    }
                }
            }
            None => GuestStatus::Ready,
        };
        if status != GuestStatus::Ready {
            self.forward_vnc().await;
        }
        tracing::info!(guest = self.id(), status = %status, "re-adopted guest");
        self.agent.register_leases(&self.st.desc);
        self.set_status(status);
        self.agent.push_status(self.id(), status, self.st.generation);
    }

    async fn qmp(&mut self) -> Result<&mut Qmp, String> {
        if self.qmp.is_none() {
            let q = Qmp::connect_retry(&self.paths.qmp(), Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
            self.qmp = Some(q);
        }
        self.qmp.as_mut().ok_or_else(|| "no QMP connection".to_string())
    }

    async fn handle(&mut self, op: Op) -> Result<Value, String> {
        match op {
            Op::Deploy(req) => self.deploy(*req).await,
            Op::Start(desc) => {
                self.st.desc = merge_desc(&self.st.desc, *desc);
                self.start().await?;
                self.report()
            }
            Op::Stop { timeout, force } => {
                self.stop(timeout, force).await?;
                self.report()
            }
            Op::Restart { desc, force } => {
                if self.stop(60, force).await.is_err() {
                    self.stop(0, true).await?;
                }
                self.st.desc = merge_desc(&self.st.desc, *desc);
                self.start().await?;
                self.report()
            }
            Op::Sync(desc) => {
                self.sync(*desc).await?;
                self.report()
            }
            Op::Status => {
                self.watch().await;
                self.report()
            }
            Op::Vnc => self.vnc_endpoint(),
            Op::Delete => self.delete().await,
        }
    }

    async fn deploy(&mut self, req: ServerDeployRequest) -> Result<Value, String> {
        if self.pid().is_some() && matches!(req.action, apis::compute::DeployAction::Create) {
            return Err(format!("server {} is running: stop it before deploying", self.id()));
        }
        let was = self.status;
        self.st.desc = merge_desc(&self.st.desc, req.desc.clone());
        std::fs::create_dir_all(&self.paths.dir).map_err(|e| format!("creating {}: {e}", self.paths.dir.display()))?;
        if self.st.vnc_display == 0 {
            self.st.vnc_display = self.agent.alloc_vnc(self.id());
        }
        self.set_status(GuestStatus::Deploying);
        if let Err(e) = self.check_bootable() {
            self.set_status(if was == GuestStatus::Deploying { GuestStatus::Ready } else { was });
            return Err(format!("deploy failed: {e}"));
        }
        let info = match self.agent.deployer.deploy(&req.desc, &self.paths.dir).await {
            Ok(i) => i,
            Err(e) => {
                self.set_status(if was == GuestStatus::Deploying { GuestStatus::Ready } else { was });
                return Err(format!("deploy failed: {e}"));
            }
        };
        self.st.config_drive = info.config_drive.clone();
        self.agent.set_desc(&self.st.desc);
        if self.pid().is_some() {
            self.set_status(GuestStatus::Running);
        } else {
            self.set_status(GuestStatus::Ready);
            if req.on_finish == "none" {
                self.start().await?;
            }
        }
        to_json(&ServerDeployCallback {
            generation: self.st.generation,
            status: Some(self.status),
            os: info.os,
            login_account: info.login_account,
        })
    }

    /// A system disk made from an image must be able to boot (see [`crate::bootable`]).
    fn check_bootable(&self) -> Result<(), String> {
        let Some(d0) = self.st.desc.disks.iter().min_by_key(|d| d.index) else { return Ok(()) };
        let Some(image) = d0.image_id.as_deref().filter(|i| !i.is_empty()) else { return Ok(()) };
        let path = self.agent.storage.disk_path(&d0.disk_id);
        match crate::bootable::check(&path) {
            Ok(crate::bootable::Boot::NotBootable) => Err(format!(
                "image {image} is not bootable: the first sector of its disk has no boot signature and \
                 it has no El Torito record"
            )),
            Ok(crate::bootable::Boot::Unknown(why)) => {
                tracing::debug!(guest = self.id(), image, "boot sector not checked: {why}");
                Ok(())
            }
            Ok(crate::bootable::Boot::Bootable) => Ok(()),
            // A missing or unreadable disk is reported by the start, with its own reason.
            Err(e) => {
                tracing::warn!(guest = self.id(), "cannot read the boot sector of {}: {e}", path.display());
                Ok(())
            }
        }
    }

    async fn start(&mut self) -> Result<(), String> {
        if self.pid().is_some() {
            if self.status != GuestStatus::Running {
                let q = self.qmp().await?;
                q.cont().await.map_err(|e| e.to_string())?;
                self.set_status(GuestStatus::Running);
            }
            return Ok(());
        }
        let r = self.spawn().await;
        if let Err(e) = &r {
            tracing::warn!(guest = self.id(), "start failed: {e}");
            self.qmp = None;
            // A QEMU this attempt started (the pidfile was removed before the spawn).
            if let Some(pid) = read_pid(&self.paths).filter(|p| qemu_alive(*p, self.id())) {
                kill(pid);
            }
            // Its pidfile goes too, so `watch` never takes the dying QEMU for one to adopt.
            let _ = std::fs::remove_file(self.paths.pidfile());
            self.set_status(GuestStatus::Ready);
        }
        r
    }

    async fn spawn(&mut self) -> Result<(), String> {
        self.set_status(GuestStatus::Starting);
        let agent = self.agent.clone();
        let mut desc = self.st.desc.clone();
        for d in &mut desc.disks {
            let p = agent.storage.disk_path(&d.disk_id);
            if !p.exists() {
                return Err(format!("disk {} of server {} is not on this host", d.disk_id, desc.id));
            }
            d.path = Some(p.display().to_string());
        }
        agent.plug_nics(&desc).await?;
        agent.register_leases(&desc);
        for f in [self.paths.pidfile(), self.paths.qmp()] {
            let _ = std::fs::remove_file(f);
        }
        self.qmp = None; // never a connection to an earlier QEMU
        let spec = LaunchSpec {
            accel: agent.accel,
            paths: self.paths.clone(),
            vnc_display: self.st.vnc_display,
            // In a namespace QEMU's VNC stays on its loopback; the agent forwards it out.
            vnc_listen: if agent.net.netns.is_some() { "127.0.0.1".into() } else { agent.cfg.vnc_listen.clone() },
            config_drive: self.st.config_drive.clone().filter(|p| p.exists()),
            spare_root_ports: agent.cfg.spare_root_ports,
        };
        if !on_path(&agent.cfg.qemu_binary) {
            return Err(format!(
                "cannot run {}: not found (install QEMU with scripts/deps.sh --qemu)",
                agent.cfg.qemu_binary
            ));
        }
        let args = qemu::command_line(&desc, &spec);
        self.st.boot_ports = (desc.disks.len() + desc.nics.len() + usize::from(spec.config_drive.is_some())) as u32;
        self.st.hotplug.clear();
        tracing::info!(guest = self.id(), netns = ?agent.net.netns, "starting QEMU: {} {}", agent.cfg.qemu_binary, args.join(" "));
        let out = agent
            .net
            .command(&agent.cfg.qemu_binary)
            .map_err(|e| e.to_string())?
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", agent.cfg.qemu_binary))?;
        if !out.status.success() {
            return Err(format!("QEMU failed to start: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let q = self.qmp().await?;
        q.cont().await.map_err(|e| format!("QMP cont: {e}"))?;
        self.forward_vnc().await;
        self.set_status(GuestStatus::Running);
        Ok(())
    }

    /// Forwards the VNC port out of the namespace (nothing to do outside one).
    async fn forward_vnc(&mut self) {
        let Some(ns) = self.agent.net.netns.clone() else { return };
        self.vnc = None; // release an earlier forwarder's port first
        let port = 5900 + self.st.vnc_display;
        match crate::vnc::VncProxy::start(&self.agent.cfg.vnc_listen, port, ns, port).await {
            Ok(p) => self.vnc = Some(p),
            Err(e) => tracing::warn!(guest = self.id(), "cannot forward VNC: {e}"),
        }
    }

    /// Where the guest's VNC is reachable from the host's namespace.
    fn vnc_endpoint(&self) -> Result<Value, String> {
        if self.pid().is_none() {
            return Err(format!("server {} is not running", self.id()));
        }
        let port = match (&self.vnc, &self.agent.net.netns) {
            (Some(p), _) => p.port,
            (None, None) => 5900 + self.st.vnc_display,
            (None, Some(_)) => return Err(format!("the VNC of server {} is not forwarded", self.id())),
        };
        let host = match self.agent.cfg.vnc_listen.as_str() {
            "0.0.0.0" | "" => self.agent.cfg.access_ip.clone(),
            l => l.to_string(),
        };
        Ok(serde_json::json!({"host": host, "port": port, "protocol": "vnc"}))
    }

    /// ACPI shutdown within `timeout` s (0: the agent's default), or `quit` when forced.
    async fn stop(&mut self, timeout: u64, force: bool) -> Result<(), String> {
        let Some(pid) = self.pid() else {
            self.qmp = None;
            if self.status != GuestStatus::Ready {
                self.set_status(GuestStatus::Ready);
            }
            return Ok(());
        };
        self.set_status(GuestStatus::Stopping);
        if force {
            if let Ok(q) = self.qmp().await {
                let _ = q.quit().await;
            }
            if !wait_exit(pid, self.id(), Duration::from_secs(5)).await {
                kill(pid);
                wait_exit(pid, self.id(), Duration::from_secs(5)).await;
            }
        } else {
            let q = self.qmp().await?;
            q.system_powerdown().await.map_err(|e| e.to_string())?;
            let t = if timeout == 0 { self.agent.cfg.stop_timeout_seconds } else { timeout };
            if !wait_exit(pid, self.id(), Duration::from_secs(t)).await {
                self.set_status(GuestStatus::Running);
                return Err(format!("server {} did not shut down within {t} s (stop it with is_force)", self.id()));
            }
        }
        self.qmp = None;
        self.vnc = None;
        let _ = std::fs::remove_file(self.paths.pidfile());
        self.set_status(GuestStatus::Ready);
        Ok(())
    }

    /// Applies a new description: disks and NICs added to / removed from a running guest are
    /// hot-plugged onto / off spare root ports.
    async fn sync(&mut self, desc: GuestJsonDesc) -> Result<(), String> {
        let old = self.st.desc.clone();
        let new = merge_desc(&old, desc);
        if self.pid().is_some() {
            for d in new.disks.iter().filter(|d| !old.disks.iter().any(|o| o.disk_id == d.disk_id)) {
                let path = self.agent.storage.disk_path(&d.disk_id);
                if !path.exists() {
                    return Err(format!("disk {} is not on this host", d.disk_id));
                }
                let (file, node) = (format!("file-{}", d.index), qemu::drive_node(d.index));
                let fmt = if d.format == "raw" { "raw" } else { "qcow2" };
                let port = self.spare_port(&format!("disk {}", d.disk_id))?;
                let q = self.qmp().await?;
                q.blockdev_add(serde_json::json!({"driver": "file", "filename": path, "node-name": file}))
                    .await
                    .map_err(|e| e.to_string())?;
                q.blockdev_add(serde_json::json!({"driver": fmt, "file": file, "node-name": node}))
                    .await
                    .map_err(|e| e.to_string())?;
                q.device_add(serde_json::json!({"driver": "virtio-blk-pci", "drive": node,
                    "id": format!("disk-{}", d.index), "bus": format!("rp{port}")}))
                    .await
                    .map_err(|e| e.to_string())?;
                self.st.hotplug.insert(d.disk_id.clone(), port);
            }
            for d in old.disks.iter().filter(|d| !new.disks.iter().any(|n| n.disk_id == d.disk_id)) {
                let q = self.qmp().await?;
                q.device_del(&format!("disk-{}", d.index)).await.map_err(|e| e.to_string())?;
                // The guest releases the device asynchronously; the nodes go once it has.
                for _ in 0..200 {
                    if q.blockdev_del(&qemu::drive_node(d.index)).await.is_ok() {
                        let _ = q.blockdev_del(&format!("file-{}", d.index)).await;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                self.st.hotplug.remove(&d.disk_id);
            }
            for n in new.nics.iter().filter(|n| !old.nics.iter().any(|o| o.mac == n.mac)) {
                let mut one = new.clone();
                one.nics = vec![n.clone()];
                self.agent.plug_nics(&one).await?;
                let port = self.spare_port(&format!("NIC {}", n.mac))?;
                let tap = qemu::tap_name(self.id(), n);
                let q = self.qmp().await?;
                q.execute(
                    "netdev_add",
                    Some(serde_json::json!({"type": "tap", "id": format!("net-{}", n.index),
                    "ifname": tap, "script": "no", "downscript": "no"})),
                )
                .await
                .map_err(|e| e.to_string())?;
                q.device_add(serde_json::json!({"driver": "virtio-net-pci", "netdev": format!("net-{}", n.index),
                    "mac": n.mac, "id": format!("nic-{}", n.index), "bus": format!("rp{port}")}))
                    .await
                    .map_err(|e| e.to_string())?;
                self.st.hotplug.insert(format!("nic:{}", n.mac), port);
            }
            for n in old.nics.iter().filter(|n| !new.nics.iter().any(|x| x.mac == n.mac)) {
                let q = self.qmp().await?;
                let dev = format!("nic-{}", n.index);
                q.device_del(&dev).await.map_err(|e| e.to_string())?;
                // Gone from QOM once the guest has released it; then the backend can go.
                for _ in 0..200 {
                    let path = serde_json::json!({"path": format!("/machine/peripheral/{dev}")});
                    if q.execute("qom-list", Some(path)).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = q.execute("netdev_del", Some(serde_json::json!({"id": format!("net-{}", n.index)}))).await;
                self.st.hotplug.remove(&format!("nic:{}", n.mac));
            }
        }
        // The taps of NICs that left go too (running or not).
        for n in old.nics.iter().filter(|n| !new.nics.iter().any(|x| x.mac == n.mac)) {
            self.agent.net.delete_tap(&qemu::tap_name(self.id(), n)).await.map_err(|e| e.to_string())?;
        }
        self.st.desc = new;
        self.agent.set_desc(&self.st.desc);
        self.agent.register_leases(&self.st.desc);
        self.persist();
        Ok(())
    }

    /// A free spare root port of the running QEMU, for hot-plugging `what`.
    fn spare_port(&self, what: &str) -> Result<u32, String> {
        (self.st.boot_ports..self.st.boot_ports + self.agent.cfg.spare_root_ports)
            .find(|p| !self.st.hotplug.values().any(|u| u == p))
            .ok_or_else(|| format!("no spare PCIe root port left for {what}"))
    }

    async fn delete(&mut self) -> Result<Value, String> {
        self.stop(0, true).await?;
        for nic in &self.st.desc.nics {
            let tap = qemu::tap_name(self.id(), nic);
            self.agent.net.delete_tap(&tap).await.map_err(|e| e.to_string())?;
        }
        self.agent.leases.remove_guest(self.id());
        self.agent.forget(self.id());
        if let Err(e) = std::fs::remove_dir_all(&self.paths.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!("removing {}: {e}", self.paths.dir.display()));
        }
        self.status = GuestStatus::Unknown;
        to_json(&apis::compute::ServerDeleteCallback { server_id: self.id().to_string() })
    }
}

/// A new description, keeping the password and disk paths the old one knew when the new one
/// lacks them.
fn merge_desc(old: &GuestJsonDesc, mut new: GuestJsonDesc) -> GuestJsonDesc {
    if new.password.is_none() {
        new.password = old.password.clone();
    }
    if new.id.is_empty() {
        new.id = old.id.clone();
    }
    new
}

/// The generation after `g`: one more, and never less than the wall clock in milliseconds, so
/// generations keep growing across agent restarts and even when a guest's state on this host
/// was lost or the guest is made again under the same id.
pub fn next_generation(g: u64) -> u64 {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    (g + 1).max(now_ms)
}

/// Whether `bin` (a path, or a name looked up in PATH) is an executable file.
fn on_path(bin: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let exec =
        |p: &std::path::Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if bin.contains('/') {
        return exec(std::path::Path::new(bin));
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| exec(&d.join(bin))))
}

fn read_pid(p: &GuestPaths) -> Option<i32> {
    std::fs::read_to_string(p.pidfile()).ok()?.trim().parse().ok()
}

fn kill(pid: i32) {
    // SAFETY: sending a signal to a pid we read from our own pidfile and checked is QEMU's.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

async fn wait_exit(pid: i32, id: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while qemu_alive(pid, id) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_rejects_other_processes() {
        let me = std::process::id() as i32;
        assert!(!qemu_alive(me, "g1"), "the test runner is not QEMU");
        assert!(!qemu_alive(i32::MAX, "g1"));
    }

    #[test]
    fn generations_only_grow() {
        let a = next_generation(0);
        assert!(a > 1_600_000_000_000, "wall clock floor: {a}");
        let b = next_generation(a);
        assert!(b > a);
        assert_eq!(next_generation(u64::MAX / 2), u64::MAX / 2 + 1);
    }

    #[test]
    fn finds_programs() {
        assert!(on_path("sh") && on_path("/bin/sh"));
        assert!(!on_path("qemu-system-nonexistent") && !on_path("/nonexistent/qemu"));
    }

    #[test]
    fn merge_keeps_password() {
        let old = GuestJsonDesc { id: "g".into(), password: Some("p".into()), ..Default::default() };
        let m = merge_desc(&old, GuestJsonDesc::default());
        assert_eq!((m.id.as_str(), m.password.as_deref()), ("g", Some("p")));
    }
}
