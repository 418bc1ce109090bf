#!/usr/bin/env bash
# The README's test command: installs what is needed, builds, lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx --no-install biome check src test bench demo scripts
# Lab tests share one kernel and two cores, so test files run one at a time; unit files first.
mapfile -t files < <(find dist/test/unit -name '*.test.js' | sort; find dist/test/lab -name '*.test.js' 2>/dev/null | sort)
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
