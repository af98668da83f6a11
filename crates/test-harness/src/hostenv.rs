//! What tests of the real host agent share (the host crate's tests, and the `cloudpods`
//! binary's): root and QEMU checks, the test guest image, and a cleanup guard for the
//! processes, namespace and files a test made.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Root, or a clear failure.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "the host agent's tests need root (netns, bridges, taps)");
    Ok(())
}

/// Root, QEMU and the agent's tools (installing what is missing with scripts/deps.sh --qemu),
/// and the test guest image (built by scripts/build-test-image.sh); returns the image's path.
pub fn prerequisites() -> Result<PathBuf> {
    require_root()?;
    let have = |c: &str| {
        Command::new("sh").arg("-c").arg(format!("command -v {c}")).output().is_ok_and(|o| o.status.success())
    };
    let needed = ["qemu-system-x86_64", "qemu-storage-daemon", "qemu-img", "genisoimage", "debugfs", "openssl", "curl"];
    if needed.iter().any(|c| !have(c)) {
        eprintln!("installing QEMU and the host agent's tools with scripts/deps.sh --qemu");
        sh(Command::new(repo_root().join("scripts/deps.sh")).arg("--qemu"))?;
    }
    for c in needed {
        ensure!(have(c), "{c} is missing and scripts/deps.sh --qemu did not install it");
    }
    let out = sh(&mut Command::new(repo_root().join("scripts/build-test-image.sh")))?;
    let img = PathBuf::from(out.lines().last().context("build-test-image.sh printed no path")?.trim());
    ensure!(img.exists(), "test image {} missing", img.display());
    Ok(img)
}

/// The ids of this machine's processes (other than this one) whose command line names a path
/// under `dir`.
pub fn processes_naming(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    // `<dir>/`: not a sibling directory whose name starts with this one's.
    let needle = format!("{}/", dir.display());
    let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// Removes what the test made even when it fails: QEMU processes (by pidfile, checked through
/// `/proc/<pid>/cmdline`), any other process whose command line names `dir` (an agent, a QEMU
/// still starting), the netns, and `dir`.
pub struct Cleanup {
    pub netns: String,
    pub dir: PathBuf,
}

impl Cleanup {
    /// A fresh network namespace `<netns>-<pid>` and an empty directory
    /// `$TMPDIR/cloudpods-host-<dir>-<pid>`, both removed (with what runs there) on drop.
    pub fn fresh(netns: &str, dir: &str) -> Result<Cleanup> {
        let pid = std::process::id();
        let c = Cleanup {
            netns: format!("{netns}-{pid}"),
            dir: std::env::temp_dir().join(format!("cloudpods-host-{dir}-{pid}")),
        };
        let _ = std::fs::remove_dir_all(&c.dir);
        std::fs::create_dir_all(&c.dir)?;
        sh(Command::new("ip").args(["netns", "add", &c.netns]))?;
        Ok(c)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.join("servers")) {
            for e in rd.flatten() {
                if let Ok(p) = std::fs::read_to_string(e.path().join("qemu.pid"))
                    && let Ok(pid) = p.trim().parse::<i32>()
                    && host::guest::qemu_alive(pid, &e.file_name().to_string_lossy())
                {
                    // SAFETY: a QEMU this test started (checked through /proc/<pid>/cmdline).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if self.dir.is_absolute() && self.dir.components().count() > 2 {
            for pid in processes_naming(&self.dir) {
                // SAFETY: a process whose command line names this test's own directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).stderr(std::process::Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
