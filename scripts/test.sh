#!/usr/bin/env bash
# The test suite, with PyTorch installed as the gradient oracle.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" test,torch
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
