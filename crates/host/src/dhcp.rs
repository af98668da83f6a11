//! The agent's DHCP responder: answers each guest MAC with the address, mask, gateway, DNS
//! and hostname the region assigned (from the guest's description); other MACs get nothing.
//!
//! ```text
//!  guest (no address) ── DISCOVER (broadcast) ──> responder on the bridge (port 67)
//!                     <── OFFER   (broadcast 255.255.255.255:68, yiaddr = the NIC's ip)
//!                     ── REQUEST ──>
//!                     <── ACK (or NAK if it asks for another address)
//! ```
//! One UDP socket per bridge, bound to the device (`SO_BINDTODEVICE`) inside the agent's
//! namespace. Replies are always broadcast: the client has no address yet.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::net::UdpSocket;

/// What one MAC gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub masklen: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: String,
    /// The guest it belongs to.
    pub guest_id: String,
}

impl Lease {
    pub fn mask(&self) -> Ipv4Addr {
        let bits = if self.masklen == 0 { 0 } else { u32::MAX << (32 - u32::from(self.masklen.min(32))) };
        Ipv4Addr::from(bits)
    }
}

/// Leases by lower-case MAC.
#[derive(Default)]
pub struct Leases {
    by_mac: RwLock<HashMap<String, Lease>>,
}

impl Leases {
    pub fn set(&self, mac: &str, lease: Lease) {
        self.by_mac.write().unwrap_or_else(|e| e.into_inner()).insert(mac.to_ascii_lowercase(), lease);
    }
    pub fn get(&self, mac: &str) -> Option<Lease> {
        self.by_mac.read().unwrap_or_else(|e| e.into_inner()).get(&mac.to_ascii_lowercase()).cloned()
    }
    /// Drops every lease of a guest.
    pub fn remove_guest(&self, guest_id: &str) {
        self.by_mac.write().unwrap_or_else(|e| e.into_inner()).retain(|_, l| l.guest_id != guest_id);
    }
    pub fn len(&self) -> usize {
        self.by_mac.read().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The guest that holds `ip`.
    pub fn guest_of_ip(&self, ip: Ipv4Addr) -> Option<String> {
        self.by_mac.read().unwrap_or_else(|e| e.into_inner()).values().find(|l| l.ip == ip).map(|l| l.guest_id.clone())
    }
}

const MAGIC: [u8; 4] = [99, 130, 83, 99];
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

/// The parts of a client message the responder needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub xid: [u8; 4],
    pub flags: [u8; 2],
    pub chaddr: [u8; 16],
    pub mac: String,
    pub msg_type: u8,
    pub requested_ip: Option<Ipv4Addr>,
    pub ciaddr: Ipv4Addr,
}

pub fn parse(p: &[u8]) -> Option<Request> {
    if p.len() < 240 || p[0] != 1 || p[1] != 1 || p[2] != 6 || p[236..240] != MAGIC {
        return None;
    }
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&p[28..44]);
    let mac = chaddr[..6].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let (mut msg_type, mut requested_ip) = (0, None);
    let mut i = 240;
    while i < p.len() {
        let code = p[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = *p.get(i + 1)? as usize;
        let v = p.get(i + 2..i + 2 + len)?;
        match code {
            53 if len == 1 => msg_type = v[0],
            50 if len == 4 => requested_ip = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            _ => {}
        }
        i += 2 + len;
    }
    Some(Request {
        xid: p[4..8].try_into().ok()?,
        flags: p[10..12].try_into().ok()?,
        chaddr,
        mac,
        msg_type,
        requested_ip,
        ciaddr: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
    })
}

/// The reply to `req` for `lease` from server `server_id`, or None when there is none to give.
pub fn reply(req: &Request, lease: &Lease, server_id: Ipv4Addr, lease_secs: u32) -> Option<Vec<u8>> {
    let kind = match req.msg_type {
        DISCOVER => OFFER,
        REQUEST => {
            let asked = req.requested_ip.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
            if asked.is_some_and(|a| a != lease.ip) { NAK } else { ACK }
        }
        _ => return None,
    };
    let mut p = vec![0u8; 240];
    p[0] = 2; // BOOTREPLY
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&req.xid);
    p[10..12].copy_from_slice(&req.flags);
    if kind != NAK {
        p[16..20].copy_from_slice(&lease.ip.octets());
    }
    p[20..24].copy_from_slice(&server_id.octets());
    p[28..44].copy_from_slice(&req.chaddr);
    p[236..240].copy_from_slice(&MAGIC);
    let mut opt = |code: u8, v: &[u8]| {
        p.push(code);
        p.push(v.len() as u8);
        p.extend_from_slice(v);
    };
    opt(53, &[kind]);
    opt(54, &server_id.octets());
    if kind != NAK {
        opt(51, &lease_secs.to_be_bytes());
        opt(58, &(lease_secs / 2).to_be_bytes());
        opt(59, &(lease_secs / 8 * 7).to_be_bytes());
        opt(1, &lease.mask().octets());
        if let Some(g) = lease.gateway {
            opt(3, &g.octets());
        }
        if !lease.dns.is_empty() {
            let v: Vec<u8> = lease.dns.iter().flat_map(|d| d.octets()).collect();
            opt(6, &v);
        }
        if !lease.hostname.is_empty() && lease.hostname.len() < 64 {
            opt(12, lease.hostname.as_bytes());
        }
        let bcast = u32::from(lease.ip) | !u32::from(lease.mask());
        opt(28, &Ipv4Addr::from(bcast).octets());
    }
    p.push(255);
    while p.len() < 300 {
        p.push(0);
    }
    Some(p)
}

/// Opens the responder's socket for `bridge` (call inside the namespace).
pub fn open_socket(bridge: &str) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(bridge.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67)).into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Serves DHCP on one bridge until the task is aborted.
pub async fn serve(sock: std::net::UdpSocket, leases: Arc<Leases>, server_id: Ipv4Addr, bridge: String) {
    let sock = match UdpSocket::from_std(sock) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(bridge, "dhcp socket: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, _from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // e.g. the bridge went away: don't spin.
                tracing::warn!(bridge, "dhcp receive: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(req) = parse(&buf[..n]) else { continue };
        let Some(lease) = leases.get(&req.mac) else {
            tracing::debug!(bridge, mac = req.mac, "dhcp: unknown MAC, no answer");
            continue;
        };
        let Some(out) = reply(&req, &lease, server_id, 86400) else { continue };
        let to = SocketAddr::from((Ipv4Addr::BROADCAST, 68));
        match sock.send_to(&out, to).await {
            Ok(_) => tracing::debug!(bridge, mac = req.mac, ip = %lease.ip, kind = out[242], "dhcp reply"),
            Err(e) => tracing::warn!(bridge, "dhcp send: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(msg: u8, requested: Option<[u8; 4]>) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&[1, 2, 3, 4]);
        p[10] = 0x80;
        p[28..34].copy_from_slice(&[0x00, 0x22, 0xAA, 0, 0, 1]);
        p[236..240].copy_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, msg]);
        if let Some(r) = requested {
            p.extend_from_slice(&[50, 4]);
            p.extend_from_slice(&r);
        }
        p.extend_from_slice(&[55, 2, 1, 3, 255]);
        p
    }

    fn lease() -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 20, 0, 10),
            masklen: 24,
            gateway: Some(Ipv4Addr::new(10, 20, 0, 1)),
            dns: vec![Ipv4Addr::new(10, 20, 0, 2)],
            hostname: "vm1".into(),
            guest_id: "g1".into(),
        }
    }

    fn opts(p: &[u8]) -> HashMap<u8, Vec<u8>> {
        let mut m = HashMap::new();
        let mut i = 240;
        while p[i] != 255 {
            let l = p[i + 1] as usize;
            m.insert(p[i], p[i + 2..i + 2 + l].to_vec());
            i += 2 + l;
        }
        m
    }

    #[test]
    fn offer_then_ack_with_the_assigned_address() {
        let srv = Ipv4Addr::new(10, 20, 0, 1);
        let d = parse(&client(DISCOVER, None)).unwrap();
        assert_eq!(d.mac, "00:22:aa:00:00:01");
        let o = reply(&d, &lease(), srv, 3600).unwrap();
        assert_eq!((o[0], &o[4..8], &o[16..20]), (2, &[1u8, 2, 3, 4][..], &[10u8, 20, 0, 10][..]));
        let m = opts(&o);
        assert_eq!(m[&53], [OFFER]);
        assert_eq!(m[&1], [255, 255, 255, 0]);
        assert_eq!(m[&3], [10, 20, 0, 1]);
        assert_eq!(m[&6], [10, 20, 0, 2]);
        assert_eq!(m[&12], b"vm1");
        assert_eq!(m[&28], [10, 20, 0, 255]);
        assert_eq!(m[&51], 3600u32.to_be_bytes());
        let r = parse(&client(REQUEST, Some([10, 20, 0, 10]))).unwrap();
        assert_eq!(opts(&reply(&r, &lease(), srv, 3600).unwrap())[&53], [ACK]);
        let wrong = parse(&client(REQUEST, Some([10, 20, 0, 99]))).unwrap();
        let nak = reply(&wrong, &lease(), srv, 3600).unwrap();
        assert_eq!((opts(&nak)[&53].clone(), &nak[16..20]), (vec![NAK], &[0u8; 4][..]));
    }

    #[test]
    fn junk_is_ignored_and_leases_by_guest() {
        assert!(parse(&[0u8; 100]).is_none());
        let mut bad = client(DISCOVER, None);
        bad[236] = 0;
        assert!(parse(&bad).is_none());
        let ls = Leases::default();
        ls.set("00:22:AA:00:00:01", lease());
        assert!(ls.get("00:22:aa:00:00:01").is_some());
        assert_eq!(ls.guest_of_ip(Ipv4Addr::new(10, 20, 0, 10)).as_deref(), Some("g1"));
        ls.remove_guest("g1");
        assert!(ls.is_empty());
    }
}
