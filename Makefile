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

## fuzz: the template fuzz target with 2,000,000 cases per property (FUZZ_CASES to change), then
## 5,000 deeply nested templates through the installed extension in a real cluster
## (BACKEND_FUZZ_CASES to change): the postmaster must never restart
fuzz: install
	PROPTEST_CASES=$${FUZZ_CASES:-2000000} cargo test -p crm_core --release --test fuzz_templates
	CRM_FUZZ_CASES=$${BACKEND_FUZZ_CASES:-5000} CRM_SQL_TESTS=tests/sql/hardening.sql \
	  CRM_SHELL_TESTS=tests/shell/hardening.sh bash scripts/sql-tests.sh

clean:
	cargo clean
	rm -rf /tmp/crm_integrations
