#!/usr/bin/env bash
# Run mlcrew's benchmarks from the repo root (called by `make bench`).
#   bash bench/run.sh                  all of them
#   bash bench/run.sh noop --repeat 30 one of noop | serving | batch | ray | active | scenario |
#                                      labeling | data | drift | round, extra args to its script
# serving and batch compare with MLflow in bench/.venv (created by bench/setup-peers.sh when
# missing), labeling with Label Studio there (and mlcrew on a throwaway PostgreSQL from
# scripts/with-postgres.sh too); all measure whatever mlcrew the interpreter imports (PYTHONPATH wins).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
what="${1:-all}"
case "$what" in noop|serving|batch|ray|active|scenario|labeling|data|drift|round|all) shift || true ;; *) what=all ;; esac

peers() {
    [ -x bench/.venv/bin/mlflow ] && [ -x bench/.venv/bin/label-studio ] && command -v wrk >/dev/null 2>&1 || bash bench/setup-peers.sh
    export PATH="$PWD/bench/.venv/bin:$PATH"
}
status=0
if [ "$what" = noop ] || [ "$what" = all ]; then "$PY" bench/noop_run.py "$@" || status=$?; fi
if [ "$what" = serving ] || [ "$what" = all ]; then peers; "$PY" bench/serving.py "$@" || status=$?; fi
if [ "$what" = batch ] || [ "$what" = all ]; then peers; "$PY" bench/batch.py "$@" || status=$?; fi
if [ "$what" = labeling ] || [ "$what" = all ]; then
    peers; bash scripts/with-postgres.sh "$PY" bench/labeling.py "$@" || status=$?
fi
if [ "$what" = ray ] || [ "$what" = all ]; then "$PY" bench/ray_trials.py "$@" || status=$?; fi
if [ "$what" = active ] || [ "$what" = all ]; then "$PY" bench/active_learning.py "$@" || status=$?; fi
if [ "$what" = scenario ] || [ "$what" = all ]; then "$PY" bench/labeling_scenario.py "$@" || status=$?; fi
if [ "$what" = data ] || [ "$what" = all ]; then
    [ -x bench/.venv/bin/python ] && bench/.venv/bin/python -c "import pandera" 2>/dev/null || bash bench/setup-peers.sh
    PYTHONPATH="bench:${PYTHONPATH:-}" "$PY" bench/data.py "$@" || status=$?
fi
if [ "$what" = drift ] || [ "$what" = all ]; then
    [ -x bench/.venv-evidently/bin/python ] || bash bench/setup-peers.sh
    PYTHONPATH="src:${PYTHONPATH:-}" "$PY" bench/drift.py "$@" || status=$?
fi
if [ "$what" = round ] || [ "$what" = all ]; then
    PYTHONPATH="src:${PYTHONPATH:-}" "$PY" bench/monitor_round.py "$@" || status=$?
fi
exit "$status"
