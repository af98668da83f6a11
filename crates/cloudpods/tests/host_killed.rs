//! A real `cloudpods host` (this package's binary, a child process) SIGKILLed in the middle of
//! a server create driven by an in-process cloud (keystone, glance, region, scheduler from
//! test-harness, no in-process agent). The agent's QEMU is a wrapper that marks the moment
//! the agent runs it, sleeps, then execs the real QEMU, so the kill lands while the create's
//! start is in flight. Two ways on from the kill:
//!
//! - the agent stays dead until the host goes offline (3 s): the server ends `deploy_fail`
//!   ("host X went offline" in its events); the QEMU the wrapper then starts is adopted by the
//!   restarted agent (no second one), which finishes the interrupted start; syncstatus gives
//!   `running`;
//! - the agent is restarted at once (the host never goes offline): the server still ends
//!   `deploy_fail` at once ("the agent of host X restarted"), not after the task's hour; the
//!   wrapper's QEMU comes up after the new agent looked for guests to adopt, and is adopted
//!   when it appears (`running`).
//!
//! Either way a delete then leaves no QEMU, tap, lease, overlay or guest directory.
//!
//! It lives here, not in the host crate's tests, because only this package's tests get the
//! real binary (`CARGO_BIN_EXE_cloudpods`). Root is required (netns, bridges, taps).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use test_harness::TestCloud;
use test_harness::hostenv::{Cleanup, prerequisites, processes_naming, sh};

/// Seconds the wrapper sleeps before it execs QEMU.
const WRAPPER_SLEEP: u64 = 3;

/// The agent child: SIGKILLed (and reaped) when dropped.
struct Agent {
    child: Child,
}

impl Agent {
    fn spawn(sets: &[String], log: &Path) -> Result<Agent> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_cloudpods"))
            .arg("host")
            .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("running cloudpods host")?;
        Ok(Agent { child })
    }

    fn kill(&mut self) -> Result<()> {
        // std's Child::kill is SIGKILL on Unix.
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// The QEMU processes (not the wrapper) whose command line names `dir`.
fn qemus(dir: &Path) -> Vec<i32> {
    processes_naming(dir)
        .into_iter()
        .filter(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            alive(*pid) && c.starts_with(b"qemu-system")
        })
        .collect()
}

async fn server(tc: &TestCloud, admin: &str, id: &str) -> Result<Value> {
    let r = tc.call(Method::GET, &format!("{}/servers/{id}", tc.region_url()), Some(admin), None).await?;
    ensure!(r.status.is_success(), "GET server {id}: {} {}", r.status, r.body);
    Ok(r.body["server"].clone())
}

/// Polls the server until `done` accepts its status; returns the status and the time taken.
async fn wait_status(
    tc: &TestCloud,
    admin: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<(String, Duration)> {
    let t = Instant::now();
    loop {
        let s = server(tc, admin, id).await?;
        let st = s["status"].as_str().unwrap_or_default().to_string();
        if done(&st) {
            return Ok((st, t.elapsed()));
        }
        ensure!(t.elapsed() < within, "server {id} still {st} after {within:?}: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn host_status(tc: &TestCloud, admin: &str, host: &str) -> Result<String> {
    let r = tc.call(Method::GET, &format!("{}/hosts/{host}", tc.region_url()), Some(admin), None).await?;
    ensure!(r.status.is_success(), "GET host {host}: {} {}", r.status, r.body);
    Ok(r.body["host"]["host_status"].as_str().unwrap_or_default().to_string())
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Restart {
    /// After the host went offline and the wrapper's QEMU is up.
    AfterOffline,
    /// At once, while the wrapper still sleeps (before the host could go offline).
    AtOnce,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_create_restarted_after_offline() -> Result<()> {
    killed_mid_create(Restart::AfterOffline).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_create_restarted_at_once() -> Result<()> {
    killed_mid_create(Restart::AtOnce).await
}

async fn killed_mid_create(mode: Restart) -> Result<()> {
    let image = prerequisites()?;
    let mode_tag = if mode == Restart::AtOnce { "now" } else { "off" };
    let tag = format!("{}-{mode_tag}", std::process::id());
    // Kills the agent, the wrapper and QEMU (all name `dir`), deletes the netns and `dir`.
    let env = Cleanup::fresh(&format!("cphkill-{mode_tag}"), &format!("kill-{mode_tag}"))?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());
    let data = dir.join("data");
    // Restarted at once, the host must not go offline meanwhile: offline only after 60 s.
    let offline = if mode == Restart::AtOnce { 60 } else { 3 };
    let tc = TestCloud::start_with(&[&format!("region.host_offline_seconds={offline}")]).await?;
    let r = run(&tc, mode, &tag, &image, &dir, &data, &netns).await;
    if r.is_err() {
        for log in ["agent-1.log", "agent-2.log"] {
            let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- {tag} {log} (last lines) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
    let r2 = tc.stop().await;
    r.and(r2)
}

async fn run(
    tc: &TestCloud,
    mode: Restart,
    tag: &str,
    image: &Path,
    dir: &Path,
    data: &Path,
    netns: &str,
) -> Result<()> {
    let admin = tc.admin_token().await?;
    let hostname = format!("kill-{tag}");

    // The slow QEMU: marks that the agent ran it (with its pid), sleeps, then becomes QEMU.
    let marker = dir.join("qemu-wrapper.started");
    let wrapper = dir.join("qemu-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ > '{m}.tmp' && mv '{m}.tmp' '{m}'\nsleep {WRAPPER_SLEEP}\nexec qemu-system-x86_64 \"$@\"\n",
            m = marker.display()
        ),
    )?;
    sh(Command::new("chmod").arg("755").arg(&wrapper))?;

    let port = free_port()?;
    let sets: Vec<String> = [
        format!("auth_url={}", tc.auth_url),
        "admin_user=sysadmin".into(),
        format!("admin_password={}", tc.admin_password),
        format!("data_dir={}", data.display()),
        "listen_address=127.0.0.1".into(),
        format!("port={port}"),
        format!("hostname={hostname}"),
        format!("netns={netns}"),
        format!("qemu_binary={}", wrapper.display()),
        "vnc_listen=127.0.0.1".into(),
        format!("region_url={}", tc.region_url()),
        "ping_interval_seconds=1".into(),
        "wires=bcast0=br0".into(),
    ]
    .into();
    let mut agent = Agent::spawn(&sets, &dir.join("agent-1.log"))?;
    test_harness::wait_for(Duration::from_secs(30), || async {
        host_status(tc, &admin, &hostname).await.is_ok_and(|s| s == "online")
    })
    .await
    .context("the agent never registered")?;

    let img = tc.upload_image(&admin, "testimg", "qcow2", std::fs::read(image)?).await?;

    // Create with auto start; SIGKILL the agent while its QEMU (the wrapper) is starting.
    let t0 = Instant::now();
    let body = json!({"server": {"name": "vm-kill", "vcpu_count": 1, "vmem_size": 256, "disks": [format!("{img}:256m")],
        "nets": [{"network": "default"}], "password": "Kill-passw0rd", "auto_start": true}});
    let r = tc.call(Method::POST, &format!("{}/servers", tc.region_url()), Some(&admin), Some(body)).await?;
    ensure!(r.status.is_success(), "server-create: {} {}", r.status, r.body);
    let id = r.body["server"]["id"].as_str().context("server id")?.to_string();
    test_harness::wait_for(Duration::from_secs(60), || async { marker.exists() })
        .await
        .context("the agent never ran QEMU")?;
    agent.kill()?;
    let t_kill = t0.elapsed();
    let at_kill = server(tc, &admin, &id).await?["status"].as_str().unwrap_or_default().to_string();
    let wrapper_pid: i32 = std::fs::read_to_string(&marker)?.trim().parse()?;
    eprintln!("agent SIGKILLed {t_kill:?} after POST /servers, server {at_kill}, wrapper pid {wrapper_pid}");

    let pidfile = data.join("servers").join(&id).join("qemu.pid");
    let qemu_pid = match mode {
        Restart::AfterOffline => {
            // The region notices (host offline after 3 s) and ends the create: never stuck.
            let (failed, took) =
                wait_status(tc, &admin, &id, Duration::from_secs(30), |s| s.ends_with("_fail") || s == "unknown")
                    .await
                    .context("the server stayed in a transitional status after the agent was killed")?;
            eprintln!("server {failed} {took:?} after the kill; host {}", host_status(tc, &admin, &hostname).await?);
            ensure!(failed == "deploy_fail", "the create ended {failed}");
            expect_event(tc, &admin, &id, &failed, &format!("host {hostname} went offline")).await?;

            // The wrapper goes on to start QEMU (daemonized, paused until the agent's `cont`).
            test_harness::wait_for(Duration::from_secs(30), || async { !alive(wrapper_pid) && qemus(dir).len() == 1 })
                .await
                .with_context(|| format!("the wrapper's QEMU never came up alone: {:?}", qemus(dir)))?;
            let qemu_pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
            ensure!(qemus(dir) == vec![qemu_pid], "QEMUs {:?}, pidfile {qemu_pid}", qemus(dir));

            // The restarted agent adopts that QEMU, and the host is back online.
            let t_restart = Instant::now();
            let agent2 = Agent::spawn(&sets, &dir.join("agent-2.log"))?;
            test_harness::wait_for(Duration::from_secs(30), || async {
                host_status(tc, &admin, &hostname).await.is_ok_and(|s| s == "online")
            })
            .await
            .context("the restarted agent's host never came back online")?;
            eprintln!("host online again {:?} after the restart", t_restart.elapsed());
            let log = dir.join("agent-2.log");
            test_harness::wait_for(Duration::from_secs(30), || async {
                std::fs::read_to_string(&log).is_ok_and(|l| l.contains("re-adopted guest"))
            })
            .await
            .context("the restarted agent did not re-adopt the guest")?;
            let st = server(tc, &admin, &id).await?["status"].as_str().unwrap_or_default().to_string();
            eprintln!("after the agent's restart the server is {st}");
            agent = agent2;
            qemu_pid
        }
        Restart::AtOnce => {
            let t_restart = Instant::now();
            agent = Agent::spawn(&sets, &dir.join("agent-2.log"))?;
            // The restarted agent tells the region; the create fails at once, with the reason.
            let (failed, took) = wait_status(tc, &admin, &id, Duration::from_secs(20), |s| {
                !matches!(s, "init" | "schedule" | "network" | "disk" | "deploying")
            })
            .await
            .context("the server stayed in a transitional status after the agent was killed and restarted")?;
            let host = host_status(tc, &admin, &hostname).await?;
            eprintln!(
                "server {failed} {took:?} after the restart ({:?} after the kill); host {host}",
                t_restart.elapsed()
            );
            ensure!(host == "online", "the host went {host}");
            let reason = format!("the agent of host {hostname} restarted");
            expect_event(tc, &admin, &id, "deploy_fail", &reason).await?;
            // The wrapper, whose agent is gone, still starts its QEMU, after the new agent
            // looked for guests to adopt: the new agent notices it and adopts it.
            test_harness::wait_for(Duration::from_secs(30), || async { !alive(wrapper_pid) && qemus(dir).len() == 1 })
                .await
                .with_context(|| format!("the wrapper's QEMU never came up alone: {:?}", qemus(dir)))?;
            let qemu_pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
            let log = dir.join("agent-2.log");
            test_harness::wait_for(Duration::from_secs(30), || async {
                std::fs::read_to_string(&log).is_ok_and(|l| l.contains("a QEMU appeared"))
            })
            .await
            .context("the restarted agent did not adopt the QEMU that came up after it started")?;
            let (st, took) = wait_status(tc, &admin, &id, Duration::from_secs(10), |s| s == "running").await?;
            eprintln!(
                "the late QEMU adopted: server {st} {:?} after the restart (waited {took:?})",
                t_restart.elapsed()
            );
            qemu_pid
        }
    };

    // syncstatus gives the real status: the adopted QEMU runs.
    let url = format!("{}/servers/{id}/syncstatus", tc.region_url());
    let r = tc.call(Method::POST, &url, Some(&admin), Some(json!({"server": {}}))).await?;
    ensure!(r.status.is_success(), "syncstatus: {} {}", r.status, r.body);
    let (synced, took) = wait_status(tc, &admin, &id, Duration::from_secs(30), |s| s != "sync_status").await?;
    eprintln!("syncstatus -> {synced} in {took:?}");
    ensure!(synced == "running", "syncstatus gave {synced}, not running");
    ensure!(qemus(dir) == vec![qemu_pid], "not the same single QEMU after adoption: {:?} vs {qemu_pid}", qemus(dir));
    let agent_url = format!("http://127.0.0.1:{port}");
    let hs = tc.call(Method::GET, &format!("{agent_url}/host/status"), Some(&admin), None).await?;
    eprintln!("agent /host/status before delete: {}", hs.body);

    // Delete for good: nothing left behind.
    let url = format!("{}/servers/{id}?override_pending_delete=true", tc.region_url());
    let r = tc.call(Method::DELETE, &url, Some(&admin), None).await?;
    ensure!(r.status.is_success(), "delete: {} {}", r.status, r.body);
    let t = Instant::now();
    test_harness::wait_for(Duration::from_secs(60), || async {
        tc.call(Method::GET, &format!("{}/servers/{id}", tc.region_url()), Some(&admin), None)
            .await
            .is_ok_and(|r| r.status.as_u16() == 404)
    })
    .await
    .context("the server is still there after the delete")?;
    eprintln!("deleted (404) in {:?}", t.elapsed());
    ensure!(!alive(qemu_pid), "QEMU {qemu_pid} still runs after the delete");
    ensure!(qemus(dir).is_empty(), "QEMUs left: {:?}", qemus(dir));
    let taps = sh(Command::new("ip").args(["-n", netns, "-o", "link", "show", "type", "tun"]))?;
    ensure!(taps.trim().is_empty(), "taps left in {netns}: {taps}");
    let disks: Vec<PathBuf> = std::fs::read_dir(data.join("disks"))?.flatten().map(|e| e.path()).collect();
    ensure!(disks.is_empty(), "overlays left: {disks:?}");
    ensure!(!data.join("servers").join(&id).exists(), "the guest's directory is left");
    let hs = tc.call(Method::GET, &format!("{agent_url}/host/status"), Some(&admin), None).await?;
    ensure!(hs.status.is_success(), "agent /host/status: {} {}", hs.status, hs.body);
    ensure!(hs.body["leases"] == 0, "leases left: {}", hs.body);
    drop(agent);
    Ok(())
}

/// The server's events have a `status` event whose notes give `reason`.
async fn expect_event(tc: &TestCloud, admin: &str, id: &str, status: &str, reason: &str) -> Result<()> {
    let ev = tc.call(Method::GET, &format!("{}/events?obj_id={id}", tc.region_url()), Some(admin), None).await?;
    let found = ev.body["events"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["action"] == status && e.to_string().contains(reason)));
    ensure!(found, "no {status} event with `{reason}`: {}", ev.body);
    eprintln!("events: {status} with `{reason}`");
    Ok(())
}
