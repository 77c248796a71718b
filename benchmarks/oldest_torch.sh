#!/bin/sh
# The analyser on the oldest PyTorch the README promises (torch 2.4 with torchvision 0.19), in a fresh
# virtual environment: the analysis tests, once on the fast path (analysis/_fast.py, where that torch
# has the internals it uses) and once on the public path (CNNATLAS_ANALYSIS_FAST=0).
# Not run in CI: it downloads about 1 GB of CPU wheels from download.pytorch.org (INDEX=pypi takes
# PyPI's CUDA builds instead, about 3 GB; they run on the CPU too).
#
#   benchmarks/oldest_torch.sh                 # torch 2.4.1, torchvision 0.19.1 (the defaults)
#   TORCH=2.5.1 VISION=0.20.1 benchmarks/oldest_torch.sh
set -eu
TORCH=${TORCH:-2.4.1}
VISION=${VISION:-0.19.1}
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv-torch-$TORCH}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
INDEX=${INDEX:-https://download.pytorch.org/whl/cpu}
if [ "$INDEX" = pypi ]; then
    "$VENV/bin/pip" install -q "torch==$TORCH" "torchvision==$VISION"
else
    "$VENV/bin/pip" install -q "torch==$TORCH" "torchvision==$VISION" --index-url "$INDEX"
fi
"$VENV/bin/pip" install -q -e "$ROOT" pytest hypothesis timm
"$VENV/bin/python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
"$VENV/bin/python" -c "from cnnatlas.analysis import _fast; print('fast path available:', _fast.AVAILABLE)"
cd "$ROOT"
TESTS="tests/test_analysis.py tests/test_analysis_ops.py tests/test_analysis_paths.py tests/test_analysis_backward.py tests/test_analysis_detection.py tests/test_analysis_formulas.py tests/test_analysis_rf.py"
status=0
echo "== fast path"
OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" $TESTS || status=1
echo "== public path (CNNATLAS_ANALYSIS_FAST=0)"
CNNATLAS_ANALYSIS_FAST=0 OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" $TESTS || status=1
exit $status
