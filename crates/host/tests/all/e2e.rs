//! End to end through the real control plane: an in-process aio (keystone, glance, region,
//! scheduler) with its real host agent (`--set host.enabled=true`) in a namespace this test
//! creates. The region drives the agent: image upload, `POST /servers` (auto start) to
//! `running`, the guest's ready line with the hostname and the IP the region allocated, HTTP
//! from inside the namespace, stop, start, delete for good (overlay, tap and lease gone).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use test_harness::TestCloud;

use crate::common::*;

async fn server(tc: &TestCloud, admin: &str, id: &str) -> Result<Value> {
    let r = tc.call(Method::GET, &format!("{}/servers/{id}", tc.region_url()), Some(admin), None).await?;
    ensure!(r.status.is_success(), "GET server {id}: {} {}", r.status, r.body);
    Ok(r.body["server"].clone())
}

async fn wait_status(tc: &TestCloud, admin: &str, id: &str, want: &str) -> Result<(Value, Duration)> {
    let t = Instant::now();
    loop {
        let s = server(tc, admin, id).await?;
        if s["status"] == want {
            return Ok((s, t.elapsed()));
        }
        let st = s["status"].as_str().unwrap_or_default();
        ensure!(!st.ends_with("_fail") && !st.contains("fail"), "server {id} is {st}: {s}");
        ensure!(t.elapsed() < Duration::from_secs(60), "server {id} is {st}, not {want}, after 60 s: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn act(tc: &TestCloud, admin: &str, id: &str, action: &str) -> Result<()> {
    let url = format!("{}/servers/{id}/{action}", tc.region_url());
    let r = tc.call(Method::POST, &url, Some(admin), Some(json!({"server": {}}))).await?;
    ensure!(r.status.is_success(), "{action}: {} {}", r.status, r.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_drives_the_real_agent() -> Result<()> {
    let image = prerequisites()?;
    let pid = std::process::id();
    let netns = format!("cphe2e-{pid}");
    let _ns = Cleanup { netns: netns.clone(), dir: std::env::temp_dir().join(format!("cloudpods-host-e2e-{pid}")) };
    sh(Command::new("ip").args(["netns", "add", &netns]))?;
    let sets = ["host.enabled=true".to_string(), format!("host.netns={netns}"), format!("host.hostname=e2e-{pid}")];
    let tc = TestCloud::start_with(&sets.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let agent_dir = tc.dir.join("host");
    // QEMU processes of this cloud's agent are killed even if the test fails.
    let _vms = Cleanup { netns: netns.clone(), dir: agent_dir.clone() };
    let admin = tc.admin_token().await?;

    let img = tc.upload_image(&admin, "testimg", "qcow2", std::fs::read(&image)?).await?;

    // A keypair the region hands the guest.
    let keydir = tc.dir.join("keys");
    std::fs::create_dir_all(&keydir)?;
    let key = keydir.join("id_ed25519");
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key))?;
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
    let kp = json!({"keypair": {"name": "k1", "public_key": pubkey.trim()}});
    let r = tc.call(Method::POST, &format!("{}/keypairs", tc.region_url()), Some(&admin), Some(kp)).await?;
    ensure!(r.status.is_success(), "keypair-create: {} {}", r.status, r.body);

    let t = Instant::now();
    let body = json!({"server": {"name": "vm-e2e", "vcpu_count": 1, "vmem_size": 256, "disks": [format!("{img}:256m")],
        "nets": [{"network": "default"}], "password": "E2e-passw0rd", "keypair": "k1", "auto_start": true}});
    let r = tc.call(Method::POST, &format!("{}/servers", tc.region_url()), Some(&admin), Some(body)).await?;
    ensure!(r.status.is_success(), "server-create: {} {}", r.status, r.body);
    let id = r.body["server"]["id"].as_str().context("server id")?.to_string();
    let (s, _) = wait_status(&tc, &admin, &id, "running").await?;
    let to_running = t.elapsed();
    let ip = s["ips"].as_str().context("ips")?.to_string();
    let serial = agent_dir.join("servers").join(&id).join("serial.log");
    let (line, boot) = wait_ready(&serial, t, Duration::from_secs(90)).await?;
    eprintln!("POST /servers -> running in {to_running:?}; ready line after {boot:?}: {line}");
    assert_eq!(line, format!("CLOUDPODS-READY hostname=vm-e2e ip={ip}"));
    let page = in_netns(&netns, &["curl", "-sS", "--max-time", "5", &format!("http://{ip}/")])?;
    assert!(page.contains("hostname=vm-e2e"), "{page}");

    act(&tc, &admin, &id, "stop").await?;
    let (_, took) = wait_status(&tc, &admin, &id, "ready").await?;
    eprintln!("server-stop -> ready in {took:?}");
    // change-config while stopped: the next boot has the new memory.
    let url = format!("{}/servers/{id}/change-config", tc.region_url());
    let r = tc.call(Method::POST, &url, Some(&admin), Some(json!({"server": {"vmem_size": 384}}))).await?;
    ensure!(r.status.is_success(), "change-config: {} {}", r.status, r.body);
    wait_status(&tc, &admin, &id, "ready").await?;
    act(&tc, &admin, &id, "start").await?;
    let t = Instant::now();
    let (_, took) = wait_status(&tc, &admin, &id, "running").await?;
    let (_, boot) = wait_ready(&serial, t, Duration::from_secs(90)).await?;
    eprintln!("server-start -> running in {took:?}, ready line after {boot:?}");

    // SSH with the region's keypair and password; then the guest powers itself off: the
    // agent notices and pushes `ready` to the region unasked.
    let ssh = Ssh { netns: netns.clone(), key, dir: keydir.clone(), ip: ip.clone() };
    assert_eq!(ssh.run_key("hostname")?.trim(), "vm-e2e");
    assert_eq!(ssh.run_password("E2e-passw0rd", "echo pw-ok")?.trim(), "pw-ok");
    let mem = ssh.run_key("sed -n 's/MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo")?;
    let kb: u64 = mem.trim().parse().with_context(|| format!("MemTotal {mem:?}"))?;
    assert!((300_000..=393_216).contains(&kb), "guest has {kb} kB after change-config to 384 MB");
    // A data disk made by the region on this host, hot-plugged into the running guest, then unplugged.
    let r = tc
        .call(
            Method::POST,
            &format!("{}/disks", tc.region_url()),
            Some(&admin),
            Some(json!({"disk": {"name": "data1", "size": "48m"}})),
        )
        .await?;
    ensure!(r.status.is_success(), "disk-create: {} {}", r.status, r.body);
    let disk_id = r.body["disk"]["id"].as_str().context("disk id")?.to_string();
    test_harness::wait_for(Duration::from_secs(30), || async {
        let d = tc.call(Method::GET, &format!("{}/disks/{disk_id}", tc.region_url()), Some(&admin), None).await;
        d.is_ok_and(|d| d.body["disk"]["status"] == "ready")
    })
    .await
    .context("disk never ready")?;
    let t = Instant::now();
    let r = tc
        .call(
            Method::POST,
            &format!("{}/servers/{id}/attachdisk", tc.region_url()),
            Some(&admin),
            Some(json!({"server": {"disk": "data1"}})),
        )
        .await?;
    ensure!(r.status.is_success(), "attachdisk: {} {}", r.status, r.body);
    wait_status(&tc, &admin, &id, "running").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // /proc/partitions counts 1 KiB blocks: 48 MiB = 49152.
    while !ssh.run_key("cat /proc/partitions").is_ok_and(|o| o.contains(" 49152 ")) {
        ensure!(Instant::now() < deadline, "the attached disk never showed up in the guest");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("server-attach-disk -> disk visible in the running guest after {:?}", t.elapsed());
    let r = tc
        .call(
            Method::POST,
            &format!("{}/servers/{id}/detachdisk", tc.region_url()),
            Some(&admin),
            Some(json!({"server": {"disk": "data1"}})),
        )
        .await?;
    ensure!(r.status.is_success(), "detachdisk: {} {}", r.status, r.body);
    wait_status(&tc, &admin, &id, "running").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ssh.run_key("cat /proc/partitions").is_ok_and(|o| !o.contains(" 49152 ")) {
        ensure!(Instant::now() < deadline, "the detached disk never left the guest");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = tc.call(Method::DELETE, &format!("{}/disks/{disk_id}", tc.region_url()), Some(&admin), None).await?;
    ensure!(r.status.is_success(), "disk-delete: {} {}", r.status, r.body);

    // server-restart: ACPI shutdown and a fresh boot.
    let t = Instant::now();
    act(&tc, &admin, &id, "restart").await?;
    let (_, took) = wait_status(&tc, &admin, &id, "running").await?;
    let (_, boot) = wait_ready(&serial, t, Duration::from_secs(90)).await?;
    eprintln!("server-restart -> running in {took:?}, ready line after {boot:?}");

    let _ = ssh.run_key("poweroff");
    let (_, took) = wait_status(&tc, &admin, &id, "ready").await?;
    eprintln!("guest poweroff -> region says ready after {took:?} (pushed by the agent)");

    let url = format!("{}/servers/{id}?override_pending_delete=true", tc.region_url());
    let r = tc.call(Method::DELETE, &url, Some(&admin), None).await?;
    ensure!(r.status.is_success(), "delete: {} {}", r.status, r.body);
    test_harness::wait_for(Duration::from_secs(30), || async {
        let r = tc.call(Method::GET, &format!("{}/servers/{id}", tc.region_url()), Some(&admin), None).await;
        r.is_ok_and(|r| r.status.as_u16() == 404)
    })
    .await
    .context("server never went away")?;
    test_harness::wait_for(Duration::from_secs(10), || async {
        std::fs::read_dir(agent_dir.join("disks")).map(|d| d.count() == 0).unwrap_or(false)
    })
    .await
    .context("overlay left on the host")?;
    assert!(!agent_dir.join("servers").join(&id).exists(), "guest directory left");
    let taps = sh(Command::new("ip").args(["-n", &netns, "-o", "link", "show", "type", "tun"]))?;
    assert!(taps.trim().is_empty(), "taps left: {taps}");

    // An image that cannot boot (a blank disk): the deploy fails with the reason, no QEMU runs,
    // and deleting the server leaves nothing behind.
    let blank = tc.upload_image(&admin, "blank", "raw", vec![0u8; 4 << 20]).await?;
    let body = json!({"server": {"name": "vm-blank", "vcpu_count": 1, "vmem_size": 128, "disks": [format!("{blank}:64m")],
        "nets": [{"network": "default"}], "auto_start": true}});
    let r = tc.call(Method::POST, &format!("{}/servers", tc.region_url()), Some(&admin), Some(body)).await?;
    ensure!(r.status.is_success(), "server-create: {} {}", r.status, r.body);
    let bid = r.body["server"]["id"].as_str().context("server id")?.to_string();
    test_harness::wait_for(Duration::from_secs(60), || async {
        server(&tc, &admin, &bid).await.is_ok_and(|s| s["status"] == "deploy_fail")
    })
    .await
    .context("a blank image did not end in deploy_fail")?;
    let ev = tc.call(Method::GET, &format!("{}/events?obj_id={bid}", tc.region_url()), Some(&admin), None).await?;
    assert!(ev.body.to_string().contains("is not bootable"), "events: {}", ev.body);
    assert!(!agent_dir.join("servers").join(&bid).join("qemu.pid").exists(), "QEMU started for a blank disk");
    let url = format!("{}/servers/{bid}?override_pending_delete=true", tc.region_url());
    let r = tc.call(Method::DELETE, &url, Some(&admin), None).await?;
    ensure!(r.status.is_success(), "delete: {} {}", r.status, r.body);
    test_harness::wait_for(Duration::from_secs(30), || async {
        std::fs::read_dir(agent_dir.join("disks")).map(|d| d.count() == 0).unwrap_or(false)
    })
    .await
    .context("the blank server's overlay left on the host")?;
    eprintln!("a blank image ends in deploy_fail with the reason in the events; delete cleans up");
    tc.stop().await
}
