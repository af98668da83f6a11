#!/usr/bin/env bash
# End-to-end tour of the released features against a real `cloudpods aio`,
# driven by the stock OpenStack client and by climc.
#
# Usage: tests/e2e/run.sh
# Env (all optional):
#   E2E_BIN_DIR          use cloudpods/climc from this dir instead of building
#   E2E_PROFILE          debug (default) or release: which build to make/use
#   E2E_PORT_OFFSET      --port-offset for aio (default 1000: keystone 31500; below the kernel's
#                        ephemeral ports, which a client socket could be holding)
#   E2E_DATA_DIR         data dir for aio (default: a new mktemp dir)
#   E2E_TRANSCRIPT       transcript file (default $DATA_DIR/transcript.txt)
#   E2E_READY_TIMEOUT    seconds to wait for aio to come up (default 60)
#   CLOUDPODS_VENV       venv with the openstack client
#                        (default $HOME/.cache/cloudpods-rs/venv)
#   E2E_OPENSTACKCLIENT  pip requirement installed into a new venv
#                        (default python-openstackclient==10.5.0)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OFFSET=${E2E_PORT_OFFSET:-1000}
KEYSTONE_PORT=$((30500 + OFFSET))
READY_TIMEOUT=${E2E_READY_TIMEOUT:-60}
PROFILE=${E2E_PROFILE:-debug}
VENV=${CLOUDPODS_VENV:-${HOME:-/root}/.cache/cloudpods-rs/venv}
OSC_SPEC=${E2E_OPENSTACKCLIENT:-python-openstackclient==10.5.0}

DIR=${E2E_DATA_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cloudpods-e2e.XXXXXX")}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
TRANSCRIPT=${E2E_TRANSCRIPT:-$DIR/transcript.txt}
AIO_LOG="$DIR/aio.log"
: >"$TRANSCRIPT"

AIO_PID=""
CMD_PID=""
STEP=0
CHECKS=0
START=$SECONDS
OUT=""
RC=0
LAST_CMD=""

# ---------------------------------------------------------------- helpers --

# say TEXT: print to the terminal and to the transcript.
say() { printf '%s\n' "$*" | tee -a "$TRANSCRIPT"; }

# step DESCRIPTION: a numbered banner for the next part of the tour.
step() {
    STEP=$((STEP + 1))
    say ""
    say "==> [$STEP] $*"
}

# fail MESSAGE: report, show the failing command's output and aio's log, exit.
fail() {
    {
        printf '\nE2E FAILED: %s\n' "$*"
        if [[ -n $LAST_CMD ]]; then
            printf -- '--- last command (exit %s): %s\n%s\n' "$RC" "$LAST_CMD" "$OUT"
        fi
        if [[ -s $AIO_LOG ]]; then
            printf -- '--- last 40 lines of %s:\n' "$AIO_LOG"
            tail -n 40 "$AIO_LOG"
        fi
    } | tee -a "$TRANSCRIPT" >&2
    exit 1
}

# run CMD...: run a command, capture its output in $OUT and status in $RC,
# and log both (command first) to the terminal and the transcript.
run() {
    LAST_CMD=$(printf '%q ' "$@")
    LAST_CMD=${LAST_CMD% }
    say "\$ $LAST_CMD"
    # In the background + wait, so a TERM/INT trap fires at once.
    "$@" >"$DIR/.last-output" 2>&1 </dev/null &
    CMD_PID=$!
    wait "$CMD_PID" && RC=0 || RC=$?
    CMD_PID=""
    OUT=$(<"$DIR/.last-output")
    if [[ -n $OUT ]]; then
        printf '%s\n' "$OUT" | sed 's/^/    /' | tee -a "$TRANSCRIPT"
    fi
    say "    [exit $RC]"
}

# expect_ok CMD...: the command must succeed.
expect_ok() {
    run "$@"
    [[ $RC -eq 0 ]] || fail "command failed: $LAST_CMD"
    CHECKS=$((CHECKS + 1))
}

# expect_contains NEEDLE CMD...: the command must succeed and print NEEDLE.
expect_contains() {
    local needle=$1
    shift
    expect_ok "$@"
    output_contains "$needle"
}

# output_contains NEEDLE...: the last command's output must contain each NEEDLE.
output_contains() {
    local needle
    for needle in "$@"; do
        grep -qF -- "$needle" <<<"$OUT" ||
            fail "output of '$LAST_CMD' does not contain '$needle'"
        CHECKS=$((CHECKS + 1))
    done
}

# output_matches REGEX: the last command's output must match (grep -Ei).
output_matches() {
    grep -qEi -- "$1" <<<"$OUT" ||
        fail "output of '$LAST_CMD' does not match /$1/"
    CHECKS=$((CHECKS + 1))
}

# expect_fail CMD...: the command must exit non-zero.
expect_fail() {
    run "$@"
    [[ $RC -ne 0 ]] || fail "command succeeded but should have failed: $LAST_CMD"
    CHECKS=$((CHECKS + 1))
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

aio_alive() {
    [[ -n $AIO_PID ]] && kill -0 "$AIO_PID" 2>/dev/null &&
        [[ $(awk '{print $3}' "/proc/$AIO_PID/stat" 2>/dev/null) != Z ]]
}

# start_aio: start `cloudpods aio` in the background in its own process
# group and wait until openrc exists and keystone answers.
start_aio() {
    # A just-killed aio can hold its port for a moment: give it up to 10 s to go.
    local t_free=$SECONDS
    while port_busy "$KEYSTONE_PORT" && ((SECONDS - t_free < 10)); do
        sleep 0.2
    done
    if port_busy "$KEYSTONE_PORT"; then
        fail "127.0.0.1:$KEYSTONE_PORT is already in use (another aio? set E2E_PORT_OFFSET)"
    fi
    say "\$ cloudpods aio --data-dir $DIR --port-offset $OFFSET --simulated-hosts 1 >>$AIO_LOG 2>&1 &"
    echo "=== $(date -Is) starting aio" >>"$AIO_LOG"
    # Not a process-group leader here, so setsid execs: $! is aio's own pid.
    setsid "$CLOUDPODS" aio --data-dir "$DIR" --port-offset "$OFFSET" --simulated-hosts 1 \
        </dev/null >>"$AIO_LOG" 2>&1 &
    AIO_PID=$!
    # Disowned: bash still reaps it, but prints no "Killed" notice for it.
    disown "$AIO_PID"
    local t0=$SECONDS
    until [[ -f $DIR/openrc ]] && curl -sf -o /dev/null "http://127.0.0.1:$KEYSTONE_PORT/v3"; do
        aio_alive || {
            AIO_PID=""
            LAST_CMD=""
            fail "cloudpods aio exited during startup"
        }
        ((SECONDS - t0 < READY_TIMEOUT)) ||
            fail "aio not ready after ${READY_TIMEOUT}s (openrc: $([[ -f $DIR/openrc ]] && echo yes || echo no))"
        sleep 0.25
    done
    say "    aio is up (pid $AIO_PID) after $((SECONDS - t0))s"
}

# kill_aio [SIGNAL]: stop the aio we started (its process group), by pid.
kill_aio() {
    local sig=${1:-TERM} t0=$SECONDS
    [[ -n $AIO_PID ]] || return 0
    kill "-$sig" -- "-$AIO_PID" 2>/dev/null || kill "-$sig" "$AIO_PID" 2>/dev/null || true
    while aio_alive; do
        if ((SECONDS - t0 >= 10)); then
            kill -KILL -- "-$AIO_PID" 2>/dev/null || kill -KILL "$AIO_PID" 2>/dev/null || true
        fi
        sleep 0.1
    done
    AIO_PID=""
}

load_openrc() {
    local v missing=()
    [[ -f $DIR/openrc ]] || fail "$DIR/openrc does not exist"
    # Start clean: nothing from the caller's environment may leak in.
    while read -r v; do unset "$v"; done < <(compgen -v OS_ || true)
    set +u
    # shellcheck source=/dev/null
    source "$DIR/openrc"
    set -u
    for v in OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME \
        OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_NAME OS_DOMAIN_NAME \
        OS_PROJECT_DOMAIN OS_REGION_NAME OS_IDENTITY_API_VERSION \
        OS_INTERFACE OS_ENDPOINT_TYPE; do
        [[ -n ${!v:-} ]] || missing+=("$v")
    done
    [[ ${#missing[@]} -eq 0 ]] || fail "openrc does not export: ${missing[*]}"
    say "    sourced $DIR/openrc (OS_AUTH_URL=$OS_AUTH_URL OS_USERNAME=$OS_USERNAME OS_PROJECT_NAME=$OS_PROJECT_NAME)"
}

ensure_venv() {
    if "$VENV/bin/openstack" --version >/dev/null 2>&1; then
        return 0
    fi
    step "creating venv $VENV with $OSC_SPEC"
    local t0=$SECONDS
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed (make deps installs python3-venv)"
    fi
    "$VENV/bin/pip" install -q "$OSC_SPEC" || fail "pip install $OSC_SPEC failed"
    "$VENV/bin/openstack" --version >/dev/null 2>&1 || fail "openstack --version fails in $VENV"
    say "    venv ready in $((SECONDS - t0))s"
}

cleanup() {
    local rc=$?
    [[ -z $CMD_PID ]] || kill "$CMD_PID" 2>/dev/null || true
    kill_aio KILL
    if [[ $rc -eq 0 ]]; then
        say ""
        say "e2e: $CHECKS passed, 0 failed"
        say "E2E PASSED in $((SECONDS - START))s"
    else
        say ""
        say "e2e: $CHECKS passed, 1 failed"
        echo "E2E FAILED (exit $rc) after $((SECONDS - START))s" | tee -a "$TRANSCRIPT" >&2
    fi
    echo "transcript: $TRANSCRIPT"
    echo "aio log:    $AIO_LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ setup --

say "cloudpods-rs e2e: data dir $DIR, port offset $OFFSET (keystone :$KEYSTONE_PORT)"

if [[ -n ${E2E_BIN_DIR:-} ]]; then
    BIN_DIR=$(cd "$E2E_BIN_DIR" && pwd)
else
    step "building cloudpods and climc ($PROFILE)"
    build_args=(build -p cloudpods -p climc)
    [[ $PROFILE == release ]] && build_args+=(--release)
    (cd "$ROOT" && cargo "${build_args[@]}") || fail "cargo ${build_args[*]} failed"
    BIN_DIR="$("$ROOT/scripts/target-dir.sh")/$PROFILE"
fi
CLOUDPODS="$BIN_DIR/cloudpods"
CLIMC="$BIN_DIR/climc"
[[ -x $CLOUDPODS ]] || fail "no cloudpods binary at $CLOUDPODS"
[[ -x $CLIMC ]] || fail "no climc binary at $CLIMC"

ensure_venv
export PATH="$BIN_DIR:$VENV/bin:$PATH"
# Run the clients from the data dir so no clouds.yaml in the repo is picked up.
cd "$DIR"
unset OS_CLOUD

# ------------------------------------------------------------------- tour --

step "start cloudpods aio"
start_aio
load_openrc

step "openstack: admin token"
expect_contains "project_id" openstack token issue
output_contains "expires" "user_id"

step "openstack: projects"
expect_contains "demo" openstack project create demo
expect_contains "demo" openstack project list

step "openstack: user alice with role member on demo"
expect_contains "alice" openstack user create --password Passw0rd-alice alice
expect_ok openstack role add --project demo --user alice member
expect_contains "member" openstack role assignment list --user alice --project demo --names
output_contains "alice" "demo"

step "openstack: catalog and users"
expect_contains "identity" openstack catalog list
expect_contains "alice" openstack user list
output_contains "$OS_USERNAME"

step "climc: users, projects, role assignments"
expect_contains "alice" climc user-list
expect_contains "demo2" climc project-create demo2
expect_contains "demo2" climc project-list
output_contains "demo"
expect_contains "member" climc role-assignments --user alice
output_contains "demo"

step "climc: a readable error for a missing user"
expect_fail climc user-show nosuchuser
output_matches 'not ?found|404'
grep -qiE 'panicked|RUST_BACKTRACE' <<<"$OUT" && fail "climc panicked instead of reporting an error"

step "climc: upload, probe and download an image (glance)"
run qemu-img create -f qcow2 "$DIR/tiny.qcow2" 64M
expect_contains "tiny" climc image-upload --format qcow2 --os-type Linux "$DIR/tiny.qcow2" tiny
output_contains "uploaded"
for _ in $(seq 1 150); do
    climc image-show tiny 2>/dev/null | grep -qE '\| status +\| active' && break
    sleep 0.2
done
expect_contains "active" climc image-show tiny
output_contains "qcow2"
expect_contains "md5 checked" climc image-download tiny -o "$DIR/tiny-out.qcow2" --format qcow2
expect_contains "qcow2" qemu-img info "$DIR/tiny-out.qcow2"

step "climc: servers on a simulated host (region, scheduler, tasks)"
# wait_status KIND NAME STATUS: until `climc KIND-show NAME` says STATUS (30 s).
wait_status() {
    local kind=$1 name=$2 want=$3 got=""
    for _ in $(seq 1 150); do
        got=$(climc "$kind-show" "$name" 2>/dev/null | awk -F'|' '$2 ~ /^ *status *$/ { gsub(/ /, "", $3); print $3 }')
        [[ $got == "$want" ]] && { say "    $kind $name is $want"; return 0; }
        sleep 0.2
    done
    fail "$kind $name is '$got', not '$want', after 30 s"
}
expect_contains "sim-host-1" climc host-list
expect_contains "can_create" climc scheduler-forecast --ncpu 1 --mem-spec 256m --disk 1g
expect_contains "vm1" climc server-create --ncpu 1 --mem-spec 256m --disk tiny:1g --net default \
    --password Passw0rd-vm1 vm1
wait_status server vm1 ready
expect_contains "192.168.122." climc server-show vm1
output_contains "sim-host-1"
expect_ok climc server-start vm1
wait_status server vm1 running
expect_ok climc server-restart vm1
wait_status server vm1 running
expect_fail climc server-change-config vm1 --ncpu 2
output_contains "stop it"
expect_ok climc server-stop vm1
wait_status server vm1 ready
expect_ok climc server-change-config vm1 --ncpu 2 --mem-spec 512m
wait_status server vm1 ready
expect_contains "512" climc server-show vm1
expect_contains "data1" climc disk-create data1 1g
wait_status disk data1 ready
expect_ok climc server-attach-disk vm1 --disk data1
wait_status server vm1 ready
expect_contains "data1" climc disk-show data1
output_contains "vm1"
expect_ok climc server-detach-disk vm1 --disk data1 --delete-disk
wait_status server vm1 ready
expect_contains "GuestCreateTask" climc region-task-list --limit 100
expect_ok climc server-create --mem-spec 300g --disk 1g huge
wait_status server huge sched_fail
expect_ok climc server-delete huge --override-pending-delete
expect_ok climc server-delete vm1
for _ in $(seq 1 150); do
    climc server-list --pending-delete true 2>/dev/null | grep -q vm1 && break
    sleep 0.2
done
expect_contains "vm1" climc server-list --pending-delete true
expect_ok climc server-cancel-delete vm1
expect_contains "vm1" climc server-list

step "alice logs in as herself"
expect_contains "project_id" env OS_USERNAME=alice OS_PASSWORD=Passw0rd-alice OS_PROJECT_NAME=demo \
    openstack token issue
expect_fail env OS_USERNAME=alice OS_PASSWORD=wrong-password OS_PROJECT_NAME=demo \
    openstack token issue
output_contains "401"

step "kill -9 aio and restart it on the same data dir"
say "\$ kill -KILL $AIO_PID"
kill_aio KILL
start_aio
load_openrc

step "state survived the restart"
expect_contains "project_id" openstack token issue
expect_contains "alice" openstack user show alice
expect_contains "demo" openstack project show demo
expect_contains "member" openstack role assignment list --user alice --project demo --names
expect_contains "demo2" climc project-list
expect_contains "alice" climc user-list
expect_contains "active" climc image-show tiny
expect_contains "vm1" climc server-show vm1
expect_contains "sim-host-1" climc host-list
expect_contains "project_id" env OS_USERNAME=alice OS_PASSWORD=Passw0rd-alice OS_PROJECT_NAME=demo \
    openstack token issue
