#!/usr/bin/env bash
# The scale-out GPU checks in one run of at most 10 minutes (bench/gpu_check.py says what each does):
#   bash bench/gpu_check.sh                 on a machine with CUDA (all devices present are used)
#   bash bench/gpu_check.sh --cpu-dry-run   the same code paths on the CPU, tiny sizes (script check)
# Results: one PASS/FAIL/INFO line per check, a summary, and $OUT/gpu_check.json when $OUT is set.
# Exit status: 0 all passed, 1 a check failed, 2 no CUDA (without --cpu-dry-run), 124 over 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RECAFFE_DATA_WORKERS="${RECAFFE_DATA_WORKERS:-2}"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count())"
timeout --signal=INT --kill-after=20 600 "$PY" bench/gpu_check.py "$@"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: stopped after 10 minutes" >&2
exit $rc
