# crm_integrations — the two commands a newcomer types are `make demo` and `make test`.
# Both install what is missing first (scripts/setup.sh), are idempotent, and quick the second time.

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup install demo test bench fuzz clean

setup:
	bash scripts/setup.sh

## install: build (release) and install into the system Postgres 15
install: setup
	bash scripts/install.sh --release

## demo: install, start a throwaway cluster and walk through the extension end to end
demo: install
	bash scripts/demo.sh

## test: every test (unit, #[pg_test], SQL integration)
test:
	bash scripts/test.sh

## bench: the benchmarks whose figures the README reports
bench: install
	bash scripts/bench.sh

## fuzz: the template fuzz target with 2,000,000 cases per property (FUZZ_CASES to change)
fuzz:
	PROPTEST_CASES=$${FUZZ_CASES:-2000000} cargo test -p crm_core --release --test fuzz_templates

clean:
	cargo clean
	rm -rf /tmp/crm_integrations
