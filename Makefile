# cloudpods-rs: build, run and test.
#
#   make deps        install missing Debian packages (quiet when all present)
#   make build       cargo build --release -p cloudpods -p climc
#   make run         deps (QEMU too) + build + web, then `cloudpods aio --data-dir $(DATA_DIR)`
#                    with the real host agent, its guests in netns $(GUEST_NETNS) (needs
#                    root; without root, aio runs without a host agent and says so)
#                    (the dashboard at http://127.0.0.1:30300/)
#   make run-host    the same as `make run` (kept for old instructions)
#   make web         build the dashboard (web/dist) when missing or outdated
#   make test        fmt, clippy, cargo test (SQLite), cargo test (MariaDB), e2e, browser
#   make e2e         tests/e2e/run.sh only
#   make browser     web/tests/run.sh only (headless chromium against a real aio)
#   make bench       cargo run --release -p xtask -- bench
#   make clean-data  remove $(DATA_DIR)
#
# Variables: DATA_DIR (default ./data), AIO_ARGS (extra flags for `aio`, e.g.
# AIO_ARGS='--port-offset 1000'), GUEST_NETNS (default cloudpods-guests),
# CARGO_TARGET_DIR is honoured everywhere.
# scripts/test.sh reads TEST_PHASES and KEEP_GOING; see its header.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
DATA_DIR ?= ./data
AIO_ARGS ?=
GUEST_NETNS ?= cloudpods-guests

.PHONY: deps deps-qemu build run run-host web test e2e browser bench clean-data \
        mariadb-start mariadb-stop shellcheck help

help:
	@sed -n '3,15p' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/deps.sh

# qemu-system-x86 (+ a matching qemu-utils) and the host agent's tools.
deps-qemu:
	@scripts/deps.sh --qemu

build:
	$(CARGO) build --release -p cloudpods -p climc

# aio plus the real host agent, whose guests live in network namespace $(GUEST_NETNS).
run: deps-qemu build web
	@bin="$$(scripts/target-dir.sh)/release/cloudpods"; \
	args="$(AIO_ARGS)"; \
	if [[ $$(id -u) -eq 0 ]]; then \
	    ip netns list | grep -qw "$(GUEST_NETNS)" || ip netns add "$(GUEST_NETNS)"; \
	    args="--set host.enabled=true --set host.netns=$(GUEST_NETNS) $$args"; \
	else \
	    echo "==> not root: aio runs without a host agent (servers need --simulated-hosts N)"; \
	fi; \
	echo "==> CLOUDPODS_WEB_DIR=$(CURDIR)/web/dist $$bin aio --data-dir $(DATA_DIR) $$args"; \
	CLOUDPODS_WEB_DIR="$(CURDIR)/web/dist" exec "$$bin" aio --data-dir "$(DATA_DIR)" $$args

run-host: run

web:
	@scripts/web-build.sh >/dev/null

test: deps
	@scripts/test.sh

e2e: deps
	@tests/e2e/run.sh

browser: deps
	@web/tests/run.sh

bench:
	$(CARGO) xtask bench

clean-data:
	@case "$(strip $(DATA_DIR))" in ""|/|.|./|..|~|"$$HOME") \
	    echo "refusing to remove DATA_DIR='$(DATA_DIR)'" >&2; exit 1;; esac
	rm -rf -- "$(DATA_DIR)"

mariadb-start: deps
	@scripts/mariadb-test.sh start

mariadb-stop:
	@scripts/mariadb-test.sh stop

shellcheck:
	shellcheck -x scripts/*.sh tests/e2e/*.sh web/tests/*.sh .ci/run
