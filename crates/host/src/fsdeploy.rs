//! host-deployer, direct: writes the guest's settings into its root disk before first boot,
//! for images without cloud-init. No NBD module and no mounts are needed:
//!
//! ```text
//!  disk 0 (qcow2 overlay) ── qemu-storage-daemon --export type=fuse ──> a raw view (a file)
//!    partitions from the MBR (or GPT) ──> each ext2/3/4 partition (superblock magic)
//!      label `cpdata` (the cloudpods test image): /cloudpods/{hostname,password,authorized_keys}
//!      else one with /etc/os-release: /etc/hostname, /root/.ssh/authorized_keys,
//!           root's hash in /etc/shadow (openssl passwd -6), the network configuration of
//!           its family ([`crate::netconf`]); the OS from PRETTY_NAME
//!    every write goes through `debugfs -w '<file>?offset=<bytes>'`
//! ```
//! The export is torn down (daemon killed) whatever happens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apis::compute::GuestJsonDesc;
use async_trait::async_trait;

use crate::deploy::{DeployInfo, Deployer, guest_hostname};

/// A partition: byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub len: u64,
}

/// Partitions of a disk from its first sectors (MBR, or GPT behind a protective MBR).
pub fn partitions(head: &[u8]) -> Vec<Part> {
    if head.len() < 512 || head[510] != 0x55 || head[511] != 0xAA {
        return vec![];
    }
    let le32 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let mbr: Vec<(u8, u64, u64)> =
        (0..4).map(|i| &head[446 + 16 * i..462 + 16 * i]).map(|e| (e[4], le32(&e[8..12]), le32(&e[12..16]))).collect();
    if mbr.iter().any(|(t, _, _)| *t == 0xEE) && head.len() >= 1024 + 128 && &head[512..520] == b"EFI PART" {
        let (start, count, size) = (le64(&head[512 + 72..]), le32(&head[512 + 80..]), le32(&head[512 + 84..]));
        let mut out = vec![];
        for i in 0..count.min(128) {
            let o = (start * 512 + i * size) as usize;
            if o + 48 > head.len() {
                break;
            }
            let e = &head[o..];
            if e[..16].iter().all(|b| *b == 0) {
                continue;
            }
            let (first, last) = (le64(&e[32..]), le64(&e[40..]));
            out.push(Part { offset: first * 512, len: (last + 1 - first) * 512 });
        }
        return out;
    }
    mbr.into_iter()
        .filter(|(t, start, n)| *t != 0 && *t != 0x05 && *t != 0x0f && *start > 0 && *n > 0)
        .map(|(_, start, n)| Part { offset: start * 512, len: n * 512 })
        .collect()
}

/// The label of an ext2/3/4 filesystem from its superblock (1024 bytes in), or None.
pub fn ext_label(sb_area: &[u8]) -> Option<String> {
    let sb = sb_area.get(1024..1024 + 136)?;
    if sb[56..58] != [0x53, 0xEF] {
        return None;
    }
    let label = &sb[120..136];
    let end = label.iter().position(|b| *b == 0).unwrap_or(16);
    Some(String::from_utf8_lossy(&label[..end]).to_string())
}

/// `PRETTY_NAME` (or `NAME`) of an os-release text.
pub fn os_name(os_release: &str) -> Option<String> {
    let get = |k: &str| {
        os_release.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=').map(|v| v.trim_matches('"').to_string()))
    };
    get("PRETTY_NAME").or_else(|| get("NAME")).filter(|s| !s.is_empty())
}

async fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(cmd).args(args).output().await.map_err(|e| format!("running {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// One ext filesystem inside the exported raw view, driven by debugfs.
struct ExtFs {
    dev: String,
    tmp: PathBuf,
}

impl ExtFs {
    async fn cat(&self, path: &str) -> Option<String> {
        let out = run("debugfs", &["-R", &format!("cat {path}"), &self.dev]).await.ok()?;
        (!out.is_empty()).then_some(out)
    }

    /// Writes `content` at `path` (replacing it), creating the directories above it first
    /// (debugfs makes one level at a time; one that exists is left as it is).
    async fn put(&self, path: &str, content: &str, mode: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let local = self.tmp.join("put");
        std::fs::write(&local, content).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
        let mut cmds: Vec<String> =
            path.match_indices('/').skip(1).map(|(i, _)| format!("mkdir {}", &path[..i])).collect();
        cmds.push(format!("rm {path}"));
        cmds.push(format!("write {} {path}", local.display()));
        let script = self.tmp.join("cmds");
        std::fs::write(&script, cmds.join("\n") + "\n").map_err(|e| e.to_string())?;
        let s = script.display().to_string();
        run("debugfs", &["-w", "-f", &s, &self.dev]).await?;
        // debugfs reports failures on stderr with status 0: check the result.
        match self.cat(path).await {
            Some(c) if c == content => Ok(()),
            _ => Err(format!("writing {path} into the guest filesystem failed")),
        }
    }
}

/// Customises the root disk's filesystem directly.
pub struct DirectDeployer {
    pub disks_dir: PathBuf,
}

#[async_trait]
impl Deployer for DirectDeployer {
    async fn deploy(&self, desc: &GuestJsonDesc, dir: &Path) -> Result<DeployInfo, String> {
        let mut disks = desc.disks.clone();
        disks.sort_by_key(|d| d.index);
        let Some(d0) = disks.first() else { return Ok(DeployInfo::default()) };
        crate::storage::check_id("disk", &d0.disk_id).map_err(|e| e.to_string())?;
        let disk = self.disks_dir.join(&d0.disk_id);
        if !disk.exists() {
            return Err(format!("disk {} is not on this host", d0.disk_id));
        }
        let view = dir.join("deploy-view");
        std::fs::write(&view, b"").map_err(|e| format!("creating {}: {e}", view.display()))?;
        let fmt = if d0.format == "raw" { "raw" } else { "qcow2" };
        let mut qsd = tokio::process::Command::new("qemu-storage-daemon")
            .arg("--blockdev")
            .arg(format!("driver=file,filename={},node-name=f0", disk.display()))
            .arg("--blockdev")
            .arg(format!("driver={fmt},file=f0,node-name=d0"))
            .arg("--export")
            .arg(format!("type=fuse,id=e0,node-name=d0,mountpoint={},writable=on", view.display()))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("running qemu-storage-daemon: {e}"))?;
        let r = async {
            // The export is up when the file shows the disk's size.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while std::fs::metadata(&view).map(|m| m.len()).unwrap_or(0) == 0 {
                if let Ok(Some(st)) = qsd.try_wait() {
                    return Err(format!("qemu-storage-daemon exited ({st}) before exporting the disk"));
                }
                if tokio::time::Instant::now() > deadline {
                    return Err("qemu-storage-daemon did not export the disk within 10 s".to_string());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            customise(desc, &view, dir).await
        }
        .await;
        // SIGTERM lets the daemon unmount its export; SIGKILL would leave a dead FUSE mount.
        if let Some(pid) = qsd.id() {
            // SAFETY: signalling the child we spawned and have not reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), qsd.wait()).await.is_err() {
            let _ = qsd.kill().await;
            let _ = qsd.wait().await;
        }
        unmount_if_mounted(&view);
        let _ = std::fs::remove_file(&view);
        let _ = std::fs::remove_file(dir.join("put"));
        let _ = std::fs::remove_file(dir.join("cmds"));
        r
    }
}

/// Cleans what a direct deploy cut short by an agent crash left under `servers_dir`: the
/// `qemu-storage-daemon` still exporting a disk (SIGTERM), then its mount and mountpoint.
pub fn reap_leftovers(servers_dir: &Path) {
    let marker = format!("mountpoint={}/", servers_dir.display());
    let mut stopped = vec![];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("qemu-storage-daemon") && cmd.contains(&marker) {
                tracing::warn!(pid, "stopping a qemu-storage-daemon left by an interrupted deploy");
                // SAFETY: a daemon exporting into our own servers directory (checked above).
                unsafe { libc::kill(pid, libc::SIGTERM) };
                stopped.push(pid);
            }
        }
    }
    // Let them unmount their exports (up to 5 s each, a zombie counts as gone).
    for pid in stopped {
        for _ in 0..50 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if matches!(stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()), None | Some('Z' | 'X')) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if let Ok(rd) = std::fs::read_dir(servers_dir) {
        for e in rd.flatten() {
            let view = e.path().join("deploy-view");
            if view.exists() {
                unmount_if_mounted(&view);
                let _ = std::fs::remove_file(&view);
            }
        }
    }
}

/// Detaches a FUSE mount left at `p` (a daemon that died without unmounting).
pub fn unmount_if_mounted(p: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let target = p.display().to_string();
    if mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(target.as_str()))
        && let Ok(c) = std::ffi::CString::new(target)
    {
        // SAFETY: umount2 on a path we own; MNT_DETACH only detaches it.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

async fn customise(desc: &GuestJsonDesc, view: &Path, tmp: &Path) -> Result<DeployInfo, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(view).map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 34 * 512];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    head.truncate(n);
    let hostname = guest_hostname(desc);
    let keys = desc.pubkey.clone().unwrap_or_default();
    for p in partitions(&head) {
        let mut sb = vec![0u8; 2048];
        f.seek(SeekFrom::Start(p.offset)).map_err(|e| e.to_string())?;
        if f.read_exact(&mut sb).is_err() {
            continue;
        }
        let Some(label) = ext_label(&sb) else { continue };
        let fs = ExtFs { dev: format!("{}?offset={}", view.display(), p.offset), tmp: tmp.to_path_buf() };
        if label == "cpdata" {
            fs.put("/cloudpods/hostname", &format!("{hostname}\n"), 0o644).await?;
            if !keys.is_empty() {
                fs.put("/cloudpods/authorized_keys", &format!("{}\n", keys.trim()), 0o600).await?;
            }
            if let Some(pw) = desc.password.as_deref().filter(|p| !p.is_empty()) {
                fs.put("/cloudpods/password", &format!("{pw}\n"), 0o600).await?;
            }
            return Ok(DeployInfo { os: Some("Linux".into()), login_account: Some("root".into()), config_drive: None });
        }
        let Some(osr) = fs.cat("/etc/os-release").await else { continue };
        fs.put("/etc/hostname", &format!("{hostname}\n"), 0o644).await?;
        if !keys.is_empty() {
            fs.put("/root/.ssh/authorized_keys", &format!("{}\n", keys.trim()), 0o600).await?;
        }
        if let Some(pw) = desc.password.as_deref().filter(|p| !p.is_empty())
            && let Some(shadow) = fs.cat("/etc/shadow").await
        {
            let hash = sha512_crypt(pw).await?;
            let new: Vec<String> = shadow
                .lines()
                .map(|l| match l.strip_prefix("root:") {
                    Some(rest) => format!("root:{hash}:{}", rest.split_once(':').map(|(_, r)| r).unwrap_or("")),
                    None => l.to_string(),
                })
                .collect();
            fs.put("/etc/shadow", &(new.join("\n") + "\n"), 0o640).await?;
        }
        for f in crate::netconf::files(&osr, desc) {
            fs.put(&f.path, &f.content, 0o644).await?;
        }
        return Ok(DeployInfo {
            os: os_name(&osr).or(Some("Linux".into())),
            login_account: Some("root".into()),
            config_drive: None,
        });
    }
    Err("no Linux root filesystem (ext2/3/4 with /etc/os-release) on the root disk".into())
}

/// A SHA-512 crypt hash of `pw` (`openssl passwd -6`).
async fn sha512_crypt(pw: &str) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::process::Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running openssl: {e}"))?;
    if let Some(mut i) = c.stdin.take() {
        i.write_all(format!("{pw}\n").as_bytes()).await.map_err(|e| e.to_string())?;
    }
    let out = c.wait_with_output().await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs several deployers in order, merging what they learnt.
pub struct Both(pub Vec<Box<dyn Deployer>>);

#[async_trait]
impl Deployer for Both {
    async fn deploy(&self, desc: &GuestJsonDesc, dir: &Path) -> Result<DeployInfo, String> {
        let mut info = DeployInfo::default();
        for d in &self.0 {
            let i = d.deploy(desc, dir).await?;
            info.os = info.os.or(i.os);
            info.login_account = info.login_account.or(i.login_account);
            info.config_drive = info.config_drive.or(i.config_drive);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_partitions_and_ext_labels() {
        let mut head = vec![0u8; 1024];
        head[510] = 0x55;
        head[511] = 0xAA;
        let mut entry = |i: usize, t: u8, start: u32, n: u32| {
            let e = &mut head[446 + 16 * i..462 + 16 * i];
            e[4] = t;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&n.to_le_bytes());
        };
        entry(0, 0x06, 2048, 81920);
        entry(1, 0x83, 83968, 47104);
        let p = partitions(&head);
        assert_eq!(p, [Part { offset: 2048 * 512, len: 81920 * 512 }, Part { offset: 83968 * 512, len: 47104 * 512 }]);
        assert!(partitions(&[0u8; 512]).is_empty(), "no boot signature");
        let mut sb = vec![0u8; 2048];
        sb[1024 + 56] = 0x53;
        sb[1024 + 57] = 0xEF;
        sb[1024 + 120..1024 + 126].copy_from_slice(b"cpdata");
        assert_eq!(ext_label(&sb).as_deref(), Some("cpdata"));
        assert_eq!(ext_label(&[0u8; 2048]), None);
    }

    #[test]
    fn os_release_names() {
        assert_eq!(
            os_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n").as_deref(),
            Some("Debian GNU/Linux 12")
        );
        assert_eq!(os_name("NAME=Alpine\n").as_deref(), Some("Alpine"));
        assert_eq!(os_name(""), None);
    }
}
