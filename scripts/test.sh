#!/usr/bin/env bash
# The README's test command: installs what is needed, builds, lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx --no-install biome check src test bench demo scripts

# Every suite runs on Bun, the runtime weftd and the plugin ship on (issue 14): `bun test` runs the
# node:test files, and the lab starts the shipped executables (dist/bin/weftd, dist/cni/flannel). One
# `bun test` process per file, as node --test runs them: a file that crashes or is killed (the fuzz
# watchdog ends a hang with SIGKILL) fails alone instead of ending the run, and no file sees another's
# globals. Files run one at a time: the lab tests share one kernel and two cores. bun test stops a test
# after 5 s by default; node:test has no limit, and fuzz properties and lab scenarios run longer.
bun=node_modules/@oven/bun-linux-x64/bin/bun
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_files=()
total_pass=0 total_fail=0 total_skip=0
summaries=()

run_files() {
  local suite=$1 timeout=$2
  shift 2
  local pass_sum=0 fail_sum=0 skip_sum=0 file status pass fail skip
  for file in "$@"; do
    status=0
    "$bun" test --timeout="$timeout" "$file" 2>&1 | tee "$log" || status=$?
    pass=$(sed -n 's/^ *\([0-9][0-9]*\) pass$/\1/p' "$log" | tail -n 1)
    fail=$(sed -n 's/^ *\([0-9][0-9]*\) fail$/\1/p' "$log" | tail -n 1)
    skip=$(sed -n 's/^ *\([0-9][0-9]*\) skip$/\1/p' "$log" | tail -n 1)
    pass_sum=$((pass_sum + ${pass:-0}))
    fail_sum=$((fail_sum + ${fail:-0}))
    skip_sum=$((skip_sum + ${skip:-0}))
    if [ "$status" -ne 0 ]; then
      failed_files+=("$file")
      # Ended before its summary (a crash, a kill): the file counts as one failure.
      [ "${fail:-0}" -gt 0 ] || fail_sum=$((fail_sum + 1))
    fi
  done
  summaries+=("$suite (bun test): $pass_sum passed, $fail_sum failed, $skip_sum skipped")
  total_pass=$((total_pass + pass_sum))
  total_fail=$((total_fail + fail_sum))
  total_skip=$((total_skip + skip_sum))
}

mapfile -t unit_files < <(find ./dist/test/unit -name '*.test.js' | sort)
mapfile -t lab_files < <(find ./dist/test/lab -name '*.test.js' 2>/dev/null | sort)
[ ${#unit_files[@]} -gt 0 ] || { echo "test.sh: no unit test files in dist/test/unit (did the build run?)" >&2; exit 1; }
run_files unit 300000 "${unit_files[@]}"
[ ${#lab_files[@]} -eq 0 ] || run_files lab 900000 "${lab_files[@]}"

echo
printf '%s\n' "${summaries[@]}"
[ ${#failed_files[@]} -eq 0 ] || echo "failing: ${failed_files[*]}"
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ ${#failed_files[@]} -eq 0 ] && [ "$total_fail" -eq 0 ]
