# ferrofab — the two set-up commands on a fresh machine are `make run` and `make test`.
# Every target installs what it needs (rustup components, cargo tools, Debian packages).

CARGO        ?= cargo
# Tests and the hw-test binary share one profile (release speed, debug assertions on), so CI
# compiles the dependency tree once.
TEST_PROFILE := ci
BIN_RELEASE  := build/release/ferrofab
BIN_TEST     := build/$(TEST_PROFILE)/ferrofab
# The release code with the software drive model, for the bench's drive-path rows.
BIN_MODEL    := build/bench-model/ferrofab
# Guest-side checks copied into the hw-test guest (hw-tests/tests/17-uring-check.sh,
# 33-rdma-alloc.sh).
HW_EXTRA_BIN := build/$(TEST_PROFILE)/examples/uring_check build/$(TEST_PROFILE)/examples/vfio_probe \
                build/$(TEST_PROFILE)/examples/rdma_alloc_check
FUZZ_SECONDS ?= 60
CONFIG       ?=

.PHONY: run build test unit lint api-test console-test hw-test image image-test fuzz toolchain clean bench

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@scripts/build-deps

build: toolchain
	$(CARGO) build --release --bin ferrofab

## Serve the embedded default (1 GiB RAM namespace, NVMe/TCP + discovery on 127.0.0.1:4420)
## and the management API and web console on 127.0.0.1:8080, or CONFIG=path/to/ferrofab.toml.
## The running configuration and the API tokens are kept in $(RUN_STATE).
RUN_STATE    ?= build/run-state
run: build
	@echo "web console: http://127.0.0.1:8080/  management API: http://127.0.0.1:8080/api/v1/"
	@echo "tokens: $(RUN_STATE)/admin.token (changes), $(RUN_STATE)/readonly.token (look only)"
	$(BIN_RELEASE) serve --state-dir $(RUN_STATE) $(if $(CONFIG),--config $(CONFIG))

## Everything CI runs: formatting, lints, unit + integration tests, schemathesis against the
## live management API, the web console in a headless browser, real Linux hosts in QEMU,
## the appliance image booted, updated and rolled back in QEMU.
test: lint unit api-test console-test hw-test image-test

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --profile $(TEST_PROFILE) -- -D warnings

unit: toolchain
	$(CARGO) test --workspace --profile $(TEST_PROFILE)

## schemathesis (PyPI, installed once under ~/.cache/ferrofab) against `ferrofab serve`, then
## DMTF's Redfish-Service-Validator (PyPI; schemas from crates.io) against its /redfish/v1.
api-test: toolchain
	$(CARGO) build --profile $(TEST_PROFILE) --bin ferrofab
	mgmt/schemathesis/run $(BIN_TEST)
	mgmt/redfish-validator/run $(BIN_TEST)

## The web console in Debian's Chromium driven by Playwright (PyPI, installed once under
## ~/.cache/ferrofab) against `ferrofab serve` as `make run` starts it (127.0.0.1:4420 and
## :8080 must be free); screenshots of every page in build/console-screenshots/.
console-test: toolchain
	$(CARGO) build --profile $(TEST_PROFILE) --bin ferrofab
	mgmt/console-test/run $(BIN_TEST)

hw-test: toolchain
	$(CARGO) build --profile $(TEST_PROFILE) --bin ferrofab --example uring_check --example vfio_probe \
		--example rdma_alloc_check
	FERROFAB_HW_EXTRA_BIN="$(HW_EXTRA_BIN)" hw-tests/run --ferrofab $(BIN_TEST)

## The appliance image (images/build): build/image/ferrofab_<version>.raw to flash, and the
## signed update bundle build/image/update/ferrofab_<version>/, from Debian trixie packages
## with mkosi (tools, packages and caches under ~/.cache/ferrofab/image).
## IMAGE_VERSION=1.2.3 (default: the workspace version), SIGNING_KEY=ed25519.pem (default:
## a development key made once in the cache).
IMAGE_VERSION ?=
SIGNING_KEY   ?=
image: build
	images/build --ferrofab $(BIN_RELEASE) $(if $(IMAGE_VERSION),--version $(IMAGE_VERSION)) \
		$(if $(SIGNING_KEY),--signing-key $(SIGNING_KEY))

## The image in QEMU with UEFI (images/test/run): first boot, a drive exported through REST
## and verified by a Linux host's fio, a reboot, tampered updates refused, an update, and a
## broken update that falls back by itself.
image-test: toolchain
	$(CARGO) build --profile $(TEST_PROFILE) --bin ferrofab
	images/test/run --ferrofab $(BIN_TEST)

## Run every cargo-fuzz target for FUZZ_SECONDS each (stable toolchain via RUSTC_BOOTSTRAP).
## The checked-in seed corpora are read only; new inputs go to a scratch directory.
fuzz: toolchain
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for dir in nvme/fuzz fabric/fuzz target/fuzz; do \
	  for t in $$(cd $$dir && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	    echo "== fuzz $$dir $$t ($(FUZZ_SECONDS) s)"; \
	    scratch=$$(mktemp -d); \
	    (cd $$dir && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t $$scratch corpus/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	    rm -rf $$scratch; \
	  done; \
	done

## Loopback benchmark of the release binary (null and RAM backends, a model drive through the
## real driver code, the loopback TCP baseline, the management plane under load, the goals);
## rewrites docs/benchmarks.md, raw runs go to build/bench/. Then the zone layout engine's
## figures (WAF against a greedy model, reads during GC, recovery; about 2 minutes), which
## replace their own section of docs/benchmarks.md (bench.py keeps it).
bench: build
	$(CARGO) build --profile bench-model -p ferrofab --features model-drive --bin ferrofab
	python3 target/bench/bench.py --ferrofab $(BIN_RELEASE) --model-ferrofab $(BIN_MODEL) --out docs/benchmarks.md
	$(CARGO) build --profile bench-model -p target --example layout_bench
	build/bench-model/examples/layout_bench --out docs/benchmarks.md

clean:
	$(CARGO) clean
