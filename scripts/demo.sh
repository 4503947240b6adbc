#!/usr/bin/env bash
# The main job on the embedded default (no download): train a small LSTM on a sine wave, then
# draw its cell's forward and backward graphs, the loss curve and the vanishing-gradient figure.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
# One BLAS thread: the demo's matrices are tiny, and a second thread only waits on a busy core.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
exec "$VENV/bin/python" -m lstm demo "$@"
