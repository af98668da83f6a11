//! Geography bootstrap, wires, networks: validation, overlap, reserved addresses, ports.

use anyhow::Result;

use crate::common::*;

#[tokio::test]
async fn bootstrap_wires_networks_and_reserved_ips() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let zones = ok(&tc, Method::GET, "/zones", &admin, None).await?;
    assert_eq!(names(&zones, "zones"), ["zone0"]);
    assert_eq!(zones["zones"][0]["cloudregion"], "default");
    assert_eq!(names(&ok(&tc, Method::GET, "/vpcs", &admin, None).await?, "vpcs"), ["default"]);
    assert_eq!(names(&ok(&tc, Method::GET, "/wires", &admin, None).await?, "wires"), ["bcast0"]);
    let def = ok(&tc, Method::GET, "/networks/default", &admin, None).await?;
    assert_eq!(def["network"]["ports"], 253);
    assert_eq!(
        ok(&tc, Method::GET, "/secgroups/default", &admin, None).await?["secgroup"]["rules"],
        "in:allow 0.0.0.0/0 tcp 22;in:allow 0.0.0.0/0 icmp"
    );

    let w0 = wire(&tc, &admin, "w0").await?;
    fails(&tc, Method::POST, "/wires", &admin, json!({"wire": {"name": "w9"}}), 400, "zone").await?;
    fails(&tc, Method::POST, "/wires", &admin, json!({"wire": {"name": "w9", "zone": "nozone"}}), 404, "nozone")
        .await?;
    let r = network(&tc, &admin, "w0", "net0", ("10.20.0.2", "10.20.0.250", 24, "10.20.0.1")).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let net = &r.body["network"];
    assert_eq!((net["ports"].as_i64(), net["ports_used"].as_i64()), (Some(249), Some(0)));
    assert_eq!(
        (net["wire"].as_str(), net["server_type"].as_str(), net["status"].as_str()),
        (Some("w0"), Some("guest"), Some("available"))
    );
    let ctx_list = ok(&tc, Method::GET, &format!("/wires/{w0}/networks"), &admin, None).await?;
    assert_eq!(names(&ctx_list, "networks"), ["net0"]);

    // Bad input: a 400 naming the field.
    let bad = [
        ("10.20.1.300", "10.20.1.9", 24, "10.20.1.1", "guest_ip_start"),
        ("10.20.1.9", "10.20.1.2", 24, "10.20.1.1", "guest_ip_start"),
        ("10.20.1.2", "10.20.2.9", 24, "10.20.1.1", "guest_ip_end"),
        ("10.20.1.2", "10.20.1.9", 33, "10.20.1.1", "guest_ip_mask"),
        ("10.20.1.2", "10.20.1.9", 24, "10.20.1.5", "guest_gateway"),
        ("10.20.1.2", "10.20.1.9", 24, "10.20.9.1", "guest_gateway"),
        ("10.20.1.2", "10.20.1.9", 24, "nonsense", "guest_gateway"),
        ("10.20.0.100", "10.20.0.120", 24, "10.20.0.1", "overlaps network net0"),
    ];
    for (s, e, m, g, field) in bad {
        let r = network(&tc, &admin, "w0", "netbad", (s, e, m, g)).await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{s}-{e}/{m} gw {g}: {}", r.body);
        assert!(r.body["details"].as_str().unwrap_or_default().contains(field), "{field}: {}", r.body);
        assert_eq!(r.body["class"], "InputParameterError");
    }
    // The same range on another wire is fine.
    wire(&tc, &admin, "w1").await?;
    let r = network(&tc, &admin, "w1", "net1", ("10.20.0.100", "10.20.0.120", 24, "10.20.0.1")).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = network(&tc, &admin, "nowire", "net2", ("10.30.0.2", "10.30.0.9", 24, "10.30.0.1")).await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    fails(
        &tc,
        Method::PUT,
        "/networks/net1",
        &admin,
        json!({"network": {"guest_ip_start": "10.20.0.130"}}),
        400,
        "guest_ip_start",
    )
    .await?;
    fails(
        &tc,
        Method::PUT,
        "/networks/net1",
        &admin,
        json!({"network": {"alloc_policy": "sideways"}}),
        400,
        "alloc_policy",
    )
    .await?;
    ok(
        &tc,
        Method::PUT,
        "/networks/net1",
        &admin,
        Some(json!({"network": {"alloc_policy": "stepup", "guest_ip_end": "10.20.0.125"}})),
    )
    .await?;

    // Reserved addresses count as used; reserving twice or outside the range is refused.
    let r = ok(
        &tc,
        Method::POST,
        "/networks/net0/reserve-ip",
        &admin,
        Some(json!({"ips": ["10.20.0.5", "10.20.0.6"], "notes": "router"})),
    )
    .await?;
    assert_eq!(r["network"]["ports_used"], 2);
    fails(&tc, Method::POST, "/networks/net0/reserve-ip", &admin, json!({"ips": ["10.20.0.5"]}), 409, "in use").await?;
    fails(&tc, Method::POST, "/networks/net0/reserve-ip", &admin, json!({"ips": ["10.20.0.251"]}), 400, "ips").await?;
    let rips = ok(&tc, Method::GET, "/reservedips", &admin, None).await?;
    assert_eq!(rips["total"], 2);
    let r =
        ok(&tc, Method::POST, "/networks/net0/release-reserved-ip", &admin, Some(json!({"ip": "10.20.0.5"}))).await?;
    assert_eq!(r["network"]["ports_used"], 1);
    fails(
        &tc,
        Method::POST,
        "/networks/net0/release-reserved-ip",
        &admin,
        json!({"ip": "10.20.0.5"}),
        404,
        "not reserved",
    )
    .await?;

    // A wire with networks stays; a network with only reserved addresses goes.
    fails(&tc, Method::DELETE, "/wires/w0", &admin, json!({}), 409, "networks").await?;
    ok(&tc, Method::DELETE, "/networks/net0", &admin, None).await?;
    assert_eq!(ok(&tc, Method::GET, "/reservedips", &admin, None).await?["total"], 0);
    ok(&tc, Method::DELETE, &format!("/wires/{w0}"), &admin, None).await?;
    tc.stop().await
}

/// Many more creates at once than the database pool has connections: each create's name check
/// runs on its transaction's connection, so none waits for a second one (on MariaDB, with 16
/// connections, 16 transactions each waiting for another used to starve the pool for 30 s).
#[tokio::test]
async fn creates_beyond_the_pool_size_never_starve_it() -> Result<()> {
    use futures::StreamExt;
    let (tc, admin) = start(&[]).await?;
    let results: Vec<Result<String>> = futures::stream::iter(0..96)
        .map(|i| {
            let (tc, admin) = (&tc, &admin);
            async move { wire(tc, admin, &format!("many{i}")).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    // A starved pool fails a request with a 500 after its acquire timeout.
    let ids: Vec<String> = results.into_iter().collect::<Result<_>>()?;
    assert_eq!(ids.iter().filter(|id| !id.is_empty()).count(), 96);
    // The name check still holds under the same load: one of two same-named creates fails.
    let dup =
        call(&tc, Method::POST, "/wires", &admin, Some(json!({"wire": {"name": "many0", "zone": "zone0"}}))).await?;
    assert_eq!(dup.status.as_u16(), 409, "{}", dup.body);
    tc.stop().await
}
