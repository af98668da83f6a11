//! The guest description the region hands a host ([`GuestJsonDesc`]), built from the
//! server's rows: its disks (guestdisks + disks), NICs (guestnetworks + networks, the bridge
//! of the host's NIC on the network's wire), secgroup rules, keypair and user data.

use apis::Error;
use apis::compute::{GuestDiskDesc, GuestJsonDesc, GuestNicDesc};
use cloudcommon::resource::{Ctx, Row, row_str, store};
use sea_orm::sea_query::Condition;
use serde_json::Value;

use crate::common::eq;
use crate::disks::{disk_spec, guestdisk_spec, guestnetwork_spec};

/// Whether `name` can be a guest's hostname: 1-60 of letters, digits and '-', not starting
/// or ending with '-'.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 60
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn i64_of(row: &Row, k: &str) -> i64 {
    row.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// The bridge name a host uses for a wire when its NIC names none.
pub fn default_bridge(wire_id: &str) -> String {
    format!("br-{}", &wire_id.chars().filter(char::is_ascii_alphanumeric).take(12).collect::<String>())
}

/// The tap name of a guest's NIC (at most 15 characters, as Linux wants).
pub fn ifname(server_id: &str, index: i64) -> String {
    let short: String = server_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("vn{short}-{index}")
}

/// The description of server `row` as it stands in the database.
pub async fn build(ctx: &Ctx, row: &Row, password: Option<String>) -> Result<GuestJsonDesc, Error> {
    let id = row_str(row, "id");
    let mut links = store::select(ctx.db(), &guestdisk_spec(), eq("guestdisks_tbl", "guest_id", id)).await?;
    links.sort_by_key(|l| i64_of(l, "index"));
    let mut disks = vec![];
    for l in &links {
        let Some(d) = store::get_by_id(ctx.db(), &disk_spec(), row_str(l, "disk_id")).await? else { continue };
        disks.push(GuestDiskDesc {
            index: i64_of(l, "index") as u32,
            disk_id: row_str(&d, "id").into(),
            path: Some(row_str(&d, "access_path").to_string()).filter(|p| !p.is_empty()),
            size: i64_of(&d, "disk_size") as u64,
            format: row_str(&d, "disk_format").into(),
            driver: row_str(l, "driver").into(),
            image_id: Some(row_str(&d, "template_id").to_string()).filter(|p| !p.is_empty()),
            storage_id: row_str(&d, "storage_id").into(),
        });
    }
    let mut nics_rows = store::select(ctx.db(), &guestnetwork_spec(), eq("guestnetworks_tbl", "guest_id", id)).await?;
    nics_rows.sort_by_key(|n| i64_of(n, "index"));
    let host_id = row_str(row, "host_id");
    let netifs = if host_id.is_empty() {
        vec![]
    } else {
        store::select(ctx.db(), &crate::hosts::netif_spec(), eq("netinterfaces_tbl", "baremetal_id", host_id)).await?
    };
    let mut nics = vec![];
    for n in &nics_rows {
        let Some(net) = store::get_by_id(ctx.db(), &crate::networks::network_spec(), row_str(n, "network_id")).await?
        else {
            continue;
        };
        let wire_id = row_str(&net, "wire_id");
        let bridge = netifs
            .iter()
            .find(|f| row_str(f, "wire_id") == wire_id)
            .map(|f| row_str(f, "bridge").to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| default_bridge(wire_id));
        nics.push(GuestNicDesc {
            index: i64_of(n, "index") as u32,
            mac: row_str(n, "mac_addr").into(),
            ip: row_str(n, "ip_addr").into(),
            masklen: i64_of(&net, "guest_ip_mask") as u8,
            gateway: Some(row_str(&net, "guest_gateway").to_string()).filter(|g| !g.is_empty()),
            dns: row_str(&net, "guest_dns").into(),
            bridge,
            wire_id: wire_id.into(),
            network_id: row_str(&net, "id").into(),
            vlan: i64_of(&net, "vlan_id").clamp(1, 4095) as u16,
            ifname: row_str(n, "ifname").into(),
        });
    }
    let secgrp = row_str(row, "secgrp_id");
    let mut rules = if secgrp.is_empty() {
        vec![]
    } else {
        store::select(
            ctx.db(),
            &crate::secgroups::rule_spec(),
            Condition::all().add(eq("secgrouprules_tbl", "secgroup_id", secgrp)),
        )
        .await?
    };
    rules.sort_by_key(|r| -i64_of(r, "priority"));
    let pubkey = match row_str(row, "keypair_id") {
        "" => None,
        k => store::get_by_id(ctx.db(), &crate::keypairs::keypair_spec(), k)
            .await?
            .map(|kp| row_str(&kp, "public_key").to_string()),
    };
    Ok(GuestJsonDesc {
        id: id.into(),
        name: row_str(row, "name").into(),
        uuid: id.into(),
        hostname: row_str(row, "name").to_ascii_lowercase(),
        vcpu_count: i64_of(row, "vcpu_count") as u32,
        vmem_size: i64_of(row, "vmem_size") as u64,
        boot_order: row_str(row, "boot_order").into(),
        disks,
        nics,
        security_rules: rules.iter().map(crate::secgroups::rule_string).collect(),
        pubkey,
        user_data: Some(row_str(row, "user_data").to_string()).filter(|u| !u.is_empty()),
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_and_ifnames() {
        assert!(valid_hostname("vm-1") && valid_hostname("A1"));
        assert!(!valid_hostname("") && !valid_hostname("-a") && !valid_hostname("a b") && !valid_hostname("a_b"));
        assert!(!valid_hostname(&"a".repeat(61)));
        let n = ifname("0123456789abcdef", 3);
        assert!(n.len() <= 15, "{n}");
        assert_eq!(n, "vn01234567-3");
        assert_eq!(default_bridge("w-1"), "br-w1");
    }
}
