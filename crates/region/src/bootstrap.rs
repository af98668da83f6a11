//! What a fresh region holds (idempotent, at every start): the `default` cloudregion, zone
//! `zone0` in it, the classic vpc `default`, wire `bcast0`, the secgroup `default` (allow
//! everything out, ssh and ping in) and, unless `bootstrap_default_network=false`, the
//! network `default` (192.168.122.2-254/24 on `bcast0`, shared with everyone).

use std::sync::Arc;

use apis::Error;
use cloudcommon::db::now;
use cloudcommon::resource::{ResourceSpec, Row, store};
use cloudcommon::service::ServiceState;
use serde_json::{Value, json};

use crate::geo::{DEFAULT_REGION, DEFAULT_VPC, DEFAULT_WIRE, DEFAULT_ZONE};
use crate::secgroups::DEFAULT_SECGROUP;

async fn ensure(svc: &ServiceState, spec: &ResourceSpec, fields: Value) -> Result<(), Error> {
    let Value::Object(fields) = fields else { return Ok(()) };
    let id = fields.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    if store::get_by_id(&svc.db, spec, &id).await?.is_some() {
        return Ok(());
    }
    let mut row: Row = fields;
    row.insert("created_at".into(), now().into());
    row.insert("updated_at".into(), now().into());
    for c in &spec.cols {
        if let (false, Some(d)) = (row.contains_key(c.name), &c.default) {
            row.insert(c.name.to_string(), d.clone());
        }
    }
    let txn = svc.db.begin().await?;
    match store::insert(&txn, spec, &row).await {
        Ok(()) => txn.commit().await,
        // Another region process bootstrapped it meanwhile.
        Err(Error::Duplicate(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn run(svc: &Arc<ServiceState>, r: &crate::Region) -> Result<(), Error> {
    ensure(svc, &crate::geo::cloudregion_spec(), json!({"id": DEFAULT_REGION, "name": DEFAULT_REGION})).await?;
    ensure(
        svc,
        &crate::geo::zone_spec(),
        json!({"id": DEFAULT_ZONE, "name": DEFAULT_ZONE, "cloudregion_id": DEFAULT_REGION}),
    )
    .await?;
    ensure(
        svc,
        &crate::geo::vpc_spec(),
        json!({"id": DEFAULT_VPC, "name": DEFAULT_VPC, "cloudregion_id": DEFAULT_REGION, "is_default": true}),
    )
    .await?;
    ensure(
        svc,
        &crate::geo::wire_spec(),
        json!({"id": DEFAULT_WIRE, "name": DEFAULT_WIRE, "zone_id": DEFAULT_ZONE, "vpc_id": DEFAULT_VPC}),
    )
    .await?;
    let shared = |mut v: Value| {
        v["is_public"] = true.into();
        v["public_scope"] = "system".into();
        v["tenant_id"] = "".into();
        v["domain_id"] = apis::identity::DEFAULT_DOMAIN_ID.into();
        v
    };
    ensure(
        svc,
        &crate::secgroups::secgroup_spec(),
        shared(json!({"id": DEFAULT_SECGROUP, "name": DEFAULT_SECGROUP, "cloudregion_id": DEFAULT_REGION, "vpc_id": DEFAULT_VPC})),
    )
    .await?;
    for (i, (dir, proto, ports)) in [("in", "tcp", "22"), ("in", "icmp", ""), ("out", "any", "")].iter().enumerate() {
        let mut rule = shared(json!({
            "id": format!("default-rule-{i}"), "secgroup_id": DEFAULT_SECGROUP, "direction": dir,
            "protocol": proto, "ports": ports, "action": "allow", "priority": 1,
        }));
        rule["name"] = crate::secgroups::rule_string(rule.as_object().unwrap_or(&Row::new())).into();
        if let Some(o) = rule.as_object_mut() {
            o.remove("is_public");
            o.remove("public_scope");
        }
        ensure(svc, &crate::secgroups::rule_spec(), rule).await?;
    }
    if r.cfg.bootstrap_default_network {
        ensure(
            svc,
            &crate::networks::network_spec(),
            shared(json!({
                "id": "default", "name": "default", "wire_id": DEFAULT_WIRE, "guest_ip_start": "192.168.122.2",
                "guest_ip_end": "192.168.122.254", "guest_ip_mask": 24, "guest_gateway": "192.168.122.1",
                "guest_dns": "192.168.122.1",
            })),
        )
        .await?;
    }
    Ok(())
}
