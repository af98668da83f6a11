#!/usr/bin/env bash
# Builds the dashboard (web/ -> web/dist) only when it is missing or older than its sources:
# `npm ci` when node_modules is missing or older than package-lock.json (registry.npmjs.org,
# versions locked), then `npm run build` (vue-tsc type check + vite build).
# Prints the dist directory on its last line.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEB=$ROOT/web
cd "$WEB"

command -v npm >/dev/null || {
    echo "web-build: npm is missing (run scripts/deps.sh)" >&2
    exit 1
}

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "==> npm ci (web/)" >&2
    npm ci --no-audit --no-fund --registry=https://registry.npmjs.org/ >&2
fi

stale=0
if [[ ! -f dist/index.html ]]; then
    stale=1
elif [[ -n $(find src index.html vite.config.ts tsconfig.json package-lock.json -newer dist/index.html -print -quit) ]]; then
    stale=1
fi
if [[ $stale == 1 ]]; then
    echo "==> npm run build (web/)" >&2
    npm run build >&2
    touch dist/index.html
fi
echo "$WEB/dist"
