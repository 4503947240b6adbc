#!/usr/bin/env bash
# The main job on the embedded default: one LSTM cell step built from primitives.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$VENV/bin/python" -m tinygraph demo "$@"
