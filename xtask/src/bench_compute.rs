//! `cargo xtask bench compute`: the scheduler and `server-list` at scale (10,000 hosts,
//! 100,000 servers), on a real aio started in this process (SQLite in a temp dir).
//!
//! ```text
//! aio (keystone, logger, glance, region, scheduler) in-process, sysadmin token
//! register N hosts with POST /hosts (the agents' own call: host + local storage), 8 at a time
//! seed M servers (M / N per host, 1 vCPU, 1 GiB, running) with one disk and one NIC each:
//!   rows written through the region's store in 1000-row transactions (creating them through
//!   the API would run M create tasks against agents; this measures reads, not creation)
//! POST /scheduler/clean-cache: the scheduler reloads every host with its committed usage
//! scheduler: K placements, one POST /scheduler each (1 vCPU, 512 MB, a 10 GiB disk), one
//!   after the other: latency p50/p99 of the whole HTTP call, placements/s; and the decision
//!   alone (the pure core on the same hosts) p50/p99
//! GET /servers?limit=1000&details=true, L times: p50/p99
//! ```
//! Targets (compute issue): scheduler p99 < 5 ms at 10,000 hosts, >= 1,000 placements/s;
//! list of 1,000 servers with details p99 < 100 ms. A missed target prints `MISSED`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cloudcommon::resource::{Row, store};
use futures::StreamExt;
use serde_json::{Value, json};
use test_harness::TestCloud;

#[derive(clap::Args, Clone)]
pub struct ComputeArgs {
    /// Hosts to register.
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    /// Servers to seed (spread evenly over the hosts).
    #[arg(long, default_value_t = 100_000)]
    pub servers: usize,
    /// Placements measured.
    #[arg(long, default_value_t = 2_000)]
    pub placements: usize,
    /// `server-list` calls measured.
    #[arg(long, default_value_t = 50)]
    pub lists: usize,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "OK" } else { "MISSED" }
}

pub async fn run(a: &ComputeArgs) -> Result<()> {
    let tc = TestCloud::start_with(&["scheduler.refresh_seconds=3600", "region.host_offline_seconds=86400"]).await?;
    let token = tc.admin_token().await?;
    let region = tc.region_url();
    let http = reqwest::Client::new();

    let t0 = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..a.hosts)
        .map(|i| {
            let (http, region, token) = (&http, &region, &token);
            async move {
                let body = json!({"host": {"name": format!("bench-host-{i:05}"), "host_type": "kvm",
                    "access_ip": format!("127.1.{}.{}", i / 250, i % 250 + 1),
                    "manager_uri": format!("http://127.0.0.1:1/{i}"), "cpu_count": 64, "mem_size": 262_144,
                    "storages": [{"name": format!("bench-host-{i:05}-local"), "mount_point": "/opt/cloud/workspace/disks",
                                  "capacity": 4_000_000, "storage_type": "local"}]}});
                let r = http.post(format!("{region}/hosts")).header("X-Auth-Token", token).json(&body).send().await?;
                if !r.status().is_success() {
                    bail!("register host {i}: {} {}", r.status(), r.text().await.unwrap_or_default());
                }
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    println!("registered {} hosts in {:.1} s", a.hosts, t0.elapsed().as_secs_f64());

    let t0 = Instant::now();
    seed_servers(&tc, a).await?;
    println!("seeded {} servers (+ a disk and a NIC each) in {:.1} s", a.servers, t0.elapsed().as_secs_f64());

    // What one reload reads: every page of the four lists the scheduler's loader asks for.
    for plural in ["hosts", "storages", "hoststorages", "netinterfaces"] {
        let t = Instant::now();
        let mut offset = 0;
        loop {
            let url = format!("{region}/{plural}?limit=2048&offset={offset}&details=true&scope=system");
            let v: Value = http.get(url).header("X-Auth-Token", &token).send().await?.json().await?;
            let n = v[plural].as_array().map_or(0, Vec::len);
            offset += n;
            if n == 0 || offset as u64 >= v["total"].as_u64().unwrap_or(0) {
                break;
            }
        }
        println!("  GET /{plural} (all {offset}, details) {:.2} s", t.elapsed().as_secs_f64());
    }
    let sched = tc.url("scheduler");
    let t0 = Instant::now();
    let r = http.post(format!("{sched}/scheduler/clean-cache")).header("X-Auth-Token", &token).send().await?;
    if !r.status().is_success() {
        bail!("clean-cache: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let loaded: Value = r.json().await?;
    println!("scheduler loaded {} hosts with their usage in {:.1} s", loaded["hosts"], t0.elapsed().as_secs_f64());

    // Placements over HTTP, one after the other.
    let input = json!({"scheduler": {"vcpu_count": 1, "vmem_size": 512, "disks": [{"size": 10240}], "count": 1}});
    let mut lat = Vec::with_capacity(a.placements);
    let start = Instant::now();
    for i in 0..a.placements {
        let t = Instant::now();
        let r = http.post(format!("{sched}/scheduler")).header("X-Auth-Token", &token).json(&input).send().await?;
        let ok = r.status().is_success();
        let body = r.bytes().await?;
        lat.push(t.elapsed());
        if !ok {
            bail!("placement {i}: {}", String::from_utf8_lossy(&body));
        }
    }
    let total = start.elapsed();
    lat.sort();
    let rate = a.placements as f64 / total.as_secs_f64();

    // The decision alone: the scheduler's pure core on the hosts it holds.
    let state = tc.state("scheduler").context("scheduler state")?;
    let svc = scheduler::scheduler(&state).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hosts = svc.scheduler.hosts();
    let core_input = scheduler::core::ScheduleInput {
        cpu: 1,
        mem_mb: 512,
        disks: vec![scheduler::core::DiskRequest { size_mb: 10240, backend: String::new() }],
        count: 1,
        ..Default::default()
    };
    let pending = svc.scheduler.pending_by_host();
    let mut core_lat = Vec::with_capacity(a.placements);
    for _ in 0..a.placements {
        let t = Instant::now();
        let out = scheduler::core::schedule_lean(&hosts, &pending, &core_input);
        core_lat.push(t.elapsed());
        std::hint::black_box(out);
    }
    core_lat.sort();

    // server-list, 1000 with details.
    let mut list_lat = Vec::with_capacity(a.lists);
    for _ in 0..a.lists {
        let t = Instant::now();
        let r =
            http.get(format!("{region}/servers?limit=1000&details=true")).header("X-Auth-Token", &token).send().await?;
        let v: Value = r.json().await?;
        list_lat.push(t.elapsed());
        let n = v["servers"].as_array().map_or(0, Vec::len);
        if n != 1000.min(a.servers) {
            bail!("server-list gave {n} servers");
        }
    }
    list_lat.sort();
    // Where the time goes: the same page without details, and a page of one (count + overhead).
    let mut parts = vec![];
    for q in ["limit=1000&details=false", "limit=1&details=false"] {
        let mut l = vec![];
        for _ in 0..10 {
            let t = Instant::now();
            let r = http.get(format!("{region}/servers?{q}")).header("X-Auth-Token", &token).send().await?;
            let _: Value = r.json().await?;
            l.push(t.elapsed());
        }
        l.sort();
        parts.push((q, pct(&l, 0.5)));
    }

    println!();
    println!("compute at {} hosts, {} servers (this machine: {} cores)", hosts.len(), a.servers, cores());
    let p99 = pct(&lat, 0.99);
    println!(
        "scheduler POST /scheduler  {} placements: p50 {:.2} ms  p99 {:.2} ms  (target p99 < 5 ms)  {}",
        a.placements,
        pct(&lat, 0.50),
        p99,
        verdict(p99 < 5.0)
    );
    println!("  placements/s (sequential, one client)  {rate:.0}  (target >= 1000)  {}", verdict(rate >= 1000.0));
    println!(
        "  decision alone (filters + scores over {} hosts): p50 {:.2} ms  p99 {:.2} ms",
        hosts.len(),
        pct(&core_lat, 0.50),
        pct(&core_lat, 0.99)
    );
    let lp99 = pct(&list_lat, 0.99);
    println!(
        "server-list limit=1000 details=true, {} calls: p50 {:.1} ms  p99 {:.1} ms  (target p99 < 100 ms)  {}",
        a.lists,
        pct(&list_lat, 0.50),
        lp99,
        verdict(lp99 < 100.0)
    );
    for (q, p50) in parts {
        println!("  GET /servers?{q}: p50 {p50:.1} ms");
    }
    tc.stop().await
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Writes `a.servers` running servers (and a disk and a NIC each) over the registered hosts.
async fn seed_servers(tc: &TestCloud, a: &ComputeArgs) -> Result<()> {
    let state = tc.state("region").context("region state")?;
    let db = &state.db;
    let hosts = store::select(db, &region::hosts::host_spec(), sea_orm::sea_query::Condition::all())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let links = store::select(db, &region::storages::hoststorage_spec(), sea_orm::sea_query::Condition::all())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let storage_of: std::collections::HashMap<String, String> = links
        .iter()
        .map(|l| (l["host_id"].as_str().unwrap_or("").to_string(), l["storage_id"].as_str().unwrap_or("").to_string()))
        .collect();
    let net = store::select(db, &region::networks::network_spec(), sea_orm::sea_query::Condition::all())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .next()
        .context("a network")?;
    let net_id = net["id"].as_str().unwrap_or_default().to_string();
    let specs = [
        region::servers::server_spec(),
        region::disks::disk_spec(),
        region::disks::guestdisk_spec(),
        region::disks::guestnetwork_spec(),
    ];
    let now = cloudcommon::db::now();
    // Distinct creation times, as real servers have (lists are ordered by them).
    let start = chrono::Utc::now() - chrono::Duration::seconds(a.servers as i64);
    let row = |spec: &cloudcommon::resource::ResourceSpec, id: String, name: String, fields: Value| -> Row {
        let mut r = Row::new();
        for c in &spec.cols {
            if let Some(d) = &c.default {
                r.insert(c.name.to_string(), d.clone());
            }
        }
        for (k, v) in [("id", id), ("name", name), ("created_at", now.clone()), ("updated_at", now.clone())] {
            r.insert(k.into(), v.into());
        }
        r.insert("domain_id".into(), "default".into());
        r.insert("tenant_id".into(), "system".into());
        if let Value::Object(m) = fields {
            r.extend(m);
        }
        r
    };
    let mut i = 0;
    while i < a.servers {
        let txn = db.begin().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        for j in i..(i + 1000).min(a.servers) {
            let host = &hosts[j % hosts.len()];
            let host_id = host["id"].as_str().unwrap_or_default();
            let (sid, did) = (cloudcommon::db::new_id(), cloudcommon::db::new_id());
            let name = format!("bench-{j:06}");
            let rows = [
                row(
                    &specs[0],
                    sid.clone(),
                    name.clone(),
                    json!({"vcpu_count": 1, "vmem_size": 1024, "host_id": host_id,
                    "status": "running", "power_states": "on", "secgrp_id": "default"}),
                ),
                row(
                    &specs[1],
                    did.clone(),
                    format!("{name}-disk0"),
                    json!({"storage_id": storage_of.get(host_id),
                    "disk_size": 10240, "status": "ready", "disk_type": "sys", "access_path": format!("/opt/{did}")}),
                ),
                row(
                    &specs[2],
                    cloudcommon::db::new_id(),
                    format!("{name}-0"),
                    json!({"guest_id": sid, "disk_id": did}),
                ),
                row(
                    &specs[3],
                    cloudcommon::db::new_id(),
                    format!("{name}-nic0"),
                    json!({"guest_id": sid,
                    "network_id": net_id, "ip_addr": format!("10.{}.{}.{}", j >> 16, (j >> 8) & 255, j & 255),
                    "mac_addr": format!("00:22:00:{:02x}:{:02x}:{:02x}", j >> 16, (j >> 8) & 255, j & 255)}),
                ),
            ];
            let at = cloudcommon::db::fmt_time(start + chrono::Duration::seconds(j as i64));
            let mut rows = rows;
            for r in &mut rows {
                r.insert("created_at".into(), at.clone().into());
            }
            for (spec, r) in specs.iter().zip(rows.iter()) {
                store::insert(&txn, spec, r).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        txn.commit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        i += 1000;
    }
    Ok(())
}
