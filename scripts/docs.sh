#!/usr/bin/env bash
# The documentation site: a clean Sphinx build into docs/_build/html with warnings as errors
# (every diagram and figure is drawn by tinygraph during the build), then the doctests of its
# pages. Extra arguments go to both sphinx-build runs (e.g. -j auto).
# torch and onnx: the page on moving to PyTorch and ONNX runs both in its doctests; fast
# (numba): the compiled-mode page prints a program with its fused kernels.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" docs,torch,onnx,fast
cd "$ROOT"
# One BLAS thread: a docs build beside other numpy work must not slow both down.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
rm -rf docs/_build
"$VENV/bin/python" -m sphinx -W --keep-going -q -b html docs docs/_build/html "$@"
"$VENV/bin/python" -m sphinx -W --keep-going -q -b doctest docs docs/_build/doctest "$@"
awk '/^ +[0-9]+ tests$/ {n = $1} /^ +[0-9]+ failures in tests$/ {f = $1}
     END {printf "doctests: %d passed, %d failed\n", n - f, f}' docs/_build/doctest/output.txt
echo "Documentation built: $ROOT/docs/_build/html/index.html"
