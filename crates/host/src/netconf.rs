//! The network configuration host-deployer writes into a guest without cloud-init, for the OS
//! its `/etc/os-release` names: each NIC gets the address, mask, gateway and DNS the region
//! assigned (static, so the guest does not depend on the agent's DHCP), and a stable name
//! `eth<index>` matched by MAC.
//!
//! ```text
//!  ubuntu (netplan)         /etc/netplan/50-cloudpods.yaml (match macaddress, set-name)
//!  debian and the like      /etc/network/interfaces.d/50-cloudpods (ifupdown)
//!  rhel, centos, fedora,    /etc/sysconfig/network-scripts/ifcfg-eth<i> (HWADDR)
//!  rocky, almalinux, ...
//!  alpine                   /etc/network/interfaces (the whole file)
//!  every systemd OS above   /etc/systemd/network/10-cloudpods-eth<i>.link (MAC -> eth<i>)
//! ```
//! Anything else gets no file: the guest keeps its own configuration (DHCP still answers).

use apis::compute::{GuestJsonDesc, GuestNicDesc};

/// One file to write: absolute path and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub content: String,
}

/// The OS family, from `ID` and `ID_LIKE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ubuntu,
    Debian,
    RedHat,
    Alpine,
    Other,
}

fn os_value(os_release: &str, key: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn family(os_release: &str) -> Family {
    let id = os_value(os_release, "ID");
    let like = os_value(os_release, "ID_LIKE");
    let is = |name: &str| id == name || like.split_whitespace().any(|l| l == name);
    if is("ubuntu") {
        Family::Ubuntu
    } else if is("debian") {
        Family::Debian
    } else if is("rhel") || is("fedora") || is("centos") {
        Family::RedHat
    } else if id == "alpine" {
        Family::Alpine
    } else {
        Family::Other
    }
}

fn name(n: &GuestNicDesc) -> String {
    format!("eth{}", n.index)
}

fn dns(n: &GuestNicDesc) -> Vec<&str> {
    n.dns.split(',').map(str::trim).filter(|d| !d.is_empty()).collect()
}

/// The gateway of the default route: the first NIC (by index) that has one.
fn default_nic(desc: &GuestJsonDesc) -> Option<u32> {
    let mut nics: Vec<&GuestNicDesc> = desc.nics.iter().collect();
    nics.sort_by_key(|n| n.index);
    nics.iter().find(|n| n.gateway.as_deref().is_some_and(|g| !g.is_empty())).map(|n| n.index)
}

/// The files for `desc`'s NICs in an OS described by `os_release`.
pub fn files(os_release: &str, desc: &GuestJsonDesc) -> Vec<File> {
    let fam = family(os_release);
    let mut nics: Vec<&GuestNicDesc> = desc.nics.iter().filter(|n| !n.ip.is_empty()).collect();
    nics.sort_by_key(|n| n.index);
    if nics.is_empty() || fam == Family::Other {
        return vec![];
    }
    let default = default_nic(desc);
    let gw = |n: &GuestNicDesc| if Some(n.index) == default { n.gateway.clone() } else { None };
    let mut out = vec![];
    match fam {
        Family::Ubuntu => {
            let mut y = String::from("# Written by cloudpods host-deployer.\nnetwork:\n  version: 2\n  ethernets:\n");
            for n in &nics {
                y += &format!(
                    "    {0}:\n      match:\n        macaddress: \"{1}\"\n      set-name: {0}\n      dhcp4: false\n      addresses: [\"{2}/{3}\"]\n",
                    name(n),
                    n.mac,
                    n.ip,
                    n.masklen
                );
                if let Some(g) = gw(n) {
                    y += &format!("      routes:\n        - to: default\n          via: {g}\n");
                }
                let d = dns(n);
                if !d.is_empty() {
                    y += &format!("      nameservers:\n        addresses: [{}]\n", d.join(", "));
                }
            }
            out.push(File { path: "/etc/netplan/50-cloudpods.yaml".into(), content: y });
        }
        Family::Debian | Family::Alpine => {
            let mut t = String::from("# Written by cloudpods host-deployer.\n");
            if fam == Family::Alpine {
                t += "auto lo\niface lo inet loopback\n";
            }
            for n in &nics {
                t += &format!("\nauto {0}\niface {0} inet static\n    address {1}/{2}\n", name(n), n.ip, n.masklen);
                if let Some(g) = gw(n) {
                    t += &format!("    gateway {g}\n");
                }
                let d = dns(n);
                if !d.is_empty() && fam == Family::Debian {
                    t += &format!("    dns-nameservers {}\n", d.join(" "));
                }
            }
            let path = if fam == Family::Alpine {
                "/etc/network/interfaces"
            } else {
                "/etc/network/interfaces.d/50-cloudpods"
            };
            out.push(File { path: path.into(), content: t });
        }
        Family::RedHat => {
            for n in &nics {
                let mut t = format!(
                    "# Written by cloudpods host-deployer.\nDEVICE={}\nHWADDR={}\nTYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=none\nIPADDR={}\nPREFIX={}\n",
                    name(n),
                    n.mac,
                    n.ip,
                    n.masklen
                );
                if let Some(g) = gw(n) {
                    t += &format!("GATEWAY={g}\nDEFROUTE=yes\n");
                }
                for (i, d) in dns(n).iter().enumerate() {
                    t += &format!("DNS{}={d}\n", i + 1);
                }
                out.push(File { path: format!("/etc/sysconfig/network-scripts/ifcfg-{}", name(n)), content: t });
            }
        }
        Family::Other => {}
    }
    if fam != Family::Alpine {
        for n in &nics {
            out.push(File {
                path: format!("/etc/systemd/network/10-cloudpods-{}.link", name(n)),
                content: format!(
                    "# Written by cloudpods host-deployer.\n[Match]\nMACAddress={}\n\n[Link]\nName={}\n",
                    n.mac,
                    name(n)
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc() -> GuestJsonDesc {
        let nic = |index: u32, ip: &str, gw: Option<&str>| GuestNicDesc {
            index,
            mac: format!("00:22:aa:00:00:0{index}"),
            ip: ip.into(),
            masklen: 24,
            gateway: gw.map(str::to_string),
            dns: "10.0.0.2, 10.0.0.3".into(),
            ..Default::default()
        };
        GuestJsonDesc {
            nics: vec![nic(1, "10.1.0.5", Some("10.1.0.1")), nic(0, "10.0.0.5", Some("10.0.0.1"))],
            ..Default::default()
        }
    }

    #[test]
    fn families() {
        assert_eq!(family("ID=ubuntu\nID_LIKE=debian\n"), Family::Ubuntu);
        assert_eq!(family("ID=debian\n"), Family::Debian);
        assert_eq!(family("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"), Family::Ubuntu);
        assert_eq!(family("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"), Family::RedHat);
        assert_eq!(family("ID=fedora\n"), Family::RedHat);
        assert_eq!(family("ID=alpine\n"), Family::Alpine);
        assert_eq!(family("ID=arch\n"), Family::Other);
        assert!(files("ID=arch\n", &desc()).is_empty());
    }

    #[test]
    fn debian_static_with_one_default_route_and_mac_names() {
        let f = files("ID=debian\n", &desc());
        assert_eq!(f[0].path, "/etc/network/interfaces.d/50-cloudpods");
        let t = &f[0].content;
        assert!(
            t.contains("auto eth0\niface eth0 inet static\n    address 10.0.0.5/24\n    gateway 10.0.0.1\n"),
            "{t}"
        );
        assert!(t.contains("dns-nameservers 10.0.0.2 10.0.0.3"), "{t}");
        // Only eth0 (the first NIC with a gateway) gets the default route.
        assert_eq!(t.matches("gateway").count(), 1, "{t}");
        assert!(t.find("eth0").unwrap() < t.find("eth1").unwrap());
        assert_eq!(f[1].path, "/etc/systemd/network/10-cloudpods-eth0.link");
        assert!(f[1].content.contains("MACAddress=00:22:aa:00:00:00\n\n[Link]\nName=eth0\n"));
    }

    #[test]
    fn netplan_ifcfg_and_alpine() {
        let u = files("ID=ubuntu\n", &desc());
        assert_eq!(u[0].path, "/etc/netplan/50-cloudpods.yaml");
        assert!(
            u[0].content
                .contains("    eth0:\n      match:\n        macaddress: \"00:22:aa:00:00:00\"\n      set-name: eth0\n")
        );
        assert!(u[0].content.contains("      routes:\n        - to: default\n          via: 10.0.0.1\n"));
        assert!(u[0].content.contains("addresses: [10.0.0.2, 10.0.0.3]"));
        let r = files("ID=centos\nID_LIKE=\"rhel fedora\"\n", &desc());
        assert_eq!(r[0].path, "/etc/sysconfig/network-scripts/ifcfg-eth0");
        assert!(r[0].content.contains("HWADDR=00:22:aa:00:00:00\n"));
        assert!(r[0].content.contains("IPADDR=10.0.0.5\nPREFIX=24\nGATEWAY=10.0.0.1\n"));
        assert!(r[0].content.contains("DNS1=10.0.0.2\nDNS2=10.0.0.3\n"));
        assert!(!r[1].content.contains("GATEWAY"));
        let a = files("ID=alpine\n", &desc());
        assert_eq!(a.len(), 1, "no systemd .link files on alpine");
        assert!(a[0].content.starts_with("# Written by cloudpods host-deployer.\nauto lo\n"));
    }
}
