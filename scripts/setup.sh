#!/usr/bin/env bash
# Install irrepnet (editable) and its test tools into the current Python environment.
#
# - An installed torch is kept as it is: a GPU user installs the torch build of their
#   platform first. Without torch, the CPU build of torch ${IRREPNET_TORCH_VERSION} is
#   installed so that pip never pulls the multi-GB CUDA build as a dependency.
#   Set TORCH_INDEX_URL to PyTorch's CPU wheel index on machines where pip's default
#   index would otherwise serve a CUDA build.
# - IRREPNET_EXTRAS=pyg (or pyg,vesin) also installs the compiled backends; torch-scatter
#   and torch-cluster build from source (about 15 minutes, then pip's cache keeps them).
#   IRREPNET_EXTRAS=...,peers installs the peer implementations (egnn-pytorch,
#   se3-transformer-pytorch; wheels, nothing to compile) that tests/test_peers.py and the peers suites use.
#   IRREPNET_EXTRAS=...,lint installs ruff and mypy (`make lint`).
#   Any other name in IRREPNET_EXTRAS is installed as that extra of pyproject.toml
#   (cueq: cuequivariance-torch; ase: the ASE data and calculator paths; docs: Sphinx).
# - It is idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${IRREPNET_TORCH_VERSION:-2.13.0}
PIP=("$PY" -m pip install --disable-pip-version-check --quiet)

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "setup: no torch found; installing torch==${TORCH_VERSION} (CPU build)"
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "${PIP[@]}" "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"
    else
        "${PIP[@]}" "torch==${TORCH_VERSION}"
    fi
fi
"${PIP[@]}" -e ".[test]"

extras=${IRREPNET_EXTRAS:-}
if [[ ",$extras," == *",pyg,"* ]]; then
    # --no-build-isolation: they compile against the torch installed above, not a fresh one.
    echo "setup: installing torch-scatter and torch-cluster (compiled; cached after the first build)"
    "${PIP[@]}" --no-build-isolation "torch-scatter>=2.1" "torch-cluster>=1.6"
fi
if [[ ",$extras," == *",vesin,"* ]]; then
    "${PIP[@]}" "vesin-torch>=0.6"
fi
# every other name is an extra of pyproject.toml, installed as such (lint, peers, cueq, ase, ...)
IFS=, read -r -a requested <<<"$extras"
for extra in "${requested[@]}"; do
    case "$extra" in
    "" | pyg | vesin) ;;
    *) "${PIP[@]}" -e ".[$extra]" ;;
    esac
done
"$PY" -c "import irrepnet, e3nn, torch; print(f'setup: irrepnet {irrepnet.__version__} with torch {torch.__version__}, e3nn {e3nn.__version__} ready')"
