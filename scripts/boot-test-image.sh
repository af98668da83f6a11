#!/usr/bin/env bash
# Prove the test guest image boots: QEMU under TCG (as on our machines), a qcow2 overlay on
# the cached image, a config drive (label config-2, OpenStack layout) with a hostname, and a
# user-mode NIC with `restrict=on` (the guest reaches nothing outside QEMU). Waits for
#   CLOUDPODS-READY hostname=<the config drive's hostname> ip=<slirp's 10.0.2.15>
# on the serial console, then presses the ACPI power button and waits for QEMU to exit.
#
# Usage: scripts/boot-test-image.sh [image.qcow2]   (default: scripts/build-test-image.sh's)
# Env:   BOOT_TIMEOUT (seconds, default 90), ACCEL (default tcg,thread=multi)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
img=${1:-$("$here/build-test-image.sh")}
timeout=${BOOT_TIMEOUT:-90}
accel=${ACCEL:-tcg,thread=multi}
command -v qemu-system-x86_64 >/dev/null || "$here/deps.sh" --qemu
for pair in "genisoimage genisoimage" "socat socat"; do
    read -r cmd pkg <<<"$pair"
    command -v "$cmd" >/dev/null || apt-get install -y -qq --no-install-recommends "$pkg" >&2 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$pkg" >&2; }
done

work=$(mktemp -d /tmp/cloudpods-boot.XXXXXX)
qpid=""
cleanup() {
    if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

name=boottest-$$
mkdir -p "$work/cd/openstack/latest"
cat >"$work/cd/openstack/latest/meta_data.json" <<EOF
{"uuid": "00000000-0000-0000-0000-000000000001", "hostname": "$name", "name": "$name",
 "public_keys": {"default": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootTestKeyOnly test@cloudpods"},
 "admin_pass": "boot-test-pw"}
EOF
genisoimage -quiet -o "$work/config.iso" -V config-2 -r -J "$work/cd"
qemu-img create -q -f qcow2 -b "$img" -F qcow2 "$work/disk.qcow2"

ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf "%d.%03d" $(($1 / 1000)) $(($1 % 1000)); }
t0=$(ms)
qemu-system-x86_64 -name "$name" -M q35 -accel "$accel" -cpu max -m 256 -smp 1 \
    -nodefaults -no-user-config -display none -vga none \
    -serial "file:$work/serial.log" -qmp "unix:$work/qmp.sock,server=on,wait=off" \
    -pidfile "$work/qemu.pid" -daemonize \
    -blockdev "driver=file,filename=$work/disk.qcow2,node-name=f0" \
    -blockdev "driver=qcow2,file=f0,node-name=d0" -device virtio-blk-pci,drive=d0,bootindex=1 \
    -blockdev "driver=file,filename=$work/config.iso,read-only=on,node-name=f1" \
    -blockdev "driver=raw,file=f1,read-only=on,node-name=cd0" -device virtio-blk-pci,drive=cd0 \
    -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56
qpid=$(cat "$work/qemu.pid")

ready=""
while :; do
    ready=$(grep -a -m1 'CLOUDPODS-READY' "$work/serial.log" 2>/dev/null || true)
    [[ -n $ready ]] && break
    kill -0 "$qpid" 2>/dev/null || {
        echo "boot-test-image: QEMU exited before the ready line" >&2
        cat "$work/serial.log" >&2
        exit 1
    }
    if (($(ms) - t0 > timeout * 1000)); then
        echo "boot-test-image: no ready line after ${timeout}s; serial log:" >&2
        cat "$work/serial.log" >&2
        exit 1
    fi
    sleep 0.2
done
t_ready=$(secs $(($(ms) - t0)))
ready=$(echo "$ready" | tr -d '\r')
echo "boot-test-image: $ready (${t_ready}s after QEMU start)"
[[ $ready == "CLOUDPODS-READY hostname=$name ip=10.0.2.15" ]] || {
    echo "boot-test-image: unexpected ready line (want hostname=$name ip=10.0.2.15)" >&2
    exit 1
}

# ACPI power button -> the guest powers itself off.
t1=$(ms)
printf '{"execute":"qmp_capabilities"}\n{"execute":"system_powerdown"}\n' |
    socat -t 2 - "UNIX-CONNECT:$work/qmp.sock" >/dev/null
for _ in $(seq 1 150); do
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "$qpid" 2>/dev/null; then
    echo "boot-test-image: guest did not power off within 30 s of system_powerdown" >&2
    exit 1
fi
qpid=""
echo "boot-test-image: powered off $(secs $(($(ms) - t1)))s after system_powerdown"
