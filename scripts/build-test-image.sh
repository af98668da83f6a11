#!/usr/bin/env bash
# Build the cloudpods-rs test guest image from Debian packages (no loops, no mounts, as root).
#
# Usage: scripts/build-test-image.sh            prints the path of the cached qcow2 on stdout
#        scripts/build-test-image.sh --force    rebuilds even when cached
# Env:   CLOUDPODS_IMAGE_CACHE (default $HOME/.cache/cloudpods-rs/images)
#
# The image: 64 MiB disk, MBR (syslinux mbr.bin), partition 1 FAT16 `BOOT` with SYSLINUX,
# Debian's cloud kernel and an initramfs that is the whole root; partition 2 ext4 `cpdata`
# (files host-deployer may write under /cloudpods/). Guest boot (rcS):
#   load virtio modules -> read the config drive (label config-2, OpenStack
#   openstack/latest/meta_data.json: hostname, public_keys, admin_pass; or cidata NoCloud)
#   or /cloudpods/{hostname,authorized_keys,password} on the data partition
#   -> udhcpc on eth0 -> httpd :80, dropbear :22, acpid (power button -> poweroff)
#   -> one line on ttyS0:  CLOUDPODS-READY hostname=<h> ip=<ip>
#      (also on the VGA screen, tty0, for the console; the kernel logs to both, and ttyS0,
#      the last console=, stays /dev/console: init's output and getty are on the serial line)
#   -> then fetches latest/meta-data/instance-id from 169.254.169.254 into httpd's /instance-id
# The qcow2 is cached under a name keyed by the hash of this script: a second run is instant.
set -euo pipefail

force=0
[[ ${1:-} == --force ]] && force=1
cache=${CLOUDPODS_IMAGE_CACHE:-${HOME:-/root}/.cache/cloudpods-rs/images}
key=$(sha256sum "$0" | cut -c1-16)
out=$cache/cloudpods-testimg-$key.qcow2
if [[ $force == 0 && -s $out ]]; then
    echo "$out"
    exit 0
fi
log() { echo "build-test-image: $*" >&2; }
[[ $(id -u) -eq 0 ]] || {
    log "must run as root (apt-get)"
    exit 1
}
export DEBIAN_FRONTEND=noninteractive

# Build-side tools: command -> package.
need=(
    "depmod kmod" "modprobe kmod" "cpio cpio" "mcopy mtools" "mkfs.fat dosfstools" "sfdisk fdisk"
    "mke2fs e2fsprogs" "qemu-img qemu-utils" "syslinux syslinux" "gzip gzip"
)
missing=()
for pair in "${need[@]}"; do
    read -r cmd pkg <<<"$pair"
    command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd || -x /sbin/$cmd ]] || missing+=("$pkg")
done
[[ -f /usr/lib/syslinux/mbr/mbr.bin ]] || missing+=(syslinux-common)
updated=0
apt_update_once() {
    if [[ $updated == 0 ]]; then
        log "apt-get update"
        apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
        updated=1
    fi
}
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update_once
    log "installing build tools: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >&2
fi
export PATH=$PATH:/usr/sbin:/sbin
apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt_update_once

work=$(mktemp -d /tmp/cloudpods-testimg.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/x" "$work/root" "$work/kern"
cd "$work/debs"

kpkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
[[ -n $kpkg ]] || {
    log "cannot resolve the package behind linux-image-cloud-amd64"
    exit 1
}
pkgs=(busybox-static dropbear-bin libtomcrypt1 libtommath1 libc6 zlib1g libcrypt1 libgmp10)
log "downloading $kpkg ${pkgs[*]}"
# apt-get download as root warns that _apt cannot write here; that is harmless.
apt-get download -qq "$kpkg" "${pkgs[@]}" 2>/dev/null || apt-get download "$kpkg" "${pkgs[@]}" >&2
dpkg-deb -x "$work"/debs/"$kpkg"_*.deb "$work/kern"
for p in "${pkgs[@]}"; do dpkg-deb -x "$work"/debs/"${p}"_*.deb "$work/x"; done

kver=$(basename "$(ls -d "$work"/kern/lib/modules/*)")
vmlinuz=$work/kern/boot/vmlinuz-$kver
log "kernel $kver"

# --- the initramfs root -------------------------------------------------------------------
R=$work/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,etc/init.d,etc/dropbear,proc,sys,dev,run,tmp,mnt/config,data,root/.ssh,www,lib/modules,var/log,usr/share/udhcpc}
cp "$work/x/bin/busybox" "$R/bin/busybox"
for app in $("$R/bin/busybox" --list-full); do
    [[ -e $R/$app ]] || ln -s /bin/busybox "$R/$app"
done
cp "$work/x/usr/sbin/dropbear" "$R/usr/sbin/dropbear"
cp "$work/x/usr/bin/dropbearkey" "$R/usr/bin/dropbearkey"
# Shared libraries of dropbear (usrmerge-agnostic: take whatever the debs unpacked).
for d in lib lib64 usr/lib; do
    [[ -d $work/x/$d ]] || continue
    (cd "$work/x" && find "$d" \( -name '*.so*' -o -name 'ld-linux*' \) \( -type f -o -type l \) \
        -not -path '*/gconv/*' -not -path '*/audit/*' -print0 | cpio -0 -pdm --quiet "$R")
done
[[ -e $R/lib64/ld-linux-x86-64.so.2 ]] || log "warning: no dynamic loader in the image"

# Kernel modules, in dependency order, uncompressed.
mods=(virtio_pci virtio_blk virtio_net virtio_scsi sr_mod sd_mod isofs vfat nls_cp437 nls_iso8859_1 nls_utf8 ext4 button evdev)
depmod -b "$work/kern" "$kver"
: >"$R/etc/modules.list"
for m in "${mods[@]}"; do
    while read -r kind path _; do
        [[ $kind == insmod ]] || continue
        rel=${path#"$work/kern/lib/modules/$kver/"}
        name=$(basename "$rel")
        dst=${name%.xz}
        dst=${dst%.zst}
        grep -qx "$dst" "$R/etc/modules.list" && continue
        case $name in
            *.xz) xz -dc "$path" >"$R/lib/modules/$dst" ;;
            *.zst) zstd -qdc "$path" >"$R/lib/modules/$dst" ;;
            *) cp "$path" "$R/lib/modules/$dst" ;;
        esac
        echo "$dst" >>"$R/etc/modules.list"
    done < <(modprobe -d "$work/kern" -S "$kver" --show-depends "$m" 2>/dev/null || true)
done
log "modules: $(tr '\n' ' ' <"$R/etc/modules.list")"

cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
echo 'root:*:19000:0:99999:7:::' >"$R/etc/shadow"
chmod 600 "$R/etc/shadow"
echo 'root:x:0:' >"$R/etc/group"
echo /bin/sh >"$R/etc/shells"
echo 'localhost' >"$R/etc/hostname"
cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/poweroff
::shutdown:/bin/umount -a -r
EOF
printf '#!/bin/sh\nexec /sbin/init\n' >"$R/init"
chmod 755 "$R/init"
printf '#!/bin/sh\necho "CLOUDPODS-POWEROFF" > /dev/ttyS0\n/sbin/poweroff\n' >"$R/etc/acpi/PWRF/00000080"
chmod 755 "$R/etc/acpi/PWRF/00000080"

cat >"$R/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc hook: configure eth0 from the lease (ip, subnet, router, dns, hostname).
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound | renew)
    mask=${mask:-24}
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip -4 route replace default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    [ -n "$hostname" ] && echo "$hostname" >/run/dhcp-hostname
    echo "$ip" >/run/dhcp-ip
    ;;
esac
exit 0
EOF
chmod 755 "$R/usr/share/udhcpc/default.script"

cat >"$R/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# cloudpods test guest: the whole boot.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </etc/modules.list
ip link set lo up

# Wait (up to ~3 s) for block devices to appear.
i=0
while [ $i -lt 30 ] && ! ls /dev/vd? /dev/sr? >/dev/null 2>&1; do sleep 0.1; i=$((i + 1)); done

json_str() { # key file -> first string value of "key"
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$2" | head -n 1
}
hostname_cfg=""
password=""
keys=""
cfg=$(findfs LABEL=config-2 2>/dev/null || findfs LABEL=CONFIG-2 2>/dev/null || true)
if [ -n "$cfg" ] && { mount -o ro -t iso9660 "$cfg" /mnt/config 2>/dev/null || mount -o ro -t vfat "$cfg" /mnt/config 2>/dev/null; }; then
    md=/mnt/config/openstack/latest/meta_data.json
    if [ -f "$md" ]; then
        # Make it one key per line whatever the writer's layout.
        sed 's/,[[:space:]]*"/,\n"/g; s/{[[:space:]]*"/{\n"/g' "$md" >/tmp/md.json
        hostname_cfg=$(json_str hostname /tmp/md.json)
        password=$(json_str admin_pass /tmp/md.json)
        keys=$(grep -o '"\(ssh-[a-z0-9-]*\|ecdsa-[a-z0-9-]*\) [^"]*"' /tmp/md.json | tr -d '"')
    fi
    [ -f /mnt/config/openstack/latest/user_data ] && cp /mnt/config/openstack/latest/user_data /run/user_data
fi
cid=$(findfs LABEL=cidata 2>/dev/null || findfs LABEL=CIDATA 2>/dev/null || true)
if [ -z "$cfg" ] && [ -n "$cid" ] && { mount -o ro -t iso9660 "$cid" /mnt/config 2>/dev/null || mount -o ro -t vfat "$cid" /mnt/config 2>/dev/null; }; then
    hostname_cfg=$(sed -n 's/^local-hostname:[[:space:]]*\(.*\)$/\1/p' /mnt/config/meta-data | head -n 1)
    keys=$(sed -n 's/^[[:space:]]*-[[:space:]]*\(ssh-.*\)$/\1/p' /mnt/config/user-data)
    password=$(sed -n 's/^password:[[:space:]]*\(.*\)$/\1/p' /mnt/config/user-data | head -n 1)
fi
# Files host-deployer wrote onto the data partition.
dat=$(findfs LABEL=cpdata 2>/dev/null || true)
if [ -n "$dat" ] && mount -t ext4 "$dat" /data 2>/dev/null; then
    [ -s /data/cloudpods/hostname ] && hostname_cfg=$(head -n 1 /data/cloudpods/hostname)
    [ -s /data/cloudpods/password ] && password=$(head -n 1 /data/cloudpods/password)
    [ -s /data/cloudpods/authorized_keys ] && keys=$(cat /data/cloudpods/authorized_keys)
fi
if [ -n "$password" ]; then
    hash=$(mkpasswd -m sha512 "$password")
    echo "root:$hash:19000:0:99999:7:::" >/etc/shadow
fi
if [ -n "$keys" ]; then
    echo "$keys" >/root/.ssh/authorized_keys
    chmod 700 /root/.ssh
    chmod 600 /root/.ssh/authorized_keys
fi

ip link set eth0 up 2>/dev/null
if ip link show eth0 >/dev/null 2>&1; then
    udhcpc -i eth0 -s /usr/share/udhcpc/default.script -O hostname -t 15 -T 1 -A 2 -b -S -p /run/udhcpc.pid >/dev/null 2>&1
fi
name=$hostname_cfg
[ -z "$name" ] && [ -s /run/dhcp-hostname ] && name=$(cat /run/dhcp-hostname)
[ -z "$name" ] && name=localhost
hostname "$name"
echo "$name" >/etc/hostname
addr=$(ip -4 -o addr show dev eth0 2>/dev/null | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
echo "cloudpods-test-guest hostname=$name ip=${addr:-none}" >/www/index.html
httpd -p 80 -h /www
dropbear -R -p 22 -P /run/dropbear.pid
acpid -c /etc/acpi
echo "CLOUDPODS-READY hostname=$name ip=${addr:-none}" >/dev/tty0 2>/dev/null
echo "CLOUDPODS-READY hostname=$name ip=${addr:-none}" >/dev/ttyS0
# After the ready line (never delaying it): what the metadata service says, served by httpd.
if [ -n "$addr" ]; then
    (for _ in 1 2 3 4 5; do
        # Not busybox wget: the static build crashes resolving the "http" service name.
        (printf 'GET /latest/meta-data/instance-id HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n'; sleep 3) |
            nc 169.254.169.254 80 >/tmp/md.resp 2>>/www/metadata.log
        if head -n 1 /tmp/md.resp | grep -q ' 200 '; then
            sed '1,/^\r*$/d' /tmp/md.resp >/www/instance-id
            break
        fi
        head -n 1 /tmp/md.resp >>/www/metadata.log
        sleep 1
    done) >/dev/null 2>&1 &
fi
EOF
chmod 755 "$R/etc/init.d/rcS"

(cd "$R" && find . -print0 | cpio -0 -o -H newc --quiet --owner=0:0 | gzip -9) >"$work/initrd.gz"
log "initramfs $(du -h "$work/initrd.gz" | cut -f1), kernel $(du -h "$vmlinuz" | cut -f1)"

# --- the disk -------------------------------------------------------------------------------
cat >"$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=tty0 console=ttyS0,115200 quiet loglevel=3 rdinit=/init
EOF
boot_sectors=81920 # 40 MiB
mkfs.fat -F 16 -n BOOT -C "$work/boot.img" $((boot_sectors / 2)) >/dev/null
mcopy -i "$work/boot.img" "$vmlinuz" ::/vmlinuz
mcopy -i "$work/boot.img" "$work/initrd.gz" ::/initrd.gz
mcopy -i "$work/boot.img" "$work/syslinux.cfg" ::/syslinux.cfg
syslinux --install "$work/boot.img"
mkdir -p "$work/data/cloudpods"
echo "cloudpods test image data partition" >"$work/data/README"
data_start=$((2048 + boot_sectors))
total_sectors=$((64 * 2048))
data_sectors=$((total_sectors - data_start))
mke2fs -q -t ext4 -L cpdata -d "$work/data" "$work/data.img" $((data_sectors / 2))k >&2
truncate -s 64M "$work/disk.raw"
sfdisk -q "$work/disk.raw" <<EOF
label: dos
start=2048, size=$boot_sectors, type=6, bootable
start=$data_start, size=$data_sectors, type=83
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.img" of="$work/disk.raw" bs=512 seek=2048 conv=notrunc status=none
dd if="$work/data.img" of="$work/disk.raw" bs=512 seek=$data_start conv=notrunc status=none

mkdir -p "$cache"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$out.tmp"
mv -f "$out.tmp" "$out"
log "built $out ($(du -h "$out" | cut -f1))"
echo "$out"
