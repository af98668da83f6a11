//! Networks (IP subnets on a wire) and reserved addresses. The address rules are in
//! [`crate::ipam`] (pure) and [`crate::ipalloc`] (database).

use apis::Error;
use async_trait::async_trait;
use cloudcommon::auth::Scope;
use cloudcommon::db::now;
use cloudcommon::resource::dispatch::{authorize, view};
use cloudcommon::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use crate::common::{add_names, eq, int_field, one_of, resolve_ref};
use crate::geo::resource_struct;
use crate::ipalloc::{self, OWNER_RESERVED};
use crate::ipam::{self, Range};

pub const SERVER_TYPES: &[&str] = &["guest", "baremetal", "container", "pxe", "ipmi", "eip", "hostlocal"];

pub fn network_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "network", "networks", "networks_tbl")
        .owner(OwnerScope::Project)
        .status("available")
        .sharable()
        .col(Col::str("wire_id", 128).create().index())
        .col(Col::str("guest_ip_start", 16).rw())
        .col(Col::str("guest_ip_end", 16).rw())
        .col(Col::int("guest_ip_mask").rw())
        .col(Col::str("guest_gateway", 16).rw())
        .col(Col::str("guest_dns", 256).rw())
        .col(Col::str("guest_domain", 128).rw())
        .col(Col::str("guest_dhcp", 256).rw())
        .col(Col::int("vlan_id").rw().not_null(1.into()))
        .col(Col::str("server_type", 16).rw().not_null("guest".into()))
        .col(Col::str("alloc_policy", 16).rw().not_null(ipam::POLICY_NONE.into()))
        .col(Col::int("alloc_timout_seconds").rw().not_null(0.into()))
        .col(Col::bool("is_auto_alloc").rw().not_null(false.into()))
        .col(Col::str("ifname_hint", 16).rw())
}

pub fn reservedip_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "reservedip", "reservedips", "reservedips_tbl")
        .owner(OwnerScope::Project)
        .name_scope(cloudcommon::resource::NameScope::None)
        .status("ready")
        .col(Col::str("network_id", 128).index())
        .col(Col::str("ip_addr", 16).index())
        .col(Col::str("notes", 512).rw())
}

resource_struct!(Networks, network_spec);
resource_struct!(ReservedIps, reservedip_spec);

/// Validates the address fields of `input` (merged over `current` for updates) and checks
/// that no other network on the wire overlaps.
async fn check_addresses(ctx: &Ctx, input: &Row, current: Option<&Row>, wire_id: &str) -> Result<Range, Error> {
    let get = |k: &str| {
        input.get(k).filter(|v| !v.is_null()).or_else(|| current.and_then(|c| c.get(k))).cloned().unwrap_or(Value::Null)
    };
    let s = |k: &str| match get(k) {
        Value::String(s) => s,
        Value::Null => String::new(),
        v => v.to_string(),
    };
    for f in ["guest_ip_start", "guest_ip_end"] {
        if s(f).is_empty() {
            return Err(Error::missing(f));
        }
    }
    let mask = match get("guest_ip_mask") {
        Value::Null => return Err(Error::missing("guest_ip_mask")),
        v => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| Error::invalid("guest_ip_mask", "must be a prefix length"))?,
    };
    let range = Range::validate(&s("guest_ip_start"), &s("guest_ip_end"), mask, Some(&s("guest_gateway")))?;
    for dns in s("guest_dns").split(',').map(str::trim).filter(|d| !d.is_empty()) {
        ipam::parse_ip("guest_dns", dns)?;
    }
    let me = current.map(|c| row_str(c, "id")).unwrap_or_default();
    let others = store::select(ctx.db(), &network_spec(), eq("networks_tbl", "wire_id", wire_id)).await?;
    for o in others.iter().filter(|o| row_str(o, "id") != me) {
        if let Ok(r) = ipalloc::network_range(o)
            && r.overlaps(&range)
        {
            return Err(Error::invalid(
                "guest_ip_start",
                format!(
                    "range {}-{} overlaps network {} ({}-{}) on the same wire",
                    ipam::ip_str(range.start),
                    ipam::ip_str(range.end),
                    row_str(o, "name"),
                    row_str(o, "guest_ip_start"),
                    row_str(o, "guest_ip_end")
                ),
            ));
        }
    }
    Ok(range)
}

fn check_options(input: &mut Row) -> Result<(), Error> {
    one_of(input, "server_type", SERVER_TYPES)?;
    one_of(input, "alloc_policy", ipam::POLICIES)?;
    int_field(input, "vlan_id", 1, 4095)?;
    int_field(input, "alloc_timout_seconds", 0, 86_400)?;
    Ok(())
}

/// Sharing input: `is_public` with `public_scope` (default system), checked against rights.
fn check_share(r: &Networks, ctx: &Ctx, input: &mut Row) -> Result<(), Error> {
    let public = matches!(input.get("is_public"), Some(Value::Bool(true)))
        || matches!(input.get("is_public"), Some(Value::String(s)) if s == "true");
    if !public {
        input.insert("is_public".into(), false.into());
        input.insert("public_scope".into(), "none".into());
        return Ok(());
    }
    let (scope, needed) = match row_str(input, "public_scope") {
        "" | "system" => ("system", Scope::System),
        "domain" => ("domain", Scope::Domain),
        other => return Err(Error::invalid("public_scope", format!("{other:?} is not system or domain"))),
    };
    if authorize(r, &ctx.cred, "create", None)? < needed {
        return Err(Error::Forbidden(format!("{} may not share networks with the whole {scope}", ctx.cred.user)));
    }
    input.insert("is_public".into(), true.into());
    input.insert("public_scope".into(), scope.into());
    Ok(())
}

#[async_trait]
impl Resource for Networks {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        let wire =
            resolve_ref(ctx, input, raw, ["wire", "wire_id"], "wires").await?.ok_or_else(|| Error::missing("wire"))?;
        check_options(input)?;
        check_share(self, ctx, input)?;
        let range = check_addresses(ctx, input, None, row_str(&wire, "id")).await?;
        input.insert("guest_ip_mask".into(), (range.mask as i64).into());
        Ok(())
    }

    async fn validate_update(&self, ctx: &Ctx, row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        check_options(patch)?;
        let fields = ["guest_ip_start", "guest_ip_end", "guest_ip_mask", "guest_gateway", "guest_dns"];
        if !fields.iter().any(|f| patch.contains_key(*f)) {
            return Ok(());
        }
        let range = check_addresses(ctx, patch, Some(row), row_str(row, "wire_id")).await?;
        let outside: Vec<String> = ipalloc::used(ctx.db(), row_str(row, "id"))
            .await?
            .into_iter()
            .filter(|(ip, _)| ipam::parse_ip("ip", ip).map(|i| !range.contains(i)).unwrap_or(true))
            .map(|(ip, _)| ip)
            .collect();
        if !outside.is_empty() {
            return Err(Error::invalid(
                "guest_ip_start",
                format!("the new range leaves addresses in use outside it: {}", outside.join(", ")),
            ));
        }
        Ok(())
    }

    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let n = ipalloc::used(ctx.db(), row_str(row, "id")).await?.iter().filter(|(_, t)| t != OWNER_RESERVED).count();
        if n > 0 {
            return Err(Error::Conflict(format!("network {} still has {n} addresses in use", row_str(row, "name"))));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let id = row_str(row, "id");
        ctx.db()
            .raw_exec(
                "DELETE FROM ipallocations WHERE network_id = ? AND owner_type = ?",
                vec![id.into(), OWNER_RESERVED.into()],
            )
            .await?;
        ctx.db()
            .raw_exec(
                "UPDATE reservedips_tbl SET deleted = ?, deleted_at = ? WHERE network_id = ? AND deleted = ?",
                vec![true.into(), now().into(), id.into(), false.into()],
            )
            .await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &crate::geo::wire_spec(), "wire").await?;
        let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
        let counts = ipalloc::used_counts(ctx.db(), &ids).await?;
        for r in rows {
            let ports = ipalloc::network_range(r).map(|g| g.size()).unwrap_or(0);
            r.insert("ports".into(), ports.into());
            r.insert("ports_used".into(), counts.get(row_str(r, "id")).copied().unwrap_or(0).into());
        }
        Ok(())
    }

    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok((plural == "wires").then(|| eq(self.spec.table, "wire_id", id)))
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        match action {
            "reserve-ip" => {
                let mut ips: Vec<String> = match body.get("ips") {
                    Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                    Some(Value::String(s)) => s.split(',').map(|s| s.trim().to_string()).collect(),
                    _ => vec![],
                };
                if let Some(ip) = body.get("ip").and_then(Value::as_str) {
                    ips.push(ip.to_string());
                }
                if ips.is_empty() {
                    return Err(Error::missing("ips"));
                }
                let notes = row_str(body, "notes").to_string();
                for ip in &ips {
                    reserve(ctx, row, ip, &notes).await?;
                }
                Ok(json!({"network": view(ctx, self, store_get(ctx, row).await?).await?}))
            }
            "release-reserved-ip" => {
                let ip = body.get("ip").and_then(Value::as_str).ok_or_else(|| Error::missing("ip"))?;
                release_reserved(ctx, row, ip).await?;
                Ok(json!({"network": view(ctx, self, store_get(ctx, row).await?).await?}))
            }
            _ => Err(Error::NotFound(format!("network has no action {action}"))),
        }
    }
}

async fn store_get(ctx: &Ctx, row: &Row) -> Result<Row, Error> {
    store::get_by_id(ctx.db(), &network_spec(), row_str(row, "id"))
        .await?
        .ok_or_else(|| Error::not_found("network", row_str(row, "id")))
}

/// Reserves `ip` of `net`: an `ipallocations` row (so nobody else can have it) and a
/// `reservedips` row, in one transaction.
pub async fn reserve(ctx: &Ctx, net: &Row, ip: &str, notes: &str) -> Result<Row, Error> {
    let n = ipam::parse_ip("ips", ip)?;
    let range = ipalloc::network_range(net)?;
    let name = row_str(net, "name");
    if !range.contains(n) {
        return Err(Error::invalid(
            "ips",
            format!("{ip} is not in network {name}'s range {}-{}", ipam::ip_str(range.start), ipam::ip_str(range.end)),
        ));
    }
    let ip = ipam::ip_str(n);
    let spec = reservedip_spec();
    let id = cloudcommon::db::new_id();
    let mut row = Row::new();
    for (k, v) in [
        ("id", id.clone()),
        ("name", format!("{name}-{ip}")),
        ("network_id", row_str(net, "id").into()),
        ("ip_addr", ip.clone()),
        ("notes", notes.into()),
        ("tenant_id", row_str(net, "tenant_id").into()),
        ("domain_id", row_str(net, "domain_id").into()),
        ("status", "ready".into()),
        ("created_at", now()),
        ("updated_at", now()),
    ] {
        row.insert(k.into(), v.into());
    }
    let txn = ctx.db().begin().await?;
    match ipalloc::insert_in(&txn, row_str(net, "id"), &ip, OWNER_RESERVED, &id).await {
        Err(Error::Duplicate(_)) => return Err(Error::Conflict(format!("address {ip} of network {name} is in use"))),
        r => r?,
    }
    store::insert(&txn, &spec, &row).await?;
    txn.commit().await?;
    store::get_by_id(ctx.db(), &spec, &id).await?.ok_or_else(|| Error::not_found("reservedip", &id))
}

/// Releases a reserved address of `net`.
pub async fn release_reserved(ctx: &Ctx, net: &Row, ip: &str) -> Result<(), Error> {
    let n = ipam::parse_ip("ip", ip)?;
    let ip = ipam::ip_str(n);
    let net_id = row_str(net, "id");
    let n = ctx
        .db()
        .raw_exec(
            "DELETE FROM ipallocations WHERE network_id = ? AND ip_addr = ? AND owner_type = ?",
            vec![net_id.into(), ip.clone().into(), OWNER_RESERVED.into()],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound(format!("{ip} is not reserved in network {}", row_str(net, "name"))));
    }
    ctx.db()
        .raw_exec(
            "UPDATE reservedips_tbl SET deleted = ?, deleted_at = ? WHERE network_id = ? AND ip_addr = ? AND deleted = ?",
            vec![true.into(), now().into(), net_id.into(), ip.into(), false.into()],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl Resource for ReservedIps {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, _i: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        Err(Error::BadRequest("reserve addresses with POST /networks/<id>/reserve-ip".into()))
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let net = store::get_by_id(ctx.db(), &network_spec(), row_str(row, "network_id"))
            .await?
            .ok_or_else(|| Error::not_found("network", row_str(row, "network_id")))?;
        release_reserved(ctx, &net, row_str(row, "ip_addr")).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &network_spec(), "network").await
    }

    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok((plural == "networks")
            .then(|| Condition::all().add(Expr::col((Alias::new("reservedips_tbl"), Alias::new("network_id"))).eq(id))))
    }
}
