#!/usr/bin/env bash
# Idempotently install the Debian packages cloudpods-rs needs to build, test
# and run. Silent when everything is already present; runs `apt-get update`
# only when something has to be installed.
#
# Usage: scripts/deps.sh [--qemu]
#   --qemu            also install qemu-system-x86 (+ a matching qemu-utils)
#                     and what the host agent runs: debugfs, openssl;
#                     `make run` passes it, `make test` does not.
# Env:
#   DEPS_QEMU=1       same as --qemu
#   DEPS_DRY_RUN=1    only simulate the installs (apt-get -s)
set -euo pipefail

want_qemu=${DEPS_QEMU:-0}
for arg in "$@"; do
    case $arg in
        --qemu) want_qemu=1 ;;
        -h | --help)
            sed -n '2,12p' "$0"
            exit 0
            ;;
        *)
            echo "deps.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

# "command-or-check package" pairs; a check is a command name looked up on PATH.
base_needs=(
    "mariadbd mariadb-server"
    "mariadb-install-db mariadb-server"
    "mariadb mariadb-client"
    "mariadb-admin mariadb-client"
    "pkg-config pkg-config"
    "curl curl"
    "qemu-img qemu-utils"
    # The dashboard's build (npm ci + vite) and its browser tests (playwright-core drives
    # Debian's chromium; no browser is ever downloaded).
    "node nodejs"
    "npm npm"
    "chromium chromium"
    # isoinfo reads back the config drives the host agent writes (its unit tests).
    "isoinfo genisoimage"
)

have_cmd() {
    # mariadbd & co live in /usr/sbin, which a non-root PATH may lack.
    command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /usr/bin/$1 ]]
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

missing=()
add_missing() {
    local p
    for p in "${missing[@]}"; do [[ $p == "$1" ]] && return 0; done
    missing+=("$1")
}

for pair in "${base_needs[@]}"; do
    read -r cmd pkg <<<"$pair"
    have_cmd "$cmd" || add_missing "$pkg"
done
# `python3 -m venv` needs ensurepip; Debian's python splits it into python3-venv.
pkg_installed python3-venv || add_missing python3-venv

qemu_extra=()
if [[ $want_qemu == 1 ]] && ! have_cmd qemu-system-x86_64; then
    add_missing qemu-system-x86
    # Debian 12's qemu-system-x86 is 7.2; a qemu-utils from backports (>= 8.0)
    # Breaks it, so install the bookworm qemu-utils alongside (a downgrade).
    utils_ver=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    if [[ -n $utils_ver ]] && dpkg --compare-versions "$utils_ver" ge "1:8.0"; then
        qemu_extra=(--allow-downgrades qemu-utils/bookworm)
    fi
fi

# The host agent customises guest disks directly with debugfs (e2fsprogs) and openssl
# (password hashes); it writes config drives itself.
if [[ $want_qemu == 1 ]]; then
    have_cmd debugfs || add_missing e2fsprogs
    have_cmd openssl || add_missing openssl
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "==> installing Debian packages: ${missing[*]} ${qemu_extra[*]}"
# A third-party source that is unreachable makes `apt-get update` exit 100
# although the Debian lists were refreshed: warn and let the install decide.
if ! "${sudo[@]}" apt-get update -qq; then
    echo "deps.sh: warning: apt-get update reported errors (continuing)" >&2
fi
simulate=()
[[ ${DEPS_DRY_RUN:-0} == 1 ]] && simulate=(-s)
"${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
    "${simulate[@]}" "${missing[@]}" "${qemu_extra[@]}"

# apt-get install starts no services here (policy-rc.d); nothing else to do.
if [[ ${DEPS_DRY_RUN:-0} != 1 ]]; then
    for pair in "${base_needs[@]}"; do
        read -r cmd pkg <<<"$pair"
        have_cmd "$cmd" || {
            echo "deps.sh: $cmd still missing after installing $pkg" >&2
            exit 1
        }
    done
    if [[ $want_qemu == 1 ]] && ! have_cmd qemu-system-x86_64; then
        echo "deps.sh: qemu-system-x86_64 still missing" >&2
        exit 1
    fi
fi
