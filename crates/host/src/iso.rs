//! A small ISO 9660 writer with Joliet names, for config drives: written in-process, where
//! `genisoimage` cost a process and a temporary tree on every deploy.
//!
//! ```text
//!  sector 0-15   system area (zeros)
//!  16            primary volume descriptor   (8.3 upper-case names, for readers without Joliet)
//!  17            Joliet supplementary volume descriptor (UCS-2 names as given, `%/E`)
//!  18            volume descriptor set terminator
//!  19..          path tables (L and M) of both trees
//!  ..            directories of the primary tree, then of the Joliet tree
//!  ..            file data (shared by both trees)
//! ```
//! Linux (and busybox's `findfs`, blkid, cloud-init) read the Joliet tree and the volume label.

use std::collections::BTreeMap;

const SECTOR: usize = 2048;
/// Joliet names are at most 64 UCS-2 characters.
const JOLIET_MAX: usize = 64;

/// One file of the image: its path (`a/b/c`, no leading slash) and content.
pub struct IsoFile<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
}

#[derive(Default)]
struct Dir {
    /// Subdirectories by name.
    dirs: BTreeMap<String, Dir>,
    /// Files by name: index into the file list.
    files: BTreeMap<String, usize>,
}

/// A directory of one tree, flattened: what its records need.
struct FlatDir {
    /// Index of the parent in the flat list (the root is its own parent).
    parent: usize,
    /// Its identifier in this tree (empty for the root).
    ident: Vec<u8>,
    /// Children: (identifier, is_dir, flat index of a dir or file index).
    children: Vec<(Vec<u8>, bool, usize)>,
    /// Size in bytes of its records, whole sectors.
    size: usize,
    sector: usize,
}

/// Writes an ISO 9660 image with a Joliet tree and volume label `label`.
pub fn build(label: &str, files: &[IsoFile<'_>], now: std::time::SystemTime) -> Result<Vec<u8>, String> {
    let mut root = Dir::default();
    for (i, f) in files.iter().enumerate() {
        let parts: Vec<&str> = f.path.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || *p == "." || *p == ".." || p.chars().count() > JOLIET_MAX) {
            return Err(format!("{:?} is not a relative path of names of 1 to {JOLIET_MAX} characters", f.path));
        }
        let (name, dirs) = parts.split_last().ok_or("empty path")?;
        let mut d = &mut root;
        for p in dirs {
            if d.files.contains_key(*p) {
                return Err(format!("{p:?} is both a file and a directory"));
            }
            d = d.dirs.entry(p.to_string()).or_default();
        }
        if d.dirs.contains_key(*name) || d.files.insert(name.to_string(), i).is_some() {
            return Err(format!("{:?} is given twice", f.path));
        }
    }
    let date = DateTime::from(now);
    let mut primary = flatten(&root, false);
    let mut joliet = flatten(&root, true);

    // Where everything goes.
    // A path table's size does not depend on where the directories go.
    let pt_primary = path_tables(&primary);
    let pt_joliet = path_tables(&joliet);
    let mut next = 19;
    let mut take = |bytes: usize| {
        let at = next;
        next += bytes.div_ceil(SECTOR).max(1);
        at
    };
    let pt_sectors =
        [take(pt_primary.0.len()), take(pt_primary.1.len()), take(pt_joliet.0.len()), take(pt_joliet.1.len())];
    for d in primary.iter_mut().chain(joliet.iter_mut()) {
        d.sector = take(d.size);
    }
    let file_sectors: Vec<usize> = files.iter().map(|f| take(f.data.len())).collect();
    let total = next;

    let mut img = vec![0u8; total * SECTOR];
    let put = |img: &mut Vec<u8>, sector: usize, bytes: &[u8]| {
        img[sector * SECTOR..sector * SECTOR + bytes.len()].copy_from_slice(bytes);
    };
    for (joliet_tree, tree, (l, m)) in
        [(false, &primary, (pt_sectors[0], pt_sectors[1])), (true, &joliet, (pt_sectors[2], pt_sectors[3]))]
    {
        let pt = path_tables(tree);
        put(&mut img, l, &pt.0);
        put(&mut img, m, &pt.1);
        let vd = volume_descriptor(joliet_tree, label, total, pt.0.len(), (l, m), &tree[0], &date);
        put(&mut img, if joliet_tree { 17 } else { 16 }, &vd);
        for d in tree {
            put(&mut img, d.sector, &dir_records(d, tree, files, &file_sectors, &date));
        }
    }
    let mut term = vec![255u8];
    term.extend_from_slice(b"CD001\x01");
    put(&mut img, 18, &term);
    for (f, s) in files.iter().zip(&file_sectors) {
        put(&mut img, *s, f.data);
    }
    Ok(img)
}

/// The directories of one tree, breadth first (the order path tables need), sizes computed.
fn flatten(root: &Dir, joliet: bool) -> Vec<FlatDir> {
    let mut out = vec![];
    let mut queue: Vec<(&Dir, usize, Vec<u8>)> = vec![(root, 0, vec![])];
    let mut head = 0;
    while head < queue.len() {
        let (d, parent, ident) = (queue[head].0, queue[head].1, queue[head].2.clone());
        let me = out.len();
        let mut children = vec![];
        let mut used = std::collections::HashSet::new();
        for (name, sub) in &d.dirs {
            let id = unique(ident_of(name, true, joliet), &mut used);
            children.push((id.clone(), true, queue.len()));
            queue.push((sub, me, id));
        }
        for (name, f) in &d.files {
            children.push((unique(ident_of(name, false, joliet), &mut used), false, *f));
        }
        // Records are sorted by identifier, as the standard asks.
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let mut size = 0;
        for len in [1, 1].into_iter().chain(children.iter().map(|c| c.0.len())) {
            let r = record_len(len);
            if size % SECTOR + r > SECTOR {
                size = size.div_ceil(SECTOR) * SECTOR;
            }
            size += r;
        }
        out.push(FlatDir { parent, ident, children, size: size.div_ceil(SECTOR) * SECTOR, sector: 0 });
        head += 1;
    }
    out
}

/// A name as an identifier: Joliet keeps it (UCS-2 big endian); the primary tree makes it
/// an upper-case 8.3 name of d-characters, files with the version `;1`.
fn ident_of(name: &str, dir: bool, joliet: bool) -> Vec<u8> {
    if joliet {
        return name.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    }
    let clean = |s: &str, n: usize| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).take(n).collect()
    };
    if dir {
        return clean(name, 8).into_bytes();
    }
    let (base, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    format!("{}.{};1", clean(base, 8), clean(ext, 3)).into_bytes()
}

/// `id`, or a variant of it with a number in its last characters when already `used`.
fn unique(id: Vec<u8>, used: &mut std::collections::HashSet<Vec<u8>>) -> Vec<u8> {
    let mut cand = id.clone();
    let mut n = 1;
    while used.contains(&cand) {
        let tag = n.to_string().into_bytes();
        // Before the extension of a primary name, at the end otherwise.
        let cut = id.iter().position(|b| *b == b'.').unwrap_or(id.len());
        let keep = cut.saturating_sub(tag.len());
        cand = [&id[..keep], &tag[..], &id[cut..]].concat();
        n += 1;
    }
    used.insert(cand.clone());
    cand
}

fn record_len(ident_len: usize) -> usize {
    33 + ident_len + usize::from(ident_len.is_multiple_of(2))
}

fn both32(v: usize) -> [u8; 8] {
    let v = v as u32;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

fn both16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

fn record(ident: &[u8], sector: usize, len: usize, dir: bool, date: &DateTime) -> Vec<u8> {
    let mut r = vec![0u8; record_len(ident.len())];
    r[0] = r.len() as u8;
    r[2..10].copy_from_slice(&both32(sector));
    r[10..18].copy_from_slice(&both32(len));
    r[18..25].copy_from_slice(&date.short());
    r[25] = if dir { 2 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = ident.len() as u8;
    r[33..33 + ident.len()].copy_from_slice(ident);
    r
}

/// A directory's extent: `.`, `..`, then its children; no record crosses a sector.
fn dir_records(
    d: &FlatDir,
    tree: &[FlatDir],
    files: &[IsoFile<'_>],
    file_sectors: &[usize],
    date: &DateTime,
) -> Vec<u8> {
    let parent = &tree[d.parent];
    let mut recs =
        vec![record(&[0], d.sector, d.size, true, date), record(&[1], parent.sector, parent.size, true, date)];
    for (id, is_dir, i) in &d.children {
        recs.push(if *is_dir {
            record(id, tree[*i].sector, tree[*i].size, true, date)
        } else {
            record(id, file_sectors[*i], files[*i].data.len(), false, date)
        });
    }
    let mut out = Vec::with_capacity(d.size);
    for r in recs {
        if out.len() % SECTOR + r.len() > SECTOR {
            out.resize(out.len().div_ceil(SECTOR) * SECTOR, 0);
        }
        out.extend_from_slice(&r);
    }
    out
}

/// The L (little endian) and M (big endian) path tables of a tree.
fn path_tables(tree: &[FlatDir]) -> (Vec<u8>, Vec<u8>) {
    let (mut l, mut m) = (vec![], vec![]);
    for d in tree {
        let ident: &[u8] = if d.ident.is_empty() { &[0] } else { &d.ident };
        for (out, big) in [(&mut l, false), (&mut m, true)] {
            out.push(ident.len() as u8);
            out.push(0);
            let sector = d.sector as u32;
            let parent = (d.parent + 1) as u16;
            out.extend_from_slice(&if big { sector.to_be_bytes() } else { sector.to_le_bytes() });
            out.extend_from_slice(&if big { parent.to_be_bytes() } else { parent.to_le_bytes() });
            out.extend_from_slice(ident);
            if ident.len() % 2 == 1 {
                out.push(0);
            }
        }
    }
    (l, m)
}

/// A primary (type 1) or Joliet supplementary (type 2) volume descriptor.
fn volume_descriptor(
    joliet: bool,
    label: &str,
    total: usize,
    pt_len: usize,
    (l, m): (usize, usize),
    root: &FlatDir,
    date: &DateTime,
) -> Vec<u8> {
    let mut v = vec![0u8; SECTOR];
    v[0] = if joliet { 2 } else { 1 };
    v[1..7].copy_from_slice(b"CD001\x01");
    let text = |v: &mut Vec<u8>, at: usize, len: usize, s: &str| {
        let bytes: Vec<u8> =
            if joliet { s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect() } else { s.as_bytes().to_vec() };
        let fill: &[u8] = if joliet { &[0, b' '] } else { b" " };
        for i in 0..len {
            v[at + i] = bytes.get(i).copied().unwrap_or(fill[i % fill.len()]);
        }
    };
    text(&mut v, 8, 32, "LINUX");
    text(&mut v, 40, 32, label);
    v[80..88].copy_from_slice(&both32(total));
    if joliet {
        v[88..91].copy_from_slice(b"%/E");
    }
    v[120..124].copy_from_slice(&both16(1));
    v[124..128].copy_from_slice(&both16(1));
    v[128..132].copy_from_slice(&both16(SECTOR as u16));
    v[132..140].copy_from_slice(&both32(pt_len));
    v[140..144].copy_from_slice(&(l as u32).to_le_bytes());
    v[148..152].copy_from_slice(&(m as u32).to_be_bytes());
    v[156..190].copy_from_slice(&record(&[0], root.sector, root.size, true, date));
    for (at, len) in [(190, 128), (318, 128), (446, 128), (574, 128), (702, 37), (739, 37), (776, 37)] {
        text(&mut v, at, len, "");
    }
    text(&mut v, 574, 128, "CLOUDPODS-RS HOST AGENT");
    v[813..830].copy_from_slice(&date.long());
    v[830..847].copy_from_slice(&date.long());
    v[847..863].copy_from_slice(b"0000000000000000");
    v[864..880].copy_from_slice(b"0000000000000000");
    v[881] = 1;
    v
}

/// A UTC date and time, in the two forms ISO 9660 stores.
struct DateTime {
    y: i64,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
}

impl From<std::time::SystemTime> for DateTime {
    fn from(t: std::time::SystemTime) -> DateTime {
        let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let mo = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let y = yoe + era * 400 + i64::from(mo <= 2);
        DateTime { y, mo, d, h: (rem / 3600) as u8, mi: (rem % 3600 / 60) as u8, s: (rem % 60) as u8 }
    }
}

impl DateTime {
    /// Directory records: years since 1900, month, day, hour, minute, second, GMT offset.
    fn short(&self) -> [u8; 7] {
        [(self.y - 1900).clamp(0, 255) as u8, self.mo, self.d, self.h, self.mi, self.s, 0]
    }

    /// Volume descriptors: `YYYYMMDDHHMMSScc` in digits, then the GMT offset.
    fn long(&self) -> [u8; 17] {
        let s = format!("{:04}{:02}{:02}{:02}{:02}{:02}00", self.y, self.mo, self.d, self.h, self.mi, self.s);
        let mut b = [0u8; 17];
        b[..16].copy_from_slice(&s.as_bytes()[..16]);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn dates() {
        assert_eq!(DateTime::from(at(0)).long()[..16], *b"1970010100000000");
        // 2026-11-25 03:30:07 UTC
        let d = DateTime::from(at(1_795_577_407));
        assert_eq!(&d.long()[..16], b"2026112503300700");
        assert_eq!(d.short(), [126, 11, 25, 3, 30, 7, 0]);
        assert_eq!(&DateTime::from(at(951_782_400)).long()[..8], b"20000229");
    }

    #[test]
    fn primary_names_are_unique_8_3() {
        assert_eq!(ident_of("meta_data.json", false, false), b"META_DAT.JSO;1");
        assert_eq!(ident_of("user_data", false, false), b"USER_DAT.;1");
        assert_eq!(ident_of("2012-08-10", true, false), b"2012_08_");
        assert_eq!(ident_of("ab", true, true), [0, b'a', 0, b'b']);
        let mut used = Default::default();
        assert_eq!(unique(b"NETWORK_.JSO;1".to_vec(), &mut used), b"NETWORK_.JSO;1");
        assert_eq!(unique(b"NETWORK_.JSO;1".to_vec(), &mut used), b"NETWORK1.JSO;1");
        assert_eq!(unique(b"NETWORK_.JSO;1".to_vec(), &mut used), b"NETWORK2.JSO;1");
    }

    #[test]
    fn layout_and_bad_paths() {
        let files = [IsoFile { path: "a/b.txt", data: b"hello" }, IsoFile { path: "c", data: &[7u8; 5000] }];
        let img = build("config-2", &files, at(0)).unwrap();
        assert_eq!(img.len() % SECTOR, 0);
        assert_eq!(&img[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&img[16 * SECTOR + 40..16 * SECTOR + 48], b"config-2");
        assert_eq!(&img[17 * SECTOR + 88..17 * SECTOR + 91], b"%/E");
        assert_eq!(img[18 * SECTOR], 255);
        let total = u32::from_le_bytes(img[16 * SECTOR + 80..16 * SECTOR + 84].try_into().unwrap()) as usize;
        assert_eq!(total * SECTOR, img.len());
        for bad in ["", "/a", "a//b", "a/../b", &"x".repeat(65)] {
            assert!(build("x", &[IsoFile { path: bad, data: b"" }], at(0)).is_err(), "{bad:?}");
        }
        let twice = [IsoFile { path: "a", data: b"" }, IsoFile { path: "a", data: b"" }];
        assert!(build("x", &twice, at(0)).is_err());
        let clash = [IsoFile { path: "a", data: b"" }, IsoFile { path: "a/b", data: b"" }];
        assert!(build("x", &clash, at(0)).is_err());
    }
}
