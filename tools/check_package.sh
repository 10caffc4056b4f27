#!/usr/bin/env bash
# Packaging check (CI runs it): build the wheel and sdist, check their metadata, install the wheel in a
# fresh venv and run the command line from it. Usage: bash tools/check_package.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
twine check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/*.whl)
# the listing read whole first: `unzip | grep -q` under pipefail fails when grep stops early (SIGPIPE to unzip)
files=$(unzip -Z1 "$wheel")
grep -qx "mediaformers/py.typed" <<<"$files" || { echo "py.typed missing from $wheel"; exit 1; }
python -m venv "$work/venv"
# torch first and pinned, as in the README: the CPU wheel; an unpinned resolve could pick a CUDA build.
"$work/venv/bin/pip" install --quiet torch==2.13.0 2>"$work/pip.log" || { tail "$work/pip.log"; exit 1; }
"$work/venv/bin/pip" install --quiet "$wheel" 2>>"$work/pip.log" || { tail "$work/pip.log"; exit 1; }
(cd "$work" && "$work/venv/bin/mediaformers" --help >/dev/null)
(cd "$work" && "$work/venv/bin/python" -c "import mediaformers as mf; assert 'videomae-base-kinetics' in mf.list_models()")
echo "package check: $(basename "$wheel") and the sdist build, pass twine check, install and run"
