//! The real agent, real QEMU (TCG on our machines), the real test image, all guest
//! networking inside a network namespace this test creates and removes.
//!
//! Drives the host agent contract directly (no region): a tiny HTTP server plays glance (serves
//! the image with its MD5) and the region's task callbacks (`POST /tasks/<id>`).
//! Needs root. Installs QEMU with `scripts/deps.sh --qemu` when missing; never skips silently.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vm_lifecycle_in_a_netns() -> Result<()> {
    let t_all = Instant::now();
    let image = prerequisites()?;
    let pid = std::process::id();
    let env = Cleanup::fresh("cphost", "test")?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());

    let (fake, cbs) = fake_services(std::fs::read(&image)?).await?;
    let (built, agent_url) = start_agent(&dir, &netns).await?;
    let c = Client {
        http: reqwest::Client::new(),
        agent: agent_url.clone(),
        fake: fake.clone(),
        cbs,
        n: 0.into(),
        token: TOKEN.into(),
    };
    let long = Duration::from_secs(90);

    // The auth layer guards the contract.
    let r = c.http.post(format!("{agent_url}/disks/image_cache")).json(&json!({})).send().await?;
    assert_eq!(r.status().as_u16(), 401);

    // Image cache: downloaded once, checksum verified.
    let cb = c
        .call(
            reqwest::Method::POST,
            "/disks/image_cache",
            Some(
                json!({"disk": {"image_id": "testimg", "storagecache_id": "sc1", "src_url": format!("{fake}/image")}}),
            ),
            long,
        )
        .await?;
    assert_eq!(cb["size"].as_u64(), Some(std::fs::metadata(&image)?.len()));

    // Disk: a qcow2 overlay on the cached image.
    let t = Instant::now();
    let cb = c
        .call(
            reqwest::Method::POST,
            "/disks/s1/create/disk-1",
            Some(json!({"disk": {"size": 128, "format": "qcow2", "image_id": "testimg"}})),
            long,
        )
        .await?;
    let overlay = PathBuf::from(cb["path"].as_str().context("disk path")?);
    let info = sh(Command::new("qemu-img").args(["info", "--output=json", "-U"]).arg(&overlay))?;
    let info: Value = serde_json::from_str(&info)?;
    assert!(info["backing-filename"].as_str().unwrap_or_default().ends_with("image_cache/testimg"), "{info}");
    assert_eq!(info["virtual-size"].as_u64(), Some(128 << 20));
    eprintln!("disk create (overlay) callback after {:?}", t.elapsed());

    // Server: create (config drive), then start.
    let gid = format!("g{pid}");
    let key = dir.join("id_ed25519");
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "test@cloudpods", "-f"]).arg(&key))?;
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
    let desc = json!({
        "id": gid, "name": "vm-e2e", "uuid": gid, "hostname": "vm-e2e", "vcpu_count": 1, "vmem_size": 256,
        "boot_order": "cdn",
        "disks": [{"index": 0, "disk_id": "disk-1", "size": 128, "format": "qcow2", "driver": "virtio",
                   "image_id": "testimg", "storage_id": "s1"}],
        "nics": [{"index": 0, "mac": "00:22:aa:10:00:0a", "ip": "10.99.0.10", "masklen": 24, "gateway": "10.99.0.1",
                  "dns": "10.99.0.1", "bridge": "brtest0", "wire_id": "w1", "network_id": "n1", "vlan": 1,
                  "ifname": format!("vn{pid}")}],
        "pubkey": pubkey.trim(),
        "password": "Test-pw-123",
    });
    let cb = c
        .call(
            reqwest::Method::POST,
            &format!("/servers/{gid}/create"),
            Some(json!({"desc": desc, "action": "create", "on_finish": "shutdown"})),
            long,
        )
        .await?;
    assert_eq!(cb["status"], "ready", "{cb}");
    let g0 = cb["generation"].as_u64().context("generation")?;
    let serial = dir.join("servers").join(&gid).join("serial.log");

    let t = Instant::now();
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/start"), Some(json!({"desc": desc})), long).await?;
    let start_cb = t.elapsed();
    assert_eq!(cb["status"], "running", "{cb}");
    let g1 = cb["generation"].as_u64().context("generation")?;
    assert!(g1 > g0, "generation grows: {g0} -> {g1}");
    let (line, boot) = wait_ready(&serial, t, long).await?;
    eprintln!("start callback after {start_cb:?}; ready line after {boot:?}: {line}");
    assert_eq!(line, "CLOUDPODS-READY hostname=vm-e2e ip=10.99.0.10");

    // The guest answers on its network, from inside the namespace only.
    let page = in_netns(&netns, &["curl", "-sS", "--max-time", "5", "http://10.99.0.10/"])?;
    assert!(page.contains("hostname=vm-e2e ip=10.99.0.10"), "{page}");
    // ... and it asked the metadata service who it is (async, after the ready line).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match in_netns(&netns, &["curl", "-sSf", "--max-time", "5", "http://10.99.0.10/instance-id"]) {
            Ok(iid) if iid.trim() == gid => break,
            r => {
                let log = in_netns(&netns, &["curl", "-sS", "--max-time", "5", "http://10.99.0.10/metadata.log"]);
                ensure!(
                    Instant::now() < deadline,
                    "guest never got its instance-id from 169.254.169.254: {r:?} {log:?}"
                )
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // SSH with the injected key, and with the injected password.
    let ssh = Ssh { netns: netns.clone(), key: key.clone(), dir: dir.clone(), ip: "10.99.0.10".into() };
    assert_eq!(ssh.run_key("hostname")?.trim(), "vm-e2e");
    assert_eq!(ssh.run_password("Test-pw-123", "echo pw-ok")?.trim(), "pw-ok");

    // The guest's screen, forwarded out of the namespace for the webconsole.
    assert_eq!(vnc_banner(&c, &gid).await?, "RFB 003.008\n");

    // The disk of a running guest is not deleted.
    let e = c.call(reqwest::Method::POST, "/disks/s1/delete/disk-1", Some(json!({})), long).await.unwrap_err();
    assert!(e.to_string().contains("in use by running server"), "{e}");
    assert!(overlay.exists());

    // Hotplug a data disk into the running guest, then unplug it.
    c.call(
        reqwest::Method::POST,
        "/disks/s1/create/disk-2",
        Some(json!({"disk": {"size": 48, "format": "qcow2"}})),
        long,
    )
    .await?;
    let mut desc2 = desc.clone();
    desc2["disks"].as_array_mut().context("disks")?.push(json!({"index": 1, "disk_id": "disk-2", "size": 48,
        "format": "qcow2", "driver": "virtio", "storage_id": "s1"}));
    let t = Instant::now();
    c.call(reqwest::Method::POST, &format!("/servers/{gid}/sync"), Some(json!({"desc": desc2})), long).await?;
    // /proc/partitions counts 1 KiB blocks: 48 MiB = 49152.
    wait_guest(&ssh, "cat /proc/partitions", |o| o.contains(" 49152 "), Duration::from_secs(30)).await?;
    eprintln!("hot-plugged disk visible in the guest after {:?}", t.elapsed());
    let t = Instant::now();
    c.call(reqwest::Method::POST, &format!("/servers/{gid}/sync"), Some(json!({"desc": desc})), long).await?;
    wait_guest(&ssh, "cat /proc/partitions", |o| !o.contains(" 49152 "), Duration::from_secs(30)).await?;
    eprintln!("unplugged disk gone from the guest after {:?}", t.elapsed());
    c.call(reqwest::Method::POST, "/disks/s1/delete/disk-2", Some(json!({})), long).await?;

    // Hotplug a second NIC (its tap, lease and QEMU netdev), then unplug it.
    let mut desc3 = desc.clone();
    let tap2 = format!("vn{pid}b");
    desc3["nics"].as_array_mut().context("nics")?.push(json!({"index": 1, "mac": "00:22:aa:10:00:1a",
        "ip": "10.99.0.11", "masklen": 24, "gateway": "10.99.0.1", "dns": "", "bridge": "brtest0",
        "wire_id": "w1", "network_id": "n1", "vlan": 1, "ifname": tap2}));
    c.call(reqwest::Method::POST, &format!("/servers/{gid}/sync"), Some(json!({"desc": desc3})), long).await?;
    wait_guest(&ssh, "ls /sys/class/net", |o| o.contains("eth1"), Duration::from_secs(30)).await?;
    c.call(reqwest::Method::POST, &format!("/servers/{gid}/sync"), Some(json!({"desc": desc})), long).await?;
    wait_guest(&ssh, "ls /sys/class/net", |o| !o.contains("eth1"), Duration::from_secs(30)).await?;
    let gone = Command::new("ip").args(["-n", &netns, "link", "show", &tap2]).output()?;
    assert!(!gone.status.success(), "the unplugged NIC's tap is left");

    // Stop by ACPI power button: QEMU exits, status ready.
    let qemu_pid: i32 = std::fs::read_to_string(dir.join("servers").join(&gid).join("qemu.pid"))?.trim().parse()?;
    let t = Instant::now();
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/stop"), Some(json!({"timeout": 30})), long).await?;
    eprintln!("stop (ACPI) callback after {:?}", t.elapsed());
    assert_eq!(cb["status"], "ready", "{cb}");
    assert!(!host::guest::qemu_alive(qemu_pid, &gid), "QEMU {qemu_pid} still running");

    // Start again: a fresh boot reaches its ready line again.
    let t = Instant::now();
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/start"), Some(json!({"desc": desc})), long).await?;
    assert_eq!(cb["status"], "running", "{cb}");
    let (line, boot) = wait_ready(&serial, t, long).await?;
    eprintln!("second boot: ready line after {boot:?}");
    assert_eq!(line, "CLOUDPODS-READY hostname=vm-e2e ip=10.99.0.10");

    // Restart the agent: the running VM is re-adopted (pidfile + QMP), generation still grows.
    let before = c.call(reqwest::Method::GET, &format!("/servers/{gid}/status"), None, long).await?;
    built.agent.shutdown().await;
    drop(built);
    let (built, agent_url2) = start_agent(&dir, &netns).await?;
    let c = Client { agent: agent_url2, ..c };
    let after = c.call(reqwest::Method::GET, &format!("/servers/{gid}/status"), None, long).await?;
    assert_eq!(after["status"], "running", "{after}");
    assert!(after["generation"].as_u64() > before["generation"].as_u64(), "{before} -> {after}");
    let page = in_netns(&netns, &["curl", "-sS", "--max-time", "5", "http://10.99.0.10/"])?;
    assert!(page.contains("hostname=vm-e2e"), "{page}");
    assert_eq!(vnc_banner(&c, &gid).await?, "RFB 003.008\n", "VNC forwarded again after re-adoption");

    // QEMU killed behind the agent's back: the guest is reported crashed (no SHUTDOWN event).
    let qemu_pid: i32 = std::fs::read_to_string(dir.join("servers").join(&gid).join("qemu.pid"))?.trim().parse()?;
    // SAFETY: the QEMU this test started (its pidfile).
    unsafe { libc::kill(qemu_pid, libc::SIGKILL) };
    let t = Instant::now();
    loop {
        let st = c.call(reqwest::Method::GET, &format!("/servers/{gid}/status"), None, long).await?;
        if st["status"] == "crashed" {
            break;
        }
        ensure!(t.elapsed() < Duration::from_secs(10), "killed QEMU never reported crashed: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Delete: QEMU, tap, lease and directory gone; then the disk.
    let cb = c.call(reqwest::Method::POST, &format!("/servers/{gid}/delete"), Some(json!({})), long).await?;
    assert_eq!(cb["server_id"], gid.as_str());
    assert!(!host::guest::qemu_alive(qemu_pid, &gid));
    let tap = format!("vn{pid}");
    assert!(
        Command::new("ip").args(["-n", &netns, "link", "show", &tap]).output()?.status.code() != Some(0),
        "tap left"
    );
    assert!(built.agent.leases.is_empty(), "lease left");
    assert!(!dir.join("servers").join(&gid).exists());
    c.call(reqwest::Method::POST, "/disks/s1/delete/disk-1", Some(json!({})), long).await?;
    assert!(!overlay.exists(), "overlay left");
    // Unknown servers: a clear synchronous error, no callback.
    let r = c
        .http
        .post(format!("{}/servers/nope/start", c.agent))
        .header("X-Auth-Token", TOKEN)
        .header("X-Task-Id", "t-x")
        .header("X-Task-Notify-Url", format!("{fake}/tasks/t-x"))
        .json(&json!({"desc": desc}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 404);
    built.agent.shutdown().await;
    eprintln!("real VM lifecycle test took {:?}", t_all.elapsed());
    Ok(())
}

/// Polls a command in the guest until its output satisfies `ok`.
async fn wait_guest(ssh: &Ssh, cmd: &str, ok: impl Fn(&str) -> bool, within: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        let out = ssh.run_key(cmd);
        if out.as_deref().is_ok_and(&ok) {
            return Ok(());
        }
        ensure!(t.elapsed() < within, "guest: {cmd} never matched within {within:?}: {out:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// host-deployer's direct mode: no config drive; hostname, key and password written into the
/// root disk's filesystem (FUSE export + debugfs) before the first boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_deploy_without_config_drive() -> Result<()> {
    let image = prerequisites()?;
    let pid = std::process::id();
    let env = Cleanup::fresh("cphdir", "direct")?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());
    let (fake, cbs) = fake_services(std::fs::read(&image)?).await?;
    // What an agent killed in the middle of a direct deploy leaves: a daemon still exporting a
    // disk through FUSE into a guest directory. The next agent's start cleans it.
    let left = dir.join("servers/leftover");
    std::fs::create_dir_all(&left)?;
    sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(left.join("d.qcow2")).arg("8M"))?;
    std::fs::write(left.join("deploy-view"), b"")?;
    let mut qsd = Command::new("qemu-storage-daemon")
        .arg("--blockdev")
        .arg(format!("driver=file,filename={},node-name=f", left.join("d.qcow2").display()))
        .args(["--blockdev", "driver=qcow2,file=f,node-name=d", "--export"])
        .arg(format!("type=fuse,id=e,node-name=d,mountpoint={},writable=on", left.join("deploy-view").display()))
        .spawn()?;
    let mounted = || std::fs::read_to_string("/proc/self/mounts").unwrap_or_default().contains("leftover/deploy-view");
    let t = Instant::now();
    while !mounted() {
        ensure!(t.elapsed() < Duration::from_secs(10), "the leftover export never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut cfg = test_config(&dir, &netns);
    cfg.deployer = "direct".into();
    let (built, url) = start_agent_with(cfg, std::sync::Arc::new(Verifier), std::sync::Arc::new(AgentToken)).await?;
    let t = Instant::now();
    while qsd.try_wait()?.is_none() {
        ensure!(t.elapsed() < Duration::from_secs(10), "the leftover qemu-storage-daemon was not stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!mounted() && !left.join("deploy-view").exists(), "leftover export not cleaned");
    let c =
        Client { http: reqwest::Client::new(), agent: url, fake: fake.clone(), cbs, n: 0.into(), token: TOKEN.into() };
    let long = Duration::from_secs(90);
    let post = reqwest::Method::POST;
    let src = format!("{fake}/image");
    c.call(
        post.clone(),
        "/disks/image_cache",
        Some(json!({"disk": {"image_id": "img", "storagecache_id": "sc", "src_url": src}})),
        long,
    )
    .await?;
    c.call(
        post.clone(),
        "/disks/s1/create/dd-1",
        Some(json!({"disk": {"size": 128, "format": "qcow2", "image_id": "img"}})),
        long,
    )
    .await?;
    let key = dir.join("id_ed25519");
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key))?;
    let gid = format!("d{pid}");
    let desc = json!({
        "id": gid, "name": "vm-direct", "uuid": gid, "hostname": "vm-direct", "vcpu_count": 1, "vmem_size": 256,
        "disks": [{"index": 0, "disk_id": "dd-1", "size": 128, "format": "qcow2", "driver": "virtio",
                   "image_id": "img", "storage_id": "s1"}],
        "nics": [{"index": 0, "mac": "00:22:aa:10:00:0b", "ip": "10.99.0.10", "masklen": 24, "gateway": "10.99.0.1",
                  "dns": "", "bridge": "brtest1", "wire_id": "w1", "network_id": "n1", "vlan": 1, "ifname": ""}],
        "pubkey": std::fs::read_to_string(key.with_extension("pub"))?.trim(),
        "password": "Direct-pw-1",
    });
    let t = Instant::now();
    let cb = c
        .call(
            post.clone(),
            &format!("/servers/{gid}/create"),
            Some(json!({"desc": desc, "action": "create", "on_finish": "none"})),
            long,
        )
        .await?;
    eprintln!("direct deploy + start callback after {:?}", t.elapsed());
    assert_eq!((cb["status"].as_str(), cb["os"].as_str()), (Some("running"), Some("Linux")), "{cb}");
    assert!(!dir.join("servers").join(&gid).join("config-drive.iso").exists(), "no config drive in direct mode");
    let (line, boot) = wait_ready(&dir.join("servers").join(&gid).join("serial.log"), t, long).await?;
    eprintln!("direct deploy: ready line after {boot:?}: {line}");
    assert_eq!(line, "CLOUDPODS-READY hostname=vm-direct ip=10.99.0.10");
    let ssh = Ssh { netns: netns.clone(), key, dir: dir.clone(), ip: "10.99.0.10".into() };
    assert_eq!(ssh.run_key("hostname")?.trim(), "vm-direct");
    assert_eq!(ssh.run_password("Direct-pw-1", "echo pw-ok")?.trim(), "pw-ok");
    c.call(post.clone(), &format!("/servers/{gid}/delete"), Some(json!({})), long).await?;
    c.call(post, "/disks/s1/delete/dd-1", Some(json!({})), long).await?;
    built.agent.shutdown().await;
    Ok(())
}

/// Asks the agent where the guest's VNC is and reads the server's RFB banner from there.
async fn vnc_banner(c: &Client, gid: &str) -> Result<String> {
    use tokio::io::AsyncReadExt;
    let r = c.http.get(format!("{}/servers/{gid}/vnc", c.agent)).header("X-Auth-Token", &c.token).send().await?;
    let v: Value = r.json().await?;
    let port = v["port"].as_u64().context("vnc port")? as u16;
    assert_eq!(v["protocol"], "vnc", "{v}");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut banner = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut banner)).await??;
    Ok(String::from_utf8_lossy(&banner).to_string())
}

/// QEMU missing: the start fails with a clear reason in its callback, the guest stays `ready`,
/// and a delete still leaves no tap or lease behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_missing_is_a_clear_failure() -> Result<()> {
    prerequisites()?;
    let env = Cleanup::fresh("cphnoq", "noqemu")?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());
    let (fake, cbs) = fake_services(vec![]).await?;
    let mut cfg = test_config(&dir, &netns);
    cfg.qemu_binary = "qemu-system-nonexistent".into();
    let (built, url) = start_agent_with(cfg, std::sync::Arc::new(Verifier), std::sync::Arc::new(AgentToken)).await?;
    let c = Client { http: reqwest::Client::new(), agent: url, fake, cbs, n: 0.into(), token: TOKEN.into() };
    let long = Duration::from_secs(30);
    let desc = json!({"id": "nq1", "name": "nq1", "uuid": "nq1", "vcpu_count": 1, "vmem_size": 128,
        "nics": [{"index": 0, "mac": "00:22:aa:10:00:0c", "ip": "10.97.0.10", "masklen": 24, "gateway": "10.97.0.1",
                  "dns": "", "bridge": "brnoq", "wire_id": "w", "network_id": "n", "vlan": 1, "ifname": "vnnoq0"}]});
    c.call(reqwest::Method::POST, "/servers/nq1/create", Some(json!({"desc": desc, "action": "create"})), long).await?;
    let e = c.call(reqwest::Method::POST, "/servers/nq1/start", Some(json!({"desc": desc})), long).await.unwrap_err();
    assert!(e.to_string().contains("cannot run qemu-system-nonexistent: not found"), "{e}");
    let st = c.call(reqwest::Method::GET, "/servers/nq1/status", None, long).await?;
    assert_eq!(st["status"], "ready", "{st}");
    c.call(reqwest::Method::POST, "/servers/nq1/delete", Some(json!({})), long).await?;
    let taps = sh(Command::new("ip").args(["-n", &netns, "-o", "link", "show", "type", "tun"]))?;
    assert!(taps.trim().is_empty(), "taps left: {taps}");
    assert!(built.agent.leases.is_empty());
    built.agent.shutdown().await;
    Ok(())
}

/// Unmounts a test's tmpfs when dropped (before its directory is removed).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A host whose disk is full: the image download fails with the reason, leaves no partial
/// file, and a disk from that image is refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_failure() -> Result<()> {
    prerequisites()?;
    let env = Cleanup::fresh("cphfull", "full")?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());
    sh(Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "cphfull"]).arg(&dir))?;
    let _unmount = Unmount(dir.clone());
    // 16 MiB of image for 8 MiB of disk.
    let image: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let (fake, cbs) = fake_services(image).await?;
    let (built, url) = start_agent(&dir, &netns).await?;
    let c =
        Client { http: reqwest::Client::new(), agent: url, fake: fake.clone(), cbs, n: 0.into(), token: TOKEN.into() };
    let long = Duration::from_secs(30);
    let body = json!({"disk": {"image_id": "bigimg", "storagecache_id": "sc", "src_url": format!("{fake}/image")}});
    let e = c.call(reqwest::Method::POST, "/disks/image_cache", Some(body), long).await.unwrap_err();
    assert!(e.to_string().contains("No space left on device"), "{e}");
    eprintln!("image cache on a full disk: {e}");
    let left: Vec<_> = std::fs::read_dir(dir.join("image_cache"))?.flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "partial download left: {left:?}");
    let body = json!({"disk": {"size": 64, "format": "qcow2", "image_id": "bigimg"}});
    let e = c.call(reqwest::Method::POST, "/disks/s1/create/d-full", Some(body), long).await.unwrap_err();
    assert!(e.to_string().contains("bigimg"), "{e}");
    eprintln!("disk from the uncached image: {e}");
    assert!(!dir.join("disks/d-full").exists());
    built.agent.shutdown().await;
    Ok(())
}
