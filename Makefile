# The two commands of the README: `make run` and `make test`.
GO ?= go
CRM_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export CRM_TEST_POSTGRES_URL

.PHONY: run test web fuzz build check bench bench-store bench-commands bench-http bench-seed bench-audit bench-projections bench-clean bench-rebuild bench-timetravel bench-load bench-firststart bench-import seed clean

## run: start the server on the embedded default (SQLite in ./data, port 8080)
run:
	$(GO) run ./cmd/crm serve

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

## test: formatting, a tidy go.mod, vet, staticcheck and every test (PostgreSQL tests use CRM_TEST_POSTGRES_URL)
test: check
	@.ci/ensure-postgres
	@.ci/ensure-browser
	$(GO) test -count=1 -timeout 20m ./...

## fuzz: FuzzRequests beyond its seeds (which `make test` runs): arbitrary requests to the whole
## API over SQLite and PostgreSQL for FUZZTIME; a failing input lands in the package's testdata/fuzz
FUZZTIME ?= 60s
fuzz:
	@.ci/ensure-postgres
	$(GO) test -run '^$$' -fuzz '^FuzzRequests$$' -fuzztime $(FUZZTIME) ./cmd/crm/internal/httpapi/

check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

build:
	$(GO) build -o bin/crm ./cmd/crm

## bench: every benchmark whose figures the issues report
bench: bench-store bench-commands bench-http bench-seed bench-projections bench-rebuild bench-timetravel bench-load

bench-store:
	@.ci/ensure-postgres
	$(GO) test -run '^$$' -bench . -benchtime 2s ./eventstore/...

bench-commands:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./commands/

# (the benchmarks of package cmd/crm itself run in bench-projections: they build large data sets)
bench-http:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./cmd/crm/internal/...

## bench-seed: `crm seed` speed into a fresh SQLite store (SEED_CONTACTS=100000 writes ~1M events)
SEED_CONTACTS ?= 20000
bench-seed: build
	@dir=$$(mktemp -d) && CRM_DATA_DIR=$$dir bin/crm seed --contacts $(SEED_CONTACTS) --quiet; status=$$?; rm -rf $$dir; exit $$status

## bench-audit: full-log verification throughput (chains + Merkle root) over a generated log
## of AUDIT_EVENTS events (kept in $TMPDIR between runs), SQLite and PostgreSQL
AUDIT_EVENTS ?= 200000
bench-audit:
	@.ci/ensure-postgres
	CRM_BENCH_AUDIT_EVENTS=$(AUDIT_EVENTS) $(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./eventstore/audit/

## bench-projections: the read-model figures through `crm serve`'s stack: projection throughput
## over a 1M-event log (SQLite, PostgreSQL), command-to-board lag at 500 commands/s
## (LAG_COMMANDS of them), query latency at 1 and 100 clients over 100,000 deals. The first run
## builds the data sets (~15 min) and keeps them in BENCH_CACHE and the PostgreSQL database
## crm_bench; `make bench-clean` removes them.
BENCH_CACHE ?= $(or $(TMPDIR),/tmp)/crm-bench
LAG_COMMANDS ?= 15000
bench-projections:
	@.ci/ensure-postgres
	CRM_BENCH_CACHE=$(BENCH_CACHE) $(GO) test -run '^$$' -bench 'ProjectionThroughput' -benchtime 1x -timeout 3h ./cmd/crm/
	CRM_BENCH_CACHE=$(BENCH_CACHE) $(GO) test -run '^$$' -bench 'CommandToBoardLag' -benchtime $(LAG_COMMANDS)x -timeout 30m ./cmd/crm/
	CRM_BENCH_CACHE=$(BENCH_CACHE) $(GO) test -run '^$$' -bench 'ReadModelQueries' -benchtime 2s -timeout 2h ./cmd/crm/

bench-clean:
	rm -rf $(BENCH_CACHE) $(REBUILD_BENCH_DIR)
	psql "$(CRM_TEST_POSTGRES_URL)" -qc 'DROP DATABASE IF EXISTS crm_bench'
	psql "$(CRM_TEST_POSTGRES_URL)" -qc 'DROP SCHEMA IF EXISTS crm_bench_rebuild_log CASCADE'

## bench-rebuild: rebuild throughput (events/s, CPU per event) of the three read models together
## (BenchmarkRebuild) and of every read model as `crm rebuild --all` builds them
## (BenchmarkRebuildAll) on SQLite and PostgreSQL at 250k, 500k and 1M events, with peak memory
## and a plain read of the same events (the raw baseline) in the same run, and the batch path's
## work before any I/O alone (BenchmarkRebuildFirstPass: decoding and the first fold); REBUILD_ONLY=journey
## measures the read models named alone. The first run seeds the logs with `crm seed --contacts 100000`
## (~1M events; SQLite ~2-4 min, PostgreSQL ~7 min) into REBUILD_BENCH_DIR and the PostgreSQL
## schema crm_bench_rebuild_log, and keeps them; REBUILD_SIZES picks other sizes. GOGC=400 as
## `crm rebuild` runs.
REBUILD_BENCH_DIR ?= $(or $(TMPDIR),/tmp)/crm-bench-rebuild
REBUILD_SIZES ?= 250000,500000,1000000
REBUILD_ONLY ?=
bench-rebuild: build
	@.ci/ensure-postgres
	@mkdir -p $(REBUILD_BENCH_DIR)/sqlite
	@test -f $(REBUILD_BENCH_DIR)/sqlite/seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/sqlite bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/sqlite/seeded; }
	@test -f $(REBUILD_BENCH_DIR)/postgres-seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/postgres CRM_STORE='$(CRM_TEST_POSTGRES_URL)&schema=crm_bench_rebuild_log' bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/postgres-seeded; }
	GOGC=400 CRM_BENCH_SQLITE_STORE=$(REBUILD_BENCH_DIR)/sqlite/crm.db CRM_BENCH_POSTGRES_SCHEMA=crm_bench_rebuild_log CRM_BENCH_SIZES=$(REBUILD_SIZES) CRM_BENCH_ONLY=$(REBUILD_ONLY) \
		$(GO) test -run '^$$' -bench BenchmarkRebuild -benchtime 1x -timeout 60m ./projections/

## bench-timetravel: time travel over the logs of bench-rebuild (seeded on the first run), SQLite
## and PostgreSQL: every snapshot taken from nothing, then the board, the journey map and the
## churn points at random past positions (p50, max, and the set build alone) beside the same
## queries at the head. The SQLite store is opened from a copy, as the benchmark asks.
## SNAPSHOT_EVERY sets the snapshot interval (as CRM_SNAPSHOT_EVERY does for crm serve),
## SNAPSHOT_SPACE their disk budget (as CRM_SNAPSHOT_SPACE; the log shows what they take).
SNAPSHOT_EVERY ?= 50000
SNAPSHOT_SPACE ?= 1
bench-timetravel: build
	@.ci/ensure-postgres
	@mkdir -p $(REBUILD_BENCH_DIR)/sqlite $(REBUILD_BENCH_DIR)/timetravel
	@test -f $(REBUILD_BENCH_DIR)/sqlite/seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/sqlite bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/sqlite/seeded; }
	@test -f $(REBUILD_BENCH_DIR)/postgres-seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/postgres CRM_STORE='$(CRM_TEST_POSTGRES_URL)&schema=crm_bench_rebuild_log' bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/postgres-seeded; }
	cp $(REBUILD_BENCH_DIR)/sqlite/crm.db $(REBUILD_BENCH_DIR)/timetravel/crm.db
	CRM_BENCH_TIMETRAVEL_STORE=$(REBUILD_BENCH_DIR)/timetravel/crm.db CRM_BENCH_POSTGRES_SCHEMA=crm_bench_rebuild_log \
		CRM_BENCH_TIMETRAVEL_EVERY=$(SNAPSHOT_EVERY) CRM_BENCH_TIMETRAVEL_SPACE=$(SNAPSHOT_SPACE) $(GO) test -run '^$$' -bench BenchmarkTimeTravel -benchtime 8x -timeout 60m ./projections/

## bench-load: the whole server under load (cmd/crmload): bin/crm serve started on a copy of
## bench-rebuild's seeded logs (~1M events, seeded on the first run), SQLite then PostgreSQL.
## LOAD_READERS readers pinned to one question each beside paced writers at each of LOAD_RATES
## commands/s, LOAD_DURATION per round, the rates interleaved LOAD_ROUNDS times; command-to-
## board lag at 500 commands/s; a full-speed burst and the read models' catch-up; commands/s
## at saturation on an empty store beside a trivial JSON handler. The reports (Markdown and
## JSON) go to LOAD_REPORT_DIR; LOAD_ARGS passes more flags (`bin/crmload -h`);
## LOAD_POSTGRES_SCHEMA measures another seeded store schema. A run whose requests failed is
## flagged and exits 1.
LOAD_DURATION ?= 30s
LOAD_READERS ?= 100
LOAD_RATES ?= 0,50,200
LOAD_ROUNDS ?= 3
LOAD_ARGS ?=
LOAD_POSTGRES_SCHEMA ?= crm_bench_rebuild_log
LOAD_REPORT_DIR ?= $(REBUILD_BENCH_DIR)/load
LOAD_FLAGS = --crm bin/crm --duration $(LOAD_DURATION) --readers $(LOAD_READERS) --rates $(LOAD_RATES) --rounds $(LOAD_ROUNDS) $(LOAD_ARGS)
bench-load: build
	@.ci/ensure-postgres
	$(GO) build -o bin/crmload ./cmd/crmload
	@mkdir -p $(REBUILD_BENCH_DIR)/sqlite $(LOAD_REPORT_DIR)
	@test -f $(REBUILD_BENCH_DIR)/sqlite/seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/sqlite bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/sqlite/seeded; }
	@test -f $(REBUILD_BENCH_DIR)/postgres-seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/postgres CRM_STORE='$(CRM_TEST_POSTGRES_URL)&schema=crm_bench_rebuild_log' bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/postgres-seeded; }
	@bin/crmload --sqlite $(REBUILD_BENCH_DIR)/sqlite/crm.db $(LOAD_FLAGS) --json $(LOAD_REPORT_DIR)/sqlite.json > $(LOAD_REPORT_DIR)/sqlite.md; \
		status=$$?; cat $(LOAD_REPORT_DIR)/sqlite.md; exit $$status
	@bin/crmload --postgres '$(CRM_TEST_POSTGRES_URL)' --schema $(LOAD_POSTGRES_SCHEMA) $(LOAD_FLAGS) --json $(LOAD_REPORT_DIR)/postgres.json > $(LOAD_REPORT_DIR)/postgres.md; \
		status=$$?; cat $(LOAD_REPORT_DIR)/postgres.md; exit $$status

## bench-firststart: the first start of `crm serve` on an empty read-model database over the
## seeded log of bench-rebuild (~1.2M events, seeded on the first run), SQLite then PostgreSQL:
## the time until every read model has caught up with the log and the server's notices of a
## stalled feed meanwhile (cmd/crmload --scenarios startup, on a copy of the log), beside
## `crm rebuild --all` over the same log in the same run, the baseline. FIRSTSTART_CRM measures
## another build of crm (an older one, say); FIRSTSTART_BACKENDS=sqlite measures one backend.
## The reports go to $(REBUILD_BENCH_DIR)/firststart.
FIRSTSTART_CRM ?= bin/crm
FIRSTSTART_BACKENDS ?= sqlite,postgres
FIRSTSTART_DIR = $(REBUILD_BENCH_DIR)/firststart
bench-firststart: build
	@.ci/ensure-postgres
	$(GO) build -o bin/crmload ./cmd/crmload
	@mkdir -p $(REBUILD_BENCH_DIR)/sqlite $(FIRSTSTART_DIR)
	@case ",$(FIRSTSTART_BACKENDS)," in *,sqlite,*) \
		{ test -f $(REBUILD_BENCH_DIR)/sqlite/seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/sqlite bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/sqlite/seeded; }; } && \
		rm -rf $(FIRSTSTART_DIR)/rebuild && mkdir -p $(FIRSTSTART_DIR)/rebuild && \
		for f in crm.db crm.db-wal keys.db keys.db-wal; do test ! -f $(REBUILD_BENCH_DIR)/sqlite/$$f || cp $(REBUILD_BENCH_DIR)/sqlite/$$f $(FIRSTSTART_DIR)/rebuild/; done && \
		start=$$(date +%s.%N) && CRM_DATA_DIR=$(FIRSTSTART_DIR)/rebuild $(FIRSTSTART_CRM) rebuild --all --quiet && \
		echo "sqlite: crm rebuild --all over the same log: $$(echo "$$(date +%s.%N) - $$start" | bc) s" | tee $(FIRSTSTART_DIR)/sqlite-rebuild.txt && \
		rm -rf $(FIRSTSTART_DIR)/rebuild && \
		bin/crmload --crm $(FIRSTSTART_CRM) --sqlite $(REBUILD_BENCH_DIR)/sqlite/crm.db --scenarios startup --settle 0s > $(FIRSTSTART_DIR)/sqlite.md && \
		cat $(FIRSTSTART_DIR)/sqlite.md;; esac
	@case ",$(FIRSTSTART_BACKENDS)," in *,postgres,*) \
		{ test -f $(REBUILD_BENCH_DIR)/postgres-seeded || { CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/postgres CRM_STORE='$(CRM_TEST_POSTGRES_URL)&schema=crm_bench_rebuild_log' bin/crm seed --contacts 100000 && touch $(REBUILD_BENCH_DIR)/postgres-seeded; }; } && \
		psql '$(CRM_TEST_POSTGRES_URL)' -qc 'DROP SCHEMA IF EXISTS crm_bench_rebuild_log_readmodels CASCADE' && \
		start=$$(date +%s.%N) && CRM_DATA_DIR=$(REBUILD_BENCH_DIR)/postgres CRM_STORE='$(CRM_TEST_POSTGRES_URL)&schema=crm_bench_rebuild_log' $(FIRSTSTART_CRM) rebuild --all --quiet && \
		echo "postgres: crm rebuild --all over the same log: $$(echo "$$(date +%s.%N) - $$start" | bc) s" | tee $(FIRSTSTART_DIR)/postgres-rebuild.txt && \
		psql '$(CRM_TEST_POSTGRES_URL)' -qc 'DROP SCHEMA IF EXISTS crm_bench_rebuild_log_readmodels CASCADE' && \
		bin/crmload --crm $(FIRSTSTART_CRM) --postgres '$(CRM_TEST_POSTGRES_URL)' --schema crm_bench_rebuild_log --scenarios startup --settle 0s > $(FIRSTSTART_DIR)/postgres.md && \
		cat $(FIRSTSTART_DIR)/postgres.md;; esac

## seed: write a sample history into ./data (override with ARGS="--contacts 40000")
seed:
	$(GO) run ./cmd/crm seed $(ARGS)

clean:
	rm -rf bin data

## bench-import: CSV import of a contacts file with history (IMPORT_ROWS rows) on SQLite and
## PostgreSQL by `crm import`, by POST /v1/imports and, as the baseline of the same run, the
## same commands sent by 64 HTTP clients; peak memory; then the CSV export of those contacts
## (time, the server's peak memory). IMPORT_BACKENDS=sqlite measures one backend.
IMPORT_ROWS ?= 100000
IMPORT_BACKENDS ?= sqlite,postgres
bench-import:
	@.ci/ensure-postgres
	CRM_BENCH_IMPORT_ROWS=$(IMPORT_ROWS) CRM_BENCH_IMPORT_BACKENDS=$(IMPORT_BACKENDS) $(GO) test -run '^$$' -bench BenchmarkImport -benchtime 1x -timeout 4h ./cmd/crm/

## web: fetch the console's third-party files from npm again (Apache ECharts, and axe-core for
## the browser tests) at the versions pinned in cmd/crm/internal/console/vendor.sh; needs npm.
## Their output is committed: neither `make run` nor `make test` needs Node.
web:
	cmd/crm/internal/console/vendor.sh
