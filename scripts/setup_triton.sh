#!/usr/bin/env bash
# A virtual environment for the Triton Inference Server bundled in nvidia-pytriton (CPU, Python
# backend), kept apart from the project's: pytriton pins numpy < 2. Usage: scripts/setup_triton.sh [VENV]
set -euo pipefail
venv="${1:-.triton-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check nvidia-pytriton onnxruntime
"$venv/bin/python" -c "import pytriton, onnxruntime; print('Triton environment ready:', '$venv')"
