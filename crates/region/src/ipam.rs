//! IPAM, the pure part: IPv4 ranges, network validation, address choice and MACs.
//!
//! A network owns the range `guest_ip_start..=guest_ip_end` inside the subnet
//! `guest_gateway/guest_ip_mask`. [`allocate`] picks one address from it given what is
//! taken; it does no I/O, so every rule is testable here and the database allocator
//! ([`crate::ipalloc`]) only has to gather the sets and make the choice stick.
//!
//! Invariants (Cloudpods' `getFreeIP`):
//! * An address is *taken* when it is used (an `ipallocations` row: a guest NIC, a
//!   reserved address) or reserved (`reservedips`); taken addresses are never chosen.
//! * An address freed less than the hold-back time ago is *held back*: never chosen by a
//!   scan, so a departed guest's address is not handed to the next one at once. Only an
//!   explicitly requested address may be a held-back one.
//! * A requested address is used if it is in the range and free, else the request fails;
//!   there is no silent substitute.
//! * `reserved=true` takes a reserved address (the requested one, if given).
//! * Otherwise the direction decides: the network's `alloc_policy` (unless `none`)
//!   overrides the request's, which overrides the region default (`stepdown`, from
//!   `guest_ip_end` downwards). `stepup` scans upwards from `guest_ip_start`; `random`
//!   makes 5 random tries, then scans upwards.
//! * Nothing free: `InsufficientResource` ("out of IP addresses"), naming how many are held back.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use apis::Error;
use rand::Rng;

pub const POLICY_NONE: &str = "none";
pub const POLICY_STEPDOWN: &str = "stepdown";
pub const POLICY_STEPUP: &str = "stepup";
pub const POLICY_RANDOM: &str = "random";
pub const POLICIES: &[&str] = &[POLICY_NONE, POLICY_STEPDOWN, POLICY_STEPUP, POLICY_RANDOM];

/// Parses a dotted IPv4 address, naming `field` when it is not one.
pub fn parse_ip(field: &str, s: &str) -> Result<u32, Error> {
    s.trim()
        .parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| Error::invalid(field, format!("{s:?} is not an IPv4 address")))
}

pub fn ip_str(ip: u32) -> String {
    Ipv4Addr::from(ip).to_string()
}

/// The netmask of a prefix length.
pub fn mask_bits(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) }
}

/// Parses `a.b.c.d/n` into (network address, prefix length).
pub fn parse_cidr(field: &str, s: &str) -> Result<(u32, u8), Error> {
    let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
    let ip = parse_ip(field, ip)?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| Error::invalid(field, format!("{s:?} is not a CIDR (prefix length 0 to 32)")))?;
    if ip & !mask_bits(len) != 0 {
        return Err(Error::invalid(
            field,
            format!("{s:?} has host bits set; the network is {}/{len}", ip_str(ip & mask_bits(len))),
        ));
    }
    Ok((ip, len))
}

/// The IPv4 part of a network, as validated numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub end: u32,
    pub mask: u8,
    pub gateway: Option<u32>,
}

impl Range {
    /// Checks a network's addresses: valid IPv4, `start <= end`, the range and the gateway
    /// in one subnet of `mask`, neither the subnet's own nor its broadcast address in the
    /// range, the gateway outside the range.
    pub fn validate(start: &str, end: &str, mask: i64, gateway: Option<&str>) -> Result<Range, Error> {
        let s = parse_ip("guest_ip_start", start)?;
        let e = parse_ip("guest_ip_end", end)?;
        if !(8..=30).contains(&mask) {
            return Err(Error::invalid("guest_ip_mask", format!("{mask} is not a prefix length from 8 to 30")));
        }
        let mask = mask as u8;
        if s > e {
            return Err(Error::invalid("guest_ip_start", format!("{start} is after guest_ip_end {end}")));
        }
        let m = mask_bits(mask);
        if s & m != e & m {
            return Err(Error::invalid(
                "guest_ip_end",
                format!("{end} is not in the subnet {}/{mask} of guest_ip_start {start}", ip_str(s & m)),
            ));
        }
        let (net, bcast) = (s & m, (s & m) | !m);
        if s == net {
            return Err(Error::invalid("guest_ip_start", format!("{start} is the subnet's own address")));
        }
        if e == bcast {
            return Err(Error::invalid("guest_ip_end", format!("{end} is the subnet's broadcast address")));
        }
        let gateway = match gateway.map(str::trim).filter(|g| !g.is_empty()) {
            None => None,
            Some(g) => {
                let gw = parse_ip("guest_gateway", g)?;
                if gw & m != net || gw == net || gw == bcast {
                    return Err(Error::invalid(
                        "guest_gateway",
                        format!("{g} is not a host address of the subnet {}/{mask}", ip_str(net)),
                    ));
                }
                if (s..=e).contains(&gw) {
                    return Err(Error::invalid("guest_gateway", format!("{g} is inside the range {start}-{end}")));
                }
                Some(gw)
            }
        };
        Ok(Range { start: s, end: e, mask, gateway })
    }

    pub fn contains(&self, ip: u32) -> bool {
        (self.start..=self.end).contains(&ip)
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// How many addresses the range holds (`ports`).
    pub fn size(&self) -> u64 {
        (self.end - self.start) as u64 + 1
    }
}

/// What one allocation asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A specific address (`address` in a server's `nets`).
    pub preferred: Option<u32>,
    /// Take a reserved address.
    pub reserved: bool,
    /// The direction the request asks for; the network's policy wins over it.
    pub policy: Option<String>,
}

/// What is taken in a network when allocating.
#[derive(Debug, Clone)]
pub struct Taken<'a> {
    /// Addresses in use (allocations, including reserved ones).
    pub used: &'a HashSet<u32>,
    /// Reserved addresses (a subset of `used` in the database allocator).
    pub reserved: &'a HashSet<u32>,
    /// Addresses freed within the hold-back time.
    pub held_back: &'a HashSet<u32>,
}

/// The direction an allocation scans in: the network's policy, else the request's, else
/// the region default.
pub fn effective_policy<'a>(network: &'a str, request: Option<&'a str>, default: &'a str) -> &'a str {
    match (network, request) {
        (p, _) if !p.is_empty() && p != POLICY_NONE => p,
        (_, Some(r)) if !r.is_empty() && r != POLICY_NONE => r,
        _ => default,
    }
}

/// Picks an address in `range` (see the module docs for the rules).
pub fn allocate(
    network: &str,
    range: &Range,
    policy: &str,
    req: &Request,
    taken: &Taken<'_>,
    rng: &mut impl Rng,
) -> Result<u32, Error> {
    if let Some(ip) = req.preferred {
        if !range.contains(ip) {
            return Err(Error::invalid(
                "address",
                format!(
                    "{} is not in network {network}'s range {}-{}",
                    ip_str(ip),
                    ip_str(range.start),
                    ip_str(range.end)
                ),
            ));
        }
        if req.reserved {
            return if taken.reserved.contains(&ip) {
                Ok(ip)
            } else {
                Err(Error::invalid("address", format!("{} is not reserved in network {network}", ip_str(ip))))
            };
        }
        if taken.used.contains(&ip) || taken.reserved.contains(&ip) {
            return Err(Error::Conflict(format!("address {} of network {network} is in use", ip_str(ip))));
        }
        return Ok(ip);
    }
    if req.reserved {
        let mut r: Vec<u32> = taken.reserved.iter().copied().filter(|ip| range.contains(*ip)).collect();
        r.sort_unstable();
        return r
            .first()
            .copied()
            .ok_or_else(|| Error::InsufficientResource(format!("network {network} has no reserved address to take")));
    }
    let free = |ip: u32| !taken.used.contains(&ip) && !taken.reserved.contains(&ip) && !taken.held_back.contains(&ip);
    let found = match policy {
        POLICY_STEPUP => (range.start..=range.end).find(|ip| free(*ip)),
        POLICY_RANDOM => (0..5)
            .map(|_| rng.random_range(range.start..=range.end))
            .find(|ip| free(*ip))
            .or_else(|| (range.start..=range.end).find(|ip| free(*ip))),
        _ => (range.start..=range.end).rev().find(|ip| free(*ip)),
    };
    found.ok_or_else(|| {
        let held = taken.held_back.iter().filter(|ip| range.contains(**ip) && !taken.used.contains(ip)).count();
        let why = if held > 0 { format!(" ({held} recently freed, held back for now)") } else { String::new() };
        Error::InsufficientResource(format!("network {network} is out of IP addresses{why}"))
    })
}

/// Checks a MAC prefix such as `00:22` or `00:22:` (one to five hex bytes); returns it
/// without the trailing colon.
pub fn check_mac_prefix(prefix: &str) -> Result<String, Error> {
    let p = prefix.trim().trim_end_matches(':').to_ascii_lowercase();
    let parts: Vec<&str> = p.split(':').collect();
    if p.is_empty()
        || parts.len() > 5
        || !parts.iter().all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(Error::invalid("mac_prefix", format!("{prefix:?} is not one to five hex bytes like 00:22")));
    }
    Ok(p)
}

/// A random MAC under `prefix` (validated by [`check_mac_prefix`]).
pub fn random_mac(prefix: &str, rng: &mut impl Rng) -> String {
    let n = 6 - prefix.split(':').count();
    let mut s = prefix.to_string();
    for _ in 0..n {
        s.push_str(&format!(":{:02x}", rng.random::<u8>()));
    }
    s
}

/// Checks a MAC address and returns it lower-cased.
pub fn check_mac(field: &str, mac: &str) -> Result<String, Error> {
    let m = mac.trim().to_ascii_lowercase();
    let ok =
        m.split(':').count() == 6 && m.split(':').all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    if ok { Ok(m) } else { Err(Error::invalid(field, format!("{mac:?} is not a MAC address"))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn range() -> Range {
        Range::validate("10.0.0.2", "10.0.0.9", 24, Some("10.0.0.1")).unwrap()
    }

    fn ip(s: &str) -> u32 {
        parse_ip("t", s).unwrap()
    }

    fn pick(policy: &str, req: &Request, used: &[&str], reserved: &[&str], held: &[&str]) -> Result<String, Error> {
        let set = |v: &[&str]| v.iter().map(|s| ip(s)).collect::<HashSet<u32>>();
        let (u, r, h) = (set(used), set(reserved), set(held));
        let taken = Taken { used: &u, reserved: &r, held_back: &h };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        allocate("n", &range(), policy, req, &taken, &mut rng).map(ip_str)
    }

    #[test]
    fn validation_names_the_field() {
        let field = |r: Result<Range, Error>| match r {
            Err(e) => e.to_string(),
            Ok(_) => "ok".into(),
        };
        assert!(field(Range::validate("10.0.0.300", "10.0.0.9", 24, None)).contains("guest_ip_start"));
        assert!(field(Range::validate("10.0.0.9", "10.0.0.2", 24, None)).contains("guest_ip_start"));
        assert!(field(Range::validate("10.0.0.2", "10.0.1.9", 24, None)).contains("guest_ip_end"));
        assert!(field(Range::validate("10.0.0.2", "10.0.0.9", 33, None)).contains("guest_ip_mask"));
        assert!(field(Range::validate("10.0.0.2", "10.0.0.9", 24, Some("10.0.0.5"))).contains("guest_gateway"));
        assert!(field(Range::validate("10.0.0.2", "10.0.0.9", 24, Some("10.0.1.1"))).contains("guest_gateway"));
        assert!(field(Range::validate("10.0.0.0", "10.0.0.9", 24, None)).contains("own address"));
        assert!(field(Range::validate("10.0.0.2", "10.0.0.255", 24, None)).contains("broadcast"));
        assert_eq!(range().size(), 8);
        assert!(parse_cidr("cidr", "10.0.0.1/24").is_err());
        assert_eq!(parse_cidr("cidr", "10.0.0.0/24").unwrap(), (ip("10.0.0.0"), 24));
    }

    #[test]
    fn policies() {
        let none = Request::default();
        assert_eq!(pick(POLICY_STEPDOWN, &none, &[], &[], &[]).unwrap(), "10.0.0.9");
        assert_eq!(pick(POLICY_STEPDOWN, &none, &["10.0.0.9"], &["10.0.0.8"], &[]).unwrap(), "10.0.0.7");
        assert_eq!(pick(POLICY_STEPUP, &none, &["10.0.0.2"], &[], &["10.0.0.3"]).unwrap(), "10.0.0.4");
        let r = pick(POLICY_RANDOM, &none, &[], &[], &[]).unwrap();
        assert!(range().contains(ip(&r)));
        assert_eq!(effective_policy("none", Some("stepup"), "stepdown"), "stepup");
        assert_eq!(effective_policy("random", Some("stepup"), "stepdown"), "random");
        assert_eq!(effective_policy("", None, "stepdown"), "stepdown");
    }

    #[test]
    fn preferred_and_reserved() {
        let want = |a: &str, reserved| Request { preferred: Some(ip(a)), reserved, policy: None };
        assert_eq!(pick(POLICY_STEPDOWN, &want("10.0.0.5", false), &[], &[], &["10.0.0.5"]).unwrap(), "10.0.0.5");
        assert!(pick(POLICY_STEPDOWN, &want("10.0.0.5", false), &["10.0.0.5"], &[], &[]).is_err());
        assert!(pick(POLICY_STEPDOWN, &want("10.0.0.5", false), &[], &["10.0.0.5"], &[]).is_err());
        assert!(
            pick(POLICY_STEPDOWN, &want("10.0.0.50", false), &[], &[], &[])
                .unwrap_err()
                .to_string()
                .contains("address")
        );
        assert_eq!(pick(POLICY_STEPDOWN, &want("10.0.0.4", true), &[], &["10.0.0.4"], &[]).unwrap(), "10.0.0.4");
        assert!(pick(POLICY_STEPDOWN, &want("10.0.0.4", true), &[], &[], &[]).is_err());
        let reserved = Request { reserved: true, ..Default::default() };
        assert_eq!(pick(POLICY_STEPDOWN, &reserved, &[], &["10.0.0.6", "10.0.0.3"], &[]).unwrap(), "10.0.0.3");
        assert!(pick(POLICY_STEPDOWN, &reserved, &[], &[], &[]).is_err());
    }

    #[test]
    fn hold_back_and_exhaustion() {
        let all = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"];
        let none = Request::default();
        // Only .9 is free but held back: nothing to give, and the error says why.
        let e = pick(POLICY_STEPDOWN, &none, &all, &[], &["10.0.0.9"]).unwrap_err();
        assert!(matches!(e, Error::InsufficientResource(_)), "{e}");
        assert!(e.to_string().contains("out of IP addresses (1 recently freed"), "{e}");
        assert_eq!(pick(POLICY_STEPDOWN, &none, &all, &[], &[]).unwrap(), "10.0.0.9");
        let mut every = all.to_vec();
        every.push("10.0.0.9");
        for p in [POLICY_STEPUP, POLICY_STEPDOWN, POLICY_RANDOM] {
            let e = pick(p, &none, &every, &[], &[]).unwrap_err();
            assert_eq!(e.to_string(), "network n is out of IP addresses");
        }
    }

    /// Property: for random ranges and random taken sets, an allocation is in the range,
    /// never taken or held back, and fails only when no such address exists.
    #[test]
    fn property_allocation_is_free_and_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..2000 {
            let base = 0x0a00_0000u32 + (rng.random_range(0..256u32) << 8);
            let start = base + rng.random_range(1..40);
            let end = start + rng.random_range(0..30);
            let r = Range { start, end, mask: 24, gateway: None };
            let mut sets: [HashSet<u32>; 3] = Default::default();
            for ip in start.saturating_sub(3)..=end + 3 {
                let k = rng.random_range(0..6);
                if k < 3 {
                    sets[k].insert(ip);
                }
            }
            let [used, reserved, held] = &sets;
            let taken = Taken { used, reserved, held_back: held };
            let policy = POLICIES[rng.random_range(1..4)];
            let exists = (start..=end).any(|ip| !used.contains(&ip) && !reserved.contains(&ip) && !held.contains(&ip));
            match allocate("p", &r, policy, &Request::default(), &taken, &mut rng) {
                Ok(ip) => {
                    assert!(r.contains(ip));
                    assert!(!used.contains(&ip) && !reserved.contains(&ip) && !held.contains(&ip));
                    if policy == POLICY_STEPDOWN {
                        assert!(
                            (ip + 1..=end).all(|x| used.contains(&x) || reserved.contains(&x) || held.contains(&x))
                        );
                    }
                }
                Err(e) => {
                    assert!(!exists, "{policy}: {e}");
                    assert!(matches!(e, Error::InsufficientResource(_)));
                }
            }
        }
    }

    #[test]
    fn macs() {
        assert_eq!(check_mac_prefix("00:22:").unwrap(), "00:22");
        assert!(check_mac_prefix("zz").is_err());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let m = random_mac("00:22", &mut rng);
        assert!(m.starts_with("00:22:") && check_mac("mac", &m).is_ok(), "{m}");
        assert!(check_mac("mac", "00:22:33").is_err());
    }
}
