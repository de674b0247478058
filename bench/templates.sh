#!/usr/bin/env bash
# Template benchmark driver: our side and the PL/pgSQL peer in SQL, then Node's handlebars
# (installed from the npm registry into bench/node) on the same templates and variables,
# then one report with the ratios. Expects PGHOST/PGPORT/PGUSER of a running bench cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
psql -X -q -f bench/templates.sql
(cd bench/node && [ -d node_modules/handlebars ] || npm ci --silent --no-audit --no-fund)
cases=$(mktemp)
psql -X -At -c "SELECT json_agg(json_build_object('name', name, 'template', html_content, 'vars', vars)) FROM bench.tc" > "$cases"
node bench/node/render.js "$cases" 100000 > "$cases.out"
psql -X -q -c "DROP TABLE IF EXISTS bench.node_results; CREATE TABLE bench.node_results (name text, ms float8, n bigint, sample text)"
python3 - "$cases.out" <<'PY' | psql -X -q -c "\copy bench.node_results FROM STDIN WITH (FORMAT csv)"
import csv, json, sys
w = csv.writer(sys.stdout)
for line in open(sys.argv[1]):
    d = json.loads(line)
    w.writerow([d["name"], d["ms"], d["n"], d["sample"]])
PY
rm -f "$cases" "$cases.out"
psql -X -q -f bench/templates_report.sql
