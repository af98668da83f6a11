//! Security groups and their rules. A rule is stored with Cloudpods' fields and travels to
//! hosts as text (`in:allow 10.0.0.0/8 tcp 22`); the default group has id `default`.

use apis::Error;
use async_trait::async_trait;
use cloudcommon::resource::dispatch::fetch_authorized;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use sea_orm::sea_query::Condition;
use serde_json::Value;

use crate::common::{eq, int_field, one_of};
use crate::geo::resource_struct;

pub const DEFAULT_SECGROUP: &str = "default";
pub const PROTOCOLS: &[&str] = &["any", "tcp", "udp", "icmp"];

pub fn secgroup_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "secgroup", "secgroups", "secgroups_tbl")
        .owner(OwnerScope::Project)
        .status("ready")
        .sharable()
        .col(Col::str("cloudregion_id", 128).create())
        .col(Col::str("vpc_id", 128).create())
        .col(Col::bool("is_dirty").not_null(false.into()))
}

pub fn rule_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "secgrouprule", "secgrouprules", "secgrouprules_tbl")
        .owner(OwnerScope::Project)
        .name_scope(NameScope::None)
        .col(Col::str("secgroup_id", 128).create().index())
        .col(Col::int("priority").rw().not_null(1.into()))
        .col(Col::str("protocol", 16).rw().not_null("any".into()))
        .col(Col::str("ports", 256).rw())
        .col(Col::str("direction", 8).rw().not_null("in".into()))
        .col(Col::str("cidr", 64).rw())
        .col(Col::str("action", 8).rw().not_null("allow".into()))
        .col(Col::str("target_type", 32).create().not_null("cidr".into()))
}

resource_struct!(Secgroups, secgroup_spec);
resource_struct!(SecgroupRules, rule_spec);

/// Checks `22`, `80-90`, `22,80`: ports 1-65535, ranges low to high.
pub fn check_ports(ports: &str) -> Result<(), Error> {
    let bad = |why: String| Error::invalid("ports", why);
    for part in ports.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let p = |s: &str| s.trim().parse::<u32>().ok().filter(|n| (1..=65535).contains(n));
        match (p(a), p(b)) {
            (Some(a), Some(b)) if a <= b => {}
            _ => return Err(bad(format!("{part:?} is not a port (1-65535) or a range low-high"))),
        }
    }
    Ok(())
}

/// The rule as the host reads it.
pub fn rule_string(r: &Row) -> String {
    let cidr = match row_str(r, "cidr") {
        "" => "0.0.0.0/0",
        c => c,
    };
    let mut s = format!("{}:{} {cidr} {}", row_str(r, "direction"), row_str(r, "action"), row_str(r, "protocol"));
    if !row_str(r, "ports").is_empty() {
        s.push(' ');
        s.push_str(row_str(r, "ports"));
    }
    s
}

fn check_rule(input: &mut Row, current: Option<&Row>) -> Result<(), Error> {
    one_of(input, "direction", &["in", "out"])?;
    one_of(input, "action", &["allow", "deny"])?;
    one_of(input, "protocol", PROTOCOLS)?;
    int_field(input, "priority", 1, 100)?;
    if let Some(c) = input.get("cidr").and_then(Value::as_str).map(str::to_string).filter(|c| !c.is_empty()) {
        let (ip, len) = crate::ipam::parse_cidr("cidr", &c)?;
        input.insert("cidr".into(), format!("{}/{len}", crate::ipam::ip_str(ip)).into());
    }
    let get = |k: &str| {
        input.get(k).and_then(Value::as_str).map(str::to_string).or_else(|| current.map(|c| row_str(c, k).to_string()))
    };
    let proto = get("protocol").unwrap_or_else(|| "any".into());
    let ports = get("ports").unwrap_or_default();
    if !ports.is_empty() {
        if !matches!(proto.as_str(), "tcp" | "udp") {
            return Err(Error::invalid("ports", format!("ports are only for tcp and udp, not {proto}")));
        }
        check_ports(&ports)?;
    }
    Ok(())
}

#[async_trait]
impl Resource for Secgroups {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if row_str(row, "id") == DEFAULT_SECGROUP {
            return Err(Error::Forbidden("the default secgroup cannot be deleted".into()));
        }
        let _ = ctx;
        Ok(())
    }
    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        ctx.db()
            .raw_exec(
                "UPDATE secgrouprules_tbl SET deleted = ?, deleted_at = ? WHERE secgroup_id = ?",
                vec![true.into(), cloudcommon::db::now().into(), row_str(row, "id").into()],
            )
            .await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        for r in rows {
            let rules =
                store::select(ctx.db(), &rule_spec(), eq("secgrouprules_tbl", "secgroup_id", row_str(r, "id"))).await?;
            let mut rules: Vec<&Row> = rules.iter().collect();
            rules.sort_by_key(|x| -x.get("priority").and_then(Value::as_i64).unwrap_or(0));
            let (ins, outs): (Vec<&Row>, Vec<&Row>) = rules.into_iter().partition(|x| row_str(x, "direction") == "in");
            r.insert("rules".into(), ins.iter().map(|x| rule_string(x)).collect::<Vec<_>>().join(";").into());
            r.insert("out_rules".into(), outs.iter().map(|x| rule_string(x)).collect::<Vec<_>>().join(";").into());
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for SecgroupRules {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        let key =
            crate::common::reference(raw, &["secgroup", "secgroup_id"]).ok_or_else(|| Error::missing("secgroup"))?;
        let sgs = ctx.svc.resource("secgroups")?;
        // Adding a rule changes the group: the caller must be allowed to update it.
        let sg = fetch_authorized(ctx, sgs.as_ref(), &key, "update", None).await?;
        input.insert("secgroup_id".into(), row_str(&sg, "id").into());
        input.insert("tenant_id".into(), row_str(&sg, "tenant_id").into());
        input.insert("domain_id".into(), row_str(&sg, "domain_id").into());
        check_rule(input, None)?;
        let mut full = input.clone();
        for (k, d) in [("direction", "in"), ("action", "allow"), ("protocol", "any")] {
            full.entry(k).or_insert(d.into());
        }
        input.insert("name".into(), rule_string(&full).into());
        Ok(())
    }
    async fn validate_update(&self, _ctx: &Ctx, row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        check_rule(patch, Some(row))?;
        let mut full = row.clone();
        full.extend(patch.clone());
        patch.insert("name".into(), rule_string(&full).into());
        Ok(())
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok((plural == "secgroups").then(|| eq(self.spec.table, "secgroup_id", id)))
    }
}
