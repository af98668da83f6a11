//! host-deployer: customises a guest before its first boot.
//!
//! [`Deployer`] is the seam. [`ConfigDrive`] writes an OpenStack config drive (ISO 9660 with
//! Joliet names, volume label `config-2`, made in-process by [`crate::iso`]) that the agent
//! attaches read-only as virtio-blk:
//! ```text
//!  openstack/latest/meta_data.json   uuid, name, hostname, public_keys, admin_pass
//!  openstack/latest/user_data        the decoded user data, when given
//!  openstack/latest/network_data.json links and networks (static addresses)
//!  (and the same under openstack/2012-08-10/)
//! ```
//! Direct customisation of the guest's filesystem (for images without cloud-init) is another
//! implementation of the same trait ([`crate::fsdeploy`]).

use std::path::{Path, PathBuf};

use apis::compute::GuestJsonDesc;
use async_trait::async_trait;
use base64::Engine;
use serde_json::{Value, json};

/// What the deploy learnt about the guest (reported back to the region).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployInfo {
    pub os: Option<String>,
    pub login_account: Option<String>,
    /// A drive to attach at every start.
    pub config_drive: Option<PathBuf>,
}

#[async_trait]
pub trait Deployer: Send + Sync {
    /// Prepares the guest in `dir` (its own directory) from `desc`.
    async fn deploy(&self, desc: &GuestJsonDesc, dir: &Path) -> Result<DeployInfo, String>;
}

/// The hostname a guest gets: its `hostname`, else its name, made DNS-safe.
pub fn guest_hostname(desc: &GuestJsonDesc) -> String {
    let base = if desc.hostname.is_empty() { &desc.name } else { &desc.hostname };
    let h: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .take(63)
        .collect();
    let h = h.trim_matches('-').to_string();
    if h.is_empty() { "guest".into() } else { h }
}

/// The decoded user data (the desc carries it base64 encoded; plain text is taken as is).
pub fn user_data(desc: &GuestJsonDesc) -> Option<Vec<u8>> {
    let u = desc.user_data.as_deref().filter(|s| !s.is_empty())?;
    Some(base64::engine::general_purpose::STANDARD.decode(u.trim()).unwrap_or_else(|_| u.as_bytes().to_vec()))
}

/// OpenStack `meta_data.json`. `with_password` adds `admin_pass` (config drive only: the
/// metadata service never serves the password).
pub fn meta_data(desc: &GuestJsonDesc, with_password: bool) -> Value {
    let host = guest_hostname(desc);
    let mut v = json!({
        "uuid": desc.uuid, "name": desc.name, "hostname": host,
        "launch_index": 0, "availability_zone": "",
        "meta": {}, "public_keys": {}, "keys": [],
    });
    if let Some(k) = desc.pubkey.as_deref().filter(|k| !k.is_empty()) {
        v["public_keys"] = json!({"default": k.trim()});
        v["keys"] = json!([{"name": "default", "type": "ssh", "data": k.trim()}]);
    }
    if with_password && let Some(p) = desc.password.as_deref().filter(|p| !p.is_empty()) {
        v["admin_pass"] = json!(p);
    }
    v
}

/// OpenStack `network_data.json`: each NIC with its static address.
pub fn network_data(desc: &GuestJsonDesc) -> Value {
    let links: Vec<Value> = desc
        .nics
        .iter()
        .map(|n| json!({"id": format!("eth{}", n.index), "type": "phy", "ethernet_mac_address": n.mac, "mtu": 1500}))
        .collect();
    let networks: Vec<Value> = desc
        .nics
        .iter()
        .map(|n| {
            let mut net = json!({"id": format!("network{}", n.index), "link": format!("eth{}", n.index),
                "type": "ipv4", "ip_address": n.ip, "netmask": n.netmask(), "routes": []});
            if let Some(g) = n.gateway.as_deref().filter(|g| !g.is_empty()) {
                net["routes"] = json!([{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": g}]);
            }
            net
        })
        .collect();
    let services: Vec<Value> = desc
        .nics
        .iter()
        .flat_map(|n| n.dns.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .map(|d| json!({"type": "dns", "address": d}))
        .collect();
    json!({"links": links, "networks": networks, "services": services})
}

/// The config drive's files: (path, content).
pub fn tree(desc: &GuestJsonDesc) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
    let mut out = vec![];
    for ver in ["latest", "2012-08-10"] {
        let d = format!("openstack/{ver}");
        out.push((format!("{d}/meta_data.json"), serde_json::to_vec_pretty(&meta_data(desc, true))?));
        out.push((format!("{d}/network_data.json"), serde_json::to_vec_pretty(&network_data(desc))?));
        if let Some(u) = user_data(desc) {
            out.push((format!("{d}/user_data"), u));
        }
    }
    Ok(out)
}

/// The config drive deployer: `config-drive.iso` in the guest's directory, replaced whole.
pub struct ConfigDrive;

#[async_trait]
impl Deployer for ConfigDrive {
    async fn deploy(&self, desc: &GuestJsonDesc, dir: &Path) -> Result<DeployInfo, String> {
        let iso = dir.join("config-drive.iso");
        let tmp = dir.join(".config-drive.iso.tmp");
        let files = tree(desc).map_err(|e| format!("writing the config drive: {e}"))?;
        let list: Vec<crate::iso::IsoFile<'_>> =
            files.iter().map(|(p, d)| crate::iso::IsoFile { path: p, data: d }).collect();
        let image = crate::iso::build("config-2", &list, std::time::SystemTime::now())?;
        std::fs::write(&tmp, image).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &iso).map_err(|e| format!("renaming the config drive: {e}"))?;
        Ok(DeployInfo { os: Some("Linux".into()), login_account: Some("root".into()), config_drive: Some(iso) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apis::compute::GuestNicDesc;

    fn desc() -> GuestJsonDesc {
        GuestJsonDesc {
            id: "g1".into(),
            name: "VM_1".into(),
            uuid: "g1".into(),
            pubkey: Some("ssh-ed25519 AAAA k\n".into()),
            password: Some("pw".into()),
            user_data: Some(base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho hi\n")),
            nics: vec![GuestNicDesc {
                mac: "00:22:aa:00:00:01".into(),
                ip: "10.20.0.10".into(),
                masklen: 24,
                gateway: Some("10.20.0.1".into()),
                dns: "10.20.0.2, 10.20.0.3".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn meta_data_layout() {
        let d = desc();
        assert_eq!(guest_hostname(&d), "vm-1");
        let m = meta_data(&d, true);
        assert_eq!(m["hostname"], "vm-1");
        assert_eq!(m["public_keys"]["default"], "ssh-ed25519 AAAA k");
        assert_eq!(m["admin_pass"], "pw");
        assert!(meta_data(&d, false).get("admin_pass").is_none(), "metadata service never serves it");
        assert_eq!(user_data(&d).unwrap(), b"#!/bin/sh\necho hi\n");
        let n = network_data(&d);
        assert_eq!(n["networks"][0]["netmask"], "255.255.255.0");
        assert_eq!(n["networks"][0]["routes"][0]["gateway"], "10.20.0.1");
        assert_eq!(n["services"].as_array().unwrap().len(), 2);
    }

    /// The drive as a reader sees it: `isoinfo` (genisoimage's) lists and extracts the Joliet
    /// tree, and `blkid` reads the label. Real guests read it in the host agent's VM tests.
    #[tokio::test]
    async fn config_drive_reads_back_with_joliet_names_and_label() {
        let dir = std::env::temp_dir().join(format!("cfgdrive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = ConfigDrive.deploy(&desc(), &dir).await.unwrap();
        let iso = info.config_drive.unwrap();
        assert_eq!(iso, dir.join("config-drive.iso"));
        assert!(!dir.join(".config-drive.iso.tmp").exists());
        let run = |args: &[&str]| {
            let out = std::process::Command::new(args[0]).args(&args[1..]).output();
            let out = out.unwrap_or_else(|e| panic!("{} (scripts/deps.sh --qemu installs it): {e}", args[0]));
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let path = iso.to_str().unwrap();
        let listing = run(&["isoinfo", "-J", "-f", "-i", path]);
        let mut names: Vec<&str> = listing.lines().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "/openstack",
                "/openstack/2012-08-10",
                "/openstack/2012-08-10/meta_data.json",
                "/openstack/2012-08-10/network_data.json",
                "/openstack/2012-08-10/user_data",
                "/openstack/latest",
                "/openstack/latest/meta_data.json",
                "/openstack/latest/network_data.json",
                "/openstack/latest/user_data",
            ]
        );
        let md: Value =
            serde_json::from_str(&run(&["isoinfo", "-J", "-i", path, "-x", "/openstack/latest/meta_data.json"]))
                .unwrap();
        assert_eq!(md["uuid"], "g1");
        assert_eq!(md["admin_pass"], "pw");
        assert_eq!(run(&["isoinfo", "-J", "-i", path, "-x", "/openstack/latest/user_data"]), "#!/bin/sh\necho hi\n");
        // The primary tree (readers without Joliet) has the same files under 8.3 names.
        assert!(run(&["isoinfo", "-f", "-i", path]).contains("/OPENSTAC/LATEST/META_DAT.JSO;1"));
        let label = run(&["blkid", "-o", "value", "-s", "LABEL", path]);
        assert_eq!(label.trim(), "config-2");
        assert!(run(&["isoinfo", "-d", "-i", path]).contains("Joliet with UCS level 3 found"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
