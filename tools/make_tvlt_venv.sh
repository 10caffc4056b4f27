#!/usr/bin/env bash
# Creates tools/.venv-tvlt: a reference environment with transformers 4.57.1, the last release that
# still ships TVLT (under models/deprecated/tvlt). Used to write TVLT golden files (features now,
# model outputs later); never imported by src/. torch is pinned to the version of the main .venv so
# pip takes the local wheel instead of pulling another build.
# Usage: bash tools/make_tvlt_venv.sh [python]   (idempotent: reuses an existing venv)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-tvlt"
python="${1:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet \
    "torch==2.13.0" "transformers==4.57.1" numpy soundfile safetensors
"$venv/bin/python" -c "import transformers, torch; print('tvlt venv:', transformers.__version__, torch.__version__)"
