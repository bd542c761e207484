#!/usr/bin/env bash
# Tier "unit": the benchmarks' smoke test, then the unit and functional tests; arguments
# (a subset) go to pytest, run as one.
# Skips are listed (-rs): only "this kernel lacks X" is allowed.
#
# The whole suite runs as two pytest runs at the same time (see below), each loading the
# machine for the other; when one has ended, the other's rest competes with a CPU hog
# (stress-ng, installed by tools/backends/up.sh), as does a subset run: what a quiet
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
declare -A HALF_PID=() HALF_RC=()  # the two pytest runs of a whole run: pid -> name, name -> rc
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
  local rc=$? pid
  for pid in "${!HALF_PID[@]}"; do  # a tier stopped early leaves no pytest run behind
    kill -TERM "$pid" 2>/dev/null
  done
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
# --durations: the slowest tests in every run's log, where the tier's time goes.
PYTEST=(.venv/bin/pytest -rfEs -p no:cacheprovider --durations=40)
if [ $# -gt 0 ]; then  # a subset: one run, next to the hog
  hog_start
  step "tests: $*" "${PYTEST[@]}" "$@"
  hog_stop
else
  # The whole suite as two pytest runs at the same time, each the other's busy machine (one
  # run took 44 of a CI run's 77 minutes, 2026-12-04, over the 60-minute goal):
  #   in-process  tests/unit, tests/conformance: clouds in the test process on SQLite or a
  #               database of the test's own, RabbitMQ on a virtual host of its own, libvirt's
  #               in-process test driver
  #   backends    tests/functional (services as processes, the real backends), and the one
  #               unit module that lists a whole shared backend (the rbd image store's pool,
  #               whose leak check would count the other run's images)
  # They share nothing but the backends' servers, through names of each test's own
  # (databases, virtual hosts, uuids) and private instances for the tests that kill a backend
  # (tests/functional/reliability/conftest.py). Each run's output goes to a file, printed
  # when both have ended; the CPU hog starts when the first ends, for the other's rest.
  RBD_STORE=tests/unit/image/test_store_rbd.py
  run_half() {  # NAME PYTEST-ARGS...: in the background, output to the log dir
    local name=$1; shift
    "${PYTEST[@]}" "$@" >"${STACKCORE_TEST_LOG_DIR}/pytest-${name}.out" 2>&1 &
    HALF_PID[$!]=$name
    echo "== [unit +${SECONDS}s] ${name} tests started (pid $!): $*"
  }
  run_half in-process tests/unit tests/conformance --ignore="$RBD_STORE"
  run_half backends tests/functional tests/guest "$RBD_STORE"
  while [ ${#HALF_RC[@]} -lt 2 ]; do
    running=()
    for pid in "${!HALF_PID[@]}"; do
      [ -n "${HALF_RC[${HALF_PID[$pid]}]+set}" ] || running+=("$pid")
    done
    ended=""
    wait -n -p ended "${running[@]}"
    rc=$?
    HALF_RC[${HALF_PID[$ended]}]=$rc
    echo "== [unit +${SECONDS}s] ${HALF_PID[$ended]} tests ended (exit status ${rc})"
    if [ ${#HALF_RC[@]} -eq 1 ]; then hog_start; fi
  done
  hog_stop
  for name in in-process backends; do
    echo "== [unit] output of the ${name} tests"
    cat "${STACKCORE_TEST_LOG_DIR}/pytest-${name}.out"
    if [ "${HALF_RC[$name]}" -ne 0 ]; then
      echo "!! step failed: ${name} tests"
      TIER_FAILED+=("${name} tests")
    fi
  done
fi
if [ $# -eq 0 ]; then  # a whole run: a subset may make no CHAP secret at all
  step "no secret in the run's logs" .venv/bin/python -m tests.logsecrets "$STACKCORE_TEST_LOG_DIR"
fi
