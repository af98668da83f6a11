//! Whether a disk can boot: what BIOS firmware looks for, read straight from the file (raw,
//! or qcow2 through its backing chain), without QEMU.
//!
//! A disk boots when its first sector ends in the MBR signature `55 AA` (BIOS boot code, or
//! the protective MBR of a GPT disk), or when it is an ISO 9660 image with an El Torito boot
//! record at sector 17. Anything else would sit at "No bootable device" for ever, so a server
//! made from such an image fails its deploy with that reason instead of "running" a firmware
//! prompt. What this reader cannot follow (compressed or encrypted clusters, extended L2
//! entries) is taken as bootable: the check only refuses what it has read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
const ISO_BOOT_RECORD: u64 = 17 * 2048;
/// A backing chain deeper than this is refused as a loop.
const MAX_CHAIN: usize = 16;

/// What the first sectors say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    Bootable,
    /// No MBR signature and no El Torito record.
    NotBootable,
    /// The reader could not follow the format (compressed, encrypted, ...).
    Unknown(String),
}

/// Reads the boot sectors of the disk image at `path`.
pub fn check(path: &Path) -> io::Result<Boot> {
    let img = Image::open(path, 0)?;
    let Some(sector0) = img.read(0, 512)? else { return Ok(Boot::Unknown(img.why_unknown())) };
    if sector0[510] == 0x55 && sector0[511] == 0xAA {
        return Ok(Boot::Bootable);
    }
    let Some(rec) = img.read(ISO_BOOT_RECORD, 32)? else { return Ok(Boot::Unknown(img.why_unknown())) };
    // Boot record volume descriptor: type 0, "CD001", version 1, "EL TORITO SPECIFICATION".
    if rec[0] == 0 && &rec[1..6] == b"CD001" && rec[7..].starts_with(b"EL TORITO SPECIFICATION") {
        return Ok(Boot::Bootable);
    }
    Ok(Boot::NotBootable)
}

/// One file of a chain: raw, or qcow2 with what is needed to find a guest offset.
struct Image {
    file: File,
    qcow2: Option<Qcow2>,
    depth: usize,
}

struct Qcow2 {
    cluster_bits: u32,
    l1_offset: u64,
    l1_size: u64,
    /// Why offsets cannot be followed, if they cannot.
    unsupported: Option<String>,
    backing: Option<PathBuf>,
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap_or_default())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap_or_default())
}

impl Image {
    fn open(path: &Path, depth: usize) -> io::Result<Image> {
        if depth > MAX_CHAIN {
            return Err(io::Error::other(format!("backing chain of {} is deeper than {MAX_CHAIN}", path.display())));
        }
        let file = File::open(path)?;
        let mut head = [0u8; 104];
        let n = read_full(&file, 0, &mut head)?;
        if n < 72 || &head[..4] != QCOW2_MAGIC {
            return Ok(Image { file, qcow2: None, depth });
        }
        let version = be32(&head[4..]);
        let backing_offset = be64(&head[8..]);
        let backing_size = be32(&head[16..]) as usize;
        let mut unsupported = None;
        if be32(&head[32..]) != 0 {
            unsupported = Some("the image is encrypted".to_string());
        }
        // Incompatible feature bit 4: extended L2 entries (subclusters).
        if version >= 3 && n >= 80 && be64(&head[72..]) & (1 << 4) != 0 {
            unsupported = Some("the image has extended L2 entries".to_string());
        }
        let backing = if backing_offset != 0 && backing_size > 0 && backing_size < 4096 {
            let mut name = vec![0u8; backing_size];
            read_full(&file, backing_offset, &mut name)?;
            let name = PathBuf::from(String::from_utf8_lossy(&name).to_string());
            // A relative backing file is relative to the overlay's directory.
            Some(if name.is_absolute() { name } else { path.parent().unwrap_or(Path::new(".")).join(name) })
        } else {
            None
        };
        let qcow2 = Qcow2 {
            cluster_bits: be32(&head[20..]),
            l1_offset: be64(&head[40..]),
            l1_size: u64::from(be32(&head[36..])),
            unsupported,
            backing,
        };
        if !(9..=21).contains(&qcow2.cluster_bits) {
            return Err(io::Error::other(format!("{}: qcow2 cluster bits {}", path.display(), qcow2.cluster_bits)));
        }
        Ok(Image { file, qcow2: Some(qcow2), depth })
    }

    fn why_unknown(&self) -> String {
        self.qcow2.as_ref().and_then(|q| q.unsupported.clone()).unwrap_or_else(|| "a compressed cluster".into())
    }

    /// `len` guest bytes at `offset` (within one cluster), or `None` when they cannot be read
    /// here. Unallocated bytes come from the backing file, or are zeros.
    fn read(&self, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        let Some(q) = &self.qcow2 else {
            let mut buf = vec![0u8; len];
            read_full(&self.file, offset, &mut buf)?;
            return Ok(Some(buf));
        };
        if q.unsupported.is_some() {
            return Ok(None);
        }
        let cluster = 1u64 << q.cluster_bits;
        let l2_entries = cluster / 8;
        let (l1_index, l2_index) = (offset / cluster / l2_entries, offset / cluster % l2_entries);
        let within = offset % cluster;
        let mask = 0x00ff_ffff_ffff_fe00u64;
        let mut entry = [0u8; 8];
        let mut host = 0u64;
        let mut zero = false;
        if l1_index < q.l1_size {
            read_full(&self.file, q.l1_offset + l1_index * 8, &mut entry)?;
            let l2 = u64::from_be_bytes(entry) & mask;
            if l2 != 0 {
                read_full(&self.file, l2 + l2_index * 8, &mut entry)?;
                let e = u64::from_be_bytes(entry);
                if e & (1 << 62) != 0 {
                    return Ok(None); // compressed
                }
                host = e & mask;
                zero = e & 1 != 0;
            }
        }
        if zero {
            return Ok(Some(vec![0u8; len]));
        }
        if host != 0 {
            let mut buf = vec![0u8; len];
            read_full(&self.file, host + within, &mut buf)?;
            return Ok(Some(buf));
        }
        match &q.backing {
            Some(b) => Image::open(b, self.depth + 1)?.read(offset, len),
            None => Ok(Some(vec![0u8; len])),
        }
    }
}

/// Reads as much of `buf` as the file has at `offset` (the rest stays zero); the count.
fn read_full(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) {
        let out = Command::new("qemu-img").args(args).output().expect("qemu-img (scripts/deps.sh installs it)");
        assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn mbr_signature_and_el_torito_through_qcow2_chains() {
        let dir = std::env::temp_dir().join(format!("bootable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).display().to_string();
        // A blank raw disk, and the same as a qcow2 base with an overlay: not bootable.
        std::fs::write(dir.join("blank.raw"), vec![0u8; 1 << 20]).unwrap();
        assert_eq!(check(&dir.join("blank.raw")).unwrap(), Boot::NotBootable);
        qemu_img(&["convert", "-O", "qcow2", &p("blank.raw"), &p("blank.qcow2")]);
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", &p("blank.qcow2"), "-F", "qcow2", &p("over.qcow2")]);
        assert_eq!(check(&dir.join("over.qcow2")).unwrap(), Boot::NotBootable);
        // An MBR signature in the base, seen through a relative backing file.
        let mut mbr = vec![0u8; 1 << 20];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        std::fs::write(dir.join("mbr.raw"), &mbr).unwrap();
        assert_eq!(check(&dir.join("mbr.raw")).unwrap(), Boot::Bootable);
        qemu_img(&["convert", "-O", "qcow2", &p("mbr.raw"), &p("mbr.qcow2")]);
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "mbr.qcow2", "-F", "qcow2", &p("over2.qcow2")]);
        assert_eq!(check(&dir.join("over2.qcow2")).unwrap(), Boot::Bootable);
        // An El Torito record at sector 17 (a bootable ISO), in an overlay on a raw base.
        let mut iso = vec![0u8; 1 << 20];
        iso[34816..34822].copy_from_slice(b"\0CD001");
        iso[34822] = 1;
        iso[34823..34846].copy_from_slice(b"EL TORITO SPECIFICATION");
        std::fs::write(dir.join("iso.raw"), &iso).unwrap();
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", &p("iso.raw"), "-F", "raw", &p("over3.qcow2")]);
        assert_eq!(check(&dir.join("over3.qcow2")).unwrap(), Boot::Bootable);
        // A compressed cluster is not read here: unknown, never refused.
        qemu_img(&["convert", "-c", "-O", "qcow2", &p("mbr.raw"), &p("comp.qcow2")]);
        assert!(matches!(check(&dir.join("comp.qcow2")).unwrap(), Boot::Unknown(_)));
        // A chain that points at itself is an error, not a hang.
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", &p("blank.qcow2"), "-F", "qcow2", &p("loop.qcow2")]);
        let mut f = std::fs::read(dir.join("loop.qcow2")).unwrap();
        let off = be64(&f[8..]) as usize;
        let name = b"loop.qcow2";
        f[off..off + name.len()].copy_from_slice(name);
        f[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        std::fs::write(dir.join("loop.qcow2"), &f).unwrap();
        assert!(check(&dir.join("loop.qcow2")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
