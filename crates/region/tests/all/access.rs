//! RBAC, keypairs, secgroups and quotas as project members see them.

use anyhow::{Context, Result};

use crate::common::*;

#[tokio::test]
async fn members_see_their_own_keypairs_networks_and_secgroups() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let a = tc.member(&admin, "alice", "proj-a").await?;
    let b = tc.member(&admin, "bob", "proj-b").await?;

    // Keypairs: the private key is shown once and never stored.
    let k = ok(&tc, Method::POST, "/keypairs", &a, Some(json!({"keypair": {"name": "k1"}}))).await?;
    let key = &k["keypair"];
    let private = key["private_key"].as_str().context("private key in the create answer")?;
    assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
    assert_eq!(key["scheme"], "ED25519");
    assert_eq!(key["fingerprint"].as_str().map(|f| f.split(':').count()), Some(16));
    let kid = key["id"].as_str().context("id")?.to_string();
    let shown = ok(&tc, Method::GET, &format!("/keypairs/{kid}"), &a, None).await?;
    assert!(shown["keypair"].get("private_key").is_none(), "{shown}");
    assert!(shown["keypair"]["public_key"].as_str().unwrap_or_default().starts_with("ssh-ed25519 "));
    let svc = tc.state("region").context("state")?;
    let rows = svc.db.raw_query("SELECT * FROM keypairs_tbl", vec![]).await?;
    assert_eq!(rows.len(), 1);
    let dump = format!("{:?}", rows[0]);
    assert!(!dump.contains("PRIVATE KEY") && !dump.contains(&private[40..80]), "private key stored");
    let pubkey = shown["keypair"]["public_key"].as_str().context("pub")?.to_string();
    let k2 =
        ok(&tc, Method::POST, "/keypairs", &b, Some(json!({"keypair": {"name": "k2", "public_key": pubkey}}))).await?;
    assert!(k2["keypair"].get("private_key").is_none());
    assert_eq!(k2["keypair"]["fingerprint"], key["fingerprint"]);
    fails(
        &tc,
        Method::POST,
        "/keypairs",
        &b,
        json!({"keypair": {"name": "k3", "public_key": "ssh-rsa notbase64!"}}),
        400,
        "public_key",
    )
    .await?;
    assert_eq!(call(&tc, Method::GET, &format!("/keypairs/{kid}"), &b, None).await?.status, StatusCode::NOT_FOUND);
    assert_eq!(names(&ok(&tc, Method::GET, "/keypairs", &b, None).await?, "keypairs"), ["k2"]);
    assert_eq!(ok(&tc, Method::GET, "/keypairs", &admin, None).await?["total"], 2);

    // Private networks: another project sees only the shared default.
    let r = network(&tc, &a, "bcast0", "neta", ("192.168.50.2", "192.168.50.20", 24, "192.168.50.1")).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(names(&ok(&tc, Method::GET, "/networks", &b, None).await?, "networks"), ["default"]);
    assert_eq!(call(&tc, Method::GET, "/networks/neta", &b, None).await?.status, StatusCode::NOT_FOUND);
    fails(&tc, Method::POST, "/networks/neta/reserve-ip", &b, json!({"ips": ["192.168.50.3"]}), 404, "neta").await?;
    let mut names_a = names(&ok(&tc, Method::GET, "/networks", &a, None).await?, "networks");
    names_a.sort();
    assert_eq!(names_a, ["default", "neta"]);
    let pubnet = json!({"network": {"name": "netp", "wire": "bcast0", "guest_ip_start": "192.168.60.2", "guest_ip_end": "192.168.60.9", "guest_ip_mask": 24, "is_public": true}});
    fails(&tc, Method::POST, "/networks", &a, pubnet, 403, "share").await?;
    // Infrastructure is read-only to members.
    fails(&tc, Method::POST, "/wires", &a, json!({"wire": {"name": "wa", "zone": "zone0"}}), 403, "system").await?;
    assert_eq!(
        call(&tc, Method::PUT, "/wires/bcast0", &a, Some(json!({"wire": {"mtu": 9000}}))).await?.status.as_u16() / 100,
        4
    );
    assert_eq!(ok(&tc, Method::GET, "/wires", &a, None).await?["total"], 1);

    // Secgroups and rules.
    ok(&tc, Method::POST, "/secgroups", &a, Some(json!({"secgroup": {"name": "web"}}))).await?;
    let rule = |extra: Value| {
        let mut r = json!({"secgroup": "web", "direction": "in", "protocol": "tcp", "ports": "80-90", "cidr": "10.0.0.0/8", "action": "allow", "priority": 10});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            r[k] = v;
        }
        json!({"secgrouprule": r})
    };
    ok(&tc, Method::POST, "/secgrouprules", &a, Some(rule(json!({})))).await?;
    for (extra, field) in [
        (json!({"ports": "0"}), "ports"),
        (json!({"ports": "90-80"}), "ports"),
        (json!({"protocol": "icmp"}), "ports"),
        (json!({"priority": 101}), "priority"),
        (json!({"direction": "sideways"}), "direction"),
        (json!({"cidr": "10.0.0.1/8"}), "cidr"),
        (json!({"action": "maybe"}), "action"),
    ] {
        fails(&tc, Method::POST, "/secgrouprules", &a, rule(extra), 400, field).await?;
    }
    let sg = ok(&tc, Method::GET, "/secgroups/web", &a, None).await?;
    assert_eq!(sg["secgroup"]["rules"], "in:allow 10.0.0.0/8 tcp 80-90");
    assert_eq!(ok(&tc, Method::GET, "/secgroups/web/secgrouprules", &a, None).await?["total"], 1);
    let mut bad = rule(json!({}));
    bad["secgrouprule"]["secgroup"] = sg["secgroup"]["id"].clone();
    assert_eq!(call(&tc, Method::POST, "/secgrouprules", &b, Some(bad)).await?.status, StatusCode::NOT_FOUND);
    assert_eq!(names(&ok(&tc, Method::GET, "/secgroups", &b, None).await?, "secgroups"), ["default"]);
    fails(&tc, Method::DELETE, "/secgroups/default", &admin, json!({}), 403, "default").await?;

    // Quotas: defaults, set by an administrator, private to the project.
    let pa = tc.ks(Method::GET, "/projects/proj-a", &admin, None).await?.body["project"]["id"]
        .as_str()
        .context("pid")?
        .to_string();
    let q = ok(&tc, Method::GET, &format!("/quotas/{pa}"), &a, None).await?;
    assert_eq!((q["quota"]["count"].as_i64(), q["quota"]["usage"]["secgroup"].as_i64()), (Some(50), Some(1)));
    fails(&tc, Method::POST, &format!("/quotas/{pa}"), &a, json!({"quota": {"count": 500}}), 403, "system").await?;
    ok(&tc, Method::POST, &format!("/quotas/{pa}"), &admin, Some(json!({"quota": {"count": 5, "cpu": 10}}))).await?;
    let q = ok(&tc, Method::GET, &format!("/quotas/{pa}"), &a, None).await?;
    assert_eq!(
        (q["quota"]["count"].as_i64(), q["quota"]["cpu"].as_i64(), q["quota"]["memory"].as_i64()),
        (Some(5), Some(10), Some(409600))
    );
    fails(&tc, Method::GET, &format!("/quotas/{pa}"), &b, json!(null), 403, "another project").await?;
    tc.stop().await
}
