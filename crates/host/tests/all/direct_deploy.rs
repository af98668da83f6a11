//! host-deployer's direct mode on a disk with a Linux root filesystem (no VM): a raw disk with
//! an MBR and an ext4 partition holding `/etc/os-release` and `/etc/shadow`, built with sfdisk
//! and `mkfs.ext4 -d`, customised through the FUSE export, then read back with debugfs.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};
use apis::compute::{GuestDiskDesc, GuestJsonDesc, GuestNicDesc};
use host::deploy::Deployer;

use crate::common::*;

const PART_OFFSET: u64 = 1 << 20;

fn debugfs_cat(disk: &Path, path: &str) -> Result<String> {
    sh(Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(format!("{}?offset={PART_OFFSET}", disk.display())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_deploy_into_a_debian_root_filesystem() -> Result<()> {
    prerequisites()?;
    let dir = std::env::temp_dir().join(format!("cloudpods-host-directfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // No namespace here: the cleanup only removes the directory.
    let _cleanup = Cleanup { netns: format!("cphdd-{}", std::process::id()), dir: dir.clone() };
    let (root, disks, work) = (dir.join("root"), dir.join("disks"), dir.join("work"));
    for d in [root.join("etc"), disks.clone(), work.clone()] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(root.join("etc/os-release"), "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n")?;
    std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")?;
    std::fs::write(root.join("etc/hostname"), "localhost\n")?;
    let disk = disks.join("d-direct");
    std::fs::File::create(&disk)?.set_len(64 << 20)?;
    let mut sfdisk = Command::new("sfdisk").arg("-q").arg(&disk).stdin(std::process::Stdio::piped()).spawn()?;
    std::io::Write::write_all(sfdisk.stdin.as_mut().expect("stdin"), b"label: dos\nstart=2048, type=83\n")?;
    ensure!(sfdisk.wait()?.success(), "sfdisk failed");
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-E", &format!("offset={PART_OFFSET}"), "-d"])
        .arg(&root)
        .arg(&disk)
        .arg("60M"))?;

    let desc = GuestJsonDesc {
        id: "gd1".into(),
        name: "direct-vm".into(),
        password: Some("Direct-pw-1".into()),
        pubkey: Some("ssh-ed25519 AAAAC3Nza direct@test".into()),
        disks: vec![GuestDiskDesc {
            index: 0,
            disk_id: "d-direct".into(),
            format: "raw".into(),
            size: 64,
            ..Default::default()
        }],
        nics: vec![GuestNicDesc {
            index: 0,
            mac: "00:22:aa:00:dd:01".into(),
            ip: "10.96.0.7".into(),
            masklen: 24,
            gateway: Some("10.96.0.1".into()),
            dns: "10.96.0.2".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let info = host::fsdeploy::DirectDeployer { disks_dir: disks.clone() }
        .deploy(&desc, &work)
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(info.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert!(info.config_drive.is_none());

    assert_eq!(debugfs_cat(&disk, "/etc/hostname")?, "direct-vm\n");
    assert_eq!(debugfs_cat(&disk, "/root/.ssh/authorized_keys")?, "ssh-ed25519 AAAAC3Nza direct@test\n");
    let shadow = debugfs_cat(&disk, "/etc/shadow")?;
    let hash = shadow.lines().next().and_then(|l| l.split(':').nth(1)).unwrap_or_default().to_string();
    ensure!(hash.starts_with("$6$"), "root's hash: {shadow}");
    let salt = hash.split('$').nth(2).unwrap_or_default();
    let again = sh(Command::new("openssl").args(["passwd", "-6", "-salt", salt, "Direct-pw-1"]))?;
    assert_eq!(again.trim(), hash, "the hash is of the password");
    assert!(shadow.contains("\ndaemon:*:19000:"), "other users kept: {shadow}");
    let net = debugfs_cat(&disk, "/etc/network/interfaces.d/50-cloudpods")?;
    assert!(net.contains("iface eth0 inet static\n    address 10.96.0.7/24\n    gateway 10.96.0.1\n"), "{net}");
    let link = debugfs_cat(&disk, "/etc/systemd/network/10-cloudpods-eth0.link")?;
    assert!(link.contains("MACAddress=00:22:aa:00:dd:01"), "{link}");
    // The filesystem is consistent after debugfs's writes (e2fsck takes no offset: a copy).
    let part = dir.join("part.img");
    sh(Command::new("dd").arg(format!("if={}", disk.display())).arg(format!("of={}", part.display())).args([
        "bs=1M",
        "skip=1",
        "status=none",
    ]))?;
    let fsck = Command::new("e2fsck").args(["-f", "-n"]).arg(&part).output()?;
    ensure!(
        fsck.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    Ok(())
}
