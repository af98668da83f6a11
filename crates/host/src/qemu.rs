//! The QEMU command line of a guest, built purely from its [`GuestJsonDesc`] and where the
//! agent keeps its files.
//!
//! Layout (q35): every virtio device sits on its own `pcie-root-port` (`rp0`, `rp1`, ...),
//! followed by `spare_root_ports` empty ones for hotplug (`device_add ...,bus=rpN` only works
//! onto a root port). Disks are `-blockdev` pairs with explicit node names
//! (`file-<disk_id>` -> `drive-<index>`), NICs are taps opened by name. QEMU starts paused
//! (`-S`); the agent connects to QMP and sends `cont`. `-daemonize` lets QEMU outlive the agent.

use std::path::{Path, PathBuf};

use apis::compute::{GuestJsonDesc, GuestNicDesc};

use crate::accel::Accelerator;

/// Where one guest's files live (`<servers_dir>/<id>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPaths {
    pub dir: PathBuf,
}

impl GuestPaths {
    pub fn new(servers_dir: &Path, id: &str) -> GuestPaths {
        GuestPaths { dir: servers_dir.join(id) }
    }
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    pub fn config_drive(&self) -> PathBuf {
        self.dir.join("config-drive.iso")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
}

/// Everything beside the description that the command line needs.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub accel: Accelerator,
    pub paths: GuestPaths,
    /// VNC display number (port 5900 + n) and listen address.
    pub vnc_display: u16,
    pub vnc_listen: String,
    /// The config drive to attach read-only, if any.
    pub config_drive: Option<PathBuf>,
    pub spare_root_ports: u32,
}

/// The tap of a NIC: its `ifname` when it fits IFNAMSIZ, else a stable short name.
pub fn tap_name(guest_id: &str, nic: &GuestNicDesc) -> String {
    if !nic.ifname.is_empty() && nic.ifname.len() <= 15 && nic.ifname.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
    {
        return nic.ifname.clone();
    }
    let h = guest_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("vn{:08x}-{}", h as u32, nic.index)
}

/// The node name of disk `index` (what `blockdev-del`, snapshots and mirrors name).
pub fn drive_node(index: u32) -> String {
    format!("drive-{index}")
}

/// The full argument list (without the program name).
pub fn command_line(desc: &GuestJsonDesc, spec: &LaunchSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    let p = &spec.paths;
    let name = if desc.name.is_empty() { desc.id.clone() } else { desc.name.clone() };
    push(&["-name", &format!("{name},process=cloudpods-{}", desc.id)]);
    if !desc.uuid.is_empty() && desc.uuid.len() == 36 {
        push(&["-uuid", &desc.uuid]);
    }
    push(&["-M", "q35"]);
    a.extend(spec.accel.qemu_args());
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-m", &format!("{}M", desc.vmem_size.max(64))]);
    push(&["-smp", &desc.vcpu_count.max(1).to_string()]);
    push(&["-nodefaults", "-no-user-config", "-vga", "std"]);
    push(&["-vnc", &format!("{}:{}", spec.vnc_listen, spec.vnc_display)]);
    push(&["-chardev", &format!("file,id=serial0,path={}", p.serial_log().display()), "-serial", "chardev:serial0"]);
    push(&["-qmp", &format!("unix:{},server=on,wait=off", p.qmp().display())]);
    push(&["-pidfile", &p.pidfile().display().to_string(), "-daemonize", "-S"]);
    let mut port = 0u32;
    let mut root_port = |a: &mut Vec<String>| {
        let id = format!("rp{port}");
        a.push("-device".into());
        a.push(format!("pcie-root-port,id={id},chassis={},bus=pcie.0", port + 1));
        port += 1;
        id
    };
    let mut disks = desc.disks.clone();
    disks.sort_by_key(|d| d.index);
    let boot_disk_first = !desc.boot_order.starts_with('n');
    for (n, d) in disks.iter().enumerate() {
        let path = d.path.clone().unwrap_or_default();
        let fmt = if d.format == "raw" { "raw" } else { "qcow2" };
        let bus = root_port(&mut a);
        let file = format!("file-{}", d.index);
        let node = drive_node(d.index);
        a.push("-blockdev".into());
        a.push(format!("driver=file,filename={path},node-name={file},discard=unmap"));
        a.push("-blockdev".into());
        a.push(format!("driver={fmt},file={file},node-name={node},discard=unmap"));
        let mut dev = format!("virtio-blk-pci,drive={node},id=disk-{},bus={bus}", d.index);
        if n == 0 && boot_disk_first {
            dev.push_str(",bootindex=1");
        }
        a.push("-device".into());
        a.push(dev);
    }
    if let Some(cd) = &spec.config_drive {
        let bus = root_port(&mut a);
        a.push("-blockdev".into());
        a.push(format!("driver=file,filename={},read-only=on,node-name=file-config", cd.display()));
        a.push("-blockdev".into());
        a.push("driver=raw,file=file-config,read-only=on,node-name=config-drive".into());
        a.push("-device".into());
        a.push(format!("virtio-blk-pci,drive=config-drive,id=config-drive,bus={bus}"));
    }
    let mut nics = desc.nics.clone();
    nics.sort_by_key(|n| n.index);
    for nic in &nics {
        let bus = root_port(&mut a);
        let tap = tap_name(&desc.id, nic);
        a.push("-netdev".into());
        a.push(format!("tap,id=net-{},ifname={tap},script=no,downscript=no", nic.index));
        a.push("-device".into());
        a.push(format!("virtio-net-pci,netdev=net-{},mac={},id=nic-{},bus={bus}", nic.index, nic.mac, nic.index));
    }
    for _ in 0..spec.spare_root_ports {
        root_port(&mut a);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use apis::compute::GuestDiskDesc;

    fn desc() -> GuestJsonDesc {
        GuestJsonDesc {
            id: "g1".into(),
            name: "vm1".into(),
            uuid: "0b0c2f8e-7d3e-4d2a-9c1b-2f1e0d9c8b7a".into(),
            hostname: "vm1".into(),
            vcpu_count: 2,
            vmem_size: 256,
            boot_order: "cdn".into(),
            disks: vec![
                GuestDiskDesc {
                    index: 1,
                    disk_id: "d2".into(),
                    path: Some("/d/d2".into()),
                    size: 10,
                    format: "qcow2".into(),
                    driver: "virtio".into(),
                    image_id: None,
                    storage_id: "s".into(),
                },
                GuestDiskDesc {
                    index: 0,
                    disk_id: "d1".into(),
                    path: Some("/d/d1".into()),
                    size: 10,
                    format: "qcow2".into(),
                    driver: "virtio".into(),
                    image_id: Some("i".into()),
                    storage_id: "s".into(),
                },
            ],
            nics: vec![GuestNicDesc {
                index: 0,
                mac: "00:22:aa:00:00:01".into(),
                ip: "10.20.0.10".into(),
                masklen: 24,
                bridge: "br0".into(),
                ifname: "vnet-g1-0".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn spec() -> LaunchSpec {
        LaunchSpec {
            accel: Accelerator::Tcg,
            paths: GuestPaths::new(Path::new("/srv"), "g1"),
            vnc_display: 7,
            vnc_listen: "127.0.0.1".into(),
            config_drive: Some("/srv/g1/config-drive.iso".into()),
            spare_root_ports: 2,
        }
    }

    #[test]
    fn q35_blockdev_nodes_root_ports_and_files() {
        let a = command_line(&desc(), &spec()).join(" ");
        let want = "-name vm1,process=cloudpods-g1 -uuid 0b0c2f8e-7d3e-4d2a-9c1b-2f1e0d9c8b7a -M q35 \
            -accel tcg,thread=multi,tb-size=32 -cpu max -m 256M -smp 2 -nodefaults -no-user-config -vga std \
            -vnc 127.0.0.1:7 -chardev file,id=serial0,path=/srv/g1/serial.log -serial chardev:serial0 \
            -qmp unix:/srv/g1/qmp.sock,server=on,wait=off -pidfile /srv/g1/qemu.pid -daemonize -S \
            -device pcie-root-port,id=rp0,chassis=1,bus=pcie.0 \
            -blockdev driver=file,filename=/d/d1,node-name=file-0,discard=unmap \
            -blockdev driver=qcow2,file=file-0,node-name=drive-0,discard=unmap \
            -device virtio-blk-pci,drive=drive-0,id=disk-0,bus=rp0,bootindex=1 \
            -device pcie-root-port,id=rp1,chassis=2,bus=pcie.0 \
            -blockdev driver=file,filename=/d/d2,node-name=file-1,discard=unmap \
            -blockdev driver=qcow2,file=file-1,node-name=drive-1,discard=unmap \
            -device virtio-blk-pci,drive=drive-1,id=disk-1,bus=rp1 \
            -device pcie-root-port,id=rp2,chassis=3,bus=pcie.0 \
            -blockdev driver=file,filename=/srv/g1/config-drive.iso,read-only=on,node-name=file-config \
            -blockdev driver=raw,file=file-config,read-only=on,node-name=config-drive \
            -device virtio-blk-pci,drive=config-drive,id=config-drive,bus=rp2 \
            -device pcie-root-port,id=rp3,chassis=4,bus=pcie.0 \
            -netdev tap,id=net-0,ifname=vnet-g1-0,script=no,downscript=no \
            -device virtio-net-pci,netdev=net-0,mac=00:22:aa:00:00:01,id=nic-0,bus=rp3 \
            -device pcie-root-port,id=rp4,chassis=5,bus=pcie.0 -device pcie-root-port,id=rp5,chassis=6,bus=pcie.0";
        assert_eq!(a, want.split_whitespace().collect::<Vec<_>>().join(" "));
    }

    #[test]
    fn tap_names_fit_ifnamsiz() {
        let mut nic = desc().nics[0].clone();
        assert_eq!(tap_name("g1", &nic), "vnet-g1-0");
        nic.ifname = "vnet-0b0c2f8e-7d3e-4d2a-0".into();
        let t = tap_name("0b0c2f8e-7d3e-4d2a", &nic);
        assert!(t.len() <= 15 && t.starts_with("vn"), "{t}");
        assert_eq!(t, tap_name("0b0c2f8e-7d3e-4d2a", &nic), "stable");
        nic.ifname.clear();
        assert_ne!(tap_name("a", &nic), tap_name("b", &nic));
    }
}
