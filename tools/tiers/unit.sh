#!/usr/bin/env bash
# Tier "unit": the benchmarks' smoke test, then the unit and functional tests, one pytest run;
# arguments go to pytest.
# Skips are listed (-rs): only "this kernel lacks X" is allowed.
#
# The run competes with a CPU hog (stress-ng, installed by tools/backends/up.sh): what a quiet
# machine hides - a starved heartbeat, a race that needs a slow thread, a timeout too tight -
# shows on every run, as it does on a busy CI machine. STACKCORE_TEST_CPU_HOG sets the number
# of stress-ng CPU workers (default: half the cores, at least one; 0: no hog; $(nproc) for the
# full stress) and STACKCORE_TEST_CPU_HOG_LOAD
# the load of each in percent (default 60). The hog runs only while this tier's pytest runs
# (stopped on any exit, and bounded by stress-ng's own --timeout): never during a tier that
# boots emulated guests.
# Alone: bash tools/tiers/unit.sh [PYTEST ARGS]   (needs .venv with the drivers,
# tools/setup-venv.sh --drivers, and the backends, tools/backends/up.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier unit

HOG_PID=""
hog_start() {
  # Half the cores by default: with one worker per core the tier took 47 of a CI run's 84
  # minutes (2026-12-03, a 2-core machine), too near CI's 90-minute limit; one busy core
  # still starves the tests' threads as a shared CI machine does.
  local half=$(( $(nproc) / 2 )); [ "$half" -ge 1 ] || half=1
  local workers="${STACKCORE_TEST_CPU_HOG:-$half}" load="${STACKCORE_TEST_CPU_HOG_LOAD:-60}"
  if [ "$workers" = 0 ]; then
    echo "== [unit] no CPU hog (STACKCORE_TEST_CPU_HOG=0)"
    return 0
  fi
  if ! command -v stress-ng >/dev/null; then
    echo "!! stress-ng is not installed: run tools/backends/up.sh (it installs the test tools)"
    TIER_FAILED+=("cpu hog")
    return 0
  fi
  stress-ng --cpu "$workers" --cpu-load "$load" --timeout 3h --quiet </dev/null &
  HOG_PID=$!
  echo "== [unit] CPU hog: stress-ng --cpu ${workers} --cpu-load ${load} (pid ${HOG_PID})"
}

hog_stop() {
  if [ -n "$HOG_PID" ]; then
    kill -TERM "$HOG_PID" 2>/dev/null
    wait "$HOG_PID" 2>/dev/null
    echo "== [unit] CPU hog stopped"
    HOG_PID=""
  fi
}

# tier() set `trap tier_end EXIT`: stop the hog first, keeping the exit status for tier_end.
on_exit() {
  local rc=$?
  hog_stop
  (exit "$rc")
  tier_end
}
trap on_exit EXIT

# Every benchmark at its tiny size (benchmarks/run.py SMOKE, ~40 s), before the CPU hog starts:
# a broken benchmark is noticed here; the goals are judged by full runs (tox -e bench).
step "benchmark smoke test" .venv/bin/python benchmarks/run.py --smoke
# The run's logs, DEBUG included, through the services' secret filter (tests/logsecrets.py):
# grepped afterwards for every CHAP secret, key and database/RabbitMQ password the run used.
export STACKCORE_TEST_LOG_DIR="${STACKCORE_TEST_LOG_DIR:-$(mktemp -d /tmp/stackcore-test-logs.XXXXXX)}"
echo "== [unit] logs of the run: ${STACKCORE_TEST_LOG_DIR}"
hog_start
# --durations: the slowest tests in every run's log, where the tier's time goes.
step "unit and functional tests" .venv/bin/pytest -rfEs -p no:cacheprovider --durations=60 tests "$@"
hog_stop
if [ $# -eq 0 ]; then  # a whole run: a subset may make no CHAP secret at all
  step "no secret in the run's logs" .venv/bin/python -m tests.logsecrets "$STACKCORE_TEST_LOG_DIR"
fi
