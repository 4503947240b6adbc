#!/usr/bin/env bash
# The test suite, with PyTorch installed as the gradient oracle and the bridge's target, and
# onnx / onnxruntime for the ONNX export's checks, and numba for the fused kernels (their
# tests also run each kernel as plain Python and the program unfused, so both paths are tested).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" test,torch,onnx,fast
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
