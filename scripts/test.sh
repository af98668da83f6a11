#!/usr/bin/env bash
# shellcheck disable=SC2317 # phase_* and traps are invoked indirectly
# The whole test suite, phase by phase (what `make test` and .ci/run run):
#   fmt      cargo fmt --all -- --check
#   clippy   cargo clippy --workspace --all-targets -- -D warnings
#   sqlite   cargo test --workspace                      (TEST_DATABASE_URL unset)
#   mariadb  cargo test --workspace against a private MariaDB
#            (scripts/mariadb-test.sh; stopped afterwards if started here)
#   e2e      tests/e2e/run.sh
#   browser  web/tests/run.sh (the dashboard in headless Debian chromium, real aio): once on a
#            simulated host, then BROWSER_HOST=1 (root: the real host agent, a QEMU VM's console)
# Stops at the first failing phase and prints a summary either way.
# Env:
#   TEST_PHASES   space-separated subset/order (default: all, in the order above)
#   KEEP_GOING=1  run the remaining phases after a failure
#   TEST_LOG_DIR  where each phase's output is kept (default: a mktemp dir)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ALL_PHASES=(fmt clippy sqlite mariadb e2e browser)
read -r -a PHASES <<<"${TEST_PHASES:-${ALL_PHASES[*]}}"
KEEP_GOING=${KEEP_GOING:-0}
LOG_DIR=${TEST_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cloudpods-test.XXXXXX")}
mkdir -p "$LOG_DIR"

declare -A RESULT=() ELAPSED=() COUNTS=()
MARIADB_STARTED=0
TOTAL_START=$SECONDS

describe() {
    case $1 in
        fmt) echo "cargo fmt --all -- --check" ;;
        clippy) echo "cargo clippy --workspace --all-targets -- -D warnings" ;;
        sqlite) echo "cargo test --workspace (SQLite)" ;;
        mariadb) echo "cargo test --workspace (MariaDB, TEST_DATABASE_URL=$(scripts/mariadb-test.sh url))" ;;
        e2e) echo "tests/e2e/run.sh (cloudpods aio + openstack client + climc)" ;;
        browser) echo "web/tests/run.sh (dashboard in headless chromium via playwright-core, real aio) (browser.mjs, servers.mjs on a simulated host; console-vm.mjs on the real host agent, as root)" ;;
        *) return 1 ;;
    esac
}

stop_mariadb() {
    if [[ $MARIADB_STARTED == 1 ]]; then
        scripts/mariadb-test.sh stop || true
        MARIADB_STARTED=0
    fi
}

phase_fmt() { cargo fmt --all -- --check; }
phase_clippy() { cargo clippy --workspace --all-targets -- -D warnings; }
phase_sqlite() { env -u TEST_DATABASE_URL cargo test --workspace; }
phase_mariadb() {
    local rc=0
    if ! scripts/mariadb-test.sh status >/dev/null 2>&1; then
        MARIADB_STARTED=1
        scripts/mariadb-test.sh start || return 1
    else
        echo "(reusing the MariaDB that is already running: $(scripts/mariadb-test.sh status))"
        scripts/mariadb-test.sh start || return 1 # idempotent: ensures the user
    fi
    TEST_DATABASE_URL=$(scripts/mariadb-test.sh url) cargo test --workspace || rc=$?
    stop_mariadb
    return "$rc"
}
phase_e2e() { tests/e2e/run.sh; }
# Both runs, whatever the first gives; the phase fails if either does. The second needs root
# (netns, QEMU) and is never skipped: without root run.sh fails with a clear message.
phase_browser() {
    local rc=0
    BROWSER_AIO_ARGS="--simulated-hosts 1" web/tests/run.sh browser.mjs servers.mjs || rc=1
    BROWSER_HOST=1 web/tests/run.sh console-vm.mjs || rc=1
    return "$rc"
}

# Sum cargo's "test result: ok. N passed; M failed; K ignored" lines.
count_cargo() {
    awk '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed/) p += $i
                if ($(i+1) ~ /^failed/) f += $i
                if ($(i+1) ~ /^ignored/) s += $i
            }
        }
        END { printf "%d %d %d\n", p, f, s }' "$1"
}
# The e2e script ends with "e2e: N passed, M failed".
count_e2e() {
    awk '/^e2e: [0-9]+ passed, [0-9]+ failed/ { p = $2; f = $4 } END { printf "%d %d 0\n", p, f }' "$1"
}
# Each web/tests/run.sh ends with "browser: N passed, M failed" (its total): sum those. Each
# .mjs's own summary line ends with "(<seconds> s)" and is part of that total, so it is skipped.
count_browser() {
    awk '/^browser: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 } END { printf "%d %d 0\n", p, f }' "$1"
}

summary() {
    local p total_p=0 total_f=0 total_s=0 np=0 nf=0 ns=0 c e tp tf ts
    echo
    echo "================================================================"
    echo "== summary (logs: $LOG_DIR)"
    echo "================================================================"
    for p in "${PHASES[@]}"; do
        c=""
        if [[ -n ${COUNTS[$p]:-} ]]; then
            read -r tp tf ts <<<"${COUNTS[$p]}"
            total_p=$((total_p + tp))
            total_f=$((total_f + tf))
            total_s=$((total_s + ts))
            c="($tp passed, $tf failed, $ts ignored)"
        fi
        case ${RESULT[$p]:-SKIP} in
            PASS) np=$((np + 1)) ;;
            FAIL) nf=$((nf + 1)) ;;
            *) ns=$((ns + 1)) ;;
        esac
        e=-
        [[ -n ${ELAPSED[$p]:-} ]] && e="${ELAPSED[$p]}s"
        printf '  %-8s %-4s %7s  %s\n' "$p" "${RESULT[$p]:-SKIP}" "$e" "$c"
    done
    printf '  %-13s %7s\n' total "$((SECONDS - TOTAL_START))s"
    echo "phases: $np passed, $nf failed, $ns skipped"
    echo "tests: $total_p passed, $total_f failed, $total_s skipped"
}

on_exit() {
    local rc=$?
    stop_mariadb
    summary
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for p in "${PHASES[@]}"; do
    describe "$p" >/dev/null || {
        echo "unknown phase '$p' (known: ${ALL_PHASES[*]})" >&2
        exit 2
    }
done

failed=0
i=0
for p in "${PHASES[@]}"; do
    i=$((i + 1))
    if [[ $failed == 1 && $KEEP_GOING != 1 ]]; then
        continue
    fi
    echo
    echo "================================================================"
    echo "== [$i/${#PHASES[@]}] $p: $(describe "$p")"
    echo "================================================================"
    start=$SECONDS
    rc=0
    # Not a pipeline: the phase runs in this shell (MARIADB_STARTED sticks).
    "phase_$p" > >(tee "$LOG_DIR/$p.log") 2>&1 || rc=$?
    wait $! 2>/dev/null || true # let tee finish writing the log
    ELAPSED[$p]=$((SECONDS - start))
    case $p in
        sqlite | mariadb) COUNTS[$p]=$(count_cargo "$LOG_DIR/$p.log") ;;
        e2e) COUNTS[$p]=$(count_e2e "$LOG_DIR/$p.log") ;;
        browser) COUNTS[$p]=$(count_browser "$LOG_DIR/$p.log") ;;
    esac
    if [[ $rc == 0 ]]; then
        RESULT[$p]=PASS
    else
        RESULT[$p]=FAIL
        failed=1
        echo "== $p FAILED (exit $rc) after ${ELAPSED[$p]}s"
    fi
done

exit "$failed"
