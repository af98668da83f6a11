//! `cargo xtask bench glance`: image upload throughput and memory, on a real `cloudpods aio`
//! started as a child process.
//!
//! ```text
//! write <tmp>/image.raw (1 GiB of pseudo-random bytes, --size-mib), sync
//! dd if=<tmp>/image.raw of=<tmp>/dd.out bs=4M conv=fdatasync    the plain copy, same disk
//! cloudpods aio --data-dir <tmp>/data --port-offset 16000       (images in <tmp>/data/images)
//!   wait for openrc, GET /v3 and GET glance /version; idle 2 s; RSS idle = VmRSS
//!   sysadmin token; POST /v1/images, Content-Length, raw body copied from the file to the
//!   socket (no buffering in the client either); VmRSS sampled every 50 ms meanwhile
//!   throughput = bytes / (first byte sent .. answer received, which includes glance's fsync)
//!   then the pipeline (qemu-img info/check, convert to qcow2) until the image is active
//! kill the child, remove <tmp> (unless --keep)
//! ```
//! Targets (image issue): upload throughput >= 80% of dd's; server RSS < 64 MB during the
//! upload whatever the size. A missed target prints `MISSED`; the exit status stays 0.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Added to every default port: keystone 30500 -> 46500, glance 30292 -> 46292.
const PORT_OFFSET: u16 = 16000;
const KEYSTONE: u16 = 30500 + PORT_OFFSET;
const GLANCE: u16 = 30292 + PORT_OFFSET;

/// One HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads an HTTP/1.1 answer to the end of the connection (`Connection: close`).
async fn read_answer(s: &mut TcpStream) -> Result<Answer> {
    let mut raw = vec![];
    s.read_to_end(&mut raw).await?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect::<Vec<_>>();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok(Answer { status, headers, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[(eol + 4 + n).min(b.len())..];
    }
    out
}

/// A small request on its own connection.
async fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Result<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await?;
    read_answer(&mut s).await
}

/// Resident memory of `pid` in MB: `(VmRSS, VmHWM)`.
fn rss(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .with_context(|| format!("no {key} in /proc/{pid}/status"))
    };
    Ok((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
}

/// Writes `mib` MiB of pseudo-random (incompressible, non-sparse) bytes and syncs them.
fn write_test_file(path: &Path, mib: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 4 << 20];
    for _ in 0..mib.div_ceil(4) {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf)?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// `dd ... conv=fdatasync` of `src` next to it; seconds.
fn dd(src: &Path, dst: &Path) -> Result<f64> {
    let t0 = Instant::now();
    let out = std::process::Command::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", dst.display()))
        .args(["bs=4M", "conv=fdatasync"])
        .output()
        .context("cannot run dd")?;
    let secs = t0.elapsed().as_secs_f64();
    ensure!(out.status.success(), "dd failed: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(dst);
    Ok(secs)
}

fn admin_password(openrc: &Path) -> Result<String> {
    let text = std::fs::read_to_string(openrc)?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("export OS_PASSWORD="))
        .map(|v| v.trim_matches('\'').trim_matches('"').to_string())
        .context("no OS_PASSWORD in the openrc")
}

struct Child {
    child: tokio::process::Child,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Runs the glance bench with the server binary `bin`.
pub async fn run(bin: &Path, size_mib: u64, keep: bool) -> Result<()> {
    ensure!(size_mib > 0, "--size-mib must be positive");
    let dir = std::env::temp_dir().join(format!("cloudpods-bench-glance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(bin, &dir, size_mib).await;
    if keep {
        eprintln!("kept {} (aio.log, data/)", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(e) = &result {
        let log = std::fs::read_to_string(dir.join("aio.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        eprintln!("--- last lines of the server log ---");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        eprintln!("{e:#}");
    }
    result
}

async fn measure(bin: &Path, dir: &Path, size_mib: u64) -> Result<()> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg = loadavg.split_whitespace().next().unwrap_or("?").to_string();
    let file = dir.join("image.raw");
    let size = size_mib << 20;
    eprintln!("writing a {size_mib} MiB test file in {}...", dir.display());
    write_test_file(&file, size_mib)?;
    eprintln!("dd bs=4M conv=fdatasync of the same file on the same disk...");
    let dd_secs = dd(&file, &dir.join("dd.out"))?;

    let log = std::fs::File::create(dir.join("aio.log"))?;
    let data = dir.join("data");
    let child = tokio::process::Command::new(bin)
        .args(["--log", "warn", "aio", "--listen-address", "127.0.0.1"])
        .args(["--port-offset", &PORT_OFFSET.to_string()])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id().context("the child has no pid")?;
    let mut server = Child { child };
    eprintln!("started cloudpods aio (pid {pid})");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = server.child.try_wait()? {
            bail!("cloudpods aio exited ({st}) during start-up");
        }
        let ready = data.join("openrc").exists()
            && call(KEYSTONE, "GET", "/v3", &[], None).await.is_ok_and(|a| a.status == 200)
            && call(GLANCE, "GET", "/version", &[], None).await.is_ok_and(|a| a.status == 200);
        if ready {
            break;
        }
        ensure!(Instant::now() < deadline, "cloudpods aio not ready after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, _) = rss(pid)?;
    let password = admin_password(&data.join("openrc"))?;
    let auth = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "sysadmin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "system", "domain": {"id": "default"}}},
    }});
    let a = call(KEYSTONE, "POST", "/v3/auth/tokens", &[], Some(&auth)).await?;
    ensure!(a.status == 201, "login: {} {}", a.status, String::from_utf8_lossy(&a.body));
    let token = a.header("x-subject-token").context("no X-Subject-Token")?.to_string();

    // The upload, with RSS sampled every 50 ms.
    eprintln!("uploading {size_mib} MiB through POST /v1/images...");
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((mb, _)) = rss(pid) {
                    peak.fetch_max((mb * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", GLANCE)).await?;
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nHost: 127.0.0.1:{GLANCE}\r\nConnection: close\r\nX-Auth-Token: {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {size}\r\nX-Image-Meta-Name: bench\r\n\
         X-Image-Meta-Disk_format: raw\r\nX-Image-Meta-Protected: false\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut f = tokio::io::BufReader::with_capacity(1 << 20, tokio::fs::File::open(&file).await?);
    let sent = tokio::io::copy_buf(&mut f, &mut s).await?;
    let answer = read_answer(&mut s).await?;
    let upload_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let (_, hwm) = rss(pid)?;
    let rss_peak = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    ensure!(sent == size, "sent {sent} of {size} bytes");
    ensure!(answer.status == 200, "upload: {} {}", answer.status, String::from_utf8_lossy(&answer.body));
    let img = answer.json()["image"].clone();
    let id = img["id"].as_str().context("no image id")?.to_string();

    // The pipeline (probe, convert to qcow2), for information.
    eprintln!("waiting for the pipeline (qemu-img info/check, convert to qcow2)...");
    let t1 = Instant::now();
    let status = loop {
        let a = call(GLANCE, "GET", &format!("/v1/images/{id}"), &[("X-Auth-Token", &token)], None).await?;
        let st = a.json()["image"]["status"].as_str().unwrap_or_default().to_string();
        if st == "active" || st == "save_fail" || t1.elapsed() > Duration::from_secs(600) {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pipeline_secs = t1.elapsed().as_secs_f64();
    let (rss_after, _) = rss(pid)?;
    drop(server);

    let mibs = |secs: f64| size_mib as f64 / secs;
    let ratio = dd_secs / upload_secs;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let verdict = |ok: bool| if ok { "OK" } else { "MISSED" };
    println!("glance bench ({cpus} cpus, {size_mib} MiB file, load average {loadavg} at start)");
    println!("  dd bs=4M conv=fdatasync        {size_mib} MiB in {dd_secs:6.2} s  {:7.1} MiB/s", mibs(dd_secs));
    println!(
        "  HTTP upload (POST /v1/images)  {size_mib} MiB in {upload_secs:6.2} s  {:7.1} MiB/s  = {:.0}% of dd  (target >= 80%)  {}",
        mibs(upload_secs),
        ratio * 100.0,
        verdict(ratio >= 0.8)
    );
    println!(
        "  server RSS: idle {rss_idle:.1} MB, peak during the upload {rss_peak:.1} MB (VmRSS every 50 ms; VmHWM {hwm:.1} MB)  (target < 64 MB)  {}",
        verdict(rss_peak < 64.0)
    );
    println!(
        "  pipeline after the upload: {status} in {pipeline_secs:.1} s (probe + convert {size_mib} MiB raw to qcow2); RSS then {rss_after:.1} MB"
    );
    Ok(())
}

/// The bench's own arguments, beside `cargo xtask bench`'s.
#[derive(clap::Args, Clone, Debug)]
pub struct GlanceArgs {
    /// Size of the uploaded file, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
}
