#!/usr/bin/env bash
# The README's test command: installs what is needed, builds, lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx --no-install biome check src test bench demo scripts

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_files=()

# Unit files run on Bun, the runtime weftd and the plugin ship on (issue 14), one `bun test` process per
# file as node --test runs them: a file that crashes or is killed (the fuzz watchdog ends a hang with
# SIGKILL) fails alone instead of ending the run, and no file sees another's globals. bun test stops a
# test after 5 s by default; node:test has no limit, and the fuzz properties run longer.
bun=node_modules/@oven/bun-linux-x64/bin/bun
mapfile -t unit_files < <(find ./dist/test/unit -name '*.test.js' | sort)
[ ${#unit_files[@]} -gt 0 ] || { echo "test.sh: no unit test files in dist/test/unit (did the build run?)" >&2; exit 1; }
unit_pass=0 unit_fail=0
for file in "${unit_files[@]}"; do
  status=0
  "$bun" test --timeout=300000 "$file" 2>&1 | tee "$log" || status=$?
  pass=$(sed -n 's/^ *\([0-9][0-9]*\) pass$/\1/p' "$log" | tail -n 1)
  fail=$(sed -n 's/^ *\([0-9][0-9]*\) fail$/\1/p' "$log" | tail -n 1)
  unit_pass=$((unit_pass + ${pass:-0}))
  unit_fail=$((unit_fail + ${fail:-0}))
  if [ "$status" -ne 0 ]; then
    failed_files+=("$file")
    # Ended before its summary (a crash, a kill): the file counts as one failure.
    [ "${fail:-0}" -gt 0 ] || unit_fail=$((unit_fail + 1))
  fi
done

# Lab tests share one kernel and two cores, so test files run one at a time.
mapfile -t lab_files < <(find dist/test/lab -name '*.test.js' 2>/dev/null | sort)
lab_pass=0 lab_fail=0
if [ ${#lab_files[@]} -gt 0 ]; then
  status=0
  node --test --test-concurrency=1 --test-reporter=spec "${lab_files[@]}" 2>&1 | tee "$log" || status=$?
  lab_pass=$(sed -n 's/^ℹ pass \([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
  lab_fail=$(sed -n 's/^ℹ fail \([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
  lab_pass=${lab_pass:-0} lab_fail=${lab_fail:-0}
  if [ "$status" -ne 0 ]; then
    failed_files+=("(lab, node --test)")
    [ "$lab_fail" -gt 0 ] || lab_fail=$((lab_fail + 1))
  fi
fi

echo
echo "unit (bun test): $unit_pass passed, $unit_fail failed; lab (node --test): $lab_pass passed, $lab_fail failed"
[ ${#failed_files[@]} -eq 0 ] || echo "failing: ${failed_files[*]}"
echo "$((unit_pass + lab_pass)) passed, $((unit_fail + lab_fail)) failed"
[ ${#failed_files[@]} -eq 0 ] && [ $((unit_fail + lab_fail)) -eq 0 ]
