//! IPAM, the database part: addresses handed out for good, even under concurrency.
//!
//! ```text
//!  ipallocations (network_id, ip_addr) UNIQUE, mac_addr UNIQUE
//!      one row per address in use: a guest NIC (owner_type `guestnetwork`, next session),
//!      a reserved address (owner_type `reservedip`)
//!  ipreleases (network_id, ip_addr, released_at)
//!      addresses freed by their owner: held back for the network's `alloc_timout_seconds`
//!      (or the region's `ip_hold_back_seconds`)
//! ```
//! Invariants:
//! * An address is in use exactly when its `ipallocations` row exists; the unique index on
//!   (network_id, ip_addr) makes a second holder impossible, whatever the number of region
//!   processes. An allocation reads the sets, lets [`crate::ipam::allocate`] choose, and
//!   inserts; losing a race is a unique violation, and it reads again and retries.
//! * Inside one process allocations on one network queue on a lock, as Cloudpods locks the
//!   network row, so the common case never retries.
//! * MACs are unique across the region by the unique index on `mac_addr`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use apis::Error;
use cloudcommon::db::{Db, Txn, fmt_time, new_id, now};
use cloudcommon::resource::{Row, row_str};
use serde_json::Value;

use crate::ipam::{self, Range, Request, Taken};

pub const OWNER_RESERVED: &str = "reservedip";
pub const OWNER_GUEST: &str = "guestnetwork";

const ATTEMPTS: usize = 64;

pub fn migration_sql(_db: &Db) -> Vec<String> {
    vec![
        "CREATE TABLE ipallocations (id VARCHAR(128) NOT NULL PRIMARY KEY, network_id VARCHAR(128) NOT NULL, \
         ip_addr VARCHAR(16) NOT NULL, mac_addr VARCHAR(32) NULL, owner_type VARCHAR(32) NOT NULL, \
         owner_id VARCHAR(128) NOT NULL, created_at VARCHAR(32) NOT NULL)"
            .into(),
        "CREATE UNIQUE INDEX uq_ipallocations_ip ON ipallocations (network_id, ip_addr)".into(),
        "CREATE UNIQUE INDEX uq_ipallocations_mac ON ipallocations (mac_addr)".into(),
        "CREATE INDEX ix_ipallocations_owner ON ipallocations (owner_id)".into(),
        "CREATE TABLE ipreleases (id VARCHAR(128) NOT NULL PRIMARY KEY, network_id VARCHAR(128) NOT NULL, \
         ip_addr VARCHAR(16) NOT NULL, released_at VARCHAR(32) NOT NULL)"
            .into(),
        "CREATE INDEX ix_ipreleases_net ON ipreleases (network_id, released_at)".into(),
    ]
}

/// One address handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub network_id: String,
    pub ip_addr: String,
    pub mac_addr: Option<String>,
}

/// The database allocator; one per region process.
#[derive(Default)]
pub struct Allocator {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The validated range of a network row.
pub fn network_range(net: &Row) -> Result<Range, Error> {
    let mask = net.get("guest_ip_mask").and_then(Value::as_i64).unwrap_or(0);
    let gw = Some(row_str(net, "guest_gateway"));
    Range::validate(row_str(net, "guest_ip_start"), row_str(net, "guest_ip_end"), mask, gw)
}

/// Addresses in use in a network: (ip, owner_type) pairs.
pub async fn used(db: &Db, network_id: &str) -> Result<Vec<(String, String)>, Error> {
    let rows = db
        .raw_query("SELECT ip_addr, owner_type FROM ipallocations WHERE network_id = ?", vec![network_id.into()])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.try_get_by_index::<String>(0).ok()?, r.try_get_by_index::<String>(1).ok()?)))
        .collect())
}

/// How many addresses are in use in each of these networks.
pub async fn used_counts(db: &Db, ids: &[String]) -> Result<HashMap<String, i64>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let sql =
        format!("SELECT network_id, COUNT(*) FROM ipallocations WHERE network_id IN ({marks}) GROUP BY network_id");
    let rows = db.raw_query(&sql, ids.iter().map(|s| s.clone().into()).collect()).await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.try_get_by_index::<String>(0).ok()?, r.try_get_by_index::<i64>(1).ok()?)))
        .collect())
}

fn hold_back_seconds(net: &Row, default: u64) -> u64 {
    match net.get("alloc_timout_seconds").and_then(Value::as_i64) {
        Some(n) if n > 0 => n as u64,
        _ => default,
    }
}

impl Allocator {
    fn lock(&self, network_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(network_id.to_string()).or_default().clone()
    }

    /// Hands out one address of `net` (a network row) to the owner `(type, id)`, with a fresh MAC when
    /// `with_mac`. See the module docs for the guarantees.
    pub async fn allocate(
        &self,
        db: &Db,
        region: &crate::Region,
        net: &Row,
        (owner_type, owner_id): (&str, &str),
        req: &Request,
        with_mac: bool,
    ) -> Result<Allocation, Error> {
        let network_id = row_str(net, "id").to_string();
        let name = row_str(net, "name");
        let range = network_range(net)?;
        let policy = ipam::effective_policy(
            row_str(net, "alloc_policy"),
            req.policy.as_deref(),
            &region.cfg.default_ip_allocation_direction,
        )
        .to_string();
        let hold = hold_back_seconds(net, region.cfg.ip_hold_back_seconds);
        let lock = self.lock(&network_id);
        let _guard = lock.lock().await;
        for _ in 0..ATTEMPTS {
            let mut used_set = HashSet::new();
            let mut reserved = HashSet::new();
            for (ip, ty) in used(db, &network_id).await? {
                let Ok(ip) = ipam::parse_ip("ip_addr", &ip) else { continue };
                if ty == OWNER_RESERVED {
                    reserved.insert(ip);
                } else {
                    used_set.insert(ip);
                }
            }
            let cutoff = fmt_time(chrono::Utc::now() - chrono::Duration::seconds(hold as i64));
            let held: HashSet<u32> = db
                .raw_query(
                    "SELECT ip_addr FROM ipreleases WHERE network_id = ? AND released_at > ?",
                    vec![network_id.clone().into(), cutoff.into()],
                )
                .await?
                .iter()
                .filter_map(|r| r.try_get_by_index::<String>(0).ok())
                .filter_map(|s| ipam::parse_ip("ip_addr", &s).ok())
                .collect();
            let taken = Taken { used: &used_set, reserved: &reserved, held_back: &held };
            let (ip, mac) = {
                let mut rng = rand::rng();
                let ip = ipam::allocate(name, &range, &policy, req, &taken, &mut rng)?;
                (ipam::ip_str(ip), with_mac.then(|| ipam::random_mac(&region.mac_prefix, &mut rng)))
            };
            let res = if req.reserved {
                // Take over the reserved address's row.
                let n = db
                    .raw_exec(
                        "UPDATE ipallocations SET owner_type = ?, owner_id = ?, mac_addr = ? \
                         WHERE network_id = ? AND ip_addr = ? AND owner_type = ?",
                        vec![
                            owner_type.into(),
                            owner_id.into(),
                            mac.clone().into(),
                            network_id.clone().into(),
                            ip.clone().into(),
                            OWNER_RESERVED.into(),
                        ],
                    )
                    .await;
                match n {
                    Ok(1) => {
                        db.raw_exec(
                            "UPDATE reservedips_tbl SET deleted = ?, deleted_at = ? WHERE network_id = ? AND ip_addr = ? AND deleted = ?",
                            vec![true.into(), now().into(), network_id.clone().into(), ip.clone().into(), false.into()],
                        )
                        .await?;
                        Ok(())
                    }
                    Ok(_) => Err(Error::Duplicate("reserved address taken meanwhile".into())),
                    Err(e) => Err(e),
                }
            } else {
                insert(db, &network_id, &ip, mac.as_deref(), owner_type, owner_id).await
            };
            match res {
                Ok(()) => return Ok(Allocation { network_id, ip_addr: ip, mac_addr: mac }),
                Err(Error::Duplicate(_)) if req.preferred.is_some() && !req.reserved => {
                    // The requested address went to someone else between the read and the insert;
                    // the MAC could also have collided, so check which before giving up.
                    if used(db, &network_id).await?.iter().any(|(u, _)| *u == ip) {
                        return Err(Error::Conflict(format!("address {ip} of network {name} is in use")));
                    }
                }
                Err(Error::Duplicate(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable(format!("network {name} is too busy to allocate an address; try again")))
    }

    /// Frees an owner's address. `hold` records the release so that the address is held back.
    pub async fn release(
        &self,
        db: &Db,
        network_id: &str,
        ip: &str,
        owner_id: &str,
        hold: bool,
    ) -> Result<bool, Error> {
        let n = db
            .raw_exec(
                "DELETE FROM ipallocations WHERE network_id = ? AND ip_addr = ? AND owner_id = ?",
                vec![network_id.into(), ip.into(), owner_id.into()],
            )
            .await?;
        if n > 0 && hold {
            db.raw_exec(
                "INSERT INTO ipreleases (id, network_id, ip_addr, released_at) VALUES (?, ?, ?, ?)",
                vec![new_id().into(), network_id.into(), ip.into(), now().into()],
            )
            .await?;
        }
        Ok(n > 0)
    }

    /// Forgets releases older than a day (the longest sensible hold-back).
    pub async fn prune_releases(&self, db: &Db) -> Result<(), Error> {
        let cutoff = fmt_time(chrono::Utc::now() - chrono::Duration::days(1));
        db.raw_exec("DELETE FROM ipreleases WHERE released_at < ?", vec![cutoff.into()]).await?;
        Ok(())
    }
}

/// Inserts an allocation row; a taken address or MAC is a `Duplicate`.
pub async fn insert(
    db: &Db,
    network_id: &str,
    ip: &str,
    mac: Option<&str>,
    owner_type: &str,
    owner_id: &str,
) -> Result<(), Error> {
    db.raw_exec(
        "INSERT INTO ipallocations (id, network_id, ip_addr, mac_addr, owner_type, owner_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            new_id().into(),
            network_id.into(),
            ip.into(),
            mac.map(str::to_string).into(),
            owner_type.into(),
            owner_id.into(),
            now().into(),
        ],
    )
    .await?;
    Ok(())
}

/// The same insert inside a transaction.
pub async fn insert_in(
    txn: &Txn<'_>,
    network_id: &str,
    ip: &str,
    owner_type: &str,
    owner_id: &str,
) -> Result<(), Error> {
    txn.execute_raw_values(
        "INSERT INTO ipallocations (id, network_id, ip_addr, mac_addr, owner_type, owner_id, created_at) \
         VALUES (?, ?, ?, NULL, ?, ?, ?)",
        vec![new_id().into(), network_id.into(), ip.into(), owner_type.into(), owner_id.into(), now().into()],
    )
    .await?;
    Ok(())
}
