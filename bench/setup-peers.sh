#!/usr/bin/env bash
# Install the peers the benchmarks compare against into bench/.venv, apart from mlcrew and its
# .venv: MLflow 3 (with what `mlflow models serve --env-manager local` needs to serve a pyfunc
# model: LightGBM, pandas, uvicorn), Label Studio Community Edition (bench/labeling.py) and `wrk`
# from Debian. Idempotent; re-run to upgrade.
#   bash bench/setup-peers.sh            then   export PATH="$PWD/bench/.venv/bin:$PATH"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON="${PYTHON:-python3}"

if ! command -v wrk >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y wrk
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The same LightGBM major as mlcrew's, so both sides run the same booster code.
# One resolve for all peers: Label Studio's pins (Django, pytz, ...) and MLflow's do not clash.
.venv/bin/python -m pip install --quiet "mlflow>=3,<4" "lightgbm>=4.3" pandas pyarrow "label-studio>=1.20" "pandera>=0.35"
.venv/bin/python -c "import mlflow, lightgbm; print('bench/.venv: mlflow', mlflow.__version__, '| lightgbm', lightgbm.__version__)"
.venv/bin/python -c "import importlib.metadata as m; print('bench/.venv: label-studio', m.version('label-studio'))"
# Evidently 0.7 needs pandas < 3, which the other peers have left behind: a venv of its own.
if [ ! -x .venv-evidently/bin/python ]; then
    "$PYTHON" -m venv .venv-evidently
fi
.venv-evidently/bin/python -m pip install --quiet "evidently>=0.7,<0.8" "pandas<3" pyarrow
.venv-evidently/bin/python -c "import evidently; print('bench/.venv-evidently: evidently', evidently.__version__)"
echo "wrk: $(wrk --version 2>&1 | head -1)"
echo "put the peers on PATH with: export PATH=\"$PWD/.venv/bin:\$PATH\""
