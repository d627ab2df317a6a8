#!/usr/bin/env bash
# Run mlcrew's benchmarks from the repo root (called by `make bench`). Extra args go to the
# script, e.g. `bash bench/run.sh --repeat 30`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
.venv/bin/python bench/noop_run.py "$@"
