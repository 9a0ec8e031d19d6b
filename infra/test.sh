#!/usr/bin/env bash
# infra/test.sh: `make test`'s pytest part, with the services already up.
#
# Two pytest processes side by side: the tests that need no service ("not integration": in-process,
# CPU-bound) and the ones against Kafka, PostgreSQL and Redis ("integration": mostly waiting on the
# flows they start). On this 2-core machine that takes about two thirds of the wall time of one
# process (docs/benchmarks.md, "make test"). Each writes its own coverage data; the coverage report
# and its 85% floor (pyproject.toml) are over both together.
#
# The unit process's output goes to out/test-unit.log and is printed when both are done; the
# integration process's output streams here. The exit code is non-zero if either failed or the
# combined coverage is under the floor. Extra arguments go to both pytest processes; a process
# they leave without a test (pytest's exit 5) counts as passed, unless both are left without one.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
BIN=.venv/bin
mkdir -p out
UNIT_LOG=out/test-unit.log
rm -f .coverage .coverage.unit .coverage.integration

COMMON=(-p no:cacheprovider --cov --cov-report= --cov-fail-under=0)

echo "test.sh: unit tests run alongside, their output in $UNIT_LOG (printed at the end)"
# Job control on: without it bash starts a background job with SIGINT ignored, and the tests of the
# Ctrl-C stop (tests/unit/flows/test_shutdown.py) would not run as under an operator's shell. The
# job gets its own process group; stopping this script (Ctrl-C, a CI timeout) stops all of it.
set -m
COVERAGE_FILE=.coverage.unit "$BIN/pytest" "${COMMON[@]}" -m "not integration" --durations=10 "$@" >"$UNIT_LOG" 2>&1 &
unit_pid=$!
set +m
trap 'kill -- -"$unit_pid" 2>/dev/null' EXIT

COVERAGE_FILE=.coverage.integration "$BIN/pytest" "${COMMON[@]}" -m integration --durations=25 "$@"
integration_rc=$?
wait "$unit_pid"
unit_rc=$?
trap - EXIT

echo
echo "================================ unit tests (from $UNIT_LOG) ================================"
cat "$UNIT_LOG"

echo "test.sh: unit exit $unit_rc, integration exit $integration_rc"
if [ "$unit_rc" -eq 5 ] && [ "$integration_rc" -eq 5 ]; then
  echo "test.sh: no test selected" >&2
  exit 5
fi
[ "$unit_rc" -eq 5 ] && unit_rc=0
[ "$integration_rc" -eq 5 ] && integration_rc=0

data=()
for f in .coverage.unit .coverage.integration; do [ -f "$f" ] && data+=("$f"); done
"$BIN/coverage" combine --keep "${data[@]}" >/dev/null && "$BIN/coverage" report
coverage_rc=$?
[ "$coverage_rc" -ne 0 ] && echo "test.sh: coverage exit $coverage_rc (combined, floor in pyproject.toml)" >&2

[ "$unit_rc" -eq 0 ] && [ "$integration_rc" -eq 0 ] && [ "$coverage_rc" -eq 0 ]
