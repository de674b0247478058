# crm_integrations — the two commands a newcomer types are `make demo` and `make test`.
# Both install what is missing first (scripts/setup.sh), are idempotent, and quick the second time.

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup install demo test bench fuzz clean package package-test

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

## package: a Debian package and a tarball of the release build under target/package
package: setup
	bash scripts/package.sh

## package-test: build this and the previous release's packages, install, upgrade, smoke-test
## and remove them in the system Postgres 15 (also part of `make test`)
package-test: setup
	prove --verbose tests/package/test.sh

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
