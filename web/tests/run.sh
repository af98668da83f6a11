#!/usr/bin/env bash
# Browser tests of the dashboard: a real `cloudpods aio` on shifted ports in a temp data dir,
# the built dashboard, and headless Debian chromium driven by playwright-core.
#
# Usage: web/tests/run.sh [test.mjs ...]      (default: browser.mjs)
# Env (all optional):
#   BROWSER_BIN_DIR        use cloudpods from this dir instead of building it
#   BROWSER_PROFILE        debug (default) or release
#   BROWSER_PORT_OFFSET    --port-offset for aio (default 1500: gateway 31800; below the kernel's
#                          ephemeral ports, 32768 and up, which a client socket could be holding)
#   BROWSER_AIO_ARGS       extra aio flags (servers.mjs needs `--simulated-hosts 1`)
#   BROWSER_READY_TIMEOUT  seconds to wait for aio (default 60)
#   CHROMIUM               the browser (default /usr/bin/chromium; never downloaded)
#   BROWSER_HOST=1         real-host mode (console-vm.mjs needs it): root only; installs QEMU
#                          (scripts/deps.sh --qemu), builds or reuses the test guest image
#                          (scripts/build-test-image.sh; its path reaches the tests as TEST_IMAGE,
#                          aio's data dir as AIO_DATA_DIR: guests' serial logs are under it),
#                          makes a private netns cpbrowser-<pid> and runs aio with the real host
#                          agent in it (--set host.enabled=true --set host.netns=...). On exit:
#                          aio stopped, every QEMU whose pidfile is under <data>/host/servers
#                          killed (after checking /proc/<pid>/cmdline), the netns deleted, the
#                          guests' disks and the image copies removed (serial logs kept).
#                          e.g.  BROWSER_HOST=1 web/tests/run.sh console-vm.mjs
# Ends with "browser: N passed, M failed" and the screenshots' directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OFFSET=${BROWSER_PORT_OFFSET:-1500}
GW_PORT=$((30300 + OFFSET))
PROFILE=${BROWSER_PROFILE:-debug}
READY_TIMEOUT=${BROWSER_READY_TIMEOUT:-60}
TESTS=("$@")
[[ ${#TESTS[@]} -gt 0 ]] || TESTS=(browser.mjs)
read -r -a EXTRA <<<"${BROWSER_AIO_ARGS:-}"
REAL_HOST=${BROWSER_HOST:-0}
if [[ $REAL_HOST == 1 && $(id -u) -ne 0 ]]; then
    echo "browser: BROWSER_HOST=1 (the real host agent: netns, bridges, taps, QEMU) needs root" >&2
    exit 1
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/cloudpods-browser.XXXXXX")
ARTIFACTS=$DIR/artifacts
mkdir -p "$ARTIFACTS"
AIO_LOG=$DIR/aio.log
AIO_PID=""
NETNS=""
TEST_IMAGE=""

stop_aio() {
    [[ -n $AIO_PID ]] || return 0
    kill -TERM -- "-$AIO_PID" 2>/dev/null || kill -TERM "$AIO_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$AIO_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$AIO_PID" 2>/dev/null || true
    AIO_PID=""
}

# QEMU outlives the agent by design (a restarted agent re-adopts it): kill the ones of this
# run's aio, known by their pidfiles and checked against /proc/<pid>/cmdline (as the host
# agent's own qemu_alive does), then drop the namespace.
sweep_host() {
    local f id pid
    for f in "$DIR"/data/host/servers/*/qemu.pid; do
        [[ -f $f ]] || continue
        id=$(basename "$(dirname "$f")")
        pid=$(tr -dc 0-9 <"$f")
        [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "qemu.*cloudpods-$id"; then
            echo "browser: killing leftover QEMU $pid of server $id" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                [[ -d /proc/$pid ]] || break
                sleep 0.1
            done
        fi
    done
    if [[ -n $NETNS ]]; then
        ip netns del "$NETNS" 2>/dev/null || echo "browser: warning: could not delete netns $NETNS" >&2
        NETNS=""
    fi
    # The bulky files (guest disks, the image in glance and in the agent's cache); the guests'
    # serial logs stay under data/host/servers for a failure's post-mortem.
    rm -rf "$DIR/data/host/disks" "$DIR/data/host/image_cache" "$DIR/data/images"
}

cleanup() {
    stop_aio
    [[ $REAL_HOST != 1 ]] || sweep_host
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

CHROME=${CHROMIUM:-/usr/bin/chromium}
[[ -x $CHROME ]] || {
    echo "browser: $CHROME is missing (scripts/deps.sh installs Debian's chromium)" >&2
    exit 1
}

if [[ -n ${BROWSER_BIN_DIR:-} ]]; then
    CLOUDPODS=$BROWSER_BIN_DIR/cloudpods
else
    flag=()
    [[ $PROFILE == release ]] && flag=(--release)
    cargo build "${flag[@]}" -p cloudpods
    CLOUDPODS=$(scripts/target-dir.sh)/$PROFILE/cloudpods
fi
DIST=$(scripts/web-build.sh | tail -n 1)

if [[ $REAL_HOST == 1 ]]; then
    scripts/deps.sh --qemu >&2
    TEST_IMAGE=$(scripts/build-test-image.sh | tail -n 1)
    [[ -s $TEST_IMAGE ]] || {
        echo "browser: scripts/build-test-image.sh gave no image ($TEST_IMAGE)" >&2
        exit 1
    }
    NETNS=cpbrowser-$$
    ip netns add "$NETNS"
    EXTRA+=(--set host.enabled=true --set "host.netns=$NETNS")
    echo "==> real host agent: netns $NETNS, test image $TEST_IMAGE"
fi

if curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/version"; then
    echo "browser: 127.0.0.1:$GW_PORT is in use (set BROWSER_PORT_OFFSET)" >&2
    exit 1
fi
echo "==> cloudpods aio --data-dir $DIR/data --port-offset $OFFSET ${EXTRA[*]} (log: $AIO_LOG)"
CLOUDPODS_WEB_DIR=$DIST setsid "$CLOUDPODS" aio --data-dir "$DIR/data" --port-offset "$OFFSET" \
    --listen-address 127.0.0.1 "${EXTRA[@]}" >>"$AIO_LOG" 2>&1 </dev/null &
AIO_PID=$!
t0=$SECONDS
until [[ -f $DIR/data/openrc ]] && curl -sf -o /dev/null "http://127.0.0.1:$GW_PORT/version"; do
    kill -0 "$AIO_PID" 2>/dev/null || {
        tail -n 40 "$AIO_LOG" >&2
        echo "browser: aio exited during startup" >&2
        exit 1
    }
    ((SECONDS - t0 < READY_TIMEOUT)) || {
        echo "browser: aio not ready after ${READY_TIMEOUT}s" >&2
        exit 1
    }
    sleep 0.2
done
echo "    aio is up (pid $AIO_PID) after $((SECONDS - t0))s"
# shellcheck disable=SC1091
ADMIN_PASSWORD=$(source "$DIR/data/openrc" && printf '%s' "$OS_PASSWORD")

passed=0
failed=0
for t in "${TESTS[@]}"; do
    echo "==> node web/tests/$t"
    rc=0
    GATEWAY_URL="http://127.0.0.1:$GW_PORT" ADMIN_PASSWORD=$ADMIN_PASSWORD ARTIFACTS=$ARTIFACTS CHROMIUM=$CHROME \
        TEST_IMAGE=$TEST_IMAGE AIO_DATA_DIR=$DIR/data node "web/tests/$t" | tee "$DIR/$t.log" || rc=$?
    read -r p f < <(awk '/^browser: [0-9]+ passed, [0-9]+ failed/ { p = $2; f = $4 } END { printf "%d %d\n", p, f }' "$DIR/$t.log")
    passed=$((passed + p))
    failed=$((failed + f))
    [[ $rc == 0 || $f -gt 0 ]] || failed=$((failed + 1))
done
cleanup
echo
echo "screenshots and logs: $ARTIFACTS (aio log: $AIO_LOG)"
echo "browser: $passed passed, $failed failed"
[[ $failed == 0 ]]
