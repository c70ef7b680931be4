#!/usr/bin/env bash
# The whole GPU check in one call, for the rare occasions a GPU is lent (under five minutes):
# the `cuda` tests, the offline kernel report and the GPU step-time benchmark, with the
# machine's own torch and triton. Results go to $OUT (or /tmp/gpu_check) and to stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${OUT:-/tmp/gpu_check}
SITE=/tmp/fused_sched_site
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1

# The package without its dependencies: the machine already has torch, triton and pytest.
$PY -m pip install -q --no-deps --no-build-isolation --no-index --target "$SITE" . || exit 1
export PYTHONPATH="$SITE"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$RESULTS/gpu.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

status=0
# Tests import the installed package, not the source tree's fused_sched/.
(cd /tmp && timeout 170 $PY -m pytest -q -m cuda -p no:cacheprovider --rootdir "$OLDPWD" \
    "$OLDPWD/tests") 2>&1 | tee "$RESULTS/cuda_tests.txt" || status=1
timeout 60 $PY bench/kernel_report.py 2>&1 | tee "$RESULTS/kernel_report.txt" || status=1
timeout 90 $PY bench/step_time.py --rounds 20 --steps 20 --csv "$RESULTS/step_time.csv" \
    2>&1 | tee "$RESULTS/step_time.txt" || status=1
exit $status
