#!/usr/bin/env bash
# The README's test command under another torch, in a virtual environment of its own (.venvs/torch-VERSION), with
# everything installed the way the README says:
#   tools/versions.sh 2.8.0     torch 2.8.0 (the floor requirements.txt states), then the rest of requirements.txt
#   tools/versions.sh newest    plain `pip install -r requirements.txt`: the newest release (on Linux a CUDA build,
#                               a few GB, which on a machine without a GPU runs the tests on the CPU)
# Arguments after the version go to pytest (tools/versions.sh newest -x -k resume). Run it again to reuse the
# environment: pip keeps what already satisfies the request.
set -euo pipefail
version=${1:?"usage: tools/versions.sh VERSION|newest [pytest arguments]"}
shift
cd "$(dirname "$0")/.."
venv=".venvs/torch-$version"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
if [ "$version" = newest ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade --upgrade-strategy eager -r requirements.txt
else
    "$venv/bin/python" -m pip install --quiet "torch==$version" -r requirements.txt
fi
"$venv/bin/python" - <<'PY'
import torch, transformers
build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
print(f"torch {torch.__version__} ({build}, GPU: {torch.cuda.is_available()}), transformers {transformers.__version__}")
PY
"$venv/bin/python" -m pytest -q tests "$@"
