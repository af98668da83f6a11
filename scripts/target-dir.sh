#!/usr/bin/env bash
# Print the absolute path of cargo's target directory for this workspace,
# honouring CARGO_TARGET_DIR and .cargo/config (via `cargo metadata`).
# Falls back to ${CARGO_TARGET_DIR:-<repo>/target} when cargo metadata fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

dir=""
if meta=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null) ||
    meta=$(cargo metadata --format-version 1 --no-deps 2>/dev/null); then
    dir=$(printf '%s' "$meta" | python3 -c \
        'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || true)
fi
if [[ -z $dir ]]; then
    dir=${CARGO_TARGET_DIR:-target}
    [[ $dir == /* ]] || dir="$root/$dir"
fi
printf '%s\n' "$dir"
