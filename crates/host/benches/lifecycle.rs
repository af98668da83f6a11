//! Host agent lifecycle benchmark (not a test): `cargo bench -p host --bench lifecycle`, as root.
//!
//! With the image already cached, `RUNS` times (default 20): disk create (qcow2 overlay),
//! server create (config drive), server start (QEMU spawn, QMP, `cont`) through the HTTP
//! contract, each until its callback; next to the floor measured in the same run
//! (`qemu-img create` of an overlay + QEMU spawned with the same command line until QMP
//! answers). Then `VMS` guests (default 10) running at once and the process's RSS (the agent
//! plus this harness: an upper bound of the agent's). Everything in a fresh network namespace.

#[allow(dead_code)]
#[path = "../tests/all/common.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use serde_json::{Value, json};

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:7.1} ms", d.as_secs_f64() * 1e3)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn desc(id: &str, n: usize) -> Value {
    json!({
        "id": id, "name": id, "uuid": id, "hostname": id, "vcpu_count": 1, "vmem_size": 128, "boot_order": "cdn",
        "disks": [{"index": 0, "disk_id": format!("d-{id}"), "size": 128, "format": "qcow2", "driver": "virtio",
                   "image_id": "benchimg", "storage_id": "s1"}],
        "nics": [{"index": 0, "mac": format!("00:22:bb:00:{:02x}:{:02x}", n / 256, n % 256),
                  "ip": format!("10.98.{}.{}", n / 200, n % 200 + 10), "masklen": 16, "gateway": "10.98.255.1",
                  "dns": "", "bridge": "brbench0", "wire_id": "w", "network_id": "n", "vlan": 1, "ifname": ""}],
    })
}

/// A 128 MB overlay `d-<id>` on the cached bench image, until its callback.
async fn create_disk(c: &Client, id: &str) -> Result<Value> {
    let body = json!({"disk": {"size": 128, "format": "qcow2", "image_id": "benchimg"}});
    c.call(reqwest::Method::POST, &format!("/disks/s1/create/d-{id}"), Some(body), Duration::from_secs(60)).await
}

/// The floor: an overlay and a QEMU with the agent's own command line, to QMP ready.
async fn floor(dir: &Path, image: &Path, i: usize) -> Result<Duration> {
    let gdir = dir.join("floor");
    std::fs::create_dir_all(&gdir)?;
    let disk = gdir.join(format!("f{i}.qcow2"));
    let t = Instant::now();
    sh(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-b"])
        .arg(image)
        .args(["-F", "qcow2"])
        .arg(&disk)
        .arg("128M"))?;
    let d: apis::compute::GuestJsonDesc = serde_json::from_value(json!({
        "id": format!("floor{i}"), "name": "floor", "uuid": "", "vcpu_count": 1, "vmem_size": 128,
        "disks": [{"index": 0, "disk_id": "f", "path": disk, "size": 128, "format": "qcow2", "driver": "virtio", "storage_id": "s"}],
    }))?;
    let spec = host::qemu::LaunchSpec {
        accel: host::accel::detect(host::accel::AccelSetting::Auto),
        paths: host::qemu::GuestPaths::new(&gdir, &format!("floor{i}")),
        vnc_display: 99,
        vnc_listen: "127.0.0.1".into(),
        config_drive: None,
        spare_root_ports: 4,
    };
    std::fs::create_dir_all(&spec.paths.dir)?;
    let out = Command::new("qemu-system-x86_64").args(host::qemu::command_line(&d, &spec)).output()?;
    anyhow::ensure!(out.status.success(), "floor QEMU: {}", String::from_utf8_lossy(&out.stderr));
    let mut q = host::qmp::Qmp::connect_retry(&spec.paths.qmp(), Duration::from_secs(10)).await?;
    let el = t.elapsed();
    q.quit().await?;
    let _ = std::fs::remove_file(&disk);
    Ok(el)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let runs = env_n("RUNS", 20);
    let vms = env_n("VMS", 10);
    let image = prerequisites()?;
    let env = Cleanup::fresh("cphbench", "bench")?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());
    let (fake, cbs) = fake_services(std::fs::read(&image)?).await?;
    let rss0 = rss_kb();
    let (built, url) = start_agent(&dir, &netns).await?;
    let c =
        Client { http: reqwest::Client::new(), agent: url, fake: fake.clone(), cbs, n: 0.into(), token: TOKEN.into() };
    let long = Duration::from_secs(60);
    let post = reqwest::Method::POST;
    c.call(
        post.clone(),
        "/disks/image_cache",
        Some(json!({"disk": {"image_id": "benchimg", "storagecache_id": "sc", "src_url": format!("{fake}/image")}})),
        long,
    )
    .await?;
    let cached = dir.join("image_cache/benchimg");
    let (mut disk, mut create, mut start, mut total, mut floors) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let id = format!("b{i}");
        let d = desc(&id, i);
        let t0 = Instant::now();
        create_disk(&c, &id).await?;
        let t1 = Instant::now();
        c.call(post.clone(), &format!("/servers/{id}/create"), Some(json!({"desc": d, "action": "create"})), long)
            .await?;
        let t2 = Instant::now();
        let cb = c.call(post.clone(), &format!("/servers/{id}/start"), Some(json!({"desc": d})), long).await?;
        let t3 = Instant::now();
        anyhow::ensure!(cb["status"] == "running", "{cb}");
        disk.push(t1 - t0);
        create.push(t2 - t1);
        start.push(t3 - t2);
        total.push(t3 - t0);
        c.call(post.clone(), &format!("/servers/{id}/delete"), Some(json!({})), long).await?;
        c.call(post.clone(), &format!("/disks/s1/delete/d-{id}"), Some(json!({})), long).await?;
        floors.push(floor(&dir, &cached, i).await?);
    }
    println!("host agent lifecycle, {runs} runs, accelerator {}, image cached", built.agent.accel);
    println!("{:<34} {:>10} {:>10}", "stage", "p50", "p99");
    for (name, v) in [
        ("disk create (overlay)", &mut disk),
        ("server create (config drive)", &mut create),
        ("server start (spawn, QMP, cont)", &mut start),
        ("API to running (sum)", &mut total),
        ("floor: qemu-img + QEMU to QMP", &mut floors),
    ] {
        println!("{:<34} {} {}", name, ms(pct(v, 0.5)), ms(pct(v, 0.99)));
    }
    let ratio = pct(&mut total, 0.5).as_secs_f64() / pct(&mut floors, 0.5).as_secs_f64();
    println!("API to running p50 / floor p50 = {ratio:.2}x (target: under 300 ms and within 2x)");

    // Many guests at once: the agent's memory.
    let t = Instant::now();
    for i in 0..vms {
        let id = format!("m{i}");
        let d = desc(&id, 1000 + i);
        create_disk(&c, &id).await?;
        c.call(
            post.clone(),
            &format!("/servers/{id}/create"),
            Some(json!({"desc": d, "action": "create", "on_finish": "none"})),
            long,
        )
        .await?;
    }
    let rss = rss_kb();
    println!(
        "{vms} guests running (started in {:?}): process RSS {} MiB (before the agent: {} MiB; agent + harness: {} MiB; target: agent under 30 MB)",
        t.elapsed(),
        rss / 1024,
        rss0 / 1024,
        rss.saturating_sub(rss0) / 1024
    );
    for i in 0..vms {
        let id = format!("m{i}");
        c.call(post.clone(), &format!("/servers/{id}/delete"), Some(json!({})), long).await?;
        c.call(post.clone(), &format!("/disks/s1/delete/d-{id}"), Some(json!({})), long).await?;
    }
    built.agent.shutdown().await;
    let left = Command::new("ip").args(["-n", &netns, "-o", "link", "show", "type", "tun"]).output()?;
    println!("taps left after deleting every guest: {}", String::from_utf8_lossy(&left.stdout).lines().count());
    through_the_region(&image, runs).await
}

/// `POST /servers` (auto start) to `running` through an in-process aio whose host agent is
/// the real one, image already cached on the host.
async fn through_the_region(image: &Path, runs: usize) -> Result<()> {
    use reqwest::Method;
    use test_harness::TestCloud;
    let pid = std::process::id();
    let netns = format!("cphbr-{pid}");
    let _ns = Cleanup { netns: netns.clone(), dir: std::env::temp_dir().join(format!("cloudpods-host-benchr-{pid}")) };
    sh(Command::new("ip").args(["netns", "add", &netns]))?;
    let sets = ["host.enabled=true".to_string(), format!("host.netns={netns}"), format!("host.hostname=bench-{pid}")];
    let tc = TestCloud::start_with(&sets.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let _vms = Cleanup { netns: netns.clone(), dir: tc.dir.join("host") };
    let admin = tc.admin_token().await?;
    let region = tc.region_url();
    let img = tc.upload_image(&admin, "benchimg", "qcow2", std::fs::read(image)?).await?;
    let (mut times, mut floors) = (vec![], vec![]);
    let mut stages = Stages::default();
    let db = tc.state("region").map(|s| s.db.clone()).ok_or_else(|| anyhow::anyhow!("no region state"))?;
    // Run 0 caches the image on the host and is not counted.
    for i in 0..=runs {
        let body = json!({"server": {"name": format!("r{i}"), "vcpu_count": 1, "vmem_size": 128,
            "disks": [format!("{img}:128m")], "nets": [{"network": "default"}], "auto_start": true}});
        let t = Instant::now();
        let wall0 = cloudcommon::db::now();
        let r = tc.call(Method::POST, &format!("{region}/servers"), Some(&admin), Some(body)).await?;
        anyhow::ensure!(r.status.is_success(), "create: {} {}", r.status, r.body);
        let id = r.body["server"]["id"].as_str().unwrap_or_default().to_string();
        loop {
            let s = tc.call(Method::GET, &format!("{region}/servers/{id}"), Some(&admin), None).await?;
            let st = s.body["server"]["status"].as_str().unwrap_or_default().to_string();
            if st == "running" {
                break;
            }
            anyhow::ensure!(!st.contains("fail") && t.elapsed() < Duration::from_secs(60), "server {id}: {st}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if i > 0 {
            times.push(t.elapsed());
            stages.add(&db, &id, &wall0, &cloudcommon::db::now()).await?;
        }
        let url = format!("{region}/servers/{id}?override_pending_delete=true");
        tc.call(Method::DELETE, &url, Some(&admin), None).await?;
        test_harness::wait_for(Duration::from_secs(30), || async {
            let r = tc.call(Method::GET, &format!("{region}/servers/{id}"), Some(&admin), None).await;
            r.is_ok_and(|r| r.status.as_u16() == 404)
        })
        .await?;
        if i > 0 {
            // The floor between the runs, under the same conditions (the aio idle around it).
            let cached = tc.dir.join("host/image_cache").join(&img);
            floors.push(floor(&tc.dir, &cached, i).await?);
        }
    }
    let floor = pct(&mut floors, 0.5);
    let (p50, p99) = (pct(&mut times, 0.5), pct(&mut times, 0.99));
    println!("through the region (aio, real agent, image cached), {runs} runs, polled every 2 ms:");
    println!("{:<34} {} {}", "POST /servers -> running", ms(p50), ms(p99));
    println!("{:<34} {} {}", "floor (measured between the runs)", ms(floor), ms(pct(&mut floors, 0.99)));
    println!(
        "p50 / floor p50 = {:.2}x (the region adds scheduling, IPAM, its task stages and 5 agent calls)",
        p50.as_secs_f64() / floor.as_secs_f64()
    );
    println!("where the time goes (from the task history; \"wait\" is time between stages: the agent's work,");
    println!("its callback and the engine's hand-over):");
    stages.print();
    tc.stop().await
}

/// Per-stage durations of each server's `GuestCreateTask` and its disk tasks, in the order
/// they first appear.
#[derive(Default)]
struct Stages {
    order: Vec<String>,
    times: std::collections::HashMap<String, Vec<Duration>>,
}

impl Stages {
    fn push(&mut self, label: String, from: &str, to: &str) {
        let (Some(a), Some(b)) = (cloudcommon::db::parse_time(from), cloudcommon::db::parse_time(to)) else { return };
        let d = Duration::from_micros((b - a).num_microseconds().unwrap_or(0).max(0) as u64);
        if !self.times.contains_key(&label) {
            self.order.push(label.clone());
        }
        self.times.entry(label).or_default().push(d);
    }

    async fn add(&mut self, db: &cloudcommon::db::Db, server_id: &str, posted: &str, seen: &str) -> Result<()> {
        let task = |id: &str, sql: &str| (sql.to_string(), vec![sea_orm::Value::from(id.to_string())]);
        let (sql, args) =
            task(server_id, "SELECT id, name, history FROM tasks_tbl WHERE obj_id = ? AND name = 'GuestCreateTask'");
        let rows = db.raw_query(&sql, args).await?;
        let row = rows.first().ok_or_else(|| anyhow::anyhow!("no GuestCreateTask for {server_id}"))?;
        let tid: String = row.try_get_by_index(0)?;
        let history: Value = serde_json::from_str(&row.try_get_by_index::<String>(2)?)?;
        let mut last = posted.to_string();
        for r in history.as_array().into_iter().flatten() {
            let (stage, started, finished) = (
                r["stage"].as_str().unwrap_or(""),
                r["started"].as_str().unwrap_or(""),
                r["finished"].as_str().unwrap_or(""),
            );
            self.push(format!("  wait before {stage}"), &last, started);
            self.push(format!("  stage {stage}"), started, finished);
            last = finished.to_string();
        }
        self.push("  last stage to status seen".into(), &last, seen);
        let (sql, args) = task(&tid, "SELECT name, history FROM tasks_tbl WHERE parent_task_id = ?");
        for child in db.raw_query(&sql, args).await? {
            let name: String = child.try_get_by_index(0)?;
            let history: Value = serde_json::from_str(&child.try_get_by_index::<String>(1)?)?;
            let mut last: Option<String> = None;
            for r in history.as_array().into_iter().flatten() {
                let (stage, started, finished) = (
                    r["stage"].as_str().unwrap_or(""),
                    r["started"].as_str().unwrap_or(""),
                    r["finished"].as_str().unwrap_or(""),
                );
                if let Some(l) = &last {
                    self.push(format!("  {name}: wait before {stage}"), l, started);
                }
                self.push(format!("  {name}: stage {stage}"), started, finished);
                last = Some(finished.to_string());
            }
        }
        Ok(())
    }

    fn print(&mut self) {
        for label in &self.order {
            if let Some(v) = self.times.get_mut(label) {
                println!("{:<46} {} {}", label, ms(pct(v, 0.5)), ms(pct(v, 0.99)));
            }
        }
    }
}
