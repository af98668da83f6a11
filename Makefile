# cloudpods-rs: build, run and test.
#
#   make deps        install missing Debian packages (quiet when all present)
#   make build       cargo build --release -p cloudpods -p climc
#   make run         deps + build + web, then `cloudpods aio --data-dir $(DATA_DIR)`
#                    (the dashboard at http://127.0.0.1:30300/)
#   make web         build the dashboard (web/dist) when missing or outdated
#   make test        fmt, clippy, cargo test (SQLite), cargo test (MariaDB), e2e, browser
#   make e2e         tests/e2e/run.sh only
#   make browser     web/tests/run.sh only (headless chromium against a real aio)
#   make bench       cargo run --release -p xtask -- bench
#   make clean-data  remove $(DATA_DIR)
#
# Variables: DATA_DIR (default ./data), AIO_ARGS (extra flags for `aio`, e.g.
# AIO_ARGS='--port-offset 1000'), CARGO_TARGET_DIR is honoured everywhere.
# scripts/test.sh reads TEST_PHASES and KEEP_GOING; see its header.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
DATA_DIR ?= ./data
AIO_ARGS ?=

.PHONY: deps deps-qemu build run web test e2e browser bench clean-data \
        mariadb-start mariadb-stop shellcheck help

help:
	@sed -n '3,13p' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/deps.sh

# qemu-system-x86 (+ a matching qemu-utils), for the host agent when it lands.
deps-qemu:
	@scripts/deps.sh --qemu

build:
	$(CARGO) build --release -p cloudpods -p climc

run: deps build web
	@bin="$$(scripts/target-dir.sh)/release/cloudpods"; \
	echo "==> CLOUDPODS_WEB_DIR=$(CURDIR)/web/dist $$bin aio --data-dir $(DATA_DIR) $(AIO_ARGS)"; \
	CLOUDPODS_WEB_DIR="$(CURDIR)/web/dist" exec "$$bin" aio --data-dir "$(DATA_DIR)" $(AIO_ARGS)

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
