#!/usr/bin/env bash
# The test suite, with PyTorch installed as the gradient oracle and the bridge's target, and
# onnx / onnxruntime for the ONNX export's checks.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" test,torch,onnx
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
